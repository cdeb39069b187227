"""Grouped NHWC convolution with few channels per group (ResNeXt: 128 channels in 32 groups of 4).

A per-group GEMM is tiny there (4 output channels, a reduction of 36), so instead of vectorising within
a group the kernel puts ``LANES`` groups side by side in a vector (8 float32 or 4 float64) and runs the
same small convolution on all of them at once (``grouped_tile.h``).  That needs each input channel ci of
LANES consecutive groups contiguous, so the input is first repacked per pixel from
(group, ci) to (group block, ci, lane) -- one pass over the input, zero-padding the last group block --
and the weights to (group block, channel chunk, kh, kw, ci, c, lane), zero-padded to whole chunks of
``CG_CHANNELS`` output channels per group.  Taps in the padding read a row of zeros.  OpenMP splits the
(image, output row) pairs across threads; each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange

from activation cimport ACT_NONE, activate_span
from omp cimport omp_get_thread_num

import numpy as np

cdef extern from "grouped_tile.h" nogil:
    enum: CG_PIXELS     # output pixels per register tile
    enum: CG_CHANNELS   # output channels per group per register tile
    void cg_tile_f32(const float* const* xp, Py_ssize_t off, const float* w, Py_ssize_t ntaps,
                     Py_ssize_t cin, float* acc)
    void cg_tile_f64(const double* const* xp, Py_ssize_t off, const double* w, Py_ssize_t ntaps,
                     Py_ssize_t cin, double* acc)
    void cg_store_f32(const float* acc, const float* bias, float* out, Py_ssize_t cout_g)
    void cg_store_f64(const double* acc, const double* bias, double* out, Py_ssize_t cout_g)

cdef enum:
    LANES_F32 = 8   # groups per vector, float32
    LANES_F64 = 4   # groups per vector, float64


def lanes(dtype):
    """Groups per vector (the group block) for ``dtype``."""
    return LANES_F32 if np.dtype(dtype) == np.float32 else LANES_F64


cdef inline void repack_block(const floating* src, floating* dst, Py_ssize_t cin_g) noexcept nogil:
    """dst[ci, l] = src[l, ci] for one full block of LANES groups."""
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t ci, l
    for ci in range(cin_g):
        for l in range(L):
            dst[ci * L + l] = src[l * cin_g + ci]


cdef inline void repack_row(const floating* x, floating* xr, Py_ssize_t W, Py_ssize_t G,
                            Py_ssize_t GB, Py_ssize_t cin_g) noexcept nogil:
    """One image row: xr[w, gb, ci, l] = x[w, (gb*L + l)*cin_g + ci], zero for groups past G."""
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t iw, gb, ci, l, g
    cdef Py_ssize_t full = G // L
    cdef const floating* src
    cdef floating* dst
    for iw in range(W):
        src = x + iw * G * cin_g
        dst = xr + iw * GB * cin_g * L
        for gb in range(full):
            # Literal channel counts for the common cases: constant loops the compiler turns into shuffles.
            if cin_g == 4:
                repack_block(src + gb * L * cin_g, dst + gb * L * cin_g, 4)
            elif cin_g == 8:
                repack_block(src + gb * L * cin_g, dst + gb * L * cin_g, 8)
            else:
                repack_block(src + gb * L * cin_g, dst + gb * L * cin_g, cin_g)
        for gb in range(full, GB):
            for ci in range(cin_g):
                for l in range(L):
                    g = gb * L + l
                    dst[(gb * cin_g + ci) * L + l] = src[g * cin_g + ci] if g < G else 0


cdef inline void grouped_row(
    const floating* xr, const floating* wp, const floating* bias, const floating* zeros,
    floating* out, const floating** ptrs, Py_ssize_t n, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t G, Py_ssize_t GB, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nch, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
    int act, floating alpha,
) noexcept nogil:
    """Every output channel of output row ``oh`` of image ``n``; ``ptrs`` holds KH*KW*CG_PIXELS pointers."""
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef floating acc[CG_PIXELS * CG_CHANNELS * LANES_F32]
    cdef Py_ssize_t S = GB * cin_g * L            # repacked values per pixel
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t wblock = KH * KW * cin_g * CG_CHANNELS * L
    cdef Py_ssize_t t, ow0, npix, kh, kw, ih, iw, r, gb, ch, c0, nc, l, g, c
    cdef floating* orow = out + (n * Hout + oh) * Wout * Cout
    cdef floating* dst
    for t in range((Wout + CG_PIXELS - 1) // CG_PIXELS):
        ow0 = t * CG_PIXELS
        npix = min(CG_PIXELS, Wout - ow0)
        for kh in range(KH):
            ih = oh * sh - pt + kh * dh
            for kw in range(KW):
                for r in range(CG_PIXELS):
                    iw = (ow0 + r) * sw - pl + kw * dw
                    if r < npix and <size_t>ih < <size_t>H and <size_t>iw < <size_t>W:
                        ptrs[(kh * KW + kw) * CG_PIXELS + r] = xr + ((n * H + ih) * W + iw) * S
                    else:
                        ptrs[(kh * KW + kw) * CG_PIXELS + r] = zeros
        for gb in range(GB):
            for ch in range(nch):
                if floating is float:
                    cg_tile_f32(ptrs, gb * cin_g * L, wp + (gb * nch + ch) * wblock, KH * KW,
                                cin_g, acc)
                else:
                    cg_tile_f64(ptrs, gb * cin_g * L, wp + (gb * nch + ch) * wblock, KH * KW,
                                cin_g, acc)
                c0 = ch * CG_CHANNELS
                nc = min(CG_CHANNELS, cout_g - c0)
                if nc == CG_CHANNELS and (gb + 1) * L <= G:  # a whole chunk of a whole group block
                    for r in range(npix):
                        dst = orow + (ow0 + r) * Cout + gb * L * cout_g + c0
                        if floating is float:
                            cg_store_f32(acc + r * CG_CHANNELS * L,
                                         bias + gb * L * cout_g + c0 if bias != NULL else NULL,
                                         dst, cout_g)
                        else:
                            cg_store_f64(acc + r * CG_CHANNELS * L,
                                         bias + gb * L * cout_g + c0 if bias != NULL else NULL,
                                         dst, cout_g)
                    continue
                for r in range(npix):
                    dst = orow + (ow0 + r) * Cout + c0
                    for l in range(min(L, G - gb * L)):
                        g = gb * L + l
                        for c in range(nc):
                            dst[g * cout_g + c] = (acc[(r * CG_CHANNELS + c) * L + l]
                                                   + (bias[g * cout_g + c0 + c] if bias != NULL else 0))
    if act != ACT_NONE:
        activate_span(orow, NULL, orow, Wout * Cout, act, alpha)


def repack_input(const floating[:, :, :, ::1] x, Py_ssize_t groups, int num_threads):
    """(N, H, W, G*cin_g) -> (N, H, W, GB, cin_g, LANES): groups as vector lanes, zero-padded."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t cin_g = C // groups, GB = (groups + L - 1) // L
    cdef Py_ssize_t r
    xr = np.empty((N, H, W, GB, cin_g, L), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, :, :, :, :, ::1] xr_view = xr
    if xr.size == 0:
        return xr
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* rp = &xr_view[0, 0, 0, 0, 0, 0]
    with nogil:
        for r in prange(N * H, num_threads=num_threads, schedule="static"):
            repack_row(xp + r * W * C, rp + r * W * GB * cin_g * L, W, groups, GB, cin_g)
    return xr


def grouped_nhwc(const floating[:, :, :, :, :, ::1] xr, const floating[:, :, :, :, :, :, ::1] wpacked,
                 bias, floating[:, :, :, ::1] out, Py_ssize_t groups, Py_ssize_t cout_g,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                 Py_ssize_t dh, Py_ssize_t dw, int act, double alpha, int num_threads):
    """out (N, Hout, Wout, G*cout_g) = act(grouped conv(repacked input, packed weights) + bias).

    ``xr`` from :func:`repack_input`, ``wpacked`` from :func:`pack_weights`; ``act``/``alpha`` the
    activation code and parameter from convkit.activations.resolve_activation.
    """
    cdef Py_ssize_t N = xr.shape[0], H = xr.shape[1], W = xr.shape[2], GB = xr.shape[3]
    cdef Py_ssize_t cin_g = xr.shape[4], nch = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2]
    cdef Py_ssize_t r
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0:
        return
    cdef floating[::1] zeros = np.zeros(max(xr.shape[3] * xr.shape[4] * xr.shape[5], 1),
                                        dtype=np.float32 if floating is float else np.float64)
    # Per-thread scratch for a tile's KH*KW*CG_PIXELS input pointers (pointer-sized integers).
    cdef Py_ssize_t nptr = KH * KW * CG_PIXELS
    cdef Py_ssize_t[:, ::1] scratch = np.empty((num_threads, nptr), dtype=np.intp)
    cdef const floating[::1] bias_view
    cdef const floating* bp = NULL
    if bias is not None:
        bias_view = bias
        bp = &bias_view[0]
    cdef const floating* xp = &xr[0, 0, 0, 0, 0, 0] if xr.size > 0 else &zeros[0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0, 0, 0, 0]
    cdef Py_ssize_t* sp = &scratch[0, 0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            grouped_row(xp, wp, bp, &zeros[0], &out[0, 0, 0, 0],
                        <const floating**>(sp + omp_get_thread_num() * nptr), r // Hout, r % Hout,
                        H, W, groups, GB, cin_g, cout_g, nch, KH, KW, sh, sw, pt, pl, dh, dw,
                        Hout, Wout, act, <floating>alpha)


def pack_weights(w, Py_ssize_t groups):
    """HWIO weights (KH, KW, cin_g, G*cout_g) -> (GB, chunks, KH, KW, cin_g, CG_CHANNELS, LANES).

    [gb, ch, i, j, ci, c, l] = w[i, j, ci, (gb*LANES + l)*cout_g + ch*CG_CHANNELS + c], zero where the
    group or channel is past the end.
    """
    KH, KW, cin_g, Cout = w.shape
    L = lanes(w.dtype)
    cout_g = Cout // groups
    GB = -(-groups // L)
    nch = -(-cout_g // CG_CHANNELS)
    padded = np.zeros((KH, KW, cin_g, GB * L, nch * CG_CHANNELS), w.dtype)
    padded[:, :, :, :groups, :cout_g] = w.reshape(KH, KW, cin_g, groups, cout_g)
    padded = padded.reshape(KH, KW, cin_g, GB, L, nch, CG_CHANNELS)
    return np.ascontiguousarray(padded.transpose(3, 5, 0, 1, 2, 6, 4))
