"""Deformable sampling in NHWC: convkit.bilinear_sample and the deformable im2col (columns for a GEMM).

Both sample whole contiguous channel vectors through ``bilinear.pxd``.  The column matrix has the
layout of the regular NHWC im2col (one row per output pixel, columns (kh, kw, c) with c fastest), so
the GEMM with HWIO weights is the same as conv2d's.  OpenMP splits points (bilinear_sample) or output
rows over (image, row) (im2col); each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange

import numpy as np

from bilinear cimport bilinear_sample_vec
from checks cimport check_geometry, check_min, check_offsets, check_range, check_size, optional_image
from deform_cols cimport deform_pixel_columns


def bilinear_sample_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, ::1] points,
                         floating[:, :, ::1] out, int num_threads):
    """out[n, p, :] = bilinear sample of x[n] (H, W, C) at points[n, p] = (y, x)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t P = points.shape[1]
    cdef Py_ssize_t q
    check_min(num_threads, 1, "num_threads")
    check_size(points.shape[0], N, "points' batch")
    check_size(points.shape[2], 2, "the coordinates per point")
    if out.shape[0] != N or out.shape[1] != P or out.shape[2] != C:
        raise ValueError(f"expected out to have shape ({N}, {P}, {C}), got {tuple(out.shape)[:3]}")
    if N * P * C == 0:
        return
    cdef floating[::1] zeros = np.zeros(C, dtype=np.float32 if floating is float else np.float64)
    cdef const floating* xp = &x[0, 0, 0, 0] if H * W > 0 else &zeros[0]
    cdef const floating* pp = &points[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    with nogil:
        for q in prange(N * P, num_threads=num_threads, schedule="static"):
            bilinear_sample_vec(xp + (q // P) * H * W * C, H, W, C, pp[2 * q], pp[2 * q + 1], 1.0,
                                &zeros[0], C, op + q * C)


def deform_im2col_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] offset, mask,
                       floating[:, ::1] cols, Py_ssize_t row_begin, Py_ssize_t row_end,
                       Py_ssize_t c0, Py_ssize_t cg, Py_ssize_t cpg, Py_ssize_t KH, Py_ssize_t KW,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                       Py_ssize_t dh, Py_ssize_t dw, int num_threads):
    """Deformable columns of output rows ``row_begin:row_end`` (flat over (n, oh)) into ``cols``.

    ``offset`` (N, Hout, Wout, 2*G*KH*KW) and ``mask`` (N, Hout, Wout, G*KH*KW) or None are NHWC;
    ``cpg`` = C / G channels per offset group.  ``cols`` gets ``(row_end - row_begin) * Wout`` rows of
    ``KH*KW*cg`` values sampled from channels ``c0:c0+cg``.
    """
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = offset.shape[1], Wout = offset.shape[2], OC = offset.shape[3]
    cdef Py_ssize_t K = KH * KW * cg
    cdef Py_ssize_t MC = OC // 2
    cdef Py_ssize_t r, n, oh, ow
    check_geometry(sh, sw, dh, dw, num_threads)
    check_offsets(offset, mask, x.shape[0], Hout, Wout, KH, KW, C, cpg)
    check_range(c0, c0 + cg, C, "the channels")
    check_range(row_begin, row_end, x.shape[0] * Hout, "the output rows")
    if row_end <= row_begin or K == 0:
        return
    check_min(cols.shape[0], (row_end - row_begin) * Wout, "the rows of cols")
    check_size(cols.shape[1], K, "the columns of cols (KH*KW*cg)")
    cdef floating[::1] zeros = np.zeros(cg, dtype=np.float32 if floating is float else np.float64)
    cdef const floating* mp
    optional_image(mask, x.shape[0], Hout, Wout, MC, "mask", &mp)
    cdef const floating* xp = &x[0, 0, 0, 0] if H * W > 0 else &zeros[0]   # an empty image samples zero
    cdef const floating* op = &offset[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0]
    with nogil:
        for r in prange(row_begin, row_end, num_threads=num_threads, schedule="static"):
            n = r // Hout
            oh = r % Hout
            for ow in range(Wout):
                deform_pixel_columns(
                    xp + n * H * W * C, op + (r * Wout + ow) * OC,
                    mp + (r * Wout + ow) * MC if mp != NULL else NULL, &zeros[0],
                    cp + ((r - row_begin) * Wout + ow) * K, H, W, C, c0, cg, cpg, KH, KW,
                    <double>(oh * sh - pt), <double>(ow * sw - pl), dh, dw)
