"""Transposed convolution (deconvolution) in NHWC as a gather: each output pixel sums the inputs reaching it.

Input pixel (ih, iw) reaches output (oh, ow) through tap (kh, kw) when oh = ih*sh - pt + kh*dh (and the
same for w), so output row oh takes tap kh only when (oh + pt - kh*dh) is a multiple of sh, from input
row (oh + pt - kh*dh) / sh.  Along a row, the output columns of one phase ow = phi (mod sw) share the
same taps and read consecutive input columns, so a register tile is CK_TILE_PIXELS output columns of one
phase x one block of output channels, computed by the direct convolution's micro-kernel
(``microkernel.h``: broadcast one input channel, FMA a block of packed weights) over the reachable taps.
Each thread owns whole output rows: no write races, no atomics, no zeroing pass.

Weights are packed once per call as (group, block, kh, kw, ci, block width), zero-padded to whole
blocks: the layout of ``conv_direct.pack_weights`` with the transposed convolution's roles (reduce over
its input channels, produce its output channels).
"""
from cython cimport floating
from cython.parallel cimport prange

from checks cimport check_geometry, check_packed_blocks, check_size, optional_vector
from microkernel cimport micro_tile
from omp cimport omp_get_thread_num
from simd cimport CK_ACC_LEN, CK_TILE_PIXELS, tile_width

import numpy as np

def block_width(dtype):
    """Output channels per packed weight block for ``dtype`` (the register tile's columns)."""
    return tile_width(np.dtype(dtype) == np.float32)


cdef inline void tconv_tile(
    const floating* x, const floating* wblk, const floating* zeros, floating* acc,
    const Py_ssize_t* ihs, const Py_ssize_t* khs, Py_ssize_t nkh,
    Py_ssize_t t0, Py_ssize_t npix, Py_ssize_t phi, Py_ssize_t c0,
    Py_ssize_t W, Py_ssize_t C, Py_ssize_t cin_g, Py_ssize_t KW,
    Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dw,
) noexcept nogil:
    """acc[r*B + j] for output columns phi + (t0 + r)*sw, r < npix, of the row whose reachable taps
    are khs[:nkh], reading input rows ihs[:nkh]; ``x`` points at the image, channel c0 = group start."""
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef const floating* xrow
    cdef Py_ssize_t i, kw, tw, iw, r, j
    for j in range(CK_TILE_PIXELS * B):
        acc[j] = 0
    for i in range(nkh):
        xrow = x + ihs[i] * W * C + c0
        for kw in range(KW):
            # Columns of phase phi take tap kw when phi + pl - kw*dw is a multiple of sw; then
            # column phi + t*sw reads input column (phi + pl - kw*dw)/sw + t.
            tw = phi + pl - kw * dw
            if tw % sw != 0:
                continue
            iw = tw // sw + t0
            for r in range(CK_TILE_PIXELS):
                xp[r] = xrow + (iw + r) * C if r < npix and <size_t>(iw + r) < <size_t>W else zeros
            micro_tile(xp, wblk + (khs[i] * KW + kw) * cin_g * B, cin_g, acc)


cdef inline void tconv_row(
    const floating* x, const floating* wp, const floating* bias, const floating* zeros,
    floating* out, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nblk, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wout,
    Py_ssize_t* ihs, Py_ssize_t* khs,
) noexcept nogil:
    """Every output channel of output row ``oh`` of one image (``x`` the image, ``out`` the row).

    ``ihs``/``khs`` are scratch for KH values: the reachable taps of the row and their input rows.
    """
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef floating acc[CK_ACC_LEN]
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t kh, th, nkh = 0
    cdef Py_ssize_t phi, ncols, t, t0, npix, g, b, co0, nco, r, j
    cdef floating* dst
    for kh in range(KH):
        th = oh + pt - kh * dh
        if th % sh == 0 and <size_t>(th // sh) < <size_t>H:
            ihs[nkh] = th // sh
            khs[nkh] = kh
            nkh += 1
    for phi in range(min(sw, Wout)):
        ncols = (Wout - phi + sw - 1) // sw
        for g in range(G):
            for b in range(nblk):
                co0 = g * cout_g + b * B
                nco = min(B, cout_g - b * B)
                for t in range((ncols + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS):
                    t0 = t * CK_TILE_PIXELS
                    npix = min(CK_TILE_PIXELS, ncols - t0)
                    tconv_tile(x, wp + (g * nblk + b) * KH * KW * cin_g * B, zeros, acc,
                               ihs, khs, nkh, t0, npix, phi, g * cin_g, W, C, cin_g, KW, sw, pl, dw)
                    for r in range(npix):
                        dst = out + (phi + (t0 + r) * sw) * Cout + co0
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
    cdef Py_ssize_t r
    cdef Py_ssize_t B = tile_width(floating is float)
    check_geometry(sh, sw, dh, dw, num_threads)
    check_packed_blocks(G, cin_g, C, nblk, wpacked.shape[5], B, cout_g)
    check_size(out.shape[0], N, "out's batch")
    check_size(Cout, G * cout_g, "out's channels")
    cdef const floating* bp
    optional_vector(bias, Cout, "bias", &bp)
    if N * Hout * Wout * Cout == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(C, 1), dtype=np.float32 if floating is float else np.float64)
    # Per-thread scratch: a row's reachable kernel rows and their input rows (KH each).
    cdef Py_ssize_t[:, ::1] scratch = np.empty((num_threads, 2 * KH), dtype=np.intp)
    cdef Py_ssize_t* sp = &scratch[0, 0]
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0, 0, 0] if wpacked.size > 0 else &zeros[0]
    cdef floating* op = &out[0, 0, 0, 0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            tconv_row(xp + (r // Hout) * H * W * C, wp, bp, &zeros[0], op + r * Wout * Cout,
                      r % Hout, H, W, C, G, cin_g, cout_g, nblk, KH, KW, sh, sw, ph, pw, dh, dw,
                      Wout, sp + omp_get_thread_num() * 2 * KH, sp + omp_get_thread_num() * 2 * KH + KH)


def pack_weights(w, Py_ssize_t groups):
    """NHWC transposed-conv weights (KH, KW, cout_g, G*cin_g) -> (G, blocks, KH, KW, cin_g, block).

    [g, b, i, j, ci, k] = w[i, j, b*block + k, g*cin_g + ci], zero past cout_g.
    """
    KH, KW, cout_g, Cin = w.shape
    B = block_width(w.dtype)
    cin_g = Cin // groups
    nblk = -(-cout_g // B)
    w = w.reshape(KH, KW, cout_g, groups, cin_g)
    w = np.pad(w, [(0, 0), (0, 0), (0, nblk * B - cout_g), (0, 0), (0, 0)])
    w = w.reshape(KH, KW, nblk, B, groups, cin_g)
    return np.ascontiguousarray(w.transpose(4, 2, 0, 1, 5, 3))
