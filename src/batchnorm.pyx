"""Batch normalisation's per-channel affine map y = x * scale[c] + shift[c].

``scale``/``shift`` fold the statistics and the learnt weight/bias (computed by convkit.normalization).
Channels-last data is processed as (rows, C) with the channel loop innermost (contiguous, vectorised);
channels-first data as (N, C, plane) with one constant scale/shift per contiguous plane, so NCHW needs no
transposition.  Both split the work into fixed chunks handed to threads statically.
"""
from cython cimport floating
from cython.parallel cimport prange

from checks cimport check_min, check_size

cdef enum:
    CHUNK = 16384  # elements per parallel task


cdef inline void affine_rows(const floating* x, const floating* scale, const floating* shift,
                             floating* y, Py_ssize_t rows, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r, c
    for r in range(rows):
        for c in range(C):
            y[r * C + c] = x[r * C + c] * scale[c] + shift[c]


cdef inline void affine_plane(const floating* x, floating s, floating b, floating* y,
                              Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = x[i] * s + b


cdef int check_affine(Py_ssize_t C, Py_ssize_t scale_length, Py_ssize_t shift_length, bint y_matches,
                      int num_threads) except -1:
    check_min(num_threads, 1, "num_threads")
    check_size(scale_length, C, "the length of scale (the channels)")
    check_size(shift_length, C, "the length of shift (the channels)")
    if not y_matches:
        raise ValueError("expected y to have x's shape")
    return 0


def affine_channels_last(const floating[:, ::1] x, const floating[::1] scale,
                         const floating[::1] shift, floating[:, ::1] y, int num_threads):
    """y[r, c] = x[r, c] * scale[c] + shift[c] for x, y of shape (rows, C)."""
    cdef Py_ssize_t R = x.shape[0], C = x.shape[1], k, r0
    check_affine(C, scale.shape[0], shift.shape[0], y.shape[0] == R and y.shape[1] == C, num_threads)
    if R * C == 0:
        return
    cdef Py_ssize_t rows_per_chunk = max(1, CHUNK // C)
    cdef Py_ssize_t nchunks = (R + rows_per_chunk - 1) // rows_per_chunk
    cdef const floating* xp = &x[0, 0]
    cdef floating* yp = &y[0, 0]
    with nogil:
        for k in prange(nchunks, num_threads=num_threads, schedule="static"):
            r0 = k * rows_per_chunk
            affine_rows(xp + r0 * C, &scale[0], &shift[0], yp + r0 * C, min(rows_per_chunk, R - r0), C)


def affine_channels_first(const floating[:, :, ::1] x, const floating[::1] scale,
                          const floating[::1] shift, floating[:, :, ::1] y, int num_threads):
    """y[n, c, i] = x[n, c, i] * scale[c] + shift[c] for x, y of shape (N, C, plane)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], t
    check_affine(C, scale.shape[0], shift.shape[0], y.shape[0] == N and y.shape[1] == C and y.shape[2] == P,
                 num_threads)
    if N * C * P == 0:
        return
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0]
    with nogil:
        for t in prange(N * C, num_threads=num_threads, schedule="static"):
            affine_plane(xp + t * P, scale[t % C], shift[t % C], yp + t * P, P)
