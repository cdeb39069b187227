"""Direct NHWC convolution: no column matrix, register-blocked over output pixels and channels.

Weights are packed once per call (``pack_weights``) into blocks of ``block_width(dtype)`` output
channels, zero-padded, laid out (group, block, kh, kw, ci, block), so the innermost loop streams one
block row and updates a ``PIXELS x block`` tile of accumulators held in vector registers (6 pixels x 16
float32, or 6 x 8 float64: twelve 256-bit registers).  Input pixels outside the image read from a row of
zeros, so the inner loop has no branches.  OpenMP splits the (image, output row) pairs across threads;
each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange

import numpy as np

cdef enum:
    PIXELS = 6      # output pixels per register tile
    BLOCK_F32 = 16  # output channels per register tile, float32
    BLOCK_F64 = 8   # output channels per register tile, float64


def block_width(dtype):
    """Output channels per packed weight block for ``dtype``."""
    return BLOCK_F32 if np.dtype(dtype) == np.float32 else BLOCK_F64


cdef inline void conv_tile(
    const floating* x, const floating* wblk, const floating* zeros, floating* acc,
    Py_ssize_t n, Py_ssize_t oh, Py_ssize_t ow0, Py_ssize_t npix, Py_ssize_t c0,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t cin_g, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """acc[r*B + j] = sum over taps and input channels for pixel ow0+r, channel j of the block.

    The six accumulator rows are separate local arrays so the compiler can keep each in registers.
    """
    cdef Py_ssize_t B = BLOCK_F32 if floating is float else BLOCK_F64
    cdef floating a0[BLOCK_F32]
    cdef floating a1[BLOCK_F32]
    cdef floating a2[BLOCK_F32]
    cdef floating a3[BLOCK_F32]
    cdef floating a4[BLOCK_F32]
    cdef floating a5[BLOCK_F32]
    cdef const floating* xp[PIXELS]
    cdef const floating* w
    cdef floating v0, v1, v2, v3, v4, v5
    cdef Py_ssize_t kh, kw, ih, iw, r, ci, j
    for j in range(B):
        a0[j] = 0; a1[j] = 0; a2[j] = 0; a3[j] = 0; a4[j] = 0; a5[j] = 0
    for kh in range(KH):
        ih = oh * sh - pt + kh * dh
        if <size_t>ih >= <size_t>H:
            continue
        for kw in range(KW):
            for r in range(PIXELS):
                iw = (ow0 + r) * sw - pl + kw * dw
                if r < npix and <size_t>iw < <size_t>W:
                    xp[r] = x + ((n * H + ih) * W + iw) * C + c0
                else:
                    xp[r] = zeros
            w = wblk + (kh * KW + kw) * cin_g * B
            for ci in range(cin_g):
                v0 = xp[0][ci]; v1 = xp[1][ci]; v2 = xp[2][ci]
                v3 = xp[3][ci]; v4 = xp[4][ci]; v5 = xp[5][ci]
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


cdef inline void conv_row(
    const floating* x, const floating* wp, const floating* bias, const floating* zeros,
    floating* out, Py_ssize_t n, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nblk, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """All output channels of output row ``oh`` of image ``n``."""
    cdef Py_ssize_t B = BLOCK_F32 if floating is float else BLOCK_F64
    cdef floating acc[PIXELS * BLOCK_F32]
    cdef Py_ssize_t g, b, t, ow0, r, j, co0, nco, npix
    cdef Py_ssize_t Cout = G * cout_g
    cdef floating* dst
    for g in range(G):
        for b in range(nblk):
            co0 = g * cout_g + b * B
            nco = min(B, cout_g - b * B)
            for t in range((Wout + PIXELS - 1) // PIXELS):
                ow0 = t * PIXELS
                npix = min(PIXELS, Wout - ow0)
                conv_tile(x, wp + (g * nblk + b) * KH * KW * cin_g * B, zeros, acc,
                          n, oh, ow0, npix, g * cin_g, H, W, C, cin_g, KH, KW,
                          sh, sw, pt, pl, dh, dw)
                for r in range(npix):
                    dst = out + ((n * Hout + oh) * Wout + ow0 + r) * Cout + co0
                    for j in range(nco):
                        dst[j] = acc[r * B + j] + (bias[co0 + j] if bias != NULL else 0)


def conv2d_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, :, :, ::1] wpacked,
                bias, floating[:, :, :, ::1] out,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t cout_g, int num_threads):
    """out (N, Hout, Wout, Cout) = conv(x (N, H, W, C), packed weights) + bias."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t G = wpacked.shape[0], nblk = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3], cin_g = wpacked.shape[4]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2]
    cdef Py_ssize_t r
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(C, 1), dtype=np.float32 if floating is float else np.float64)
    cdef const floating[::1] bias_view
    cdef const floating* bp = NULL
    if bias is not None:
        bias_view = bias
        bp = &bias_view[0]
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0, 0, 0] if wpacked.size > 0 else &zeros[0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            conv_row(xp, wp, bp, &zeros[0], &out[0, 0, 0, 0], r // Hout, r % Hout,
                     H, W, C, G, cin_g, cout_g, nblk, KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout)


def pack_weights(w, Py_ssize_t groups):
    """HWIO weights (KH, KW, Cin/groups, Cout) -> (groups, blocks, KH, KW, Cin/groups, block)."""
    KH, KW, cin_g, Cout = w.shape
    B = block_width(w.dtype)
    cout_g = Cout // groups
    nblk = -(-cout_g // B)
    w = w.reshape(KH, KW, cin_g, groups, cout_g)
    w = np.pad(w, [(0, 0)] * 4 + [(0, nblk * B - cout_g)])
    w = w.reshape(KH, KW, cin_g, groups, nblk, B)
    return np.ascontiguousarray(w.transpose(3, 4, 0, 1, 2, 5))
