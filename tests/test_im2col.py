"""im2col / col2im: the seed's worked example, the reference, adjointness, PyTorch's unfold/fold."""
import numpy as np
import pytest

import convkit
from helpers import assert_close, nchw
from reference import im2col_ref

SEED_RESULT = np.array([
    [1, 17, 2, 18, 5, 21, 6, 22],
    [3, 19, 4, 20, 7, 23, 8, 24],
    [9, 25, 10, 26, 13, 29, 14, 30],
    [11, 27, 12, 28, 15, 31, 16, 32],
])

# (N, H, W, C, kernel, stride, padding, dilation)
CASES = [
    (1, 4, 4, 2, (2, 2), 2, 0, 1),
    (2, 5, 7, 3, (3, 2), 1, 1, 1),
    (1, 9, 8, 1, (3, 3), 2, (2, 1), 2),
    (3, 6, 6, 4, (1, 1), 3, 0, 1),
    (1, 5, 5, 2, (5, 5), 1, 0, 1),
    (1, 7, 5, 3, (2, 3), (2, 1), (0, 2), (1, 2)),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pads(padding):
    p = _pair(padding)
    return (p[0], p[0], p[1], p[1])


def test_seed_example():
    """The lecture's 1x4x4x2 tensor, 2x2 kernel, stride 2: exactly its 4 x 8 matrix."""
    h, w, c = np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij")
    x = (16 * c + 4 * h + w + 1).astype(np.float32)[None]
    assert x[0, 1, 2, 1] == 16 + 4 + 2 + 1
    cols = convkit.im2col(x, kernel_size=2, stride=2)
    assert cols.shape == (4, 8)
    np.testing.assert_array_equal(cols, SEED_RESULT)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_matches_reference(case, dtype, rng):
    n, h, w, c, k, s, p, d = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    expected = im2col_ref(x, k, _pair(s), _pads(p), _pair(d))
    np.testing.assert_array_equal(convkit.im2col(x, k, s, p, d), expected.astype(dtype))
    # NCHW is PyTorch's unfold: (N, C*KH*KW, L) with rows (c, kh, kw).
    kk = k[0] * k[1]
    expected_nchw = expected.reshape(n, -1, kk, c).transpose(0, 3, 2, 1).reshape(n, c * kk, -1)
    np.testing.assert_array_equal(convkit.im2col(nchw(x), k, s, p, d, layout="NCHW"),
                                  expected_nchw.astype(dtype))


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_col2im_is_adjoint(case, layout, rng):
    """<im2col(x), y> == <x, col2im(y)> for any x and y."""
    n, h, w, c, k, s, p, d = case
    x = rng.standard_normal((n, h, w, c) if layout == "NHWC" else (n, c, h, w))
    cols = convkit.im2col(x, k, s, p, d, layout=layout)
    y = rng.standard_normal(cols.shape)
    back = convkit.col2im(y, (h, w), k, s, p, d, layout=layout)
    assert back.shape == x.shape
    assert np.isclose(np.vdot(cols, y), np.vdot(x, back), rtol=1e-12)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_col2im_float32(num_threads, rng):
    n, h, w, c, k, s, p, d = CASES[1]
    rows = convkit.im2col(np.zeros((n, h, w, c)), k, s, p, d).shape[0]
    y = rng.standard_normal((rows, k[0] * k[1] * c)).astype(np.float32)
    expected = convkit.col2im(y.astype(np.float64), (h, w), k, s, p, d)
    assert_close(convkit.col2im(y, (h, w), k, s, p, d, num_threads=num_threads), expected, np.float32)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_unfold_fold_match_torch(case, rng):
    torch = pytest.importorskip("torch")
    n, h, w, c, k, s, p, d = case
    x = rng.standard_normal((n, c, h, w))
    unfold = torch.nn.functional.unfold(torch.from_numpy(x), k, d, p, s).numpy()
    np.testing.assert_allclose(convkit.im2col(x, k, s, p, d, layout="NCHW"), unfold, rtol=0, atol=0)
    y = rng.standard_normal(unfold.shape)
    fold = torch.nn.functional.fold(torch.from_numpy(y), (h, w), k, d, p, s).numpy()
    np.testing.assert_allclose(convkit.col2im(y, (h, w), k, s, p, d, layout="NCHW"), fold, rtol=1e-12, atol=1e-12)


def test_col2im_rejects_inconsistent_columns():
    with pytest.raises(ValueError, match="cols"):
        convkit.col2im(np.zeros((5, 8)), (4, 4), 2, 2)
    with pytest.raises(ValueError, match="cols"):
        convkit.col2im(np.zeros((1, 8, 5)), (4, 4), 2, 2, layout="NCHW")
