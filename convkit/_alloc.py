"""convkit's output arrays: aligned to 64 bytes, and the large ones taken from a cache of freed buffers.

Alignment.  NumPy takes large arrays from malloc, which (glibc, above its mmap threshold) returns a page
plus 16 bytes, so every 64-byte vector load from such an array straddles two cache lines.  The 512-bit
depthwise kernel ran 1.24-1.29x slower on such an input than on an aligned copy (3x3, 112x112x32 and
56x56x144, one thread, AMD EPYC Zen 4), and a layer's input is the previous layer's output: convkit's
outputs are allocated here.

Reuse.  glibc serves a request above its mmap threshold (which it raises to at most 32 MiB) with fresh pages
and unmaps them on free, so an output that large costs a page fault per 4 KiB when the kernel first writes
it.  MobileNetV2 at batch 8 (activations up to 38.5 MiB) took 4312 page faults and 22-35 ms of system time
per forward pass, 81 ms in all (2 threads, AMD EPYC Zen 4 under Firecracker).  So, as ONNX Runtime's arena
and PyTorch's CUDA caching allocator do, buffers of at least CACHE_MIN_BYTES are kept when their arrays die
and handed out again for a request of the same size: 0 faults and 58 ms.  A buffer is free when the cache
holds the only reference to it (CPython's reference count, read under a lock, so threads never share one:
every array made from a buffer refers to it through ``.base``).  The cache holds at most
``CONVKIT_BUFFER_CACHE_MB`` MiB (environment, read at import; default 256, 0 turns it off); free buffers are
dropped oldest first to stay under it, and ``convkit.clear_buffer_cache()`` drops them all.
"""
import math
import os
import sys
import threading

import numpy as np

from ._kernels.buffers import data_address

ALIGNMENT = 64
CACHE_MIN_BYTES = 1 << 20


def _cache_limit():
    text = os.environ.get("CONVKIT_BUFFER_CACHE_MB", "").strip()
    if not text:
        return 256 << 20
    try:
        mib = int(text)
    except ValueError:
        mib = -1
    if mib < 0:
        raise ValueError(f"CONVKIT_BUFFER_CACHE_MB: expected a non-negative integer (MiB), got {text!r}")
    return mib << 20


CACHE_LIMIT = _cache_limit() if sys.implementation.name == "cpython" else 0   # needs reference counts
_lock = threading.Lock()
_cache = []   # uint8 buffers handed out, oldest first


def _is_free(i):
    """Whether the cache's list is the only holder of buffer ``i`` (the list and getrefcount's argument)."""
    return sys.getrefcount(_cache[i]) == 2


def _cached_buffer(nbytes):
    """A buffer of ``nbytes`` from the cache, or a new one entered into it if the limit allows."""
    with _lock:
        for i in range(len(_cache)):
            if _cache[i].size == nbytes and _is_free(i):
                buf = _cache.pop(i)
                _cache.append(buf)
                return buf
        buf = np.empty(nbytes, np.uint8)
        held = sum(b.size for b in _cache) + nbytes
        i = 0
        while held > CACHE_LIMIT and i < len(_cache):
            if _is_free(i):
                held -= _cache.pop(i).size
            else:
                i += 1
        if held <= CACHE_LIMIT:
            _cache.append(buf)
        return buf


def clear_buffer_cache():
    """Release the cached output buffers that no array uses any more; returns the bytes released.

    convkit keeps large freed outputs (1 MiB and up, at most ``CONVKIT_BUFFER_CACHE_MB`` MiB, default 256) to
    hand them out again without page faults; see ``convkit/_alloc.py``."""
    with _lock:
        free = [i for i in range(len(_cache)) if _is_free(i)]
        released = sum(_cache[i].size for i in free)
        for i in reversed(free):
            del _cache[i]
    return released


def cached_bytes():
    """Bytes the buffer cache holds, in use and free."""
    with _lock:
        return sum(b.size for b in _cache)


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` aligned to ALIGNMENT bytes (a view of
    a byte buffer ALIGNMENT bytes longer, from the cache when that is CACHE_MIN_BYTES or more; ``np.empty``'s
    errors for impossible sizes)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize + ALIGNMENT
    if CACHE_MIN_BYTES <= nbytes <= CACHE_LIMIT:
        buf = _cached_buffer(nbytes)
    else:
        buf = np.empty(nbytes, np.uint8)
    return np.ndarray(shape, dtype, buf, -data_address(buf) % ALIGNMENT)
