"""conv2d(..., residual=r): act(conv(x) + bias + r) against the float64 reference, every algorithm, dtype
and layout, and the checks on ``residual``."""
import numpy as np
import pytest

import convkit
from helpers import assert_close, nchw, oihw
from reference import conv2d_ref, pads_of, pair
from reference_units import activation_ref

ALGOS = ["direct", "im2col", "auto"]

# (N, H, W, Cin, Cout, (KH, KW), stride, padding, groups): each path that can take a residual.
CASES = [
    (2, 7, 6, 5, 7, (3, 3), 1, 1, 1),        # general direct kernel, a partial channel block
    (1, 9, 8, 8, 40, (3, 2), 2, (1, 0), 1),  # stride 2, several channel blocks, non-square kernel
    (2, 6, 5, 24, 16, (1, 1), 1, 0, 1),      # pointwise: im2col runs it as one GEMM
    (1, 10, 10, 64, 32, (3, 3), 1, 1, 1),    # ResNet-like: auto picks im2col (small map)
    (1, 8, 8, 8, 8, (3, 3), 1, 1, 2),        # groups 2: the general kernel per group
    (2, 7, 7, 6, 6, (3, 3), 1, 1, 6),        # depthwise: residual as a second pass
    (1, 6, 6, 16, 16, (3, 3), 1, 1, 4),      # few channels per group: the grouped kernel
]


def _make(case, dtype, rng):
    n, h, w, cin, cout, k, stride, padding, groups = case
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((k[0], k[1], cin // groups, cout)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    conv = conv2d_ref(x, wt, b, pair(stride), pads_of(padding, (h, w), k, stride, 1), (1, 1), groups)
    r = rng.standard_normal(conv.shape).astype(dtype)
    return x, wt, b, r, conv + r


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_residual_matches_reference(case, algo, dtype, layout, activation, rng):
    x, w, b, r, expected = _make(case, dtype, rng)
    _, _, _, _, _, _, stride, padding, groups = case
    r_before = r.copy()
    if activation is not None:
        expected = activation_ref(expected, activation)
    if layout == "NHWC":
        y = convkit.conv2d(x, w, b, stride, padding, 1, groups, algo=algo, activation=activation,
                           residual=r)
    else:
        y = convkit.conv2d(nchw(x), oihw(w), b, stride, padding, 1, groups, layout="NCHW", algo=algo,
                           activation=activation, residual=nchw(r))
        expected = nchw(expected)
    assert y.flags.c_contiguous
    assert_close(y, expected, dtype)
    np.testing.assert_array_equal(r, r_before)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("activation", ["relu6", ("leaky_relu", 0.2), "sigmoid"])
def test_residual_before_activation(algo, activation, rng):
    """The activation applies to the sum, not to the convolution alone."""
    x, w, b, r, expected = _make(CASES[1], np.float64, rng)
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    y = convkit.conv2d(x, w, b, 2, (1, 0), algo=algo, activation=activation, residual=r)
    assert_close(y, activation_ref(expected, name, param), np.float64)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_residual_with_out_and_strided_residual(algo, layout, rng):
    x, w, b, r, expected = _make(CASES[0], np.float32, rng)
    if layout == "NCHW":
        x, w, r, expected = nchw(x), oihw(w), nchw(r), nchw(expected)
    wide = np.zeros(r.shape[:3] + (2 * r.shape[3],), np.float32)
    wide[..., ::2] = r                                  # a non-contiguous residual
    out = np.empty(expected.shape, np.float32)
    y = convkit.conv2d(x, w, b, padding=1, layout=layout, algo=algo, residual=wide[..., ::2], out=out)
    assert y is out
    assert_close(out, expected, np.float32)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", [CASES[0], CASES[3]], ids=str)
def test_residual_winograd(case, layout, rng):
    """Winograd adds the residual in a second pass; its own rounding, at float64."""
    x, w, b, r, expected = _make(case, np.float64, rng)
    expected = activation_ref(expected, "relu")
    if layout == "NCHW":
        x, w, r, expected = nchw(x), oihw(w), nchw(r), nchw(expected)
    y = convkit.conv2d(x, w, b, padding=1, layout=layout, algo="winograd", activation="relu", residual=r)
    np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("algo", ALGOS)
def test_residual_batch_zero(algo):
    x = np.zeros((0, 5, 5, 3), np.float32)
    y = convkit.conv2d(x, np.ones((3, 3, 3, 4), np.float32), padding=1, algo=algo,
                       residual=np.zeros((0, 5, 5, 4), np.float32))
    assert y.shape == (0, 5, 5, 4)


def test_residual_checks():
    x = np.zeros((1, 5, 5, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    r = np.zeros((1, 5, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"expected residual to have the output's shape \(1, 5, 5, 4\)"):
        convkit.conv2d(x, w, padding=1, residual=np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"output's shape \(1, 4, 5, 5\), got \(1, 5, 5, 4\)"):
        convkit.conv2d(nchw(x), oihw(w), padding=1, residual=r, layout="NCHW")  # an NHWC residual
    with pytest.raises(TypeError, match="expected residual to have dtype float32"):
        convkit.conv2d(x, w, padding=1, residual=r.astype(np.float64))
    with pytest.raises(TypeError, match="expected residual to be a numpy.ndarray"):
        convkit.conv2d(x, w, padding=1, residual=r.tolist())
    with pytest.raises(ValueError, match="overlap"):
        convkit.conv2d(x, w, padding=1, residual=r, out=r)


@pytest.mark.parametrize("algo", ALGOS)
def test_residual_matches_torch(algo, rng):
    torch = pytest.importorskip("torch")
    x, w, b, r, _ = _make(CASES[3], np.float64, rng)
    conv = torch.nn.functional.conv2d(torch.from_numpy(nchw(x)), torch.from_numpy(oihw(w)),
                                      torch.from_numpy(b), 1, 1)
    expected = torch.relu(conv + torch.from_numpy(nchw(r))).numpy()
    y = convkit.conv2d(nchw(x), oihw(w), b, 1, 1, layout="NCHW", algo=algo, activation="relu",
                       residual=nchw(r))
    assert_close(y, expected, np.float64)
