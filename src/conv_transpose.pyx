"""Transposed convolution (deconvolution) in NHWC as a gather: each output pixel sums the inputs reaching it.

Input pixel (ih, iw) reaches output (oh, ow) through tap (kh, kw) when oh = ih*sh - pt + kh*dh (and the
same for w), so output row oh takes tap kh only when (oh + pt - kh*dh) is a multiple of sh, from input
row (oh + pt - kh*dh) / sh.  The output splits into sh*sw phases, (oh, ow) = (phh + th*sh, phw + tw*sw):
the pixels of one phase take the same taps, and phase pixel (th, tw) reads input (ah + th, aw + tw) through
tap (kh, kw), with (ah, aw) fixed by the tap and the phase.  Each phase is thus an ordinary convolution of
the input (stride 1, the phase's taps), computed with no column matrix and no scatter: a register tile is
CK_TILE_PIXELS consecutive pixels of one phase (flat over its rows, so a 32-column phase fills its tiles)
x one block of output channels, by the direct convolution's micro-kernel (``microkernel.h``: broadcast one
input channel, FMA a block of packed weights) over the phase's taps; taps outside the image read zeros.

Work is split into items of (image, phase, run of at most CHUNK_TILES tiles); an item computes every
channel block of its tiles, so one weight block serves the whole run while it is in cache, and each item
writes only its own output pixels: no write races, no atomics, no zeroing pass.

Weights are packed once per call as (group, block, kh, kw, ci, block width), zero-padded to whole
blocks: the layout of ``conv_direct.pack_weights`` with the transposed convolution's roles (reduce over
its input channels, produce its output channels).
"""
from cython cimport floating
from cython.parallel cimport prange

from checks cimport check_geometry, check_min, check_packed_blocks, check_size, optional_vector
from microkernel cimport micro_tile
from simd cimport CK_ACC_LEN, CK_TILE_PIXELS, tile_width

import numpy as np

cdef enum:
    CHUNK_TILES = 8  # at most this many tiles (of CK_TILE_PIXELS pixels) per work item


def block_width(dtype):
    """Output channels per packed weight block for ``dtype`` (the register tile's columns)."""
    return tile_width(np.dtype(dtype) == np.float32)


cdef inline void tconv_tile(
    const floating* x, const floating* wblk, const floating* zeros, floating* acc,
    const Py_ssize_t* th, const Py_ssize_t* tw, Py_ssize_t npix, Py_ssize_t phh, Py_ssize_t phw,
    Py_ssize_t c0, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t cin_g, Py_ssize_t KH,
    Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
    Py_ssize_t dw,
) noexcept nogil:
    """acc[r*B + j] for the pixels (th[r], tw[r]), r < npix, of phase (phh, phw), over the phase's taps;
    ``x`` points at the image, channel c0 = group start."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef Py_ssize_t kh, kw, ah, aw, ih, iw, r, j
    cdef bint inside
    for j in range(CK_TILE_PIXELS * B):
        acc[j] = 0
    for kh in range(KH):
        # The phase takes tap kh when phh + pt - kh*dh is a multiple of sh; then phase row th reads
        # input row ah + th.  (An exact division: the same in C and Python semantics.)
        ah = phh + pt - kh * dh
        if ah % sh != 0:
            continue
        ah = ah // sh
        for kw in range(KW):
            aw = phw + pl - kw * dw
            if aw % sw != 0:
                continue
            aw = aw // sw
            inside = False
            for r in range(CK_TILE_PIXELS):
                ih = ah + th[r]
                iw = aw + tw[r]
                if r < npix and <size_t>ih < <size_t>H and <size_t>iw < <size_t>W:
                    xp[r] = x + (ih * W + iw) * C + c0
                    inside = True
                else:
                    xp[r] = zeros
            if inside:   # a tap reading only padding (a border tile's) adds nothing
                micro_tile(xp, wblk + (kh * KW + kw) * cin_g * B, cin_g, acc)


cdef inline void tconv_item(
    const floating* x, const floating* wp, const floating* bias, const floating* zeros,
    floating* out, Py_ssize_t phh, Py_ssize_t phw, Py_ssize_t tile0, Py_ssize_t tile1,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nblk, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """Every output channel of tiles tile0..tile1-1 of phase (phh, phw) of one image (``x`` the image,
    ``out`` its output); tiles past the phase's last are empty."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef floating acc[CK_ACC_LEN]
    cdef Py_ssize_t th[CK_TILE_PIXELS]
    cdef Py_ssize_t tw[CK_TILE_PIXELS]
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t nrows = (Hout - phh + sh - 1) // sh if phh < Hout else 0
    cdef Py_ssize_t ncols = (Wout - phw + sw - 1) // sw if phw < Wout else 0
    cdef Py_ssize_t npx = nrows * ncols
    cdef Py_ssize_t t, p, npix, g, b, co0, nco, r, j
    cdef floating* dst
    tile1 = min(tile1, (npx + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS)
    for t in range(tile0, tile1):
        npix = min(CK_TILE_PIXELS, npx - t * CK_TILE_PIXELS)
        for r in range(CK_TILE_PIXELS):   # pixels past npix repeat the last (and are not stored)
            p = t * CK_TILE_PIXELS + min(r, npix - 1)
            th[r] = p // ncols
            tw[r] = p % ncols
        for g in range(G):
            for b in range(nblk):
                co0 = g * cout_g + b * B
                nco = min(B, cout_g - b * B)
                tconv_tile(x, wp + (g * nblk + b) * KH * KW * cin_g * B, zeros, acc, th, tw, npix,
                           phh, phw, g * cin_g, H, W, C, cin_g, KH, KW, sh, sw, pt, pl, dh, dw)
                for r in range(npix):
                    dst = out + ((phh + th[r] * sh) * Wout + phw + tw[r] * sw) * Cout + co0
                    for j in range(nco):
                        dst[j] = acc[r * B + j] + (bias[co0 + j] if bias != NULL else 0)


def conv_transpose2d_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, :, :, ::1] wpacked,
                          bias, floating[:, :, :, ::1] out, Py_ssize_t cout_g,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t dh, Py_ssize_t dw, int num_threads):
    """out (N, Hout, Wout, G*cout_g) = transposed conv(x (N, H, W, C), packed weights) + bias.

    ``wpacked`` from :func:`pack_weights`; ``ph``/``pw`` the padding cropped from the top/left (the
    bottom/right crop and output_padding are implied by the output size).
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t G = wpacked.shape[0], nblk = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3], cin_g = wpacked.shape[4]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t item, n, phase, run, tiles, runs, per_run
    check_geometry(sh, sw, dh, dw, num_threads)
    check_packed_blocks(G, cin_g, C, nblk, wpacked.shape[5], B, cout_g)
    check_size(out.shape[0], N, "out's batch")
    check_size(Cout, G * cout_g, "out's channels")
    cdef const floating* bp
    optional_vector(bias, Cout, "bias", &bp)
    if N * Hout * Wout * Cout == 0:
        return
    # Phases with output pixels (a stride above the output size leaves the others empty), and the tiles
    # of the largest (ceil(Hout/sh) x ceil(Wout/sw) pixels), shared evenly between runs.
    cdef Py_ssize_t PH = min(sh, Hout), PW = min(sw, Wout)
    tiles = (((Hout + sh - 1) // sh) * ((Wout + sw - 1) // sw) + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS
    runs = (tiles + CHUNK_TILES - 1) // CHUNK_TILES
    per_run = (tiles + runs - 1) // runs
    cdef floating[::1] zeros = np.zeros(max(C, 1), dtype=np.float32 if floating is float else np.float64)
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0, 0, 0] if wpacked.size > 0 else &zeros[0]
    cdef floating* op = &out[0, 0, 0, 0]
    with nogil:
        for item in prange(N * PH * PW * runs, num_threads=num_threads, schedule="static"):
            n = item // (PH * PW * runs)
            phase = item // runs % (PH * PW)
            run = item % runs
            tconv_item(xp + n * H * W * C, wp, bp, &zeros[0], op + n * Hout * Wout * Cout,
                       phase // PW, phase % PW, run * per_run, (run + 1) * per_run, H, W, C, G, cin_g,
                       cout_g, nblk, KH, KW, sh, sw, ph, pw, dh, dw, Hout, Wout)


cdef void pack_into(const floating[:, :, :, ::1] w, floating[:, :, :, :, :, ::1] out, Py_ssize_t groups,
                    int num_threads) noexcept nogil:
    """out[g, b, i, j, ci, k] = w[i, j, b*B + k, g*cin_g + ci], zero past cout_g; one (g, b, i, j) panel per
    work item, written sequentially."""
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], cout_g = w.shape[2], Cin = w.shape[3]
    cdef Py_ssize_t nblk = out.shape[1], cin_g = out.shape[4], B = out.shape[5]
    cdef Py_ssize_t item, g, b, i, j, ci, k, nco
    cdef floating* dst
    for item in prange(groups * nblk * KH * KW, num_threads=num_threads, schedule="static"):
        g = item // (nblk * KH * KW)
        b = item // (KH * KW) % nblk
        i = item // KW % KH
        j = item % KW
        nco = min(B, cout_g - b * B)
        dst = &out[g, b, i, j, 0, 0]
        for ci in range(cin_g):
            for k in range(nco):
                dst[ci * B + k] = w[i, j, b * B + k, g * cin_g + ci]
            for k in range(nco, B):
                dst[ci * B + k] = 0


def pack_weights(w, Py_ssize_t groups, int num_threads=1):
    """NHWC transposed-conv weights (KH, KW, cout_g, G*cin_g) -> (G, blocks, KH, KW, cin_g, block).

    [g, b, i, j, ci, k] = w[i, j, b*block + k, g*cin_g + ci], zero past cout_g.  Packed on every call, in
    one pass by ``num_threads`` threads (NumPy's transposing copy took 4-5% of a 4x4/2 32x32x128 -> 64
    layer).
    """
    w = np.ascontiguousarray(w)
    KH, KW, cout_g, Cin = w.shape
    check_min(groups, 1, "groups")
    check_min(num_threads, 1, "num_threads")
    check_size(Cin % groups, 0, "the weight's input channels modulo groups")
    B = block_width(w.dtype)
    out = np.empty((groups, -(-cout_g // B), KH, KW, Cin // groups, B), dtype=w.dtype)
    if out.size == 0:
        return out
    if w.dtype == np.float32:
        pack_into[float](w, out, groups, num_threads)
    else:
        pack_into[double](w, out, groups, num_threads)
    return out
