"""conv_transpose2d against the float64 scatter reference, as the adjoint of conv2d, and against PyTorch."""
import numpy as np
import pytest

import convkit
from convkit import conv_transpose as ct
from convkit._kernels import conv_transpose as _tconv_kernel
from helpers import assert_close, nchw
from reference_transpose import conv_transpose2d_ref

ALGOS = ["col2im", "direct", "auto"]
DTYPES = [np.float32, np.float64]

# (N, H, W, Cin, Cout, groups, (KH, KW), stride, padding, output_padding, dilation)
CASES = [
    (1, 5, 6, 4, 6, 1, (3, 3), 1, 0, 0, 1),              # stride 1: a full convolution
    (2, 4, 5, 6, 4, 2, (4, 3), 2, 1, 1, 1),              # groups 2, output_padding 1
    (1, 3, 4, 8, 3, 1, (3, 2), (3, 2), (2, 0), (1, 1), (2, 1)),  # per-axis everything
    (1, 6, 5, 16, 32, 1, (4, 4), 2, 1, 0, 1),            # DCGAN-style upsampling, whole blocks
    (3, 4, 4, 12, 18, 3, (3, 3), 2, 1, 1, 2),            # groups 3, dilation 2, batch 3
    (1, 5, 3, 5, 7, 1, (1, 1), 1, 0, 0, 1),              # 1x1: a per-pixel GEMM
    (1, 3, 3, 4, 20, 1, (2, 2), 2, 0, 0, 1),             # stride == kernel: no overlap
    (1, 4, 6, 6, 9, 3, (5, 5), 3, 2, 2, 1),              # stride 3, output_padding 2
    (1, 2, 7, 3, 2, 1, (3, 3), 1, 2, 0, 3),              # output_padding 0 < dilation 3, big crop
    (1, 5, 5, 9, 33, 1, (3, 3), 1, 1, 0, 1),             # Cout 33: two blocks plus a remainder
    (1, 4, 4, 4, 4, 2, (3, 3), 2, 0, 2, 3),              # output_padding 2 >= stride, < dilation
    (2, 17, 13, 8, 40, 1, (4, 4), 2, 1, 1, 1),           # phases of several work items (runs of tiles)
    (1, 11, 14, 5, 6, 1, (5, 4), (3, 2), (2, 1), (2, 1), 1),  # phases of unequal sizes, several items
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _make(case, dtype, rng, bias=True):
    n, h, w, cin, cout, groups, k, stride, padding, output_padding, dilation = case
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((k[0], k[1], cout // groups, cin)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    expected = conv_transpose2d_ref(x, wt, b, _pair(stride), _pair(padding), _pair(output_padding),
                                    _pair(dilation), groups)
    return x, wt, b, expected


def _nchw_weight(w):
    """NHWC transposed-conv weight (KH, KW, Cout/g, Cin) -> PyTorch's (Cin, Cout/g, KH, KW)."""
    return np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1))


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_matches_reference(case, algo, dtype, layout, rng):
    x, w, b, expected = _make(case, dtype, rng)
    stride, padding, output_padding, dilation, groups = case[7], case[8], case[9], case[10], case[5]
    if layout == "NHWC":
        y = convkit.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation,
                                     algo=algo)
    else:
        y = convkit.conv_transpose2d(nchw(x), _nchw_weight(w), b, stride, padding, output_padding,
                                     groups, dilation, layout="NCHW", algo=algo)
        expected = nchw(expected)
    assert y.flags.c_contiguous
    assert_close(y, expected, dtype)


# (N, H, W, C, Cout, groups, (KH, KW), stride, padding, dilation) of the conv2d whose adjoint is taken
ADJOINT_CASES = [
    (1, 7, 6, 3, 5, 1, (3, 3), 1, 1, 1),
    (2, 9, 8, 4, 6, 2, (3, 3), 2, 1, 1),
    (1, 10, 11, 6, 9, 3, (4, 3), (2, 3), (1, 2), 1),
    (1, 12, 9, 4, 8, 4, (3, 2), 1, 2, (2, 3)),
    (3, 8, 8, 16, 32, 1, (4, 4), 2, 1, 1),
    (1, 11, 10, 8, 8, 8, (5, 5), 3, 2, 1),         # depthwise
    (1, 9, 7, 6, 4, 1, (3, 3), 2, 0, 2),
]


@pytest.mark.parametrize("case", ADJOINT_CASES, ids=str)
@pytest.mark.parametrize("algo", ["col2im", "direct"])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_adjoint_of_conv2d(case, algo, layout, rng):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)> with the same weight array in either layout."""
    n, h, wid, c, cout, groups, k, stride, padding, dilation = case
    x = rng.standard_normal((n, h, wid, c))
    w = rng.standard_normal((k[0], k[1], c // groups, cout))     # HWIO for conv2d
    if layout == "NCHW":
        x, w = nchw(x), np.ascontiguousarray(w.transpose(3, 2, 0, 1))   # (Cout, C/g, KH, KW)
    conv = convkit.conv2d(x, w, None, stride, padding, dilation, groups, layout=layout)
    y = rng.standard_normal(conv.shape)
    # output_padding recovers the rows/columns the convolution's floor division dropped.
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    in_hw = (h, wid)
    op = tuple((in_hw[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) % s[i] for i in range(2))
    back = convkit.conv_transpose2d(y, w, None, stride, padding, op, groups, dilation, layout=layout,
                                    algo=algo)
    assert back.shape == x.shape
    lhs, rhs = np.vdot(conv, y), np.vdot(x, back)
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("batch", [0, 1, 3])
def test_batch_sizes(algo, batch, rng):
    case = (batch, 4, 5, 6, 8, 1, (3, 3), 2, 1, 1, 1)
    x, w, b, expected = _make(case, np.float32, rng)
    y = convkit.conv_transpose2d(x, w, b, 2, 1, 1, algo=algo)
    assert y.shape == (batch, 8, 10, 8)
    assert_close(y, expected, np.float32)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_without_bias(algo, dtype, rng):
    x, w, _, expected = _make(CASES[4], dtype, rng, bias=False)
    y = convkit.conv_transpose2d(x, w, None, 2, 1, 1, 3, 2, algo=algo)
    assert_close(y, expected, dtype)


def test_col2im_in_image_chunks(rng, monkeypatch):
    """A workspace smaller than two images' columns forces one GEMM + col2im per image."""
    case = (3, 4, 5, 6, 8, 2, (3, 3), 2, 1, 1, 1)
    x, w, b, expected = _make(case, np.float64, rng)
    per_image = 4 * 5 * 9 * 8 * 8
    monkeypatch.setattr(ct, "COL2IM_WORKSPACE_BYTES", per_image + 1)
    assert ct.col2im_workspace_bytes(x.shape, w.shape, 2, 8) == per_image
    y = convkit.conv_transpose2d(x, w, b, 2, 1, 1, 2, algo="col2im")
    assert_close(y, expected, np.float64)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_thread_counts_agree(num_threads, rng):
    x, w, b, expected = _make(CASES[7], np.float64, rng)
    for algo in ["col2im", "direct"]:
        y = convkit.conv_transpose2d(x, w, b, 3, 2, 2, 3, algo=algo, num_threads=num_threads)
        assert_close(y, expected, np.float64)


def test_non_contiguous_inputs(rng):
    x, w, b, expected = _make(CASES[1], np.float64, rng)
    y = convkit.conv_transpose2d(np.asfortranarray(x), w[::1, ::1], b, 2, 1, 1, 2)
    assert_close(y, expected, np.float64)


def test_output_size_formula():
    assert ct.transposed_output_size(32, 4, 2, 1, 0, 1) == 64
    assert ct.transposed_output_size(5, 3, 1, 0, 0, 1) == 7
    assert ct.transposed_output_size(4, 3, 3, 2, 2, 2) == (4 - 1) * 3 - 4 + 2 * 2 + 2 + 1


def test_auto_rule():
    # The register tile is two vectors of output channels: its width depends on the build (src/simd.h).
    b32, b64 = (_tconv_kernel.block_width(dt) for dt in (np.float32, np.float64))
    assert ct.choose_algorithm(4 * b32, np.float32) == "direct"
    assert ct.choose_algorithm(3, np.float32) == "col2im"
    assert ct.choose_algorithm(b32 + b32 // 2, np.float32) == "col2im"
    assert ct.choose_algorithm(b32 + b32 // 2, np.float64) == "direct"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    x, w, b, _ = _make(case, np.float32, rng)
    n, h, wid, cin, cout, groups, k, stride, padding, output_padding, dilation = case
    expected = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(nchw(x)), torch.from_numpy(_nchw_weight(w)), torch.from_numpy(b),
        stride, padding, output_padding, groups, dilation).numpy()
    y = convkit.conv_transpose2d(nchw(x), _nchw_weight(w), b, stride, padding, output_padding,
                                 groups, dilation, layout="NCHW")
    assert_close(y, expected, np.float32)


def _args():
    return np.zeros((1, 4, 4, 6), np.float32), np.zeros((3, 3, 2, 6), np.float32)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(stride=2, output_padding=2), ValueError, "output_padding"),     # not < stride or dilation
    (dict(stride=1, output_padding=1), ValueError, "output_padding"),
    (dict(stride=2, dilation=2, output_padding=(0, 2)), ValueError, "output_padding"),
    (dict(groups=4), ValueError, "groups"),                               # 6 channels, 4 groups
    (dict(groups=0), ValueError, "groups"),
    (dict(stride=0), ValueError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(dilation=(1, 0)), ValueError, "dilation"),
    (dict(padding=5), ValueError, "output"),                              # cropped to nothing
    (dict(algo="winograd"), ValueError, "algo"),
    (dict(layout="NWHC"), ValueError, "layout"),
    (dict(bias=np.zeros(5, np.float32)), ValueError, "bias"),
    (dict(bias=np.zeros(2, np.float64)), TypeError, "bias"),
    (dict(num_threads=0), ValueError, "num_threads"),
])
def test_bad_arguments(kwargs, error, name):
    x, w = _args()
    with pytest.raises(error, match=name):
        convkit.conv_transpose2d(x, w, **kwargs)


def test_bad_weight():
    x, w = _args()
    with pytest.raises(ValueError, match="weight"):
        convkit.conv_transpose2d(x, np.zeros((3, 3, 2, 5), np.float32))     # 5 input channels, not 6
    with pytest.raises(ValueError, match="weight"):
        convkit.conv_transpose2d(x, np.zeros((3, 3, 6), np.float32))         # 3-D
    with pytest.raises(ValueError, match="weight"):
        convkit.conv_transpose2d(nchw(x), np.zeros((5, 2, 3, 3), np.float32), layout="NCHW")
    with pytest.raises(TypeError, match="weight"):
        convkit.conv_transpose2d(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="x"):
        convkit.conv_transpose2d(x.astype(np.int32), w)
    with pytest.raises(ValueError, match="x"):
        convkit.conv_transpose2d(x[0], w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cout_g, groups", [(40, 3), (64, 1), (5, 2)])
def test_pack_weights_layout(dtype, cout_g, groups, rng):
    """[g, b, i, j, ci, k] = w[i, j, b*block + k, g*cin_g + ci], zeros past cout_g, at 1 and 2 threads."""
    w = rng.standard_normal((3, 2, cout_g, 4 * groups)).astype(dtype)
    block = _tconv_kernel.block_width(dtype)
    nblk = -(-cout_g // block)
    padded = np.zeros((3, 2, nblk * block, 4 * groups), dtype)
    padded[:, :, :cout_g] = w
    expected = padded.reshape(3, 2, nblk, block, groups, 4).transpose(4, 2, 0, 1, 5, 3)
    for threads in (1, 2):
        np.testing.assert_array_equal(_tconv_kernel.pack_weights(w, groups, threads), expected)
