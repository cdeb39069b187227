"""Grouped NHWC convolution with few channels per group (ResNeXt: 128 channels in 32 groups of 4).

A per-group GEMM is tiny there (4 output channels, a reduction of 36), so instead of vectorising within
a group the kernel puts ``LANES`` groups side by side in a vector (8 float32 or 4 float64) and runs the
same small convolution on all of them at once (``grouped_tile.h``).  That needs each input channel ci of
LANES consecutive groups contiguous, so input rows are repacked per pixel from (group, ci) to
(group block, ci, lane), zero-padding the last group block: each thread repacks the rows it reads into
a small ring of its own (the rows one output row reads), so every input row is repacked about once and
the repacked input is never materialised.  Weights are packed to (group block, channel chunk, kh, kw,
ci, c, lane), zero-padded to whole chunks of ``CG_CHANNELS`` output channels per group.  Taps in the
padding read a row of zeros.  OpenMP splits the (image, output row) pairs across threads in contiguous
runs; each thread writes only its own rows.
"""
from cython cimport floating
from cython.parallel cimport prange

from activation cimport ACT_NONE, activate_span
from checks cimport check_geometry, check_min, check_size, optional_vector
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


cdef inline void ensure_rows(
    const floating* x, floating* ring, Py_ssize_t* tags, Py_ssize_t n, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t G, Py_ssize_t GB, Py_ssize_t cin_g, Py_ssize_t R,
    Py_ssize_t KH, Py_ssize_t sh, Py_ssize_t pt, Py_ssize_t dh,
) noexcept nogil:
    """Repack into the thread's ring of R rows the input rows output row ``oh`` reads, unless there.

    Input row ih of image n lives in slot ih % R, tagged n*H + ih: the rows one output row reads span
    R = (KH-1)*dh + 1 consecutive rows, so they never share a slot, and as a thread walks down its rows
    each input row is repacked once (twice at most where two threads' rows meet).
    """
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t kh, ih, slot
    for kh in range(KH):
        ih = oh * sh - pt + kh * dh
        if <size_t>ih >= <size_t>H:
            continue
        slot = ih % R
        if tags[slot] != n * H + ih:
            repack_row(x + (n * H + ih) * W * G * cin_g, ring + slot * W * GB * cin_g * L,
                       W, G, GB, cin_g)
            tags[slot] = n * H + ih


cdef inline void grouped_row(
    const floating* ring, const floating* wp, const floating* bias, const floating* zeros,
    floating* orow, const floating** ptrs, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t G, Py_ssize_t GB, Py_ssize_t cin_g, Py_ssize_t cout_g,
    Py_ssize_t nch, Py_ssize_t R, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wout,
    int act, floating alpha,
) noexcept nogil:
    """Every output channel of output row ``oh`` (written at ``orow``), its input rows repacked in
    ``ring`` by :func:`ensure_rows`; ``ptrs`` is scratch for KH*KW*CG_PIXELS pointers."""
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef floating acc[CG_PIXELS * CG_CHANNELS * LANES_F32]
    cdef Py_ssize_t S = GB * cin_g * L            # repacked values per pixel
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t wblock = KH * KW * cin_g * CG_CHANNELS * L
    cdef Py_ssize_t t, ow0, npix, kh, kw, ih, iw, r, gb, ch, c0, nc, l, g, c
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
                        ptrs[(kh * KW + kw) * CG_PIXELS + r] = ring + ((ih % R) * W + iw) * S
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


def ring_rows(Py_ssize_t KH, Py_ssize_t dh):
    """Input rows each thread keeps repacked: the rows one output row reads, (KH-1)*dh + 1."""
    return (KH - 1) * dh + 1


def grouped_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, :, :, :, ::1] wpacked,
                 bias, floating[:, :, :, ::1] out, Py_ssize_t groups,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                 Py_ssize_t dh, Py_ssize_t dw, int act, double alpha, int num_threads):
    """out (N, Hout, Wout, G*cout_g) = act(grouped conv(x (N, H, W, G*cin_g), packed weights) + bias).

    ``wpacked`` from :func:`pack_weights`; ``act``/``alpha`` the activation code and parameter from
    convkit.activations.resolve_activation.  Each thread repacks the input rows it reads into its own
    ring of :func:`ring_rows` rows (groups as lanes), so the repacked input is never materialised.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t GB = wpacked.shape[0], nch = wpacked.shape[1]
    cdef Py_ssize_t KH = wpacked.shape[2], KW = wpacked.shape[3], cin_g = wpacked.shape[4]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef Py_ssize_t L = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t R = ring_rows(KH, dh), S = GB * cin_g * L
    cdef Py_ssize_t r, tid
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(groups, 1, "groups")
    check_size(GB, (groups + L - 1) // L, "the packed weight's group blocks")
    check_size(wpacked.shape[6], L, "the packed weight's lanes")
    check_size(groups * cin_g, C, "groups * the weight's input channels (the input channels)")
    check_size(Cout % groups, 0, "out's channels modulo groups")
    check_size(nch, (Cout // groups + CG_CHANNELS - 1) // CG_CHANNELS, "the packed weight's channel chunks")
    check_size(wpacked.shape[5], CG_CHANNELS, "the packed weight's chunk width")
    check_size(out.shape[0], N, "out's batch")
    check_min(pt, 0, "the top padding")
    cdef const floating* bp
    optional_vector(bias, Cout, "bias", &bp)
    if N * Hout * Wout * Cout == 0:
        return
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] zeros = np.zeros(S, dtype=dtype)
    # Per thread: the ring of repacked rows, their tags (-1: empty), and scratch for a tile's
    # KH*KW*CG_PIXELS input pointers (as pointer-sized integers).
    cdef Py_ssize_t nptr = KH * KW * CG_PIXELS
    cdef floating[:, ::1] ring = np.empty((num_threads, max(R * W * S, 1)), dtype=dtype)
    cdef Py_ssize_t[:, ::1] tags = np.full((num_threads, R), -1, dtype=np.intp)
    cdef Py_ssize_t[:, ::1] ptrs = np.empty((num_threads, nptr), dtype=np.intp)
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef const floating* wp = &wpacked[0, 0, 0, 0, 0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            tid = omp_get_thread_num()
            ensure_rows(xp, &ring[tid, 0], &tags[tid, 0], r // Hout, r % Hout,
                        H, W, groups, GB, cin_g, R, KH, sh, pt, dh)
            grouped_row(&ring[tid, 0], wp, bp, &zeros[0], op + r * Wout * Cout,
                        <const floating**>&ptrs[tid, 0], r % Hout, H, W, groups, GB, cin_g,
                        Cout // groups, nch, R, KH, KW, sh, sw, pt, pl, dh, dw, Wout,
                        act, <floating>alpha)


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
