"""Direct deformable convolution in NHWC: sampling fused with a register-blocked accumulation.

Each thread owns whole output rows (over image x row).  For one row it samples the deformable columns of
a chunk of output pixels (every input channel, once) into its own small buffer (``chunk * KH*KW*C``
values, sized to stay in L2), then multiplies them with the packed weights of conv_direct
(``pack_weights``: blocks of the register tile's width of output channels, rows (kh, kw, ci) like the
columns) in conv_direct's register tile (``microkernel.h``: CK_TILE_PIXELS pixels x one block of
accumulators in vector registers), the column rows standing in for its input pixels.  No column matrix is materialised.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

import numpy as np

from checks cimport (check_geometry, check_min, check_offsets, check_packed_blocks,
                     check_size, optional_image, optional_vector)
from deform_cols cimport deform_pixel_columns
from microkernel cimport micro_tile
from omp cimport omp_get_thread_num
from simd cimport CK_ACC_LEN, CK_TILE_PIXELS, tile_width

cdef inline void deform_row(
    const floating* img, const floating* off, const floating* msk, const floating* wp,
    const floating* bias, const floating* zeros, floating* buf, floating* out,
    Py_ssize_t oh, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g,
    Py_ssize_t cout_g, Py_ssize_t nblk, Py_ssize_t cpg, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t Wout, Py_ssize_t OC, Py_ssize_t chunk,
) noexcept nogil:
    """All output channels of one output row; ``off``/``msk``/``out`` point at the row's first pixel.

    A pixel's column holds every input channel, (tap, c), sampled once whatever the weight groups;
    weight group g then reads its ``cin_g`` channels of each tap.  With one group that is the whole
    contiguous column, one register-tile call over ``KH*KW*C``; with several, one call per tap.
    """
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t taps = KH * KW
    cdef Py_ssize_t K = taps * C                        # column length
    cdef Py_ssize_t calls = 1 if G == 1 else taps       # register-tile calls per block
    cdef Py_ssize_t span = K if G == 1 else cin_g       # reduction per call
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t MC = OC // 2
    cdef floating acc[CK_ACC_LEN]
    cdef const floating* rows[CK_TILE_PIXELS]
    cdef const floating* tile[CK_TILE_PIXELS]
    cdef const floating* wblk
    cdef Py_ssize_t g, q, ow0, npx, p, t0, t, r, b, j, s, co0, nco
    cdef floating* dst
    for q in range((Wout + chunk - 1) // chunk):
        ow0 = q * chunk
        npx = min(chunk, Wout - ow0)
        for p in range(npx):
            deform_pixel_columns(img, off + (ow0 + p) * OC, msk + (ow0 + p) * MC if msk != NULL else NULL,
                                 zeros, buf + p * K, H, W, C, 0, C, cpg, KH, KW,
                                 <double>(oh * sh - pt), <double>((ow0 + p) * sw - pl), dh, dw)
        for t0 in range((npx + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS):
            t = t0 * CK_TILE_PIXELS
            for r in range(CK_TILE_PIXELS):
                rows[r] = buf + (t + r if t + r < npx else t) * K
            for g in range(G):
                for b in range(nblk):
                    co0 = g * cout_g + b * B
                    nco = min(B, cout_g - b * B)
                    wblk = wp + (g * nblk + b) * taps * cin_g * B
                    memset(acc, 0, CK_TILE_PIXELS * B * sizeof(floating))
                    for s in range(calls):
                        for r in range(CK_TILE_PIXELS):
                            tile[r] = rows[r] + s * C + g * cin_g
                        micro_tile(tile, wblk + s * cin_g * B, span, acc)
                    for r in range(min(CK_TILE_PIXELS, npx - t)):
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
    ``chunk * KH*KW*C`` elements, one per thread; ``chunk`` is a multiple of CK_TILE_PIXELS.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t G = wpacked.shape[0], nblk = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3], cin_g = wpacked.shape[4]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef Py_ssize_t OC = offset.shape[3]
    cdef Py_ssize_t r
    cdef Py_ssize_t B = tile_width(floating is float)
    check_geometry(sh, sw, dh, dw, num_threads)
    check_packed_blocks(G, cin_g, C, nblk, wpacked.shape[5], B, cout_g)
    check_size(out.shape[0], N, "out's batch")
    check_size(Cout, G * cout_g, "out's channels")
    check_offsets(offset, mask, N, Hout, Wout, KH, KW, C, cpg)
    check_min(chunk, 1, "chunk")
    check_min(workspace.shape[0], num_threads, "the workspace rows (one per thread)")
    check_min(workspace.shape[1], chunk * KH * KW * C, "the workspace row length (chunk * KH*KW*C)")
    cdef const floating* bp
    optional_vector(bias, Cout, "bias", &bp)
    if out.shape[0] * Hout * Wout * Cout == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(C, 1), dtype=np.float32 if floating is float else np.float64)
    cdef const floating* mp
    optional_image(mask, N, Hout, Wout, OC // 2, "mask", &mp)
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


def tile_pixels():
    """Output pixels of the register tile (CK_TILE_PIXELS): the sampling chunk is a multiple of it."""
    return CK_TILE_PIXELS
