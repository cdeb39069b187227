"""convkit's outputs start on a 64-byte boundary (convkit/_alloc.py)."""
import numpy as np
import pytest

import convkit
from convkit import _alloc


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (2, 7, 9, 3), (1, 0, 4, 4), (4096, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_is_aligned_c_contiguous_and_writable(shape, dtype):
    for _ in range(5):     # several allocations: malloc returns different offsets
        a = _alloc.empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or a.ctypes.data % _alloc.ALIGNMENT == 0   # (no data: NumPy's own pointer)
        a[...] = 1
        assert a.sum() == a.size


def test_data_address_is_numpys():
    from convkit._kernels.buffers import data_address
    a = np.arange(40, dtype=np.float64).reshape(5, 8)
    for view in (a, a[1:, 3:], a[::-1], a.T, a[2:2]):
        assert data_address(view) == view.ctypes.data
    with pytest.raises(TypeError):
        data_address([1.0])


def test_impossible_size_raises_like_numpy():
    with pytest.raises((MemoryError, ValueError)):
        _alloc.empty((2 ** 40, 2 ** 40), np.float32)


def test_outputs_of_the_layer_functions_are_aligned(rng):
    x = rng.standard_normal((1, 37, 29, 24)).astype(np.float32)     # sizes that leave malloc's offsets
    w = rng.standard_normal((3, 3, 24, 40)).astype(np.float32)
    outputs = [convkit.conv2d(x, w, padding=1, algo=algo) for algo in ("direct", "im2col", "winograd")]
    outputs.append(convkit.conv2d(x, rng.standard_normal((3, 3, 1, 24)).astype(np.float32), padding=1, groups=24))
    outputs.append(convkit.conv_transpose2d(x, rng.standard_normal((4, 4, 8, 24)).astype(np.float32), stride=2))
    outputs.append(convkit.max_pool2d(x, 2))
    outputs.append(convkit.avg_pool2d(x, 3, 2, 1))
    outputs.append(convkit.linear(x.reshape(-1, 24), w[0, 0].T.copy()))
    for y in outputs:
        assert y.ctypes.data % 64 == 0


def test_outputs_of_prepared_network_layers_are_aligned(rng):
    """The evaluation-mode path of convkit.nn (prepared convolutions, fused shortcut) allocates the same way."""
    block = convkit.nn.InvertedResidual(24, 24, 1, 6, rng=rng)
    x = rng.standard_normal((1, 64, 61, 24)).astype(np.float32)    # 375 KB: malloc maps pages, 16 bytes in
    for _ in range(3):   # the first call plans, the next ones run the prepared convolutions
        assert block(x).ctypes.data % 64 == 0


# --- the cache of large freed buffers ---------------------------------------------------------------

BIG = (512, 1024)   # 2 MiB of float32: cached


def test_a_freed_large_output_is_handed_out_again():
    a = _alloc.empty(BIG, np.float32)
    address = a.ctypes.data
    del a
    b = _alloc.empty(BIG, np.float32)
    assert b.ctypes.data == address


def test_a_buffer_in_use_is_never_handed_out_twice():
    a = _alloc.empty(BIG, np.float32)
    view = a[3:7]             # a view keeps the buffer alive after its array is gone
    address = a.ctypes.data
    del a
    b = _alloc.empty(BIG, np.float32)
    assert b.ctypes.data != address
    b[...] = 2
    view[...] = 1
    assert (b == 2).all()
    del view
    c = _alloc.empty(BIG, np.float32)
    assert c.ctypes.data == address


def test_small_and_other_sized_requests_do_not_take_a_cached_buffer():
    a = _alloc.empty(BIG, np.float32)
    address = a.ctypes.data
    del a
    assert _alloc.empty((1000,), np.float32).ctypes.data != address      # under CACHE_MIN_BYTES
    assert _alloc.empty((512, 1025), np.float32).ctypes.data != address   # another size


def test_the_cache_stays_under_its_limit(monkeypatch):
    monkeypatch.setattr(_alloc, "CACHE_LIMIT", 5 << 20)
    convkit.clear_buffer_cache()
    live = [_alloc.empty(BIG, np.float32) for _ in range(4)]     # 8 MiB in use: two of them not cached
    assert _alloc.cached_bytes() <= 5 << 20
    del live
    for _ in range(10):
        _alloc.empty((600, 1024), np.float32)                   # new sizes evict the free buffers
        assert _alloc.cached_bytes() <= 5 << 20


def test_clear_buffer_cache_releases_only_free_buffers():
    convkit.clear_buffer_cache()
    kept = _alloc.empty(BIG, np.float32)
    _alloc.empty((700, 1024), np.float32)                        # freed at once
    released = convkit.clear_buffer_cache()
    assert released == 700 * 1024 * 4 + _alloc.ALIGNMENT
    assert _alloc.cached_bytes() == kept.nbytes + _alloc.ALIGNMENT
    kept[...] = 1


def test_threads_never_share_a_buffer():
    """Concurrent allocations of one size from Python threads: every live array has its own memory."""
    from concurrent.futures import ThreadPoolExecutor

    def work(k):
        arrays = []
        for _ in range(20):
            a = _alloc.empty(BIG, np.float32)
            a[...] = k
            arrays.append(a)
            if len(arrays) > 2:
                arrays.pop(0)
            if not all((x[::97, ::89] == k).all() for x in arrays):
                return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(8)))


def test_network_outputs_reuse_the_cache_and_stay_correct(rng):
    """Calls that allocate large outputs again and again give the same answers as the first call, and the
    outputs a caller keeps are not overwritten by later calls."""
    x = rng.standard_normal((2, 64, 64, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    first = convkit.conv2d(x, w, padding=1)
    kept = [convkit.conv2d(x, w, padding=1) for _ in range(3)]
    for _ in range(3):
        convkit.conv2d(x * 2, w, padding=1)                      # freed at once: the cache reuses it
    for y in kept:
        np.testing.assert_array_equal(y, first)
    assert len({y.ctypes.data for y in kept + [first]}) == 4


def test_cache_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONVKIT_BUFFER_CACHE_MB", "12")
    assert _alloc._cache_limit() == 12 << 20
    monkeypatch.setenv("CONVKIT_BUFFER_CACHE_MB", "0")
    assert _alloc._cache_limit() == 0
    monkeypatch.setenv("CONVKIT_BUFFER_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="CONVKIT_BUFFER_CACHE_MB"):
        _alloc._cache_limit()
