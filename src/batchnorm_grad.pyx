"""Batch normalisation's backward pass (training-mode statistics), channels-last or channels-first.

With ``xhat = (x - mean) * invstd`` and ``M`` values per channel, PyTorch's formula
``grad_x = weight * invstd * (grad_y - mean(grad_y) - xhat * mean(grad_y * xhat))`` is, per channel, an
affine map of the two inputs, ``grad_x = grad_y * a[c] + x * b[c] + d[c]``: one reduction pass (the sums of
grad_y and grad_y * (x - mean), in float64) and one elementwise pass.  The reduction uses a fixed split into
chunks, independent of the thread count, so results are the same bit for bit whatever ``num_threads``.
"""
from cython cimport floating
from cython.parallel cimport prange

import numpy as np

from checks cimport check_min, check_size

cdef enum:
    MAX_CHUNKS = 64        # row chunks in grad_sums_channels_last
    MIN_CHUNK_ROWS = 256
    CHUNK = 16384          # elements per task of the elementwise pass


cdef inline void sum_rows(const floating* g, const floating* x, const double* mean, Py_ssize_t rows,
                          Py_ssize_t C, double* acc) noexcept nogil:
    """acc[c] = sum_r g[r, c]; acc[C + c] = sum_r g[r, c] * (x[r, c] - mean[c])."""
    cdef Py_ssize_t r, c
    for c in range(2 * C):
        acc[c] = 0
    for r in range(rows):
        for c in range(C):
            acc[c] += g[r * C + c]
            acc[C + c] += g[r * C + c] * (x[r * C + c] - mean[c])


cdef int check_channels(bint shapes_match, str arrays, Py_ssize_t C, dict lengths, int num_threads) except -1:
    """``arrays`` have x's shape (``shapes_match``) and every entry of ``lengths`` ({what: length}) is C."""
    check_min(num_threads, 1, "num_threads")
    if not shapes_match:
        raise ValueError(f"expected {arrays} to have x's shape")
    for what, length in lengths.items():
        check_size(length, C, f"{what} (the channels)")
    return 0


def grad_sums_channels_last(const floating[:, ::1] grad_y, const floating[:, ::1] x,
                            const double[::1] mean, double[:, ::1] out, int num_threads):
    """out[0, c] = sum of grad_y[:, c]; out[1, c] = sum of grad_y[:, c] * (x[:, c] - mean[c])."""
    cdef Py_ssize_t R = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t chunk_rows = max(<Py_ssize_t>MIN_CHUNK_ROWS, (R + MAX_CHUNKS - 1) // MAX_CHUNKS)
    cdef Py_ssize_t K = max(1, (R + chunk_rows - 1) // chunk_rows)
    cdef Py_ssize_t k, r0
    check_channels(grad_y.shape[0] == R and grad_y.shape[1] == C, "grad_y", C,
                   {"the length of mean": mean.shape[0], "out's columns": out.shape[1]}, num_threads)
    check_size(out.shape[0], 2, "out's rows")
    out[:, :] = 0
    if R * C == 0:
        return
    cdef double[:, ::1] partial = np.empty((K, 2 * C))
    cdef const floating* gp = &grad_y[0, 0]
    cdef const floating* xp = &x[0, 0]
    cdef double* pp = &partial[0, 0]
    with nogil:
        for k in prange(K, num_threads=num_threads, schedule="static"):
            r0 = k * chunk_rows
            sum_rows(gp + r0 * C, xp + r0 * C, &mean[0], min(chunk_rows, R - r0), C, pp + k * 2 * C)
    np.sum(np.asarray(partial).reshape(K, 2, C), axis=0, out=np.asarray(out))


cdef inline void sum_plane(const floating* g, const floating* x, double mean, Py_ssize_t n,
                           double* sums) noexcept nogil:
    cdef double s = 0, sx = 0
    cdef Py_ssize_t i
    for i in range(n):
        s += g[i]
        sx += g[i] * (x[i] - mean)
    sums[0] = s
    sums[1] = sx


def grad_sums_channels_first(const floating[:, :, ::1] grad_y, const floating[:, :, ::1] x,
                             const double[::1] mean, double[:, ::1] out, int num_threads):
    """As grad_sums_channels_last for (N, C, plane) arrays."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], t
    check_channels(grad_y.shape[0] == N and grad_y.shape[1] == C and grad_y.shape[2] == P, "grad_y", C,
                   {"the length of mean": mean.shape[0], "out's columns": out.shape[1]}, num_threads)
    check_size(out.shape[0], 2, "out's rows")
    out[:, :] = 0
    if N * C * P == 0:
        return
    cdef double[:, ::1] partial = np.empty((N * C, 2))
    cdef const floating* gp = &grad_y[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    with nogil:
        for t in prange(N * C, num_threads=num_threads, schedule="static"):
            sum_plane(gp + t * P, xp + t * P, mean[t % C], P, &partial[t, 0])
    np.sum(np.asarray(partial).reshape(N, C, 2), axis=0, out=np.asarray(out).T)


cdef inline void affine2_rows(const floating* g, const floating* x, const floating* a, const floating* b,
                              const floating* d, floating* y, Py_ssize_t rows, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r, c
    for r in range(rows):
        for c in range(C):
            y[r * C + c] = g[r * C + c] * a[c] + x[r * C + c] * b[c] + d[c]


def affine2_channels_last(const floating[:, ::1] g, const floating[:, ::1] x, const floating[::1] a,
                          const floating[::1] b, const floating[::1] d, floating[:, ::1] y, int num_threads):
    """y[r, c] = g[r, c] * a[c] + x[r, c] * b[c] + d[c] for (rows, C) arrays."""
    cdef Py_ssize_t R = x.shape[0], C = x.shape[1], k, r0
    check_channels(g.shape[0] == R and g.shape[1] == C and y.shape[0] == R and y.shape[1] == C, "g and y", C,
                   {"the length of a": a.shape[0], "the length of b": b.shape[0], "the length of d": d.shape[0]},
                   num_threads)
    if R * C == 0:
        return
    cdef Py_ssize_t rows_per_chunk = max(1, CHUNK // C)
    cdef Py_ssize_t nchunks = (R + rows_per_chunk - 1) // rows_per_chunk
    with nogil:
        for k in prange(nchunks, num_threads=num_threads, schedule="static"):
            r0 = k * rows_per_chunk
            affine2_rows(&g[r0, 0], &x[r0, 0], &a[0], &b[0], &d[0], &y[r0, 0],
                         min(rows_per_chunk, R - r0), C)


def affine2_channels_first(const floating[:, :, ::1] g, const floating[:, :, ::1] x, const floating[::1] a,
                           const floating[::1] b, const floating[::1] d, floating[:, :, ::1] y,
                           int num_threads):
    """y[n, c, i] = g[n, c, i] * a[c] + x[n, c, i] * b[c] + d[c] for (N, C, plane) arrays."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], t
    check_channels(g.shape[0] == N and g.shape[1] == C and g.shape[2] == P and y.shape[0] == N
                   and y.shape[1] == C and y.shape[2] == P, "g and y", C,
                   {"the length of a": a.shape[0], "the length of b": b.shape[0], "the length of d": d.shape[0]},
                   num_threads)
    if N * C * P == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=num_threads, schedule="static"):
            affine2_rows(&g[t // C, t % C, 0], &x[t // C, t % C, 0], &a[t % C], &b[t % C], &d[t % C],
                         &y[t // C, t % C, 0], P, 1)
