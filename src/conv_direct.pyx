"""Direct NHWC convolution: no column matrix, register-blocked over output pixels and channels.

Weights are packed once per call (``pack_weights``) into blocks of ``block_width(dtype)`` output
channels, zero-padded, laid out (group, block, kh, kw, ci, block), so the innermost loop streams one
block row and updates a tile of 6 output pixels x one block of accumulators held in vector registers
(the tile itself is ``microkernel.h``).  Input pixels outside the image read from a row of zeros, so the
inner loop has no branches.  OpenMP splits the (image, output row) pairs across threads;
each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from activation cimport activate_span

import numpy as np

cdef enum:
    BLOCK_F32 = 16  # output channels per register tile, float32
    BLOCK_F64 = 8   # output channels per register tile, float64


def block_width(dtype):
    """Output channels per packed weight block for ``dtype``."""
    return BLOCK_F32 if np.dtype(dtype) == np.float32 else BLOCK_F64


cdef extern from "microkernel.h" nogil:
    enum: CK_TILE_PIXELS   # output pixels per register tile
    void ck_tile_f32(const float* const* xp, const float* w, Py_ssize_t cin, float* acc)
    void ck_tile_f64(const double* const* xp, const double* w, Py_ssize_t cin, double* acc)


cdef inline void conv_tile(
    const floating* x, const floating* wblk, const floating* zeros, floating* acc,
    Py_ssize_t n, Py_ssize_t oh, Py_ssize_t ow0, Py_ssize_t npix, Py_ssize_t c0,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t cin_g, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """acc[r*B + j] = sum over taps and input channels for pixel ow0+r, channel j of the block.

    When every window of the tile lies inside the image horizontally, the dilation is 1 and the group
    has all channels, a kernel row's KW taps are KW*C contiguous input values (NHWC) facing KW*C
    contiguous packed weight rows, so one micro-kernel call covers the whole kernel row.  That matters
    most for thin inputs (an RGB stem: 3 channels per tap).
    """
    cdef Py_ssize_t B = BLOCK_F32 if floating is float else BLOCK_F64
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef Py_ssize_t kh, kw, ih, iw, r
    cdef bint whole_rows = (dw == 1 and cin_g == C and ow0 * sw - pl >= 0
                            and (ow0 + npix - 1) * sw - pl + KW <= W)
    memset(acc, 0, CK_TILE_PIXELS * B * sizeof(floating))
    for kh in range(KH):
        ih = oh * sh - pt + kh * dh
        if <size_t>ih >= <size_t>H:
            continue
        if whole_rows:
            for r in range(CK_TILE_PIXELS):
                xp[r] = x + ((n * H + ih) * W + (ow0 + r) * sw - pl) * C if r < npix else zeros
            micro_tile(xp, wblk + kh * KW * cin_g * B, KW * cin_g, acc)
            continue
        for kw in range(KW):
            for r in range(CK_TILE_PIXELS):
                iw = (ow0 + r) * sw - pl + kw * dw
                if r < npix and <size_t>iw < <size_t>W:
                    xp[r] = x + ((n * H + ih) * W + iw) * C + c0
                else:
                    xp[r] = zeros
            micro_tile(xp, wblk + (kh * KW + kw) * cin_g * B, cin_g, acc)


cdef inline void micro_tile(const floating* const* xp, const floating* w, Py_ssize_t cin,
                            floating* acc) noexcept nogil:
    if floating is float:
        ck_tile_f32(xp, w, cin, acc)
    else:
        ck_tile_f64(xp, w, cin, acc)


cdef inline void conv_row(
    const floating* x, const floating* wp, const floating* bias, const floating* zeros,
    floating* out, Py_ssize_t n, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nblk, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
    int act, floating alpha,
) noexcept nogil:
    """All output channels of output row ``oh`` of image ``n``, through the bias+activation epilogue."""
    cdef Py_ssize_t B = BLOCK_F32 if floating is float else BLOCK_F64
    cdef floating acc[CK_TILE_PIXELS * BLOCK_F32]
    cdef Py_ssize_t g, b, t, ow0, r, co0, nco, npix
    cdef Py_ssize_t Cout = G * cout_g
    for g in range(G):
        for b in range(nblk):
            co0 = g * cout_g + b * B
            nco = min(B, cout_g - b * B)
            for t in range((Wout + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS):
                ow0 = t * CK_TILE_PIXELS
                npix = min(CK_TILE_PIXELS, Wout - ow0)
                conv_tile(x, wp + (g * nblk + b) * KH * KW * cin_g * B, zeros, acc,
                          n, oh, ow0, npix, g * cin_g, H, W, C, cin_g, KH, KW,
                          sh, sw, pt, pl, dh, dw)
                for r in range(npix):
                    # The epilogue (bias, activation) runs on the tile while it is in registers/L1.
                    activate_span(acc + r * B, bias + co0 if bias != NULL else NULL,
                                  out + ((n * Hout + oh) * Wout + ow0 + r) * Cout + co0, nco,
                                  act, alpha)


def conv2d_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, :, :, ::1] wpacked,
                bias, floating[:, :, :, ::1] out,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t cout_g, int act, double alpha, int num_threads):
    """out (N, Hout, Wout, Cout) = act(conv(x (N, H, W, C), packed weights) + bias).

    ``act``/``alpha``: the activation code and parameter from convkit.activations.resolve_activation.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t G = wpacked.shape[0], nblk = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3], cin_g = wpacked.shape[4]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2]
    cdef Py_ssize_t r
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(KW * C, 1), dtype=np.float32 if floating is float else np.float64)
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
                     H, W, C, G, cin_g, cout_g, nblk, KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout,
                     act, <floating>alpha)


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
