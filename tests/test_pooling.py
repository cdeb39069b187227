"""max_pool2d, avg_pool2d and global_avg_pool2d against float64 references and PyTorch."""
import numpy as np
import pytest

import convkit
from convkit.pooling import pool_output_size
from helpers import assert_close, nchw
from reference_units import avg_pool_ref, max_pool_ref

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]

# (N, H, W, C, kernel, stride, padding, ceil_mode)
CASES = [
    (1, 5, 5, 1, 2, None, 0, False),
    (2, 7, 6, 3, 3, 2, 1, False),            # ResNet's stem pool
    (2, 7, 6, 3, 3, 2, 1, True),             # ceil_mode adds a window clipped at the padded border
    (1, 6, 6, 4, 3, 2, 0, True),             # ceil_mode: a last window reaching past the input
    (1, 5, 5, 2, 2, 2, 1, True),             # ceil_mode: the last window would start in the right padding
    (1, 8, 5, 5, (3, 2), (2, 1), (1, 0), True),
    (3, 4, 9, 17, (1, 3), (1, 3), (0, 1), False),
    (1, 3, 3, 2, 3, 1, 1, False),            # every window touches padding
    (1, 2, 2, 3, 3, 2, 0, True),             # input smaller than the kernel, allowed by ceil_mode
    (1, 9, 9, 6, 4, 3, 2, True),
    (1, 1, 1, 8, 1, 1, 0, False),
    (2, 10, 10, 33, 2, 2, 0, False),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _in_layout(x, layout):
    return x if layout == "NHWC" else nchw(x)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dilation", [1, 2, (2, 1)])
def test_max_pool_matches_reference(case, dtype, layout, dilation, rng):
    n, h, w, c, k, s, p, ceil = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k, p = _pair(k), _pair(p)
    s = k if s is None else _pair(s)
    d = _pair(dilation)
    expected = max_pool_ref(x, k, s, p, d, ceil)
    if 0 in expected.shape[1:3]:
        with pytest.raises(ValueError, match="non-empty output"):
            convkit.max_pool2d(_in_layout(x, layout), k, case[5], case[6], dilation, ceil, layout=layout)
        return
    y = convkit.max_pool2d(_in_layout(x, layout), k, case[5], case[6], dilation, ceil, layout=layout)
    assert y.flags.c_contiguous
    assert_close(y, _in_layout(expected, layout), dtype)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_reference(case, dtype, layout, count_include_pad, rng):
    n, h, w, c, k, s, p, ceil = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    expected = avg_pool_ref(x, _pair(k), _pair(k if s is None else s), _pair(p), ceil, count_include_pad)
    y = convkit.avg_pool2d(_in_layout(x, layout), k, s, p, ceil, count_include_pad, layout=layout)
    assert y.flags.c_contiguous
    assert_close(y, _in_layout(expected, layout), dtype)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (3, 2, 1, 1), (2, 2, 1, 1), (3, 3, 1, 2), (4, 3, 2, 1), ((3, 2), (2, 3), (1, 1), (1, 2)), (5, 2, 2, 3)])
def test_matches_torch(kernel, stride, padding, dilation, ceil_mode, count_include_pad, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 11, 13)).astype(np.float32)
    t = torch.from_numpy(x)
    expected = torch.nn.functional.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode).numpy()
    np.testing.assert_array_equal(
        convkit.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, layout="NCHW"), expected)
    expected = torch.nn.functional.avg_pool2d(t, kernel, stride, padding, ceil_mode, count_include_pad)
    np.testing.assert_allclose(
        convkit.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, layout="NCHW"),
        expected.numpy(), rtol=1e-6, atol=1e-6)


def test_max_pool_nan_propagates():
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 1, 0] = np.nan
    y = convkit.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y).sum() > 1


def test_max_pool_all_taps_in_padding_give_minus_infinity():
    # A dilated window (taps -1 and 2) that misses a 2x2 image entirely (PyTorch returns -inf too).
    y = convkit.max_pool2d(np.ones((1, 2, 2, 2)), 2, 1, 1, 3)
    assert y.shape == (1, 1, 1, 2) and np.all(y == -np.inf)


@pytest.mark.parametrize("size,k,s,p,d,ceil,expected", [
    (112, 3, 2, 1, 1, False, 56), (112, 3, 2, 1, 1, True, 57), (5, 2, 2, 1, 1, True, 3),
    (6, 3, 2, 0, 1, True, 3), (6, 3, 2, 0, 1, False, 2), (2, 3, 2, 0, 1, True, 1),
    (1, 3, 2, 0, 1, True, 0), (10, 3, 1, 1, 3, False, 6)])
def test_output_size(size, k, s, p, d, ceil, expected):
    assert pool_output_size(size, k, s, p, d, ceil) == expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input(dtype, rng):
    base = rng.standard_normal((2, 9, 10, 6)).astype(dtype)
    x = base[:, 1:, ::2, ::2]
    assert_close(convkit.max_pool2d(x, 3, 2, 1), max_pool_ref(x, (3, 3), (2, 2), (1, 1)), dtype)
    xc = nchw(base)[:, ::2, 1:, ::2]
    expected = avg_pool_ref(xc.transpose(0, 2, 3, 1), (2, 2), (2, 2), (1, 1), True, False)
    assert_close(convkit.avg_pool2d(xc, 2, 2, 1, True, False, layout="NCHW"), nchw(expected), dtype)


def test_thread_counts_agree(rng):
    x = rng.standard_normal((3, 17, 15, 9)).astype(np.float32)
    for fn in (convkit.max_pool2d, convkit.avg_pool2d):
        one = fn(x, 3, 2, 1, num_threads=1)
        np.testing.assert_array_equal(fn(x, 3, 2, 1, num_threads=2), one)
        np.testing.assert_array_equal(fn(x, 3, 2, 1, num_threads=5), one)


@pytest.mark.parametrize("fn", [convkit.max_pool2d, convkit.avg_pool2d])
def test_bad_arguments(fn, rng):
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="padding.*half the kernel"):
        fn(x, 3, 1, 2)
    with pytest.raises(ValueError, match="padding.*half the kernel"):
        fn(x, (4, 2), 1, (1, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        fn(x, 0)
    with pytest.raises(ValueError, match="stride"):
        fn(x, 2, (1, 0))
    with pytest.raises(ValueError, match="padding"):
        fn(x, 2, 1, -1)
    with pytest.raises(ValueError, match="non-empty output"):
        fn(x, 7)
    with pytest.raises(TypeError, match="x"):
        fn(x.astype(np.int32), 2)
    with pytest.raises(TypeError, match="x"):
        fn(x.tolist(), 2)
    with pytest.raises(ValueError, match="x.*4-D"):
        fn(x[0], 2)
    with pytest.raises(ValueError, match="layout"):
        fn(x, 2, layout="HWC")
    with pytest.raises(ValueError, match="num_threads"):
        fn(x, 2, num_threads=-1)


def test_max_pool_rejects_bad_dilation(rng):
    with pytest.raises(ValueError, match="dilation"):
        convkit.max_pool2d(np.zeros((1, 4, 4, 1)), 2, dilation=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (1, 1, 1, 4), (3, 30, 30, 17), (0, 2, 2, 3)], ids=str)
def test_global_avg_pool(dtype, layout, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    expected = x.astype(np.float64).mean(axis=(1, 2)) if shape[0] else np.zeros((0, shape[3]))
    y = convkit.global_avg_pool2d(_in_layout(x, layout), layout=layout)
    assert_close(y, expected, dtype)
    kept = convkit.global_avg_pool2d(_in_layout(x, layout), layout=layout, keepdims=True)
    n, c = shape[0], shape[3]
    assert kept.shape == ((n, 1, 1, c) if layout == "NHWC" else (n, c, 1, 1))
    assert_close(kept.reshape(n, c), expected, dtype)


def test_global_avg_pool_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 8, 7, 9)).astype(np.float32)
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 1).flatten(1).numpy()
    np.testing.assert_allclose(convkit.global_avg_pool2d(x, layout="NCHW"), expected, rtol=1e-6, atol=1e-7)


def test_global_avg_pool_rejects_an_empty_image():
    with pytest.raises(ValueError, match="x.*empty image"):
        convkit.global_avg_pool2d(np.zeros((1, 0, 3, 2)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(0, 5, 5, 3), (2, 5, 5, 0)], ids=str)
def test_empty_batch_or_channels(layout, shape):
    """PyTorch's rule: windowed pooling takes an empty batch but not zero channels; the global mean both."""
    x = _in_layout(np.zeros(shape, np.float32), layout)
    n, c = shape[0], shape[3]
    expected = (n, 3, 3, c) if layout == "NHWC" else (n, c, 3, 3)
    for pool in (convkit.max_pool2d, convkit.avg_pool2d):
        if c == 0:
            with pytest.raises(ValueError, match="x.*at least one channel"):
                pool(x, 3, 2, 1, layout=layout)
        else:
            assert pool(x, 3, 2, 1, layout=layout).shape == expected
    assert convkit.global_avg_pool2d(x, layout=layout).shape == (n, c)
