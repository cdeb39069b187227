"""conv2d(algo="winograd") against the float64 reference, within Winograd's declared error bounds."""
import numpy as np
import pytest

import convkit
from convkit import winograd
from convkit._kernels import winograd as _wino
from helpers import nchw, oihw
from reference import conv2d_ref, pads_of
from reference_units import activation_ref

# Declared bounds on max |error| / max |float64 reference| (README, "Winograd"): float32 per tile size,
# float64 for both.
BOUND = {(np.float32, 4): 5e-5, (np.float32, 2): 1e-5, (np.float64, 4): 1e-10, (np.float64, 2): 1e-10}
DTYPES = [np.float32, np.float64]

# (N, H, W, Cin, Cout, padding): 3x3 kernels, stride 1
CASES = [
    (1, 8, 8, 1, 1, 1),              # one channel, F(4,3) exactly two tiles a side
    (1, 9, 7, 3, 5, 1),              # odd sizes: partial tiles at the right and bottom
    (2, 11, 13, 5, 17, 0),           # no padding, > one output-channel block, batch 2
    (1, 10, 9, 7, 33, (2, 0)),       # padding per axis, wider than the image's border
    (3, 6, 6, 4, 6, "same"),
    (1, 12, 7, 3, 4, "valid"),
    (1, 5, 5, 6, 3, 1),              # 5x5: F(2,3)
    (1, 3, 2, 2, 3, 1),              # smaller than one F(4,3) tile
    (1, 3, 3, 2, 3, 0),              # a single output pixel
    (1, 14, 14, 20, 24, 1),          # channels not a multiple of the lanes
    (2, 16, 9, 19, 16, 3),           # padding 3: tiles made of zeros only
]


def _bound(dtype, out_size):
    return BOUND[np.dtype(dtype).type, winograd.choose_tile(out_size)]


def _relative_error(actual, expected):
    expected = np.asarray(expected, np.float64)
    scale = np.abs(expected).max(initial=0.0)
    err = np.abs(np.asarray(actual, np.float64) - expected).max(initial=0.0)
    return err / scale if scale > 0 else err


def _make(case, dtype, rng, bias=True):
    n, h, w, cin, cout, padding = case
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    expected = conv2d_ref(x, wt, b, (1, 1), pads_of(padding, (h, w), 3, 1, 1))
    return x, wt, b, expected


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_matches_reference(case, dtype, layout, rng):
    x, w, b, expected = _make(case, dtype, rng)
    padding = case[-1]
    if layout == "NHWC":
        y = convkit.conv2d(x, w, b, padding=padding, algo="winograd")
    else:
        y = convkit.conv2d(nchw(x), oihw(w), b, padding=padding, layout="NCHW", algo="winograd")
        expected = nchw(expected)
    assert y.dtype == dtype and y.shape == expected.shape and y.flags.c_contiguous
    assert _relative_error(y, expected) <= _bound(dtype, expected.shape[1:3] if layout == "NHWC"
                                                  else expected.shape[2:])


@pytest.mark.parametrize("kept", [False, True])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_both_tiles_on_every_shape(kept, m, dtype, rng):
    """F(2,3) and F(4,3) each, whatever choose_tile would pick, through the kernel entry point, with the
    weights transformed in the call or kept."""
    for case in CASES:
        x, w, b, expected = _make(case, dtype, rng)
        n, h, wid, _, cout, padding = case
        pads = pads_of(padding, (h, wid), 3, 1, 1)
        y = np.empty(expected.shape, dtype)
        winograd.conv2d_winograd(x, winograd.WinogradWeight(w) if kept else w, b, (0, 0.0), pads, y, 2, m)
        assert _relative_error(y, expected) <= BOUND[dtype, m], case


@pytest.mark.parametrize("m", [2, 4])
def test_weights_transformed_in_the_call_or_beforehand_agree(m, rng):
    """The kernel's own transform (first call) and transform_weights (kept weights) give the same bits."""
    x, w, b, _ = _make((2, 9, 10, 7, 40, 1), np.float32, rng)
    fresh, kept = winograd.WinogradWeight(w), winograd.WinogradWeight(w)
    np.testing.assert_array_equal(kept.packed(m), winograd._transform(w, m))
    ys = []
    for weight in (fresh, kept):
        ys.append(np.empty((2, 9, 10, 40), np.float32))
        winograd.conv2d_winograd(x, weight, b, (0, 0.0), (1, 1, 1, 1), ys[-1], 2, m)
    np.testing.assert_array_equal(ys[0], ys[1])
    np.testing.assert_array_equal(fresh.cached(m), kept.packed(m))


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cin, cout", [(1, 1), (63, 17), (64, 64), (130, 33)])
def test_weights_transformed_in_the_items_or_kept_agree(m, dtype, cin, cout, rng):
    """A call's own weights are transformed inside its work items, a block of output channels times a
    chunk of input channels at a time (130 = 64 + 64 + 2); kept weights are read packed: the same bits,
    at every thread count (blocks and chunks change with it), within the declared bound."""
    x, w, b, expected = _make((2, 9, 10, cin, cout, 1), dtype, rng)
    ys = {}
    for kind, weight in (("call", w), ("kept", winograd.WinogradWeight(w))):
        for threads in (1, 2, 3):
            ys[kind, threads] = np.empty(expected.shape, dtype)
            winograd.conv2d_winograd(x, weight, b, (0, 0.0), (1, 1, 1, 1), ys[kind, threads], threads, m)
    for y in ys.values():
        np.testing.assert_array_equal(y, ys["kept", 1])
    assert _relative_error(ys["call", 2], expected) <= BOUND[dtype, m]


def test_kernel_needs_weights_or_transforms(rng):
    x = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
    y = np.empty((1, 6, 6, 4), np.float32)
    with pytest.raises(ValueError, match="expected the weights w or their transforms u, got neither"):
        _wino.conv2d_nhwc(x, None, None, y, 4, 1, 1, _wino.tile_rows(), 1, 0, 0.0, 1)


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_batch_sizes(batch, rng):
    x, w, b, expected = _make((batch, 9, 10, 3, 4, 1), np.float32, rng)
    y = convkit.conv2d(x, w, b, padding=1, algo="winograd")
    assert y.shape == (batch, 9, 10, 4)
    assert _relative_error(y, expected) <= BOUND[np.float32, 4]


def test_no_input_channels_gives_bias(rng):
    x = np.zeros((1, 6, 6, 0))
    w = np.zeros((3, 3, 0, 4))
    b = rng.standard_normal(4)
    y = convkit.conv2d(x, w, b, padding=1, algo="winograd")
    np.testing.assert_array_equal(y, np.broadcast_to(b, (1, 6, 6, 4)))


@pytest.mark.parametrize("activation", ["relu", "relu6", ("leaky_relu", 0.2), ("elu", 0.5), "sigmoid",
                                        "tanh"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_and_activations_fused(activation, dtype, rng):
    x, w, b, expected = _make((2, 9, 11, 5, 20, 1), dtype, rng)
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    y = convkit.conv2d(x, w, b, padding=1, algo="winograd", activation=activation)
    assert _relative_error(y, activation_ref(expected, name, param)) <= 2 * _bound(dtype, (9, 11))


@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_added_before_the_activation(dtype, rng):
    x, w, b, expected = _make((2, 9, 7, 6, 21, 1), dtype, rng)
    residual = rng.standard_normal(expected.shape).astype(dtype)
    y = np.empty(expected.shape, dtype)
    winograd.conv2d_winograd(x, winograd.WinogradWeight(w), b, convkit.activations.resolve_activation("relu"),
                             (1, 1, 1, 1), y, 2, residual=residual)
    assert _relative_error(y, activation_ref(expected + residual, "relu")) <= 2 * _bound(dtype, (9, 7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_counts_give_identical_results(dtype, rng):
    """Blocks and chunks change with the thread count, each output's arithmetic does not."""
    x, w, b, _ = _make((3, 13, 11, 9, 40, 1), dtype, rng)
    ys = [convkit.conv2d(x, w, b, padding=1, algo="winograd", num_threads=t) for t in (1, 2, 3)]
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])


def test_small_workspace_forces_blocks_and_chunks(rng, monkeypatch):
    monkeypatch.setattr(winograd, "WORKSPACE_BYTES", 1)
    x, w, b, expected = _make((2, 15, 17, 21, 50, 1), np.float64, rng)
    assert winograd.plan(2, (15, 17), 21, 50, 4, 8, 3) == (_wino.tile_rows(), 1, 1)
    y = convkit.conv2d(x, w, b, padding=1, algo="winograd", num_threads=3)
    assert _relative_error(y, expected) <= BOUND[np.float64, 4]


@pytest.mark.parametrize("n", [1, 8, 64, 256])
@pytest.mark.parametrize("channels", [3, 64, 512, 2048])
@pytest.mark.parametrize("threads", [1, 2, 16])
@pytest.mark.parametrize("kept", [False, True])
def test_workspace_is_bounded(n, channels, threads, kept):
    for size in [(7, 7), (56, 56), (224, 224)]:
        for itemsize in (4, 8):
            assert winograd.workspace_bytes(n, size, channels, channels, itemsize, threads, kept) \
                <= winograd.WORKSPACE_BYTES


def test_tile_rule():
    """F(4,3) where its tile grid needs fewer products than F(2,3)'s, else F(2,3)."""
    assert [winograd.choose_tile((s, s)) for s in (1, 2, 3, 4, 5, 6, 7, 8, 14, 56)] == \
        [2, 2, 4, 4, 2, 2, 4, 4, 4, 4]
    assert winograd.choose_tile((56, 2)) == 2
    assert winograd.choose_tile((3, 56)) == 4


@pytest.mark.parametrize("kwargs, got", [
    (dict(weight_shape=(5, 5)), "kernel_size=(5, 5)"),
    (dict(weight_shape=(3, 1)), "kernel_size=(3, 1)"),
    (dict(stride=2), "stride=(2, 2)"),
    (dict(stride=(1, 2)), "stride=(1, 2)"),
    (dict(dilation=2), "dilation=(2, 2)"),
])
def test_bad_geometry_raises(kwargs, got, rng):
    kh, kw = kwargs.pop("weight_shape", (3, 3))
    x = rng.standard_normal((1, 9, 9, 4)).astype(np.float32)
    w = rng.standard_normal((kh, kw, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match='algo="winograd" needs a 3x3 kernel, stride 1 and dilation 1, '
                                         f"got .*{got}".replace("(", r"\(").replace(")", r"\)")):
        convkit.conv2d(x, w, padding=1, algo="winograd", **kwargs)


def test_groups_raise(rng):
    x = rng.standard_normal((1, 9, 9, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r'algo="winograd" needs groups=1, got groups=2'):
        convkit.conv2d(x, w, padding=1, groups=2, algo="winograd")


@pytest.mark.parametrize("channels", [64, 256, 512])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_declared_accuracy(channels, m, dtype):
    """The README's bounds: N(0, 1) inputs, He-scaled weights (std sqrt(2 / (9 Cin))), 64-512 channels."""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((1, 8, 8, channels)).astype(dtype)
    w = (rng.standard_normal((3, 3, channels, channels)) * np.sqrt(2 / (9 * channels))).astype(dtype)
    expected = conv2d_ref(x, w, None, (1, 1), (1, 1, 1, 1))
    y = np.empty(expected.shape, dtype)
    winograd.conv2d_winograd(x, winograd.WinogradWeight(w), None, (0, 0.0), (1, 1, 1, 1), y, 2, m)
    assert _relative_error(y, expected) <= BOUND[dtype, m]


def test_equals_direct_within_bound(rng):
    x, w, b, _ = _make((2, 28, 28, 32, 32, 1), np.float32, rng)
    direct = convkit.conv2d(x, w, b, padding=1, algo="direct")
    wino = convkit.conv2d(x, w, b, padding=1, algo="winograd")
    assert _relative_error(wino, direct) <= BOUND[np.float32, 4]


def test_out_argument_and_non_contiguous_input(rng):
    x, w, b, expected = _make((2, 9, 10, 6, 7, 1), np.float64, rng)
    out = np.empty(nchw(expected).shape)
    y = convkit.conv2d(np.asfortranarray(nchw(x)), oihw(w)[..., ::-1, ::-1][..., ::-1, ::-1], b, padding=1,
                       layout="NCHW", algo="winograd", out=out)
    assert y is out
    assert _relative_error(out, nchw(expected)) <= BOUND[np.float64, 4]
