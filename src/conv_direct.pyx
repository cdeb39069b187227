"""Direct NHWC convolution: no column matrix, register-blocked over output pixels and channels.

Weights are packed by ``pack_weights`` (one pass; a caller that runs a layer many times, such as a
network's fused layers, packs once and passes ``packed=``) into blocks of ``block_width(dtype)``
output channels, zero-padded, laid out (group, block, kh, kw, ci, block): a block's rows are then
contiguous, where in HWIO they would sit Cout apart (for Cout = 512, 2 KiB: the same few cache sets,
measured 2-3x slower).  The innermost loop streams one block row and updates a tile of CK_TILE_PIXELS
output pixels x one block of accumulators held in vector registers (the tile itself is
``microkernel.h``).  Input pixels outside the image read from a row of zeros, so the inner loop has no
branches.

Work is split into items of (image, run of consecutive output pixels, channel block): an image's tiles
are shared evenly between runs of at most CHUNK_TILES tiles, and the runs cross output rows, so short
rows (7x7 maps) do not leave tiles half empty, and one weight block serves a whole run while it is in
cache.  OpenMP hands out items statically; each writes
its own pixels x channels of the output.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from activation cimport activate_span_residual
from checks cimport check_geometry, check_min, check_size, optional_image, optional_vector
from microkernel cimport CK_ACT_RELU6, acc_store, micro_taps_tile
from simd cimport CK_ACC_LEN, CK_TILE_PIXELS, tile_width

import numpy as np

cdef enum:
    CHUNK_TILES = 16  # at most this many tiles (of CK_TILE_PIXELS pixels) per work item
    TAP_GROUP = 9     # at most this many taps per micro-kernel call (a 3x3 window; 7 kernel rows of a 7x7)


def block_width(dtype):
    """Output channels per packed weight block for ``dtype`` (the register tile's columns)."""
    return tile_width(np.dtype(dtype) == np.float32)


cdef inline void conv_tile(
    const floating* x, const floating* wblk, const floating* zeros, floating* acc, bint half,
    Py_ssize_t n, Py_ssize_t p0, Py_ssize_t npix, Py_ssize_t c0,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t cin_g, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t Wout,
) noexcept nogil:
    """acc[r*B + j] = sum over taps and input channels for output pixel p0+r (flat over the image); with
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
                    tp[r] = x + ((n * H + ih) * W + iw) * C + c0
                else:
                    tp[r] = zeros
        # A block's taps are contiguous: tap `tap` starts tap * cin packed rows in.
        micro_taps_tile(xp, taps, wblk + tap * cin * B, cin, acc, tap > 0, half)
        tap += taps


cdef inline void conv_item(
    const floating* x, const floating* wp, const floating* bias, const floating* res, const floating* zeros,
    floating* out, Py_ssize_t n, Py_ssize_t chunk, Py_ssize_t chunk_tiles, Py_ssize_t g, Py_ssize_t b,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nblk, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
    int act, floating alpha,
) noexcept nogil:
    """Channel block ``b`` of group ``g`` for one run of output pixels of image ``n``: tiles of
    CK_TILE_PIXELS pixels x B channels, or, when at most B/2 channels are left in the block, half tiles of
    twice the pixels (a 16-channel projection would leave half of each full tile's columns zero)."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef floating acc[CK_ACC_LEN]
    cdef Py_ssize_t P = Hout * Wout
    cdef Py_ssize_t co0 = g * cout_g + b * B
    cdef Py_ssize_t nco = min(B, cout_g - b * B)
    cdef Py_ssize_t Cout = G * cout_g
    cdef bint half = 2 * nco <= B
    cdef Py_ssize_t rows = 2 * CK_TILE_PIXELS if half else CK_TILE_PIXELS
    cdef Py_ssize_t row_len = B // 2 if half else B     # accumulators per pixel in acc
    cdef Py_ssize_t p0 = chunk * chunk_tiles * CK_TILE_PIXELS
    cdef Py_ssize_t end = min(p0 + chunk_tiles * CK_TILE_PIXELS, P)
    cdef Py_ssize_t r, npix, at
    cdef const floating* wblk = wp + (g * nblk + b) * KH * KW * cin_g * B
    while p0 < end:
        npix = min(rows, end - p0)
        conv_tile(x, wblk, zeros, acc, half, n, p0, npix, g * cin_g, H, W, C, cin_g, KH, KW,
                  sh, sw, pt, pl, dh, dw, Wout)
        # The epilogue (residual, bias, activation) runs on the tile while it is in registers/L1: in
        # vector registers for a whole tile (every row, every column) and the activations they have.
        at = (n * P + p0) * Cout + co0
        if npix == rows and nco == row_len and act <= CK_ACT_RELU6:
            acc_store(half, acc, out + at, Cout, bias + co0 if bias != NULL else NULL,
                      res + at if res != NULL else NULL, Cout, act)
        else:
            for r in range(npix):
                activate_span_residual(acc + r * row_len, bias + co0 if bias != NULL else NULL,
                                       res + at + r * Cout if res != NULL else NULL, out + at + r * Cout,
                                       nco, act, alpha)
        p0 += rows


def conv2d_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, bias,
                floating[:, :, :, ::1] out, Py_ssize_t groups,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                Py_ssize_t dh, Py_ssize_t dw, int act, double alpha, int num_threads,
                residual=None, packed=None):
    """out (N, Hout, Wout, Cout) = act(conv(x (N, H, W, C), w (KH, KW, C/groups, Cout)) + bias + residual).

    ``act``/``alpha``: the activation code and parameter from convkit.activations.resolve_activation.
    ``residual``: None or a C-contiguous array of out's shape, not overlapping it.  ``packed``: None, or
    ``pack_weights(w, groups)`` computed earlier (then only w's shape is read).
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], cin_g = w.shape[2], Cout = w.shape[3]
    cdef Py_ssize_t G = groups, cout_g, nblk, ntiles, nchunks, chunk_tiles, item, blocks
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2]
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(groups, 1, "groups")
    check_size(groups * cin_g, C, "groups * the weight's input channels (the input channels)")
    check_size(Cout % groups, 0, "the weight's output channels modulo groups")
    check_size(out.shape[0], N, "out's batch")
    check_size(out.shape[3], Cout, "out's channels")
    check_min(pt, 0, "the top padding")
    check_min(pl, 0, "the left padding")
    cdef const floating* bp
    cdef const floating* rp
    optional_vector(bias, Cout, "bias", &bp)
    optional_image(residual, N, Hout, Wout, Cout, "residual", &rp)
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0:
        return
    cout_g = Cout // groups
    nblk = (cout_g + B - 1) // B
    blocks = G * nblk
    ntiles = (Hout * Wout + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS
    nchunks = (ntiles + CHUNK_TILES - 1) // CHUNK_TILES
    chunk_tiles = (ntiles + nchunks - 1) // nchunks
    if packed is None:
        packed = pack_weights(np.asarray(w), G)
    elif packed.shape != (G, nblk, KH, KW, cin_g, B):
        raise ValueError(f"expected packed weights of shape {(G, nblk, KH, KW, cin_g, B)}, got {packed.shape}")
    cdef const floating[:, :, :, :, :, ::1] wpk = packed
    # The padding's source: a kernel row of zeros (calloc'd, not an array: this runs once per layer call)
    cdef floating* zeros = <floating*>calloc(max(KW * C, 1), sizeof(floating))
    if zeros == NULL:
        raise MemoryError("cannot allocate the direct kernel's row of zeros")
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else zeros
    cdef const floating* wp = &wpk[0, 0, 0, 0, 0, 0] if wpk.size > 0 else zeros
    with nogil:
        # item = ((n * nchunks + chunk) * G + g) * nblk + b
        for item in prange(N * nchunks * blocks, num_threads=num_threads, schedule="static"):
            conv_item(xp, wp, bp, rp, zeros, &out[0, 0, 0, 0],
                      item // (nchunks * blocks), (item // blocks) % nchunks, chunk_tiles,
                      (item % blocks) // nblk, item % nblk,
                      H, W, C, G, cin_g, cout_g, nblk, KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout,
                      act, <floating>alpha)
        free(zeros)


def pack_weights(w, Py_ssize_t groups):
    """HWIO weights (KH, KW, Cin/groups, Cout) -> (groups, blocks, KH, KW, Cin/groups, block), one copy."""
    KH, KW, cin_g, Cout = w.shape
    B = block_width(w.dtype)
    cout_g = Cout // groups
    full, tail = divmod(cout_g, B)
    packed = np.empty((groups, full + (tail > 0), KH, KW, cin_g, B), dtype=w.dtype)
    w = w.reshape(KH, KW, cin_g, groups, cout_g)
    if full:
        np.copyto(packed[:, :full], w[..., :full * B].reshape(KH, KW, cin_g, groups, full, B)
                  .transpose(3, 4, 0, 1, 2, 5))
    if tail:  # the last block is zero-padded
        packed[:, full, ..., tail:] = 0
        np.copyto(packed[:, full, ..., :tail], w[..., full * B:].transpose(3, 0, 1, 2, 4))
    return packed
