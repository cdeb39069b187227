"""Backward pass of deformable convolution in NHWC (torchvision's semantics), without write races.

For one image, the output rows are handed out statically to threads.  For a chunk of a row's pixels a
thread first forms the gradient of the sampled columns, ``gcols = grad_output @ W^T`` (the direct
convolution's register tile, ``microkernel.h``, over W^T packed like conv_direct's weights), then, for
every pixel, tap and offset group, takes the four dot products of the column gradient with the four
bilinear corners, which give the mask gradient (the sampled value), the offset gradients (the
bilinear weights' derivatives, torchvision's ``get_coordinate_weight``) and, scaled by the corner
weights, the input gradient.  Samples spread anywhere in the image, so each thread scatters into its own
image-sized buffer; the buffers are then added in thread order (the same thread count gives the same
bits) and cleared for the next image.  Points outside ``-1 <= y < H``, ``-1 <= x < W`` (NaN included)
give zero gradients, as in torchvision (at -1 exactly only the offset gradient can be non-zero).

The weight gradient is conv_grad.conv2d_weight_nhwc with deformable columns.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport floor
from libc.string cimport memset

import numpy as np

from checks cimport check_geometry, check_min, check_offsets, check_size, optional_image
from omp cimport omp_get_thread_num

from microkernel cimport ck_tile_f32, ck_tile_f64
from simd cimport CK_ACC_LEN, CK_TILE_PIXELS, tile_width

cdef enum:
    LANES = 8        # independent partial sums per dot product


cdef inline void column_gradients(
    const floating* go, const floating* wt, floating* gcols, Py_ssize_t npx,
    Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t taps,
) noexcept nogil:
    """gcols[p, t*C + g*cin_g + ci] = sum_co go[p, g*cout_g + co] * W[t, ci, g*cout_g + co] for npx pixels.

    ``wt`` is W^T packed as (G, k blocks, cout_g, B): [g, b, co, j] = W[k // cin_g, k % cin_g, g*cout_g + co]
    with k = b*B + j (zero past taps*cin_g).
    """
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t K = taps * C, K_g = taps * cin_g, Cout = G * cout_g
    cdef Py_ssize_t nkb = (K_g + B - 1) // B
    cdef floating acc[CK_ACC_LEN]
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef Py_ssize_t tile, t0, r, g, kb, j, k
    for tile in range((npx + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS):
        t0 = tile * CK_TILE_PIXELS
        for g in range(G):
            for r in range(CK_TILE_PIXELS):
                xp[r] = go + min(t0 + r, npx - 1) * Cout + g * cout_g
            for kb in range(nkb):
                memset(acc, 0, CK_TILE_PIXELS * B * sizeof(floating))
                if floating is float:
                    ck_tile_f32(xp, wt + (g * nkb + kb) * cout_g * B, cout_g, acc)
                else:
                    ck_tile_f64(xp, wt + (g * nkb + kb) * cout_g * B, cout_g, acc)
                for r in range(min(<Py_ssize_t>CK_TILE_PIXELS, npx - t0)):
                    if G == 1:     # k is the column index itself: a contiguous store
                        for j in range(min(B, K_g - kb * B)):
                            gcols[(t0 + r) * K + kb * B + j] = acc[r * B + j]
                        continue
                    for j in range(min(B, K_g - kb * B)):
                        k = kb * B + j
                        gcols[(t0 + r) * K + (k // cin_g) * C + g * cin_g + k % cin_g] = acc[r * B + j]


cdef inline void corner_dots(const floating* g, const floating* p00, const floating* p01,
                             const floating* p10, const floating* p11, Py_ssize_t n,
                             floating* dots) noexcept nogil:
    """dots[i] = <g, corner i> over n values, each summed in LANES independent lanes (so the
    compiler vectorises the four reductions without reassociating them itself)."""
    cdef floating l00[LANES]
    cdef floating l01[LANES]
    cdef floating l10[LANES]
    cdef floating l11[LANES]
    cdef Py_ssize_t b, j, c, n8 = n - n % LANES
    for j in range(LANES):
        l00[j] = l01[j] = l10[j] = l11[j] = 0
    for b in range(0, n8 // LANES):
        for j in range(LANES):
            c = b * LANES + j
            l00[j] += g[c] * p00[c]
            l01[j] += g[c] * p01[c]
            l10[j] += g[c] * p10[c]
            l11[j] += g[c] * p11[c]
    for c in range(n8, n):
        j = c - n8
        l00[j] += g[c] * p00[c]
        l01[j] += g[c] * p01[c]
        l10[j] += g[c] * p10[c]
        l11[j] += g[c] * p11[c]
    dots[0] = dots[1] = dots[2] = dots[3] = 0
    for j in range(LANES):
        dots[0] += l00[j]
        dots[1] += l01[j]
        dots[2] += l10[j]
        dots[3] += l11[j]


cdef inline void pixel_backward(
    const floating* img, const floating* off, const floating* msk, const floating* gc,
    const floating* zeros, floating* gimg, floating* goff, floating* gmsk,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t cpg, Py_ssize_t KH, Py_ssize_t KW,
    double ybase, double xbase, Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """One output pixel: offset/mask gradients (``goff``, ``gmsk`` at the pixel) and its share of gimg."""
    cdef Py_ssize_t taps = KH * KW, G = C // cpg
    cdef Py_ssize_t i, j, t, og, idx, c, h0, w0
    cdef double y, x, ly, lx, m
    cdef floating s00, s01, s10, s11, w00, w01, w10, w11
    cdef floating dots[4]
    cdef bint top, bottom, left, right
    cdef const floating* p00
    cdef const floating* p01
    cdef const floating* p10
    cdef const floating* p11
    cdef const floating* g
    cdef floating* q
    for i in range(KH):
        for j in range(KW):
            t = i * KW + j
            for og in range(G):
                idx = og * taps + t
                m = msk[idx] if msk != NULL else 1.0
                y = ybase + i * dh + off[2 * idx]
                x = xbase + j * dw + off[2 * idx + 1]
                # torchvision's offset gradient has no range check of its own: at y == -1 (or
                # x == -1) exactly, the corners in row 0 (column 0) still give the one-sided
                # derivative.  Further out every corner is outside; NaN fails the test too.
                if not (y >= -1.0 and y < H and x >= -1.0 and x < W):
                    goff[2 * idx] = 0
                    goff[2 * idx + 1] = 0
                    if gmsk != NULL:
                        gmsk[idx] = 0
                    continue
                h0 = <Py_ssize_t>floor(y)
                w0 = <Py_ssize_t>floor(x)
                ly = y - h0
                lx = x - w0
                top = <size_t>h0 < <size_t>H
                bottom = <size_t>(h0 + 1) < <size_t>H
                left = <size_t>w0 < <size_t>W
                right = <size_t>(w0 + 1) < <size_t>W
                p00 = img + (h0 * W + w0) * C + og * cpg if top and left else zeros
                p01 = img + (h0 * W + w0 + 1) * C + og * cpg if top and right else zeros
                p10 = img + ((h0 + 1) * W + w0) * C + og * cpg if bottom and left else zeros
                p11 = img + ((h0 + 1) * W + w0 + 1) * C + og * cpg if bottom and right else zeros
                g = gc + t * C + og * cpg
                corner_dots(g, p00, p01, p10, p11, cpg, dots)
                s00, s01, s10, s11 = dots[0], dots[1], dots[2], dots[3]
                if gmsk != NULL:
                    gmsk[idx] = <floating>((1 - ly) * ((1 - lx) * s00 + lx * s01) + ly * ((1 - lx) * s10 + lx * s11))
                goff[2 * idx] = <floating>(m * ((1 - lx) * (s10 - s00) + lx * (s11 - s01)))
                goff[2 * idx + 1] = <floating>(m * ((1 - ly) * (s01 - s00) + ly * (s11 - s10)))
                w00 = <floating>(m * (1 - ly) * (1 - lx))
                w01 = <floating>(m * (1 - ly) * lx)
                w10 = <floating>(m * ly * (1 - lx))
                w11 = <floating>(m * ly * lx)
                if top and left:
                    q = gimg + (h0 * W + w0) * C + og * cpg
                    for c in range(cpg):
                        q[c] += w00 * g[c]
                if top and right:
                    q = gimg + (h0 * W + w0 + 1) * C + og * cpg
                    for c in range(cpg):
                        q[c] += w01 * g[c]
                if bottom and left:
                    q = gimg + ((h0 + 1) * W + w0) * C + og * cpg
                    for c in range(cpg):
                        q[c] += w10 * g[c]
                if bottom and right:
                    q = gimg + ((h0 + 1) * W + w0 + 1) * C + og * cpg
                    for c in range(cpg):
                        q[c] += w11 * g[c]


cdef inline void row_backward(
    const floating* img, const floating* off, const floating* msk, const floating* go,
    const floating* wt, const floating* zeros, floating* gcols, floating* gimg, floating* goff,
    floating* gmsk, Py_ssize_t oh, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t G,
    Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t cpg, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t Wout, Py_ssize_t OC, Py_ssize_t chunk,
) noexcept nogil:
    """Output row ``oh`` of one image; off/msk/go/goff/gmsk point at the row's first pixel."""
    cdef Py_ssize_t K = KH * KW * C, MC = OC // 2, Cout = G * cout_g
    cdef Py_ssize_t q, ow0, npx, p
    for q in range((Wout + chunk - 1) // chunk):
        ow0 = q * chunk
        npx = min(chunk, Wout - ow0)
        column_gradients(go + ow0 * Cout, wt, gcols, npx, C, G, cin_g, cout_g, KH * KW)
        for p in range(npx):
            pixel_backward(img, off + (ow0 + p) * OC, msk + (ow0 + p) * MC if msk != NULL else NULL,
                           gcols + p * K, zeros, gimg, goff + (ow0 + p) * OC,
                           gmsk + (ow0 + p) * MC if gmsk != NULL else NULL, H, W, C, cpg, KH, KW,
                           <double>(oh * sh - pt), <double>((ow0 + p) * sw - pl), dh, dw)


def deform_backward_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] offset, mask,
                         const floating[:, :, :, ::1] grad_output, const floating[:, :, :, :, :, ::1] wt,
                         floating[:, :, :, ::1] grad_x, floating[:, :, :, ::1] grad_offset, grad_mask,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                         Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t cpg, Py_ssize_t chunk,
                         int num_threads):
    """grad_x, grad_offset and grad_mask (None without a mask) of deform_conv2d_nhwc; all overwritten.

    ``wt`` from :func:`pack_transposed_weights`; ``chunk`` pixels per column-gradient buffer.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = grad_output.shape[1], Wout = grad_output.shape[2], Cout = grad_output.shape[3]
    cdef Py_ssize_t G = wt.shape[0], cout_g = wt.shape[4], OC = offset.shape[3]
    cdef Py_ssize_t cin_g, MC = OC // 2, HWC = H * W * C, K = KH * KW * C
    cdef Py_ssize_t n, r, tid, i, s
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef floating acc
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(chunk, 1, "chunk")
    check_min(G, 1, "the packed weight's groups")
    check_size(C % G, 0, "the input channels modulo the packed weight's groups")
    check_size(grad_output.shape[0], N, "grad_output's batch")
    check_size(Cout, G * cout_g, "grad_output's channels (the packed weight's groups * cout_g)")
    check_size(wt.shape[1], (KH * KW * (C // G) + B - 1) // B, "the packed weight's blocks")
    check_size(wt.shape[2] * wt.shape[3], 1, "the packed weight's middle axes")
    check_size(wt.shape[5], B, "the packed weight's block width")
    check_offsets(offset, mask, N, Hout, Wout, KH, KW, C, cpg)
    if tuple(grad_x.shape)[:4] != tuple(x.shape)[:4] or tuple(grad_offset.shape)[:4] != tuple(offset.shape)[:4]:
        raise ValueError("expected grad_x and grad_offset to have the shapes of x and offset")
    if (grad_mask is None) != (mask is None) or mask is not None and grad_mask.shape != mask.shape:
        raise ValueError("expected grad_mask to have mask's shape (None without a mask)")
    cin_g = C // G
    dtype = np.float32 if floating is float else np.float64
    grad_x[...] = 0
    grad_offset[...] = 0
    if grad_mask is not None:
        grad_mask[...] = 0
    if N * Hout * Wout == 0 or HWC == 0 or Cout == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(C, 1), dtype)
    cdef floating[:, ::1] gcols = np.empty((num_threads, chunk * K), dtype)
    cdef floating[:, ::1] images = np.zeros((num_threads, HWC), dtype)
    cdef floating[:, :, :, ::1] gmask_view
    cdef const floating* mp
    cdef floating* gmp = NULL
    optional_image(mask, N, Hout, Wout, MC, "mask", &mp)
    if mask is not None:
        gmask_view = grad_mask
        gmp = &gmask_view[0, 0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* op = &offset[0, 0, 0, 0]
    cdef const floating* gop = &grad_output[0, 0, 0, 0]
    cdef const floating* wp = &wt[0, 0, 0, 0, 0, 0]
    cdef floating* gxp = &grad_x[0, 0, 0, 0]
    cdef floating* goffp = &grad_offset[0, 0, 0, 0]
    cdef floating* ip = &images[0, 0]
    with nogil:
        for n in range(N):
            for r in prange(n * Hout, (n + 1) * Hout, num_threads=num_threads, schedule="static"):
                tid = omp_get_thread_num()
                row_backward(xp + n * HWC, op + r * Wout * OC, mp + r * Wout * MC if mp != NULL else NULL,
                             gop + r * Wout * Cout, wp, &zeros[0], &gcols[tid, 0], ip + tid * HWC,
                             goffp + r * Wout * OC, gmp + r * Wout * MC if gmp != NULL else NULL,
                             r - n * Hout, H, W, C, G, cin_g, cout_g, cpg, KH, KW, sh, sw, pt, pl, dh, dw,
                             Wout, OC, chunk)
            # Add the threads' buffers in thread order, clearing them for the next image.
            for i in prange(HWC, num_threads=num_threads, schedule="static"):
                acc = 0
                for s in range(num_threads):
                    acc = acc + ip[s * HWC + i]
                    ip[s * HWC + i] = 0
                gxp[n * HWC + i] = acc


def pack_transposed_weights(w, Py_ssize_t groups):
    """HWIO (KH, KW, cin_g, G*cout_g) -> W^T packed (G, k blocks, 1, 1, cout_g, B), k = (kh, kw, ci).

    Laid out as conv_direct.pack_weights lays out a (1, 1, cout_g, G*K_g) weight: [g, b, 0, 0, co, j] =
    w[k // cin_g, k % cin_g, g*cout_g + co] with k = b*B + j, zero past KH*KW*cin_g.
    """
    from convkit._kernels import conv_direct
    KH, KW, cin_g, Cout = w.shape
    cout_g = Cout // groups
    k_g = KH * KW * cin_g
    wt = w.reshape(k_g, groups, cout_g).transpose(2, 1, 0).reshape(1, 1, cout_g, groups * k_g)
    return conv_direct.pack_weights(np.ascontiguousarray(wt), groups)
