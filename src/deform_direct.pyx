"""Direct deformable convolution in NHWC: sampling fused with a register-blocked accumulation.

Each thread owns whole output rows (over image x row).  For one row it samples the deformable columns
of a chunk of output pixels into its own small buffer (``chunk * KH*KW*Cin/groups`` values, sized to
stay in L2), then multiplies them with the packed weights of conv_direct (``pack_weights``: blocks of
16 float32 / 8 float64 output channels, rows (kh, kw, ci) like the columns) in a micro-kernel that keeps
a ``6 pixels x block`` tile of accumulators in vector registers.  No column matrix is materialised.
"""
from cython cimport floating
from cython.parallel cimport prange

import numpy as np

from deform_cols cimport deform_pixel_columns
from omp cimport omp_get_thread_num

cdef enum:
    PIXELS = 6      # output pixels per register tile
    BLOCK_F32 = 16  # output channels per register tile, float32 (conv_direct.block_width)
    BLOCK_F64 = 8   # output channels per register tile, float64


cdef inline void gemm_tile(const floating** rows, const floating* w, Py_ssize_t K,
                           floating* acc) noexcept nogil:
    """acc[r*B + j] = sum_k rows[r][k] * w[k*B + j] for the six rows r of one pixel tile."""
    cdef Py_ssize_t B = BLOCK_F32 if floating is float else BLOCK_F64
    cdef floating a0[BLOCK_F32]
    cdef floating a1[BLOCK_F32]
    cdef floating a2[BLOCK_F32]
    cdef floating a3[BLOCK_F32]
    cdef floating a4[BLOCK_F32]
    cdef floating a5[BLOCK_F32]
    cdef const floating* r0 = rows[0]
    cdef const floating* r1 = rows[1]
    cdef const floating* r2 = rows[2]
    cdef const floating* r3 = rows[3]
    cdef const floating* r4 = rows[4]
    cdef const floating* r5 = rows[5]
    cdef floating v0, v1, v2, v3, v4, v5
    cdef Py_ssize_t k, j
    for j in range(B):
        a0[j] = 0; a1[j] = 0; a2[j] = 0; a3[j] = 0; a4[j] = 0; a5[j] = 0
    for k in range(K):
        v0 = r0[k]; v1 = r1[k]; v2 = r2[k]; v3 = r3[k]; v4 = r4[k]; v5 = r5[k]
        for j in range(B):
            a0[j] += v0 * w[j]
            a1[j] += v1 * w[j]
            a2[j] += v2 * w[j]
            a3[j] += v3 * w[j]
            a4[j] += v4 * w[j]
            a5[j] += v5 * w[j]
        w += B
    for j in range(B):
        acc[j] = a0[j]; acc[B + j] = a1[j]; acc[2 * B + j] = a2[j]
        acc[3 * B + j] = a3[j]; acc[4 * B + j] = a4[j]; acc[5 * B + j] = a5[j]


cdef inline void deform_row(
    const floating* img, const floating* off, const floating* msk, const floating* wp,
    const floating* bias, const floating* zeros, floating* buf, floating* out,
    Py_ssize_t oh, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g,
    Py_ssize_t cout_g, Py_ssize_t nblk, Py_ssize_t cpg, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t Wout, Py_ssize_t OC, Py_ssize_t chunk,
) noexcept nogil:
    """All output channels of one output row; ``off``/``msk``/``out`` point at the row's first pixel."""
    cdef Py_ssize_t B = BLOCK_F32 if floating is float else BLOCK_F64
    cdef Py_ssize_t K = KH * KW * cin_g
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t MC = OC // 2
    cdef floating acc[PIXELS * BLOCK_F32]
    cdef const floating* rows[PIXELS]
    cdef Py_ssize_t g, q, ow0, npx, p, t0, t, r, b, j, co0, nco
    cdef floating* dst
    for g in range(G):
        for q in range((Wout + chunk - 1) // chunk):
            ow0 = q * chunk
            npx = min(chunk, Wout - ow0)
            for p in range(npx):
                deform_pixel_columns(img, off + (ow0 + p) * OC,
                                     msk + (ow0 + p) * MC if msk != NULL else NULL, zeros,
                                     buf + p * K, H, W, C, g * cin_g, cin_g, cpg, KH, KW,
                                     <double>(oh * sh - pt), <double>((ow0 + p) * sw - pl), dh, dw)
            for t0 in range((npx + PIXELS - 1) // PIXELS):
                t = t0 * PIXELS
                for r in range(PIXELS):
                    rows[r] = buf + (t + r if t + r < npx else t) * K
                for b in range(nblk):
                    co0 = g * cout_g + b * B
                    nco = min(B, cout_g - b * B)
                    gemm_tile(rows, wp + (g * nblk + b) * K * B, K, acc)
                    for r in range(min(PIXELS, npx - t)):
                        dst = out + (ow0 + t + r) * Cout + co0
                        for j in range(nco):
                            dst[j] = acc[r * B + j] + (bias[co0 + j] if bias != NULL else 0)


def deform_conv2d_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] offset, mask,
                       const floating[:, :, :, :, :, ::1] wpacked, bias,
                       floating[:, :, :, ::1] out, floating[:, ::1] workspace,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                       Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t cpg, Py_ssize_t cout_g,
                       Py_ssize_t chunk, int num_threads):
    """out (N, Hout, Wout, Cout) = deformable conv of x (N, H, W, C) with packed weights + bias.

    ``offset``/``mask`` as deform.deform_im2col_nhwc; ``workspace`` has ``num_threads`` rows of
    ``chunk * KH*KW*Cin/groups`` elements, one per thread; ``chunk`` is a multiple of 6 pixels.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t G = wpacked.shape[0], nblk = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3], cin_g = wpacked.shape[4]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef Py_ssize_t OC = offset.shape[3]
    cdef Py_ssize_t r
    if out.shape[0] * Hout * Wout * Cout == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(cin_g, 1), dtype=np.float32 if floating is float else np.float64)
    cdef const floating[:, :, :, ::1] mask_view
    cdef const floating* mp = NULL
    if mask is not None:
        mask_view = mask
        mp = &mask_view[0, 0, 0, 0]
    cdef const floating[::1] bias_view
    cdef const floating* bp = NULL
    if bias is not None:
        bias_view = bias
        bp = &bias_view[0]
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0, 0, 0] if wpacked.size > 0 else &zeros[0]
    cdef floating* ws = &workspace[0, 0] if workspace.size > 0 else NULL
    cdef Py_ssize_t ws_stride = workspace.shape[1]
    cdef const floating* op = &offset[0, 0, 0, 0]
    cdef floating* yp = &out[0, 0, 0, 0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            deform_row(xp + (r // Hout) * H * W * C, op + r * Wout * OC,
                       mp + r * Wout * (OC // 2) if mp != NULL else NULL, wp, bp, &zeros[0],
                       ws + omp_get_thread_num() * ws_stride, yp + r * Wout * Cout,
                       r % Hout, H, W, C, G, cin_g, cout_g, nblk, cpg, KH, KW, sh, sw, pt, pl,
                       dh, dw, Wout, OC, chunk)
