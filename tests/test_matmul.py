"""convkit.matmul against a plain float64 reference, NumPy's 2-D contract, threads and out=."""
import itertools

import numpy as np
import pytest

import convkit
from convkit._kernels import gemm as _gemm
from helpers import assert_close

SIZES = (0, 1, 5, 6, 7, 15, 16, 17, 100, 1000)
DTYPES = (np.float32, np.float64)


def reference(a, b):
    """a @ b in float64 by NumPy (its BLAS: independent of convkit's GEMM)."""
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


def test_reference_is_the_sum_of_products(rng):
    a, b = operands(rng, 5, 7, 3, np.float64)
    plain = [[sum(a[i, k] * b[k, j] for k in range(7)) for j in range(3)] for i in range(5)]
    np.testing.assert_allclose(reference(a, b), plain, rtol=1e-13)


def operands(rng, m, k, n, dtype):
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


# Every (M, N, K) over SIZES would be 1,000 products; all of them with the big size at most once.
SHAPES = sorted({s for s in itertools.product(SIZES, repeat=3) if sum(v == 1000 for v in s) <= 1})


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matches_reference_over_sizes(dtype, rng):
    for m, n, k in SHAPES:
        a, b = operands(rng, m, k, n, dtype)
        assert_close(convkit.matmul(a, b), reference(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1000, 17, 100), (100, 1000, 17), (17, 100, 1000), (300, 500, 700)])
def test_large_sizes(shape, dtype, rng):
    m, n, k = shape
    a, b = operands(rng, m, k, n, dtype)
    assert_close(convkit.matmul(a, b), reference(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_any_strides(dtype, rng):
    a, b = operands(rng, 40, 300, 50, dtype)
    big = rng.standard_normal((700, 700)).astype(dtype)
    views = {
        "transposed": (np.ascontiguousarray(a.T).T, np.asfortranarray(b)),
        "step slices": (big[::2, ::2][:40, :300], big[1::2, 1::2][:300, :50]),
        "reversed": (a[::-1, ::-1], b[::-1]),
        "column of stride 3": (np.repeat(a, 3, axis=1)[:, ::3], b),
        "zero strides": (np.broadcast_to(a[:1], a.shape), np.broadcast_to(b[:, :1], b.shape)),
    }
    for name, (x, y) in views.items():
        assert_close(convkit.matmul(x, y), reference(x, y), dtype), name


def test_read_only_and_unaligned_inputs(rng):
    a, b = operands(rng, 30, 20, 10, np.float32)
    a.setflags(write=False)
    b.setflags(write=False)
    assert_close(convkit.matmul(a, b), reference(a, b), np.float32)
    raw = np.zeros(30 * 20 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(30, 20)   # misaligned data
    raw[...] = a
    assert_close(convkit.matmul(raw, b), reference(a, b), np.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(333, 257, 129), (5, 300, 1001), (1, 64, 999), (2, 1, 1000)],
                         ids=["rows split", "columns split", "one row", "one reduction"])
def test_thread_counts_agree(shape, dtype, rng):
    m, k, n = shape
    a, b = operands(rng, m, k, n, dtype)
    results = [convkit.matmul(a, b, num_threads=nt) for nt in (1, 2, 3)]
    for r in results:
        assert_close(r, reference(a, b), dtype)
        np.testing.assert_allclose(r, results[0], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_out_is_filled_and_returned(rng):
    a, b = operands(rng, 20, 30, 10, np.float32)
    out = np.full((20, 10), np.nan, np.float32)
    assert convkit.matmul(a, b, out=out) is out
    assert_close(out, reference(a, b), np.float32)


def test_nothing_written_outside_out(rng):
    """out is a block of a bigger array: the tiles' zero-padded edges must not be stored."""
    for m, n in ((7, 17), (13, 33), (1, 1), (12, 32)):
        a, b = operands(rng, m, 9, n, np.float32)
        storage = np.full(m * n + 64, 7.0, np.float32)
        out = storage[32:32 + m * n].reshape(m, n)
        convkit.matmul(a, b, out=out)
        assert (storage[:32] == 7).all() and (storage[32 + m * n:] == 7).all()
        assert_close(out, reference(a, b), np.float32)


def test_bad_operands_raise():
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="inner dimension"):
        convkit.matmul(f32, f32)
    with pytest.raises(ValueError, match="2-D"):
        convkit.matmul(np.ones(4, np.float32), f32)
    with pytest.raises(ValueError, match="2-D"):
        convkit.matmul(np.ones((2, 3, 4), np.float32), f32)
    with pytest.raises(TypeError, match="float32 or float64"):
        convkit.matmul(np.ones((3, 4), np.int64), f32.T)
    with pytest.raises(TypeError, match="float32 or float64"):
        convkit.matmul(f32, np.ones((4, 3), np.float16))
    with pytest.raises(TypeError, match="dtype float32 like a"):
        convkit.matmul(f32, np.ones((4, 3), np.float64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        convkit.matmul([[1.0]], f32)


def test_bad_out_raises():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    for out, match in ((np.empty((3, 4), np.float32), "shape"), (np.empty((3, 5), np.float64), "dtype"),
                       (np.empty((5, 3), np.float32).T, "C-contiguous"), (a, "shape")):
        with pytest.raises(ValueError, match=match):
            convkit.matmul(a, b, out=out)
    sq = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        convkit.matmul(sq, sq, out=sq)


def test_huge_product_raises_memory_error_first():
    side = 1 << 21
    a = np.broadcast_to(np.ones((), np.float32), (side, 1))
    with pytest.raises(MemoryError):
        convkit.matmul(a, a.T)        # a 16 TiB result, refused before any work


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k", [0, 19, 700])
def test_accumulate_and_epilogue_kernel(k, dtype, rng):
    """The kernel wrapper the layers use: C (a column block of a bigger array) = act(C + A B + bias +
    residual), the epilogue applied once, after the last reduction block."""
    a, b = operands(rng, 25, k, 19, dtype)
    big = rng.standard_normal((25, 40)).astype(dtype)
    c = big[:, 7:26]
    bias, residual = rng.standard_normal(19).astype(dtype), rng.standard_normal((25, 30)).astype(dtype)
    expected = np.maximum(c + reference(a, b) + bias + residual[:, 3:22], 0)
    untouched = big.copy()
    _gemm.gemm_into(a, b, c, True, bias, residual[:, 3:22], 1, 0.0, 2)    # 1: ReLU
    assert_close(c, expected, dtype)
    np.testing.assert_array_equal(big[:, :7], untouched[:, :7])
    np.testing.assert_array_equal(big[:, 26:], untouched[:, 26:])


def test_tile_constants_are_reported():
    assert _gemm.vector_bits() in (128, 256, 512)
    rows, cols = _gemm.tile_shape(np.float32)
    assert cols * 32 == 2 * _gemm.vector_bits() and _gemm.tile_shape(np.float64) == (rows, cols // 2)
    mc, kc, nc = _gemm.blocking(np.float32)
    assert mc % rows == 0 and nc % cols == 0 and kc > 0
