"""Depthwise NHWC convolution (groups == input channels): output channel c*m + k reads input channel c.

The row kernel, register tiles over output pixels x contiguous channels, is ``depthwise_row.pxd`` (shared
with the fused inverted residual block); this module points each output row's window at its image rows
(rows outside the image are skipped once per output row).  With a channel multiplier m, weights are
packed as (m, KH, KW, C) so each multiplier k is a plain depthwise pass over contiguous input channels
whose results go to every m-th output channel.  OpenMP splits the (image, output row) pairs across
threads; each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

from activation cimport ACT_NONE, activate_span
from checks cimport check_geometry, check_size
from depthwise_row cimport dw_row, tap_rows

import numpy as np

cdef enum:
    LINE_POINTERS = 8    # pointers in a 64-byte cache line


def depthwise_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] wpacked,
                   const floating[:, ::1] bpacked, floating[:, :, :, ::1] out,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                   Py_ssize_t dh, Py_ssize_t dw, int act, double alpha, int num_threads):
    """out (N, Hout, Wout, C*m) = act(depthwise conv(x (N, H, W, C), weights (m, KH, KW, C)) + bias).

    ``bpacked`` is the bias packed as (m, C) by :func:`pack_bias` (zeros for no bias); ``act``/``alpha``
    the activation code and parameter from convkit.activations.resolve_activation, applied to each
    output row while it is in cache.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t M = wpacked.shape[0], KH = wpacked.shape[1], KW = wpacked.shape[2]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2]
    cdef Py_ssize_t r, n, oh, k
    check_geometry(sh, sw, dh, dw, num_threads)
    check_size(wpacked.shape[3], C, "the packed weight's channels (the input channels)")
    check_size(bpacked.shape[0], M, "the packed bias' rows (the channel multiplier)")
    check_size(bpacked.shape[1], C, "the packed bias' channels")
    check_size(out.shape[0], N, "out's batch")
    check_size(out.shape[3], C * M, "out's channels")
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0]
    cdef const floating* bp = &bpacked[0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    cdef Py_ssize_t ih0, kh0, kh1, kh
    cdef const floating** rows
    # Each thread's window rows: KH pointers in a cache line (or several) of its own, at threadid() * step
    # (threads sharing a line of row pointers made 2 threads 8% slower).
    cdef Py_ssize_t step = (KH + LINE_POINTERS - 1) // LINE_POINTERS * LINE_POINTERS
    cdef void* raw = malloc((num_threads * step + LINE_POINTERS) * sizeof(floating*))
    if raw == NULL:
        raise MemoryError("cannot allocate the depthwise kernel's row table")
    cdef const floating** row_table = <const floating**>((<uintptr_t>raw + 63) // 64 * 64)
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            n = r // Hout
            oh = r % Hout
            rows = row_table + threadid() * step
            ih0, kh0, kh1 = tap_rows(oh, sh, pt, dh, KH, H)
            for kh in range(kh0, kh1):
                rows[kh] = xp + ((n * H + ih0 + kh * dh) * W) * C
            if M == 1:  # the common case, specialised (literal multiplier) once inlined
                dw_row(rows, kh0, kh1, 0, C, wp, bp, op + r * Wout * C, W, C, 1, KW, sw, pl, dw, Wout)
            else:
                for k in range(M):
                    dw_row(rows, kh0, kh1, 0, C, wp + k * KH * KW * C, bp + k * C, op + r * Wout * C * M + k,
                           W, C, M, KW, sw, pl, dw, Wout)
            if act != ACT_NONE:
                activate_span(op + r * Wout * C * M, NULL, op + r * Wout * C * M, Wout * C * M,
                              act, <floating>alpha)
        free(raw)


def pack_weights(w, Py_ssize_t channels):
    """HWIO depthwise weights (KH, KW, 1, C*m) -> (m, KH, KW, C): [k, i, j, c] = w[i, j, 0, c*m + k]."""
    KH, KW, _, Cout = w.shape
    return np.ascontiguousarray(w.reshape(KH, KW, channels, Cout // channels).transpose(3, 0, 1, 2))


def pack_bias(b, Py_ssize_t channels, Py_ssize_t multiplier, dtype):
    """Bias (C*m,) or None -> (m, C): [k, c] = b[c*m + k] (zeros for None)."""
    if b is None:
        return np.zeros((multiplier, channels), dtype)
    return np.ascontiguousarray(b.reshape(channels, multiplier).T)
