"""Depthwise NHWC convolution (groups == input channels): output channel c*m + k reads input channel c.

Vectorised across contiguous channels: a tile of ``PIXELS`` output pixels x ``BLOCK`` channels (two vector
registers per pixel: 16 float32 / 8 float64 with 256-bit vectors, 32 / 16 with 512-bit ones, src/simd.h)
accumulates in registers; for each kernel tap the block's weight vector is loaded once and used for every
pixel of the tile (``depthwise_tile.h`` for whole and half blocks with a contiguous output, the general
tile below otherwise).  Tiles cover the interior columns, whose taps are all inside the image (no bounds
checks in the inner loop); the few border columns are computed one pixel at a time, skipping the taps
that fall in the padding, and rows outside the image are skipped once per output row.  With a channel
multiplier m, weights are packed as (m, KH, KW, C) so each multiplier k is a plain depthwise pass over
contiguous input channels whose results go to every m-th output channel.  OpenMP splits the (image,
output row) pairs across threads; each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange

from activation cimport ACT_NONE, activate_span
from checks cimport check_geometry, check_size
from simd cimport CK_DW_ACC_LEN, CK_DW_PIXELS, tile_width

import numpy as np

cdef extern from "depthwise_tile.h" nogil:
    void dw_tile_f32(const float* x, Py_ssize_t npx, Py_ssize_t step, Py_ssize_t row, Py_ssize_t col,
                     Py_ssize_t nkh, Py_ssize_t KW, const float* w, Py_ssize_t C, const float* bias,
                     float* out, Py_ssize_t ostep)
    void dw_tile_f64(const double* x, Py_ssize_t npx, Py_ssize_t step, Py_ssize_t row, Py_ssize_t col,
                     Py_ssize_t nkh, Py_ssize_t KW, const double* w, Py_ssize_t C, const double* bias,
                     double* out, Py_ssize_t ostep)
    void dw_half_tile_f32(const float* x, Py_ssize_t npx, Py_ssize_t step, Py_ssize_t row, Py_ssize_t col,
                          Py_ssize_t nkh, Py_ssize_t KW, const float* w, Py_ssize_t C,
                          const float* bias, float* out, Py_ssize_t ostep)
    void dw_half_tile_f64(const double* x, Py_ssize_t npx, Py_ssize_t step, Py_ssize_t row, Py_ssize_t col,
                          Py_ssize_t nkh, Py_ssize_t KW, const double* w, Py_ssize_t C,
                          const double* bias, double* out, Py_ssize_t ostep)

cdef enum:
    PIXELS = CK_DW_PIXELS  # output pixels per tile (a multiple of the general tile's four rows)


cdef inline void store(floating* d, const floating* a, Py_ssize_t nc, Py_ssize_t M) noexcept nogil:
    """d[j*M] = a[j] for j < nc (contiguous when M == 1)."""
    cdef Py_ssize_t j
    if M == 1:
        for j in range(nc):
            d[j] = a[j]
    else:
        for j in range(nc):
            d[j * M] = a[j]


cdef inline void dw_tile(
    const floating* x, const floating* w, const floating* bias, floating* out,
    Py_ssize_t ow0, Py_ssize_t nc, Py_ssize_t ih0, Py_ssize_t kh0, Py_ssize_t kh1,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW,
    Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """PIXELS interior output pixels from ow0 (every tap inside the image's width), nc channels:
    the general tile, for a channel multiplier above 1 (strided output) and the last partial block.

    ``x`` points at channel c0 of the image's pixel (0, 0); taps kh0..kh1-1 are the rows inside the
    image, tap kh reading input row ih0 + kh*dh.  ``w`` and ``bias`` point at channel c0 of this
    multiplier's (KH, KW, C) weights and (C,) bias; ``out`` at output channel c0*M + k of the output
    row's first pixel, so channel c0+j of pixel ow goes to ``out[ow*C*M + j*M]``.  Called with ``nc``
    equal to the block width for full blocks (a constant once inlined: the loops vectorise with the
    accumulators in registers) and with the remainder for the last block.
    """
    cdef floating a0[CK_DW_ACC_LEN]
    cdef floating a1[CK_DW_ACC_LEN]
    cdef floating a2[CK_DW_ACC_LEN]
    cdef floating a3[CK_DW_ACC_LEN]
    cdef const floating* xp
    cdef const floating* wv
    cdef Py_ssize_t kh, kw, j
    cdef Py_ssize_t step = sw * C
    cdef floating* d
    for j in range(nc):
        a0[j] = bias[j]; a1[j] = bias[j]; a2[j] = bias[j]; a3[j] = bias[j]
    for kh in range(kh0, kh1):
        for kw in range(KW):
            xp = x + ((ih0 + kh * dh) * W + ow0 * sw - pl + kw * dw) * C
            wv = w + (kh * KW + kw) * C
            for j in range(nc):
                a0[j] += xp[j] * wv[j]
                a1[j] += xp[step + j] * wv[j]
                a2[j] += xp[2 * step + j] * wv[j]
                a3[j] += xp[3 * step + j] * wv[j]
    d = out + ow0 * C * M
    if M == 1:
        for j in range(nc):
            d[j] = a0[j]; d[C + j] = a1[j]; d[2 * C + j] = a2[j]; d[3 * C + j] = a3[j]
    else:
        for j in range(nc):
            d[j * M] = a0[j]
            d[(C + j) * M] = a1[j]
            d[(2 * C + j) * M] = a2[j]
            d[(3 * C + j) * M] = a3[j]


cdef inline void dw_pixel(
    const floating* x, const floating* w, const floating* bias, floating* out,
    Py_ssize_t ow, Py_ssize_t nc, Py_ssize_t ih0, Py_ssize_t kh0, Py_ssize_t kh1,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW,
    Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """One output pixel (any, taps outside the width skipped); arguments as :func:`dw_tile`."""
    cdef floating a[CK_DW_ACC_LEN]
    cdef const floating* xp
    cdef const floating* wv
    cdef Py_ssize_t kh, kw, iw, j
    for j in range(nc):
        a[j] = bias[j]
    for kh in range(kh0, kh1):
        for kw in range(KW):
            iw = ow * sw - pl + kw * dw
            if <size_t>iw >= <size_t>W:
                continue
            xp = x + ((ih0 + kh * dh) * W + iw) * C
            wv = w + (kh * KW + kw) * C
            for j in range(nc):
                a[j] += xp[j] * wv[j]
    store(out + ow * C * M, a, nc, M)


cdef inline void vector_tile(
    bint half, const floating* x, Py_ssize_t npx, Py_ssize_t step, Py_ssize_t row, Py_ssize_t col,
    Py_ssize_t nkh, Py_ssize_t KW, const floating* w, Py_ssize_t C, const floating* bias, floating* out,
) noexcept nogil:
    """depthwise_tile.h's tile of ``npx`` pixels for one whole block (two vectors) or, ``half``, one vector
    of channels."""
    if floating is float:
        if half:
            dw_half_tile_f32(x, npx, step, row, col, nkh, KW, w, C, bias, out, C)
        else:
            dw_tile_f32(x, npx, step, row, col, nkh, KW, w, C, bias, out, C)
    else:
        if half:
            dw_half_tile_f64(x, npx, step, row, col, nkh, KW, w, C, bias, out, C)
        else:
            dw_tile_f64(x, npx, step, row, col, nkh, KW, w, C, bias, out, C)


cdef inline void dw_block(
    const floating* x, const floating* w, const floating* bias, floating* out,
    Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t ow, Py_ssize_t npx, Py_ssize_t ih0, Py_ssize_t kh0,
    Py_ssize_t kh1, Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW,
    Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """Channels c0:c0+nc of an interior tile of ``npx`` pixels (PIXELS or 4) from output column ``ow``,
    or of the one pixel there (``npx`` 0).

    A whole or half block (``nc`` a literal once inlined) of a multiplier-1 tile (contiguous output) goes
    to ``depthwise_tile.h``; other tiles to the general :func:`dw_tile`; pixels to :func:`dw_pixel`.
    """
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t q
    if npx and M == 1 and (nc == B or nc == B // 2):
        vector_tile(nc != B, x + ((ih0 + kh0 * dh) * W + ow * sw - pl) * C + c0, npx, sw * C, dh * W * C,
                    dw * C, kh1 - kh0, KW, w + kh0 * KW * C + c0, C, bias + c0, out + ow * C + c0)
    elif npx:
        for q in range(0, npx, 4):
            dw_tile(x + c0, w + c0, bias + c0, out + c0 * M, ow + q, nc, ih0, kh0, kh1, W, C, M, KW, sw, pl,
                    dh, dw)
    else:
        dw_pixel(x + c0, w + c0, bias + c0, out + c0 * M, ow, nc, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)


cdef inline void dw_channels(
    const floating* x, const floating* w, const floating* bias, floating* out,
    Py_ssize_t ow, Py_ssize_t npx, Py_ssize_t ih0, Py_ssize_t kh0, Py_ssize_t kh1,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW,
    Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """Every channel of an interior tile of ``npx`` pixels, or of one pixel (``npx`` 0), at output column
    ``ow``: whole blocks, then a half block (one vector) when C leaves one, then the rest.  The half block
    matters with 512-bit vectors (blocks of 32 float32): MobileNet's 144 channels leave 16, which the
    general tile took 1.3x slower than the vector tile (3x3 56x56x144, 1 thread, Zen 4)."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t c0 = 0
    while c0 + B <= C:
        dw_block(x, w, bias, out, c0, B, ow, npx, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)
        c0 += B
    if c0 + B // 2 <= C:
        dw_block(x, w, bias, out, c0, B // 2, ow, npx, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)
        c0 += B // 2
    if c0 < C:
        dw_block(x, w, bias, out, c0, C - c0, ow, npx, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)


cdef inline void dw_row(
    const floating* x, const floating* w, const floating* bias, floating* out,
    Py_ssize_t oh, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t M,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
    Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wout,
) noexcept nogil:
    """Output row ``oh`` of one image for one multiplier: ``x`` is the image, ``w``/``bias`` the
    multiplier's (KH, KW, C)/(C,) weights, ``out`` its first output channel in the row.  The interior
    goes in tiles of PIXELS, then one of 4 if that many are left (7x7 maps have 5 interior columns)."""
    cdef Py_ssize_t ih0 = oh * sh - pt
    # Taps kh0..kh1-1 read rows inside the image: 0 <= ih0 + kh*dh < H.
    cdef Py_ssize_t kh0 = 0 if ih0 >= 0 else (-ih0 + dh - 1) // dh
    cdef Py_ssize_t kh1 = 0 if H - ih0 <= 0 else min(KH, (H - ih0 + dh - 1) // dh)
    # Interior output columns [ow_a, ow_b): every tap inside the width, 0 <= ow*sw - pl + kw*dw < W.
    cdef Py_ssize_t ow_a = min((pl + sw - 1) // sw, Wout)
    cdef Py_ssize_t span = W - 1 + pl - (KW - 1) * dw
    cdef Py_ssize_t ow_b = max(min(span // sw + 1, Wout), ow_a) if span >= 0 else ow_a
    cdef Py_ssize_t ow = 0
    while ow < ow_a:
        dw_channels(x, w, bias, out, ow, 0, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)
        ow += 1
    while ow + PIXELS <= ow_b:
        dw_channels(x, w, bias, out, ow, PIXELS, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)
        ow += PIXELS
    if PIXELS > 4 and ow + 4 <= ow_b:
        dw_channels(x, w, bias, out, ow, 4, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)
        ow += 4
    while ow < Wout:
        dw_channels(x, w, bias, out, ow, 0, ih0, kh0, kh1, W, C, M, KW, sw, pl, dh, dw)
        ow += 1


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
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            n = r // Hout
            oh = r % Hout
            if M == 1:  # the common case, specialised (literal multiplier) once inlined
                dw_row(xp + n * H * W * C, wp, bp, op + r * Wout * C,
                       oh, H, W, C, 1, KH, KW, sh, sw, pt, pl, dh, dw, Wout)
            else:
                for k in range(M):
                    dw_row(xp + n * H * W * C, wp + k * KH * KW * C, bp + k * C,
                           op + r * Wout * C * M + k, oh, H, W, C, M, KH, KW, sh, sw, pt, pl,
                           dh, dw, Wout)
            if act != ACT_NONE:
                activate_span(op + r * Wout * C * M, NULL, op + r * Wout * C * M, Wout * C * M,
                              act, <floating>alpha)


def pack_weights(w, Py_ssize_t channels):
    """HWIO depthwise weights (KH, KW, 1, C*m) -> (m, KH, KW, C): [k, i, j, c] = w[i, j, 0, c*m + k]."""
    KH, KW, _, Cout = w.shape
    return np.ascontiguousarray(w.reshape(KH, KW, channels, Cout // channels).transpose(3, 0, 1, 2))


def pack_bias(b, Py_ssize_t channels, Py_ssize_t multiplier, dtype):
    """Bias (C*m,) or None -> (m, C): [k, c] = b[c*m + k] (zeros for None)."""
    if b is None:
        return np.zeros((multiplier, channels), dtype)
    return np.ascontiguousarray(b.reshape(channels, multiplier).T)
