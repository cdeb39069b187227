"""Arrays whose data starts on a 64-byte boundary: a cache line, and one AVX-512 vector.

NumPy takes large arrays from malloc, which (glibc, above its mmap threshold) returns a page plus 16
bytes, so every 64-byte vector load from such an array straddles two cache lines.  The 512-bit depthwise
kernel ran 1.24-1.29x slower on such an input than on an aligned copy (3x3, 112x112x32 and 56x56x144,
one thread, AMD EPYC Zen 4), and a layer's input is the previous layer's output: convkit's outputs are
allocated here.
"""
import math

import numpy as np

ALIGNMENT = 64


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` aligned to ALIGNMENT bytes (a view of
    a byte buffer ALIGNMENT bytes longer; ``np.empty``'s errors for impossible sizes)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buf = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buf.ctypes.data % ALIGNMENT
    return buf[start:start + nbytes].view(dtype).reshape(shape)
