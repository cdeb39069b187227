"""Weight gradient of a 2-D convolution in NHWC: dW = sum over output pixels of column x grad_output.

The output pixels (flat over image, row, column) are cut into chunks of ``pc`` pixels, a fixed split;
OpenMP hands the chunks out statically, so each thread takes a fixed run of them.  For each chunk the
thread writes the pixels' im2col rows into its own buffer and adds their product with the output
gradients to its own partial sums (``weight_grad.pxd``, the direct convolution's register tile).  The
partial sums are then added in thread order: no atomics, and the same thread count gives the same bits.
Workspace: per thread, the chunk's columns, their packed copy, the transposed output gradients and the
partial sums (:func:`workspace_size`), bounded by the chunk size whatever the batch or image size.

Given offsets (and a mask), the columns are deformable convolution's (``deform_cols.pxd``), which makes
this deform_conv2d's weight gradient too.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

import numpy as np

from checks cimport check_geometry, check_min, check_offsets, check_size, optional_image
from deform_cols cimport deform_pixel_columns
from omp cimport omp_get_thread_num
from weight_grad cimport (CK_TILE_PIXELS, WG_BLOCK_F32, WG_BLOCK_F64, wg_accumulate, wg_partial_size,
                          wg_reduce)


def block_width(dtype):
    """Column entries per packed block for ``dtype`` (the register tile's width)."""
    return WG_BLOCK_F32 if np.dtype(dtype) == np.float32 else WG_BLOCK_F64


def workspace_size(Py_ssize_t taps, Py_ssize_t C, Py_ssize_t groups, Py_ssize_t Cout, Py_ssize_t pc, dtype):
    """Elements of one thread's workspace: columns, packed columns, transposed grad_output, partials."""
    cdef Py_ssize_t B = block_width(dtype)
    cdef Py_ssize_t K_g = taps * (C // groups)
    cdef Py_ssize_t nkb = (K_g + B - 1) // B
    return (pc * taps * C + nkb * B * pc + Cout * pc + pc
            + wg_partial_size(groups, K_g, Cout // groups, B))


cdef inline void pixel_columns(const floating* x, floating* dst, Py_ssize_t p,
                               Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW,
                               Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                               Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout) noexcept nogil:
    """The im2col row (KH*KW*C values, (kh, kw, c)) of flat output pixel ``p``."""
    cdef Py_ssize_t n = p // (Hout * Wout)
    cdef Py_ssize_t oh = (p // Wout) % Hout, ow = p % Wout
    cdef Py_ssize_t kh, kw, ih, iw
    for kh in range(KH):
        ih = oh * sh - pt + kh * dh
        for kw in range(KW):
            iw = ow * sw - pl + kw * dw
            if <size_t>ih < <size_t>H and <size_t>iw < <size_t>W:
                memcpy(dst, x + ((n * H + ih) * W + iw) * C, C * sizeof(floating))
            else:
                memset(dst, 0, C * sizeof(floating))
            dst += C


def conv2d_weight_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] grad_output,
                       floating[:, :, :, ::1] grad_weight, Py_ssize_t groups,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                       Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pc, int num_threads,
                       offset=None, mask=None, Py_ssize_t cpg=1):
    """grad_weight (KH, KW, C/groups, Cout) of conv2d(x (N, H, W, C)) given grad_output (N, Hout, Wout, Cout).

    ``pt``/``pl`` the top/left padding (the output size is grad_output's); ``pc`` pixels per chunk.
    With ``offset`` (N, Hout, Wout, 2*G*KH*KW), ``mask`` (N, Hout, Wout, G*KH*KW) or None, and ``cpg``
    channels per offset group: deform_conv2d's weight gradient.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = grad_output.shape[1], Wout = grad_output.shape[2], Cout = grad_output.shape[3]
    cdef Py_ssize_t KH = grad_weight.shape[0], KW = grad_weight.shape[1], cin_g = grad_weight.shape[2]
    cdef Py_ssize_t G = groups, cout_g, taps = KH * KW
    cdef Py_ssize_t B = WG_BLOCK_F32 if floating is float else WG_BLOCK_F64
    cdef Py_ssize_t K = taps * C, K_g = taps * cin_g
    cdef Py_ssize_t P = N * Hout * Wout
    cdef Py_ssize_t nchunks, nkb = (K_g + B - 1) // B, part
    cdef Py_ssize_t q, p0, npix, i, t, item
    cdef floating* ws
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(groups, 1, "groups")
    check_min(pc, 1, "pc (pixels per chunk)")
    check_size(grad_output.shape[0], N, "grad_output's batch")
    check_size(groups * cin_g, C, "groups * the weight's input channels (the input channels)")
    check_size(grad_weight.shape[3], Cout, "grad_weight's output channels (grad_output's)")
    check_size(Cout % groups, 0, "the output channels modulo groups")
    if offset is not None:
        check_offsets(offset, mask, N, Hout, Wout, KH, KW, C, cpg)
    elif mask is not None:
        raise ValueError("expected no mask without offsets")
    cout_g = Cout // groups
    nchunks = (P + pc - 1) // pc
    part = wg_partial_size(G, K_g, cout_g, B)
    dtype = np.float32 if floating is float else np.float64
    if grad_weight.size == 0:
        return
    if P == 0 or C == 0:
        grad_weight[...] = 0
        return
    cdef Py_ssize_t stride = workspace_size(taps, C, G, Cout, pc, dtype)
    cdef floating[:, ::1] workspace = np.empty((num_threads, stride), dtype)
    cdef floating[:, ::1] partials = np.zeros((num_threads, part), dtype)
    cdef floating[::1] zeros = np.zeros(max(pc, C), dtype)
    cdef const floating* op
    cdef const floating* mp
    cdef Py_ssize_t OC = 0 if offset is None else offset.shape[3]
    optional_image(offset, N, Hout, Wout, OC, "offset", &op)
    optional_image(mask, N, Hout, Wout, OC // 2, "mask", &mp)
    cdef const floating* xp = &x[0, 0, 0, 0] if H * W > 0 else &zeros[0]   # an empty image: all padding
    cdef const floating* gp = &grad_output[0, 0, 0, 0]
    cdef floating* pp = &partials[0, 0]
    with nogil:
        for q in prange(nchunks, num_threads=num_threads, schedule="static"):
            t = omp_get_thread_num()
            ws = &workspace[t, 0]
            p0 = q * pc
            npix = min(pc, P - p0)
            for i in range(npix):
                if op == NULL:
                    pixel_columns(xp, ws + i * K, p0 + i, H, W, C, KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout)
                else:
                    deform_pixel_columns(xp + ((p0 + i) // (Hout * Wout)) * H * W * C, op + (p0 + i) * OC,
                                         mp + (p0 + i) * (OC // 2) if mp != NULL else NULL, &zeros[0],
                                         ws + i * K, H, W, C, 0, C, cpg, KH, KW,
                                         <double>(((p0 + i) // Wout) % Hout * sh - pt),
                                         <double>((p0 + i) % Wout * sw - pl), dh, dw)
            wg_accumulate(ws, gp + p0 * Cout, npix, pc, taps, C, G, cin_g, cout_g,
                          ws + pc * K, ws + pc * K + nkb * B * pc, &zeros[0], pp + t * part)
        for item in prange(G * nkb, num_threads=num_threads, schedule="static"):
            wg_reduce(pp, num_threads, part, &grad_weight[0, 0, 0, 0], item // nkb, item % nkb,
                      G, K_g, cout_g)
