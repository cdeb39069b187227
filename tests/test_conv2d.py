"""conv2d against the float64 reference, every algorithm, dtype and layout."""
import numpy as np
import pytest

import convkit
from convkit.conv import choose_algorithm
from helpers import assert_close, nchw, oihw
from reference import conv2d_ref, pads_of, pair
from reference_units import activation_ref

ALGOS = ["direct", "im2col", "auto"]
DTYPES = [np.float32, np.float64]

# (N, H, W, Cin, Cout, (KH, KW), stride, padding, dilation, groups)
CASES = [
    (1, 5, 5, 1, 1, (3, 3), 1, 0, 1, 1),              # one channel
    (1, 7, 6, 3, 5, (3, 2), 1, 1, 1, 1),              # non-square input and kernel, odd channels
    (3, 8, 8, 4, 6, (1, 1), 1, 0, 1, 1),              # pointwise
    (1, 6, 9, 3, 4, (1, 1), 2, 0, 1, 1),              # 1x1 strided (not a plain GEMM)
    (1, 4, 4, 2, 3, (4, 4), 1, 0, 1, 1),              # kernel equals the input
    (1, 9, 10, 5, 7, (3, 3), 2, 1, 1, 1),             # stride 2
    (1, 11, 9, 3, 17, (3, 5), 3, (2, 3), 1, 1),       # stride 3, padding per axis, > one channel block
    (1, 12, 12, 4, 8, (3, 3), 1, 3, 3, 1),            # dilation 3
    (3, 10, 13, 4, 6, (3, 3), (1, 2), 2, (2, 1), 1),  # mixed stride and dilation
    (1, 8, 8, 6, 4, (3, 3), 1, 1, 1, 2),              # groups 2
    (2, 7, 7, 6, 6, (3, 3), 2, 1, 1, 6),              # depthwise
    (1, 7, 7, 4, 8, (5, 5), 1, 2, 2, 4),              # depthwise, multiplier 2, dilated
    (1, 9, 9, 8, 40, (3, 3), 1, 1, 1, 2),             # several output-channel blocks per group
    (1, 13, 7, 3, 33, (7, 7), 2, 3, 1, 1),            # stem-like
    (1, 10, 10, 64, 32, (3, 3), 1, 1, 1, 1),          # reductions wide enough for auto -> im2col
    (2, 6, 8, 48, 64, (1, 1), 1, 0, 1, 1),            # pointwise through auto -> im2col
    (1, 5, 5, 3, 4, (3, 3), 1, "same", 1, 1),
    (1, 6, 7, 3, 4, (4, 3), 2, "same", 1, 1),         # SAME with stride 2: asymmetric padding
    (1, 6, 7, 3, 4, (3, 3), 1, "valid", 2, 1),
    (2, 4, 3, 2, 20, (3, 5), 1, (1, 2), 1, 1),        # every window row crosses both sides
    (1, 6, 9, 16, 8, (3, 4), 1, (1, 2), 1, 1),        # window rows of 64 values: padded copies at the edges
    (1, 6, 9, 13, 8, (3, 5), 1, 2, 1, 1),             # 65 values: tap by tap at the edges
]


def _pads(case):
    n, h, w, cin, cout, k, stride, padding, dilation, groups = case
    return pads_of(padding, (h, w), k, stride, dilation)


def _make(case, dtype, rng, bias=True):
    n, h, w, cin, cout, k, stride, padding, dilation, groups = case
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((k[0], k[1], cin // groups, cout)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    expected = conv2d_ref(x, wt, b, pair(stride), _pads(case), pair(dilation), groups)
    return x, wt, b, expected


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_conv2d_matches_reference(case, algo, dtype, layout, rng):
    x, w, b, expected = _make(case, dtype, rng)
    _, _, _, _, _, _, stride, padding, dilation, groups = case
    if layout == "NHWC":
        y = convkit.conv2d(x, w, b, stride, padding, dilation, groups, algo=algo)
    else:
        y = convkit.conv2d(nchw(x), oihw(w), b, stride, padding, dilation, groups,
                           layout="NCHW", algo=algo)
        expected = nchw(expected)
    assert y.flags.c_contiguous
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("batch", [0, 1, 3])
def test_batch_sizes(algo, batch, rng):
    case = (batch, 6, 5, 3, 4, (3, 3), 1, 1, 1, 1)
    x, w, b, expected = _make(case, np.float32, rng)
    y = convkit.conv2d(x, w, b, padding=1, algo=algo)
    assert y.shape == (batch, 6, 5, 4)
    assert_close(y, expected, np.float32)


@pytest.mark.parametrize("algo", ALGOS)
def test_without_bias(algo, rng):
    case = CASES[5]
    x, w, _, expected = _make(case, np.float64, rng, bias=False)
    assert_close(convkit.conv2d(x, w, None, 2, 1, algo=algo), expected, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", [(3, 12, 13, 32, 33, (3, 3), 1, 1, 1, 1), (2, 17, 11, 48, 40, (3, 3), 2, 1, 1, 2),
                                  (1, 3, 40, 300, 7, (1, 1), 1, 0, 1, 1), (2, 9, 40, 3, 20, (7, 7), 2, 3, 1, 1),
                                  (1, 8, 30, 36, 24, (4, 5), 1, (1, 0), 1, 1)],
                         ids=["3x3", "grouped strided", "1x1", "wide stem", "kernel rows across reduction blocks"])
def test_im2col_spans_gemm_blocks(case, dtype, rng):
    """Enough output pixels and reduction for several GEMM row blocks and reduction blocks, tiles that
    cross image boundaries, partial tiles in both directions, 1 to 3 threads.  The last two have tiles
    whose every window row lies inside (packed a kernel row at a time), beside tiles that cross the
    left or right edge or the padded top and bottom rows; in the last, the reduction blocks (720 columns
    in blocks of 240) start inside a kernel row of 180."""
    x, w, b, expected = _make(case, dtype, rng)
    for nt in (1, 2, 3):
        y = convkit.conv2d(x, w, b, case[6], case[7], case[8], case[9], algo="im2col", num_threads=nt)
        assert_close(y, expected, dtype)


def test_non_contiguous_and_read_only_inputs(rng):
    case = CASES[1]
    x, w, b, expected = _make(case, np.float64, rng)
    x_strided = np.asfortranarray(x)
    w_ro = w.copy()
    w_ro.flags.writeable = False
    for algo in ALGOS:
        assert_close(convkit.conv2d(x_strided, w_ro, b, 1, 1, algo=algo), expected, np.float64)
    x_view = np.concatenate([x, x], axis=3)[..., ::2]   # every other channel: a strided view
    expected_view = conv2d_ref(x_view, w, b, (1, 1), (1, 1, 1, 1))
    assert_close(convkit.conv2d(x_view, w, b, 1, 1), expected_view, np.float64)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_out_argument(layout, rng):
    case = CASES[5]
    x, w, b, expected = _make(case, np.float32, rng)
    if layout == "NCHW":
        x, w, expected = nchw(x), oihw(w), nchw(expected)
    out = np.empty(expected.shape, np.float32)
    y = convkit.conv2d(x, w, b, 2, 1, layout=layout, out=out)
    assert y is out
    assert_close(out, expected, np.float32)


def test_inputs_not_modified(rng):
    x, w, b, _ = _make(CASES[9], np.float32, rng)
    copies = [a.copy() for a in (x, w, b)]
    for algo in ALGOS:
        convkit.conv2d(x, w, b, 1, 1, 1, 2, algo=algo)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_thread_counts_agree(num_threads, rng):
    x, w, b, expected = _make(CASES[6], np.float64, rng)
    for algo in ALGOS:
        y = convkit.conv2d(x, w, b, 3, (2, 3), algo=algo, num_threads=num_threads)
        assert_close(y, expected, np.float64)


def test_set_num_threads_round_trip():
    default = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        assert convkit.get_num_threads() == 1
    finally:
        convkit.set_num_threads(None)
    assert convkit.get_num_threads() == default


def _auto(kernel, stride, pads, groups, out_size, cin, cout, batch=1, threads=1):
    return choose_algorithm(kernel, stride, pads, groups, out_size, in_channels=cin, out_channels=cout,
                            batch=batch, num_threads=threads)


def test_auto_rule():
    no_pad, pad1 = (0, 0, 0, 0), (1, 1, 1, 1)
    assert _auto((1, 1), (1, 1), no_pad, 1, (56, 56), 256, 64) == "direct"          # 1x1 narrowing
    assert _auto((1, 1), (1, 1), no_pad, 1, (14, 14), 64, 384) == "im2col"          # 1x1 widening
    assert _auto((1, 1), (2, 2), no_pad, 1, (28, 28), 64, 128) == "im2col"          # ResNet downsample
    assert _auto((3, 3), (1, 1), pad1, 1, (7, 7), 512, 512) == "im2col"             # small map, wide
    assert _auto((3, 3), (1, 1), pad1, 1, (56, 56), 64, 64) == "direct"
    assert _auto((7, 7), (2, 2), (3, 3, 3, 3), 1, (112, 112), 3, 64) == "direct"    # stem
    assert _auto((3, 3), (1, 1), pad1, 32, (7, 7), 512, 512) == "direct"            # grouped
    assert _auto((3, 3), (1, 1), pad1, 512, (7, 7), 512, 512) == "direct"           # depthwise


def test_auto_rule_winograd_for_float32_only():
    """Winograd (weights transformed in the call) on float32 3x3 stride-1 layers with 32+ channels and 16+
    output tiles; float64, other geometry, few channels or few tiles keep the exact algorithms."""
    pad1 = (1, 1, 1, 1)

    def auto(out_size, cin, cout, batch=1, dtype=np.float32, stride=(1, 1), dilation=(1, 1), kernel=(3, 3)):
        return choose_algorithm(kernel, stride, pad1, 1, out_size, in_channels=cin, out_channels=cout,
                                batch=batch, num_threads=2, dilation=dilation, dtype=dtype)
    assert auto((14, 14), 256, 256) == "winograd"            # 16 tiles of F(4,3)
    assert auto((7, 7), 512, 512, batch=8) == "winograd"      # 32 tiles
    assert auto((56, 56), 64, 64) == "winograd"
    assert auto((7, 7), 512, 512) == "im2col"                 # 4 tiles
    assert auto((14, 14), 256, 256, dtype=np.float64) == "im2col"
    assert auto((56, 56), 64, 64, dtype=None) == "direct"
    assert auto((224, 224), 3, 64) == "direct"                # 3 input channels
    assert auto((112, 112), 64, 16) == "direct"               # 16 output channels
    assert auto((28, 28), 64, 64, stride=(2, 2)) == "direct"
    assert auto((56, 56), 64, 64, dilation=(2, 2)) == "direct"
    assert auto((56, 56), 64, 64, kernel=(5, 5)) == "direct"


def test_auto_rule_with_weights_kept_takes_winograd_below_the_tile_count():
    """A layer that keeps its transformed weights (nn.Conv2d in evaluation mode) pays no transform per
    call: 7x7x512 at batch 1 (4 tiles) gets Winograd there, and the per-call rule keeps im2col."""
    def auto(out_size, cin, cout, dtype=np.float32, kept=True):
        return choose_algorithm((3, 3), (1, 1), (1, 1, 1, 1), 1, out_size, in_channels=cin, out_channels=cout,
                                batch=1, num_threads=2, dtype=dtype, weights_kept=kept)
    assert auto((7, 7), 512, 512) == "winograd"
    assert auto((7, 7), 512, 512, kept=False) == "im2col"
    assert auto((7, 7), 512, 512, dtype=np.float64) == "im2col"      # still float32 only
    assert auto((7, 7), 16, 512) != "winograd"                        # and 32+ channels


def test_resnet18_in_evaluation_mode_runs_its_7x7_layers_with_winograd():
    from convkit.models import resnet18
    model = resnet18(dtype=np.float32).eval()
    chosen = {}

    def visit(layer, in_shape, out_shape):
        if isinstance(layer, convkit.nn.Conv2d) and in_shape[1:] == (7, 7, 512):
            bound = layer.bind(np.zeros((3, 3, 512, 512), np.float32))
            chosen[layer.stride] = bound._plan(np.zeros(in_shape, np.float32), 2)[4]
    model._trace(model._shape_to_internal((1, 224, 224, 3)), visit)
    assert chosen == {(1, 1): "winograd"}


def test_auto_runs_winograd_where_chosen(rng):
    """conv2d(algo="auto") on a layer the rule gives Winograd: Winograd's bits, within its float32 bound."""
    x = rng.standard_normal((1, 16, 16, 32)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 32, 40)) * np.sqrt(2 / (9 * 32))).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    y = convkit.conv2d(x, w, b, padding=1)
    np.testing.assert_array_equal(y, convkit.conv2d(x, w, b, padding=1, algo="winograd"))
    assert_close(y, conv2d_ref(x, w, b, (1, 1), (1, 1, 1, 1)), np.float32, tolerance=5e-5)


def test_auto_rule_counts_pixels_per_thread():
    """3x3 14x14x256: 3009 weights per output pixel on one thread (direct), twice that per thread on two
    (im2col); batch 8 brings it back under the threshold."""
    args = ((3, 3), (1, 1), (1, 1, 1, 1), 1, (14, 14), 256, 256)
    assert _auto(*args, threads=1) == "direct"
    assert _auto(*args, threads=2) == "im2col"
    assert _auto(*args, batch=8, threads=2) == "direct"


@pytest.mark.parametrize("activation", ["relu", "relu6", ("leaky_relu", 0.2), "elu", "sigmoid", "tanh"])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", [CASES[5], CASES[14], CASES[15]], ids=str)
def test_fused_activation(activation, algo, case, rng):
    """conv2d(..., activation=a) equals the activation applied to conv2d's output."""
    x, w, b, expected = _make(case, np.float64, rng)
    _, _, _, _, _, _, stride, padding, dilation, groups = case
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    y = convkit.conv2d(x, w, b, stride, padding, dilation, groups, algo=algo, activation=activation)
    assert_close(y, activation_ref(expected, name, param), np.float64)


def test_unknown_activation():
    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="activation"):
        convkit.conv2d(x, np.zeros((1, 1, 2, 2), np.float32), activation="gelu")


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_matches_torch(case, algo, rng):
    """PyTorch's conv2d on the same NCHW arrays (padding taken from convkit's own resolution)."""
    torch = pytest.importorskip("torch")
    x, w, b, _ = _make(case, np.float64, rng)
    _, _, _, _, _, _, stride, padding, dilation, groups = case
    top, bottom, left, right = _pads(case)
    xt = torch.nn.functional.pad(torch.from_numpy(nchw(x)), (left, right, top, bottom))
    expected = torch.nn.functional.conv2d(xt, torch.from_numpy(oihw(w)), torch.from_numpy(b),
                                          stride, 0, dilation, groups).numpy()
    y = convkit.conv2d(nchw(x), oihw(w), b, stride, padding, dilation, groups, layout="NCHW", algo=algo)
    assert_close(y, expected, np.float64)
