"""Depthwise conv2d (groups == input channels) through the dedicated kernel, against the float64 reference."""
import numpy as np
import pytest

import convkit
from convkit import grouped
from helpers import assert_close, nchw, oihw
from reference import conv2d_ref
from reference_units import activation_ref

ALGOS = ["direct", "auto", "im2col"]
DTYPES = [np.float32, np.float64]

# (N, H, W, C, multiplier, (KH, KW), stride, pads (top, bottom, left, right), dilation)
CASES = [
    (1, 6, 7, 5, 1, (3, 3), 1, (1, 1, 1, 1), 1),          # odd channels: the remainder block only
    (2, 9, 13, 16, 1, (3, 3), 1, (1, 1, 1, 1), 1),        # one full block, interior tiles + remainder
    (1, 11, 10, 35, 1, (3, 3), 2, (1, 1, 1, 1), 1),       # stride 2, two full blocks + remainder
    (1, 7, 13, 56, 1, (3, 3), 1, (1, 1, 1, 1), 1),        # full blocks + a half block (+ remainder)
    (1, 6, 11, 24, 2, (3, 3), 1, (1, 1, 1, 1), 1),        # half block of the multiplier>1 tile
    (1, 10, 12, 19, 1, (5, 3), (3, 2), (2, 1, 0, 3), 1),  # stride 3x2, asymmetric padding
    (1, 12, 11, 8, 1, (3, 3), 1, (2, 2, 2, 2), (2, 2)),   # dilation 2
    (1, 9, 14, 6, 1, (3, 5), 1, (3, 1, 2, 4), (3, 1)),    # dilation 3x1, uneven padding
    (1, 7, 7, 4, 2, (5, 5), 1, (2, 2, 2, 2), 2),          # multiplier 2, dilated
    (3, 6, 9, 7, 3, (3, 2), 2, (1, 0, 0, 1), 1),          # multiplier 3, batch 3
    (1, 3, 4, 17, 1, (5, 5), 1, (2, 2, 2, 2), 1),         # kernel wider than the image: no interior
    (1, 5, 5, 3, 1, (1, 1), 1, (0, 0, 0, 0), 1),          # 1x1 depthwise: a per-channel scale
    (1, 4, 6, 12, 1, (2, 2), 2, (0, 1, 0, 1), 1),         # TF SAME 2x2 stride 2 (pad bottom/right)
    (1, 8, 8, 2, 1, (4, 4), 1, (0, 0, 0, 0), 1),          # valid, kernel half the image
    (1, 5, 14, 48, 1, (3, 3), 1, (1, 1, 1, 1), 1),        # 12 interior columns: a wide tile and a narrow one
    (1, 6, 16, 40, 1, (3, 5), 1, (1, 2, 1, 2), 1),        # the same with 5 taps a row (no literal 3x3)
    (1, 5, 16, 8, 2, (3, 3), 1, (1, 1, 1, 1), 1),         # multiplier 2: general tiles of 4 in wide ones
]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _make(case, dtype, rng, bias=True):
    n, h, w, c, m, k, stride, pads, dilation = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    wt = rng.standard_normal((k[0], k[1], 1, c * m)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype) if bias else None
    expected = conv2d_ref(x, wt, b, _pair(stride), pads, _pair(dilation), groups=c)
    return x, wt, b, expected


def _symmetric(case):
    t, b, l, r = case[7]
    return t == b and l == r


def _conv(x, w, b, case, **kw):
    n, h, wid, c, m, k, stride, pads, dilation = case
    return convkit.conv2d(x, w, b, stride, pads[::2], dilation, groups=c, **kw)


@pytest.mark.parametrize("case", [c for c in CASES if _symmetric(c)], ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_matches_reference_nhwc(case, algo, dtype, rng):
    x, w, b, expected = _make(case, dtype, rng)
    assert_close(_conv(x, w, b, case, algo=algo), expected, dtype)


@pytest.mark.parametrize("case", [c for c in CASES if not _symmetric(c)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_asymmetric_padding(case, dtype, rng):
    """The kernel takes the top/left padding; the bottom/right padding is implied by the output size."""
    x, w, b, expected = _make(case, dtype, rng)
    y = np.full(expected.shape, np.nan, dtype)
    grouped.depthwise_direct(x, w, b, (0, 0.0), _pair(case[6]), case[7], _pair(case[8]), case[3],
                             y, 2)
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("case", [c for c in CASES if _symmetric(c)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_matches_reference_nchw(case, dtype, rng):
    n, h, wid, c, m, k, stride, pads, dilation = case
    x, w, b, expected = _make(case, dtype, rng)
    y = convkit.conv2d(nchw(x), oihw(w), b, stride, pads[::2], dilation, c, layout="NCHW",
                       algo="direct")
    assert_close(y, nchw(expected), dtype)


@pytest.mark.parametrize("stride", [1, 2])
def test_same_padding_asymmetric(stride, rng):
    """padding="same" with stride 2 pads the odd pixel at the bottom/right (the kernel's own path)."""
    x = rng.standard_normal((1, 8, 9, 24)).astype(np.float32)
    w = rng.standard_normal((4, 3, 1, 24)).astype(np.float32)
    hout, wout = -(-8 // stride), -(-9 // stride)
    ph = max((hout - 1) * stride + 4 - 8, 0)
    pw = max((wout - 1) * stride + 3 - 9, 0)
    pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    expected = conv2d_ref(x, w, None, (stride, stride), pads, (1, 1), groups=24)
    assert_close(convkit.conv2d(x, w, None, stride, "same", groups=24, algo="direct"), expected,
                 np.float32)


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_batch_sizes(batch, rng):
    case = (batch, 6, 7, 20, 1, (3, 3), 1, (1, 1, 1, 1), 1)
    x, w, b, expected = _make(case, np.float32, rng)
    y = _conv(x, w, b, case, algo="direct")
    assert y.shape == (batch, 6, 7, 20)
    assert_close(y, expected, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_bias(dtype, rng):
    x, w, _, expected = _make(CASES[2], dtype, rng, bias=False)
    assert_close(_conv(x, w, None, CASES[2], algo="direct"), expected, dtype)


@pytest.mark.parametrize("multiplier", [1, 3])
def test_output_channel_reads_input_channel(multiplier):
    """Output channel c*m + k reads input channel c (PyTorch's rule): x[..., c] = c + 1, unit weights."""
    c = 5
    x = np.broadcast_to(np.arange(1, c + 1, dtype=np.float64), (1, 4, 4, c))
    w = np.zeros((3, 3, 1, c * multiplier))
    w[1, 1] = 1.0
    y = convkit.conv2d(x, w, None, 1, 1, groups=c, algo="direct")
    expected_channels = np.arange(c * multiplier) // multiplier + 1
    np.testing.assert_array_equal(y, np.broadcast_to(expected_channels, y.shape))


@pytest.mark.parametrize("activation", ["relu", ("leaky_relu", 0.2), "sigmoid"])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_fused_activation(activation, multiplier, rng):
    case = (2, 7, 9, 6, multiplier, (3, 3), 1, (1, 1, 1, 1), 1)
    x, w, b, expected = _make(case, np.float64, rng)
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    y = _conv(x, w, b, case, algo="direct", activation=activation)
    assert_close(y, activation_ref(expected, name, param), np.float64)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_thread_counts_agree(num_threads, rng):
    case = (3, 6, 9, 7, 3, (3, 2), 2, (1, 1, 0, 0), 1)
    x, w, b, expected = _make(case, np.float64, rng)
    assert_close(_conv(x, w, b, case, algo="direct", num_threads=num_threads), expected, np.float64)


def test_dispatch():
    assert grouped.grouped_direct_kernel(32, 32, 32, np.float32) is grouped.depthwise_direct
    assert grouped.grouped_direct_kernel(8, 24, 8, np.float64) is grouped.depthwise_direct
    assert grouped.grouped_direct_kernel(1, 8, 1, np.float32) is None   # groups == 1: general kernel


def test_depthwise_weight_with_wrong_channels_rejected():
    x = np.zeros((1, 5, 5, 8), np.float32)
    with pytest.raises(ValueError, match="groups"):
        convkit.conv2d(x, np.zeros((3, 3, 1, 12), np.float32), groups=8)    # 12 not a multiple of 8
    with pytest.raises(ValueError, match="weight"):
        convkit.conv2d(x, np.zeros((3, 3, 2, 8), np.float32), groups=8)     # 2 inputs per group


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_matches_torch(multiplier, stride, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 13, 11, 24)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 24 * multiplier)).astype(np.float32)
    b = rng.standard_normal(24 * multiplier).astype(np.float32)
    expected = torch.nn.functional.conv2d(torch.from_numpy(nchw(x)), torch.from_numpy(oihw(w)),
                                          torch.from_numpy(b), stride, 1, 1, 24).numpy()
    y = convkit.conv2d(nchw(x), oihw(w), b, stride, 1, groups=24, layout="NCHW", algo="direct")
    assert_close(y, expected, np.float32)
