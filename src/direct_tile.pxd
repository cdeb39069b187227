# The direct convolution's work below the thread split, shared by conv_direct.pyx and the fused inverted
# residual block (inverted_residual.pyx, whose first layer may be a KxK convolution: MobileNetV2's stem).
# conv_run computes one channel block of a run of output pixels of one image; the layout and the tiles
# are described in conv_direct.pyx.
from cython cimport floating
from libc.string cimport memset

from activation cimport activate_span_residual
from microkernel cimport CK_ACT_RELU6, acc_store, micro_taps_tile
from simd cimport CK_ACC_LEN, CK_TILE_PIXELS, tile_width

cdef enum:
    TAP_GROUP = 9     # at most this many taps per micro-kernel call (a 3x3 window; 7 kernel rows of a 7x7)


cdef inline void conv_tile(
    const floating* x, const floating* wblk, const floating* zeros, floating* acc, bint half,
    Py_ssize_t p0, Py_ssize_t npix, Py_ssize_t c0,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t cin_g, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t Wout,
) noexcept nogil:
    """acc[r*B + j] = sum over taps and input channels for output pixel p0+r (flat over the image ``x``); with
    ``half``, acc[r*B/2 + j] for the first B/2 channels of the block and twice the pixels (the half tile).

    A tap is one (kh, kw) of the window facing cin_g packed weight rows.  When every pixel's window row
    lies inside the image, the dilation is 1 and the group has all channels, a whole kernel row is one
    tap instead: its KW*C input values are contiguous (NHWC), as are its KW*C packed weight rows, which
    matters most for thin inputs (an RGB stem).  Up to TAP_GROUP taps go to one micro-kernel call, the
    accumulators staying in registers across them.
    """
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t rows = 2 * CK_TILE_PIXELS if half else CK_TILE_PIXELS
    cdef const floating* xp[TAP_GROUP * 2 * CK_TILE_PIXELS]     # tap t's row pointers at t * rows
    cdef const floating** tp
    cdef Py_ssize_t ih0[2 * CK_TILE_PIXELS]
    cdef Py_ssize_t iw0[2 * CK_TILE_PIXELS]
    cdef Py_ssize_t kh, kw, ih, iw, r, t, tap, taps, ntaps, cin
    cdef bint whole_rows = dw == 1 and cin_g == C
    for r in range(rows):
        # Top-left input coordinate of pixel r's window; pixels past npix (r >= npix) read zeros only.
        ih0[r] = ((min(p0 + r, p0 + npix - 1)) // Wout) * sh - pt
        iw0[r] = ((min(p0 + r, p0 + npix - 1)) % Wout) * sw - pl
        if r < npix and (iw0[r] < 0 or iw0[r] + KW > W):
            whole_rows = False
    ntaps = KH if whole_rows else KH * KW
    cin = KW * cin_g if whole_rows else cin_g
    if ntaps == 0:
        memset(acc, 0, CK_TILE_PIXELS * B * sizeof(floating))
    tap = 0
    while tap < ntaps:
        taps = min(TAP_GROUP, ntaps - tap)
        for t in range(taps):
            tp = xp + t * rows
            kh = tap + t if whole_rows else (tap + t) // KW
            kw = 0 if whole_rows else (tap + t) % KW
            for r in range(rows):
                ih = ih0[r] + kh * dh
                iw = iw0[r] + kw * dw
                if r < npix and <size_t>ih < <size_t>H and (whole_rows or <size_t>iw < <size_t>W):
                    tp[r] = x + (ih * W + iw) * C + c0
                else:
                    tp[r] = zeros
        # A block's taps are contiguous: tap `tap` starts tap * cin packed rows in.
        micro_taps_tile(xp, taps, wblk + tap * cin * B, cin, acc, tap > 0, half)
        tap += taps


cdef inline void conv_run(
    const floating* x, const floating* wp, const floating* bias, const floating* res, const floating* zeros,
    floating* out, Py_ssize_t p_begin, Py_ssize_t p_end, Py_ssize_t g, Py_ssize_t b,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nblk, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wout,
    int act, floating alpha,
) noexcept nogil:
    """Channel block ``b`` of group ``g`` for output pixels p_begin:p_end (flat) of one image ``x`` (H x W
    x C): tiles of CK_TILE_PIXELS pixels x B channels, or, when at most B/2 channels are left in the block,
    half tiles of twice the pixels (a 16-channel projection would leave half of each full tile's columns
    zero).  ``out`` and ``res`` (NULL: none) point at pixel p_begin's row of G * cout_g channels, the
    following pixels' rows after it (an output image, or a ring of rows)."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef floating acc[CK_ACC_LEN]
    cdef Py_ssize_t co0 = g * cout_g + b * B
    cdef Py_ssize_t nco = min(B, cout_g - b * B)
    cdef Py_ssize_t Cout = G * cout_g
    cdef bint half = 2 * nco <= B
    cdef Py_ssize_t rows = 2 * CK_TILE_PIXELS if half else CK_TILE_PIXELS
    cdef Py_ssize_t row_len = B // 2 if half else B     # accumulators per pixel in acc
    cdef Py_ssize_t p0 = p_begin
    cdef Py_ssize_t r, npix, at
    cdef const floating* wblk = wp + (g * nblk + b) * KH * KW * cin_g * B
    while p0 < p_end:
        npix = min(rows, p_end - p0)
        conv_tile(x, wblk, zeros, acc, half, p0, npix, g * cin_g, H, W, C, cin_g, KH, KW,
                  sh, sw, pt, pl, dh, dw, Wout)
        # The epilogue (residual, bias, activation) runs on the tile while it is in registers/L1: in
        # vector registers for a whole tile (every row, every column) and the activations they have.
        at = (p0 - p_begin) * Cout + co0
        if npix == rows and nco == row_len and act <= CK_ACT_RELU6:
            acc_store(half, acc, out + at, Cout, bias + co0 if bias != NULL else NULL,
                      res + at if res != NULL else NULL, Cout, act)
        else:
            for r in range(npix):
                activate_span_residual(acc + r * row_len, bias + co0 if bias != NULL else NULL,
                                       res + at + r * Cout if res != NULL else NULL, out + at + r * Cout,
                                       nco, act, alpha)
        p0 += rows
