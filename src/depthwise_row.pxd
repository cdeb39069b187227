# One output row of a depthwise NHWC convolution (groups == input channels), shared by the depthwise kernel
# (depthwise.pyx) and the fused inverted residual block (inverted_residual.pyx).
#
# Vectorised across contiguous channels: a tile of PIXELS output pixels x BLOCK channels (two vector
# registers per pixel: 16 float32 / 8 float64 with 256-bit vectors, 32 / 16 with 512-bit ones, src/simd.h)
# accumulates in registers; for each kernel tap the block's weight vector is loaded once and used for every
# pixel of the tile (``depthwise_tile.h`` for whole and half blocks with a contiguous output, the general
# tile below otherwise).  Tiles cover the interior columns, whose taps are all inside the image (no bounds
# checks in the inner loop); the few border columns are computed one pixel at a time, skipping the taps
# that fall in the padding.
#
# The window's rows are given as pointers: ``rows[kh]`` is the input row that kernel row kh reads (at its
# pixel 0, channel 0), for the taps kh0 <= kh < kh1 inside the image (``tap_rows``); the rows before kh0
# and from kh1 on are padding and skipped.  The depthwise kernel points them into the image; the fused
# block into a ring of rows it computes as it goes.  Arguments common to the functions: ``w`` and ``bias``
# point at this channel multiplier's (KH, KW, C) weights and (C,) bias; output channel c of pixel ow goes
# to ``out[ow*C*M + c*M]`` (M, the channel multiplier, is 1 for a plain depthwise layer); C input channels,
# input width W, kernel width KW, horizontal stride sw, left padding pl, horizontal dilation dw.
from cython cimport floating

from simd cimport CK_DW_ACC_LEN, CK_DW_PIXELS, tile_width

cdef extern from "depthwise_tile.h" nogil:
    void dw_tile_f32(const float* const* rows, Py_ssize_t off, Py_ssize_t npx, Py_ssize_t step,
                     Py_ssize_t col, Py_ssize_t nkh, Py_ssize_t KW, const float* w, Py_ssize_t C,
                     const float* bias, float* out, Py_ssize_t ostep)
    void dw_tile_f64(const double* const* rows, Py_ssize_t off, Py_ssize_t npx, Py_ssize_t step,
                     Py_ssize_t col, Py_ssize_t nkh, Py_ssize_t KW, const double* w, Py_ssize_t C,
                     const double* bias, double* out, Py_ssize_t ostep)
    void dw_half_tile_f32(const float* const* rows, Py_ssize_t off, Py_ssize_t npx, Py_ssize_t step,
                          Py_ssize_t col, Py_ssize_t nkh, Py_ssize_t KW, const float* w, Py_ssize_t C,
                          const float* bias, float* out, Py_ssize_t ostep)
    void dw_half_tile_f64(const double* const* rows, Py_ssize_t off, Py_ssize_t npx, Py_ssize_t step,
                          Py_ssize_t col, Py_ssize_t nkh, Py_ssize_t KW, const double* w, Py_ssize_t C,
                          const double* bias, double* out, Py_ssize_t ostep)

cdef enum:
    PIXELS = CK_DW_PIXELS  # output pixels per tile (a multiple of the general tile's four rows)


cdef inline (Py_ssize_t, Py_ssize_t, Py_ssize_t) tap_rows(
    Py_ssize_t oh, Py_ssize_t sh, Py_ssize_t pt, Py_ssize_t dh, Py_ssize_t KH, Py_ssize_t H,
) noexcept nogil:
    """(ih0, kh0, kh1) for output row ``oh``: kernel row kh reads input row ih0 + kh*dh, and the taps
    kh0..kh1-1 are the ones inside the image, 0 <= ih0 + kh*dh < H."""
    cdef Py_ssize_t ih0 = oh * sh - pt
    cdef Py_ssize_t kh0 = 0 if ih0 >= 0 else (-ih0 + dh - 1) // dh
    cdef Py_ssize_t kh1 = 0 if H - ih0 <= 0 else min(KH, (H - ih0 + dh - 1) // dh)
    return ih0, kh0, max(kh1, kh0)


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
    const floating* const* rows, Py_ssize_t c0, const floating* w, const floating* bias, floating* out,
    Py_ssize_t ow0, Py_ssize_t nc, Py_ssize_t kh0, Py_ssize_t kh1,
    Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dw,
) noexcept nogil:
    """Four interior output pixels from ow0 (every tap inside the image's width), channels c0:c0+nc: the
    general tile, for a channel multiplier above 1 (strided output) and the last partial block.
    Called with ``nc`` equal to the block width for full blocks (a constant once inlined: the loops
    vectorise with the accumulators in registers) and with the remainder for the last block."""
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
        a0[j] = bias[c0 + j]; a1[j] = bias[c0 + j]; a2[j] = bias[c0 + j]; a3[j] = bias[c0 + j]
    for kh in range(kh0, kh1):
        for kw in range(KW):
            xp = rows[kh] + (ow0 * sw - pl + kw * dw) * C + c0
            wv = w + (kh * KW + kw) * C + c0
            for j in range(nc):
                a0[j] += xp[j] * wv[j]
                a1[j] += xp[step + j] * wv[j]
                a2[j] += xp[2 * step + j] * wv[j]
                a3[j] += xp[3 * step + j] * wv[j]
    d = out + (ow0 * C + c0) * M
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
    const floating* const* rows, Py_ssize_t c0, const floating* w, const floating* bias, floating* out,
    Py_ssize_t ow, Py_ssize_t nc, Py_ssize_t kh0, Py_ssize_t kh1,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dw,
) noexcept nogil:
    """One output pixel (any: taps outside the width are skipped), channels c0:c0+nc."""
    cdef floating a[CK_DW_ACC_LEN]
    cdef const floating* xp
    cdef const floating* wv
    cdef Py_ssize_t kh, kw, iw, j
    for j in range(nc):
        a[j] = bias[c0 + j]
    for kh in range(kh0, kh1):
        for kw in range(KW):
            iw = ow * sw - pl + kw * dw
            if <size_t>iw >= <size_t>W:
                continue
            xp = rows[kh] + iw * C + c0
            wv = w + (kh * KW + kw) * C + c0
            for j in range(nc):
                a[j] += xp[j] * wv[j]
    store(out + (ow * C + c0) * M, a, nc, M)


cdef inline void vector_tile(
    bint half, const floating* const* rows, Py_ssize_t off, Py_ssize_t npx, Py_ssize_t step,
    Py_ssize_t col, Py_ssize_t nkh, Py_ssize_t KW, const floating* w, Py_ssize_t C,
    const floating* bias, floating* out,
) noexcept nogil:
    """depthwise_tile.h's tile of ``npx`` pixels for one whole block (two vectors) or, ``half``, one vector
    of channels."""
    if floating is float:
        if half:
            dw_half_tile_f32(rows, off, npx, step, col, nkh, KW, w, C, bias, out, C)
        else:
            dw_tile_f32(rows, off, npx, step, col, nkh, KW, w, C, bias, out, C)
    else:
        if half:
            dw_half_tile_f64(rows, off, npx, step, col, nkh, KW, w, C, bias, out, C)
        else:
            dw_tile_f64(rows, off, npx, step, col, nkh, KW, w, C, bias, out, C)


cdef inline void dw_block(
    const floating* const* rows, const floating* w, const floating* bias, floating* out,
    Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t ow, Py_ssize_t npx, Py_ssize_t kh0, Py_ssize_t kh1,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dw,
) noexcept nogil:
    """Channels c0:c0+nc of an interior tile of ``npx`` pixels (PIXELS or 4) from output column ``ow``,
    or of the one pixel there (``npx`` 0).

    A whole or half block (``nc`` a literal once inlined) of a multiplier-1 tile (contiguous output) goes
    to ``depthwise_tile.h``; other tiles to the general :func:`dw_tile`; pixels to :func:`dw_pixel`.
    """
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t q
    if npx and M == 1 and (nc == B or nc == B // 2):
        vector_tile(nc != B, rows + kh0, (ow * sw - pl) * C + c0, npx, sw * C, dw * C, kh1 - kh0, KW,
                    w + kh0 * KW * C + c0, C, bias + c0, out + ow * C + c0)
    elif npx:
        for q in range(0, npx, 4):
            dw_tile(rows, c0, w, bias, out, ow + q, nc, kh0, kh1, C, M, KW, sw, pl, dw)
    else:
        dw_pixel(rows, c0, w, bias, out, ow, nc, kh0, kh1, W, C, M, KW, sw, pl, dw)


cdef inline void dw_channels(
    const floating* const* rows, const floating* w, const floating* bias, floating* out,
    Py_ssize_t ow, Py_ssize_t npx, Py_ssize_t kh0, Py_ssize_t kh1, Py_ssize_t c_begin, Py_ssize_t c_end,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dw,
) noexcept nogil:
    """Channels c_begin:c_end of an interior tile of ``npx`` pixels, or of one pixel (``npx`` 0), at
    output column ``ow``: whole blocks, then a half block (one vector) when the range leaves one, then the
    rest.  The half block matters with 512-bit vectors (blocks of 32 float32): MobileNet's 144 channels
    leave 16, which the general tile took 1.3x slower than the vector tile (3x3 56x56x144, 1 thread,
    Zen 4)."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t c0 = c_begin
    while c0 + B <= c_end:
        dw_block(rows, w, bias, out, c0, B, ow, npx, kh0, kh1, W, C, M, KW, sw, pl, dw)
        c0 += B
    if c0 + B // 2 <= c_end:
        dw_block(rows, w, bias, out, c0, B // 2, ow, npx, kh0, kh1, W, C, M, KW, sw, pl, dw)
        c0 += B // 2
    if c0 < c_end:
        dw_block(rows, w, bias, out, c0, c_end - c0, ow, npx, kh0, kh1, W, C, M, KW, sw, pl, dw)


cdef inline void dw_row(
    const floating* const* rows, Py_ssize_t kh0, Py_ssize_t kh1, Py_ssize_t c_begin, Py_ssize_t c_end,
    const floating* w, const floating* bias, floating* out,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t M, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dw,
    Py_ssize_t Wout,
) noexcept nogil:
    """Channels c_begin:c_end (all: 0:C) of one output row for one multiplier, ``out`` at the row's first
    output channel.  The interior goes in tiles of PIXELS, then one of 4 if that many are left (7x7 maps
    have 5 interior columns)."""
    # Interior output columns [ow_a, ow_b): every tap inside the width, 0 <= ow*sw - pl + kw*dw < W.
    cdef Py_ssize_t ow_a = min((pl + sw - 1) // sw, Wout)
    cdef Py_ssize_t span = W - 1 + pl - (KW - 1) * dw
    cdef Py_ssize_t ow_b = max(min(span // sw + 1, Wout), ow_a) if span >= 0 else ow_a
    cdef Py_ssize_t ow = 0
    while ow < ow_a:
        dw_channels(rows, w, bias, out, ow, 0, kh0, kh1, c_begin, c_end, W, C, M, KW, sw, pl, dw)
        ow += 1
    while ow + PIXELS <= ow_b:
        dw_channels(rows, w, bias, out, ow, PIXELS, kh0, kh1, c_begin, c_end, W, C, M, KW, sw, pl, dw)
        ow += PIXELS
    if PIXELS > 4 and ow + 4 <= ow_b:
        dw_channels(rows, w, bias, out, ow, 4, kh0, kh1, c_begin, c_end, W, C, M, KW, sw, pl, dw)
        ow += 4
    while ow < Wout:
        dw_channels(rows, w, bias, out, ow, 0, kh0, kh1, c_begin, c_end, W, C, M, KW, sw, pl, dw)
        ow += 1
