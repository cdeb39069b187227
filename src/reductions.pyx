"""Per-channel sums in float64: batch-norm statistics and global average pooling.

``row_sums`` reduces channels-last data (channels contiguous: the inner loop adds a whole channel vector,
which vectorises); ``plane_sums`` reduces channels-first planes (a contiguous plane per channel, summed in
eight independent lanes so the compiler vectorises the reduction without reassociating).  Both can sum
squared deviations from a per-channel centre instead (the second pass of a two-pass variance).
Work is split into a fixed number of chunks, independent of the thread count, so results are the same
bit for bit whatever ``num_threads`` is.
"""
from cython cimport floating
from cython.parallel cimport prange

from checks cimport check_min, check_size

import numpy as np

cdef enum:
    MAX_CHUNKS = 64        # row chunks per group in row_sums
    MIN_CHUNK_ROWS = 256   # rows per chunk at least (keeps the partial-sum buffer small)
    LANES = 8


cdef inline void sum_rows(const floating* x, Py_ssize_t rows, Py_ssize_t C, const double* center,
                          double* acc) noexcept nogil:
    """acc[c] = sum over ``rows`` rows of x[r, c], or of (x[r, c] - center[c])**2."""
    cdef Py_ssize_t r, c
    cdef double d
    for c in range(C):
        acc[c] = 0
    if center == NULL:
        for r in range(rows):
            for c in range(C):
                acc[c] += x[r * C + c]
    else:
        for r in range(rows):
            for c in range(C):
                d = x[r * C + c] - center[c]
                acc[c] += d * d


cdef inline double sum_plane(const floating* x, Py_ssize_t n, double center, bint squares) noexcept nogil:
    """Sum of x[i] (or of (x[i] - center)**2) for i < n."""
    cdef double lane[LANES]
    cdef double d, total = 0
    cdef Py_ssize_t i, j, b, n8 = n - n % LANES
    for j in range(LANES):
        lane[j] = 0
    if squares:
        for b in range(n8 // LANES):
            for j in range(LANES):
                d = x[b * LANES + j] - center
                lane[j] += d * d
        for i in range(n8, n):
            d = x[i] - center
            total += d * d
    else:
        for b in range(n8 // LANES):
            for j in range(LANES):
                lane[j] += x[b * LANES + j]
        for i in range(n8, n):
            total += x[i]
    for j in range(LANES):
        total += lane[j]
    return total


cdef int check_reduction(object center, Py_ssize_t C, Py_ssize_t out_rows, Py_ssize_t rows,
                         Py_ssize_t out_cols, Py_ssize_t cols, int num_threads) except -1:
    check_min(num_threads, 1, "num_threads")
    check_size(out_rows, rows, "out's rows")
    check_size(out_cols, cols, "out's columns")
    if center is not None:
        check_size(len(center), C, "the length of center (the channels)")
    return 0


def row_sums(const floating[:, :, ::1] x, center, double[:, ::1] out, int num_threads):
    """out[g, c] = sum_r x[g, r, c]; with ``center`` (a (C,) float64 array), sum_r (x[g, r, c] - center[c])**2."""
    cdef Py_ssize_t G = x.shape[0], R = x.shape[1], C = x.shape[2]
    cdef Py_ssize_t chunk_rows = max(<Py_ssize_t>MIN_CHUNK_ROWS, (R + MAX_CHUNKS - 1) // MAX_CHUNKS)
    cdef Py_ssize_t K = max(1, (R + chunk_rows - 1) // chunk_rows)
    cdef Py_ssize_t t, g, k, r0, c
    check_reduction(center, C, out.shape[0], G, out.shape[1], C, num_threads)
    out[:, :] = 0
    if G * R * C == 0:
        return
    cdef const double[::1] center_view
    cdef const double* cp = NULL
    if center is not None:
        center_view = center
        cp = &center_view[0]
    cdef double[:, ::1] partial = np.empty((G * K, C))
    cdef const floating* xp = &x[0, 0, 0]
    cdef double* pp = &partial[0, 0]
    with nogil:
        for t in prange(G * K, num_threads=num_threads, schedule="static"):
            r0 = (t % K) * chunk_rows
            sum_rows(xp + ((t // K) * R + r0) * C, min(chunk_rows, R - r0), C, cp, pp + t * C)
    for g in range(G):
        for k in range(K):
            for c in range(C):
                out[g, c] += partial[g * K + k, c]


def plane_sums(const floating[:, :, ::1] x, center, double[:, ::1] out, int num_threads):
    """out[n, c] = sum_i x[n, c, i]; with ``center`` (a (C,) float64 array), sum_i (x[n, c, i] - center[c])**2."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], t
    cdef bint squares = center is not None
    check_reduction(center, C, out.shape[0], N, out.shape[1], C, num_threads)
    cdef const double[::1] center_view = center if squares else np.zeros(max(C, 1))
    out[:, :] = 0
    if N * C * P == 0:
        return
    cdef const floating* xp = &x[0, 0, 0]
    cdef double* op = &out[0, 0]
    with nogil:
        for t in prange(N * C, num_threads=num_threads, schedule="static"):
            op[t] = sum_plane(xp + t * P, P, center_view[t % C], squares)
