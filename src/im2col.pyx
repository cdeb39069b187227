"""im2col / col2im for NHWC and NCHW, parallel over output rows.

NHWC: one row of the column matrix per output pixel, columns ordered (kh, kw, c) with c fastest, so every
tap is a contiguous copy of ``cg`` channels.  NCHW: PyTorch's ``unfold`` layout, rows (c, kh, kw), columns
output pixels.  Bounds are tested once per input row (hoisted out of the width loop) with Caffe's
unsigned compare: ``(size_t)i < (size_t)n`` is false for negative ``i`` too.

col2im is written as a gather (each input pixel sums the column entries that read it), so threads own
disjoint input rows and never race.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from checks cimport check_geometry, check_min, check_range, check_size, optional_image, optional_vector
from gemm cimport gemm_packed_by, pack_panel
from simd cimport CK_MR

import numpy as np


cdef inline void im2col_nhwc_row(
    const floating* x, floating* cols, Py_ssize_t n, Py_ssize_t oh,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t c0, Py_ssize_t cg,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
    Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wout,
) noexcept nogil:
    """Fill the Wout rows of ``cols`` (each KH*KW*cg long) for output row ``oh`` of image ``n``."""
    cdef Py_ssize_t ow, kh, kw, ih, iw
    cdef const floating* x_row
    cdef floating* dst = cols
    for ow in range(Wout):
        for kh in range(KH):
            ih = oh * sh - pt + kh * dh
            if <size_t>ih >= <size_t>H:
                memset(dst, 0, KW * cg * sizeof(floating))
                dst += KW * cg
                continue
            x_row = x + ((n * H + ih) * W) * C + c0
            for kw in range(KW):
                iw = ow * sw - pl + kw * dw
                if <size_t>iw < <size_t>W:
                    memcpy(dst, x_row + iw * C, cg * sizeof(floating))
                else:
                    memset(dst, 0, cg * sizeof(floating))
                dst += cg


cdef int check_window(Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t Hout, Py_ssize_t Wout) except -1:
    check_min(KH, 0, "the kernel height")
    check_min(KW, 0, "the kernel width")
    check_min(Hout, 0, "the output height")
    check_min(Wout, 0, "the output width")
    return 0


def im2col_nhwc(const floating[:, :, :, ::1] x, floating[:, ::1] cols,
                Py_ssize_t row_begin, Py_ssize_t row_end, Py_ssize_t c0, Py_ssize_t cg,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t Hout, Py_ssize_t Wout, int num_threads):
    """Columns of output rows ``row_begin:row_end`` (flat over (n, oh)) into ``cols``.

    ``cols`` has ``(row_end - row_begin) * Wout`` rows of ``KH*KW*cg`` values taken from channels
    ``c0:c0+cg``.
    """
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t r, K = KH * KW * cg
    check_geometry(sh, sw, dh, dw, num_threads)
    check_window(KH, KW, Hout, Wout)
    check_range(c0, c0 + cg, C, "the channels")
    check_range(row_begin, row_end, x.shape[0] * Hout, "the output rows")
    check_min(cols.shape[0], (row_end - row_begin) * Wout, "the rows of cols")
    check_size(cols.shape[1], K, "the columns of cols (KH*KW*cg)")
    if row_end <= row_begin or K == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0]
    with nogil:
        for r in prange(row_begin, row_end, num_threads=num_threads, schedule="static"):
            im2col_nhwc_row(xp, cp + (r - row_begin) * Wout * K, r // Hout, r % Hout,
                            H, W, C, c0, cg, KH, KW, sh, sw, pt, pl, dh, dw, Wout)


cdef inline void col2im_nhwc_row(
    const floating* cols, floating* x, Py_ssize_t n, Py_ssize_t ih,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """Sum into input row ``ih`` of image ``n`` every column entry that im2col took from it."""
    cdef Py_ssize_t K = KH * KW * C
    cdef Py_ssize_t iw, kh, kw, c, th, tw, oh, ow
    cdef floating* dst
    cdef const floating* src
    memset(x + (n * H + ih) * W * C, 0, W * C * sizeof(floating))
    for kh in range(KH):
        # Output row oh reads input row ih through tap kh when oh*sh - pt + kh*dh == ih.
        th = ih + pt - kh * dh
        if th < 0 or th % sh != 0:
            continue
        oh = th // sh
        if oh >= Hout:
            continue
        for iw in range(W):
            dst = x + ((n * H + ih) * W + iw) * C
            for kw in range(KW):
                tw = iw + pl - kw * dw
                if tw < 0 or tw % sw != 0:
                    continue
                ow = tw // sw
                if ow >= Wout:
                    continue
                src = cols + ((n * Hout + oh) * Wout + ow) * K + (kh * KW + kw) * C
                for c in range(C):
                    dst[c] += src[c]


def col2im_nhwc(const floating[:, ::1] cols, floating[:, :, :, ::1] x,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t Hout, Py_ssize_t Wout, int num_threads):
    """Overwrite ``x`` (N, H, W, C) with the adjoint of im2col_nhwc applied to ``cols``."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t r
    check_geometry(sh, sw, dh, dw, num_threads)
    check_window(KH, KW, Hout, Wout)
    check_size(cols.shape[0], N * Hout * Wout, "the rows of cols (N*Hout*Wout)")
    check_size(cols.shape[1], KH * KW * C, "the columns of cols (KH*KW*C)")
    if N * H * W * C == 0:
        return
    if cols.shape[0] * cols.shape[1] == 0:
        x[...] = 0
        return
    cdef const floating* cp = &cols[0, 0]
    cdef floating* xp = &x[0, 0, 0, 0]
    with nogil:
        for r in prange(N * H, num_threads=num_threads, schedule="static"):
            col2im_nhwc_row(cp, xp, r // H, r % H, H, W, C, KH, KW, sh, sw, pt, pl, dh, dw,
                            Hout, Wout)


cdef int check_nchw_cols(Py_ssize_t n, Py_ssize_t rows, Py_ssize_t pixels, Py_ssize_t N, Py_ssize_t C,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                         Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout, int num_threads) except -1:
    """NCHW columns are (N, C*KH*KW, Hout*Wout)."""
    check_geometry(sh, sw, dh, dw, num_threads)
    check_window(KH, KW, Hout, Wout)
    check_size(n, N, "the batch of cols")
    check_size(rows, C * KH * KW, "the rows of cols (C*KH*KW)")
    check_size(pixels, Hout * Wout, "the columns of cols (Hout*Wout)")
    return 0


cdef inline void im2col_nchw_plane(
    const floating* x, floating* cols, Py_ssize_t H, Py_ssize_t W,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
    Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """Caffe's im2col for one channel plane: KH*KW rows of Hout*Wout columns."""
    cdef Py_ssize_t kh, kw, oh, ow, ih, iw
    cdef floating* dst = cols
    for kh in range(KH):
        for kw in range(KW):
            for oh in range(Hout):
                ih = oh * sh - pt + kh * dh
                if <size_t>ih >= <size_t>H:
                    memset(dst, 0, Wout * sizeof(floating))
                    dst += Wout
                    continue
                for ow in range(Wout):
                    iw = ow * sw - pl + kw * dw
                    dst[ow] = x[ih * W + iw] if <size_t>iw < <size_t>W else 0
                dst += Wout


def im2col_nchw(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t Hout, Py_ssize_t Wout, int num_threads):
    """``cols`` (N, C*KH*KW, Hout*Wout) = unfold(x), x (N, C, H, W)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t p
    check_nchw_cols(cols.shape[0], cols.shape[1], cols.shape[2], N, C, KH, KW, sh, sw, dh, dw, Hout, Wout,
                    num_threads)
    if cols.shape[0] * cols.shape[1] * cols.shape[2] == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0, 0]
    with nogil:
        for p in prange(N * C, num_threads=num_threads, schedule="static"):
            im2col_nchw_plane(xp + p * H * W, cp + p * KH * KW * Hout * Wout, H, W,
                              KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout)


cdef inline void col2im_nchw_plane(
    const floating* cols, floating* x, Py_ssize_t H, Py_ssize_t W,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
    Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """Adjoint of im2col_nchw_plane: scatter-add KH*KW rows back into one H x W plane."""
    cdef Py_ssize_t kh, kw, oh, ow, ih, iw
    cdef const floating* src = cols
    memset(x, 0, H * W * sizeof(floating))
    for kh in range(KH):
        for kw in range(KW):
            for oh in range(Hout):
                ih = oh * sh - pt + kh * dh
                if <size_t>ih < <size_t>H:
                    for ow in range(Wout):
                        iw = ow * sw - pl + kw * dw
                        if <size_t>iw < <size_t>W:
                            x[ih * W + iw] += src[ow]
                src += Wout


def col2im_nchw(const floating[:, :, ::1] cols, floating[:, :, :, ::1] x,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t Hout, Py_ssize_t Wout, int num_threads):
    """Overwrite ``x`` (N, C, H, W) with fold(cols); each thread owns whole planes."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t p
    check_nchw_cols(cols.shape[0], cols.shape[1], cols.shape[2], N, C, KH, KW, sh, sw, dh, dw, Hout, Wout,
                    num_threads)
    if N * C * H * W == 0:
        return
    if cols.shape[2] == 0:
        x[...] = 0
        return
    cdef const floating* cp = &cols[0, 0, 0]
    cdef floating* xp = &x[0, 0, 0, 0]
    with nogil:
        for p in prange(N * C, num_threads=num_threads, schedule="static"):
            col2im_nchw_plane(cp + p * KH * KW * Hout * Wout, xp + p * H * W, H, W,
                              KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout)


# --- im2col packed straight into the GEMM's A panels ------------------------------------------------

cdef struct Im2colSource:
    const void* x          # NHWC image batch
    const void* zeros      # at least cg zeros: the padding's source
    Py_ssize_t H, W, C, c0, cg, KH, KW, sh, sw, pt, pl, dh, dw, Hout, Wout


cdef inline void pack_im2col(const Im2colSource* s, Py_ssize_t i0, Py_ssize_t mc, Py_ssize_t p0,
                             Py_ssize_t kc, floating* dst) noexcept nogil:
    """Rows i0:i0+mc (output pixels, flat over (n, oh, ow)), columns p0:p0+kc ((kh, kw, c), c fastest)
    of the column matrix, written as gemm.pxd's CK_MR-row panels without materialising the matrix.

    A run of columns within one tap is cg-contiguous in each pixel's input (NHWC), so for every run the
    panel's CK_MR row pointers are resolved once (the padding reads zeros) and the run is copied by
    gemm.pxd's pack_panel.  Without groups or dilation a whole kernel row, KW*C columns, is contiguous
    in the input where it lies inside for all CK_MR pixels: one run (the 3-channel stem's runs grow
    from 3 values to 21).  Rows past mc repeat the last pixel (never stored).
    """
    cdef const floating* x = <const floating*>s.x
    cdef const floating* zeros = <const floating*>s.zeros
    cdef const floating* rows[CK_MR]
    cdef Py_ssize_t base[CK_MR]
    cdef Py_ssize_t ih0[CK_MR]
    cdef Py_ssize_t iw0[CK_MR]
    cdef Py_ssize_t q, r, p, k, tap, c, run, ih, iw, kh, col
    cdef Py_ssize_t P = s.Hout * s.Wout
    cdef Py_ssize_t row_len = s.KW * s.C        # columns of one kernel row
    cdef bint whole_rows = s.dw == 1 and s.cg == s.C
    cdef bint rows_inside, inside
    cdef floating* d
    for q in range((mc + CK_MR - 1) // CK_MR):
        d = dst + q * CK_MR * kc
        rows_inside = whole_rows
        for r in range(CK_MR):
            p = i0 + min(q * CK_MR + r, mc - 1)
            base[r] = (p // P) * s.H
            ih0[r] = ((p % P) // s.Wout) * s.sh - s.pt
            iw0[r] = (p % s.Wout) * s.sw - s.pl
            rows_inside = rows_inside and iw0[r] >= 0 and iw0[r] + s.KW <= s.W
        k = p0
        while k < p0 + kc:
            if rows_inside:      # the rest of kernel row kh, from column col on, if every pixel's is inside
                kh = k // row_len
                col = k - kh * row_len
                inside = True
                for r in range(CK_MR):
                    ih = ih0[r] + kh * s.dh
                    if <size_t>ih >= <size_t>s.H:
                        inside = False
                        break
                    rows[r] = x + ((base[r] + ih) * s.W + iw0[r]) * s.C + col
                if inside:
                    run = min(row_len - col, p0 + kc - k)
                    pack_panel(rows, run, d)
                    d += run * CK_MR
                    k += run
                    continue
            tap = k // s.cg
            c = k - tap * s.cg
            run = min(s.cg - c, p0 + kc - k)
            for r in range(CK_MR):
                ih = ih0[r] + (tap // s.KW) * s.dh
                iw = iw0[r] + (tap % s.KW) * s.dw
                if <size_t>ih < <size_t>s.H and <size_t>iw < <size_t>s.W:
                    rows[r] = x + ((base[r] + ih) * s.W + iw) * s.C + s.c0 + c
                else:
                    rows[r] = zeros
            pack_panel(rows, run, d)
            d += run * CK_MR
            k += run


cdef void pack_im2col_f32(const void* ctx, Py_ssize_t i0, Py_ssize_t mc, Py_ssize_t p0, Py_ssize_t kc,
                          void* dst) noexcept nogil:
    pack_im2col(<const Im2colSource*>ctx, i0, mc, p0, kc, <float*>dst)


cdef void pack_im2col_f64(const void* ctx, Py_ssize_t i0, Py_ssize_t mc, Py_ssize_t p0, Py_ssize_t kc,
                          void* dst) noexcept nogil:
    pack_im2col(<const Im2colSource*>ctx, i0, mc, p0, kc, <double*>dst)


def conv2d_im2col_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, bias,
                       floating[:, :, :, ::1] out, Py_ssize_t groups,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                       Py_ssize_t dh, Py_ssize_t dw, int act, double alpha, int num_threads,
                       residual=None, packed=None):
    """out (N, Hout, Wout, Cout) = act(conv(x, w (KH, KW, C/groups, Cout)) + bias (+ residual)) as one GEMM
    per group, (N*Hout*Wout x KH*KW*cin_g) x (KH*KW*cin_g x cout_g), whose A panels are packed straight
    from the image (``pack_im2col``): the only workspace is the GEMM's per-thread panels.  ``packed``
    (groups=1 only): None, or ``gemm.pack_b`` of the weight as a (KH*KW*Cin, Cout) matrix, packed once
    ahead (a network's layer keeps it): the GEMM then packs only A."""
    cdef Py_ssize_t N = x.shape[0], KH = w.shape[0], KW = w.shape[1], cin_g = w.shape[2], Cout = w.shape[3]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], cout_g
    cdef Py_ssize_t M = N * Hout * Wout, K = KH * KW * cin_g, g
    check_geometry(sh, sw, dh, dw, num_threads)
    check_window(KH, KW, Hout, Wout)
    check_min(groups, 1, "groups")
    check_size(groups * cin_g, x.shape[3], "groups * the weight's input channels (the input channels)")
    check_size(Cout % groups, 0, "the weight's output channels modulo groups")
    check_size(out.shape[0], N, "out's batch")
    check_size(out.shape[3], Cout, "out's channels")
    cdef const floating* bp
    cdef const floating* rp
    optional_vector(bias, Cout, "bias", &bp)
    optional_image(residual, N, Hout, Wout, Cout, "residual", &rp)
    cout_g = Cout // groups
    dtype = np.float32 if floating is float else np.float64
    cdef const floating[::1] b_packed
    cdef const floating* b_packed_p = NULL
    if packed is not None:
        if groups != 1 or packed.shape != (K, Cout) or packed.dtype != dtype:
            raise ValueError(f"expected packed to be the weight packed as a ({K}, {Cout}) {np.dtype(dtype)} "
                             f"operand (groups=1), got {packed.shape} {packed.dtype} with groups={groups}")
        b_packed = packed.buffer
        b_packed_p = &b_packed[0] if b_packed.shape[0] > 0 else NULL
    if M * Cout == 0:
        return
    # The padding's source: cin_g zeros (calloc'd, not an array: this runs once per layer call)
    cdef floating* zeros = <floating*>calloc(max(cin_g, 1), sizeof(floating))
    if zeros == NULL:
        raise MemoryError("cannot allocate im2col's row of zeros")
    cdef Im2colSource src
    src.x = &x[0, 0, 0, 0] if x.size > 0 else zeros
    src.zeros = zeros
    src.H, src.W, src.C, src.cg = x.shape[1], x.shape[2], x.shape[3], cin_g
    src.KH, src.KW, src.sh, src.sw, src.pt, src.pl, src.dh, src.dw = KH, KW, sh, sw, pt, pl, dh, dw
    src.Hout, src.Wout = Hout, Wout
    cdef const floating* wp = &w[0, 0, 0, 0] if w.size > 0 else zeros
    cdef floating* yp = &out[0, 0, 0, 0]
    cdef int status = 0
    with nogil:
        for g in range(groups):
            src.c0 = g * cin_g
            status = gemm_packed_by(pack_im2col_f32 if floating is float else pack_im2col_f64, &src,
                                    NULL, 0, M, cout_g, K, wp + g * cout_g, Cout, 1,
                                    b_packed_p,
                                    yp + g * cout_g, Cout, False,
                                    bp + g * cout_g if bp != NULL else NULL,
                                    rp + g * cout_g if rp != NULL else NULL, Cout, act, <floating>alpha,
                                    num_threads)
            if status:
                break
        free(zeros)
    if status:
        raise MemoryError(f"cannot allocate the GEMM's packing workspace for a ({M}, {K}) x ({K}, "
                          f"{cout_g}) product")
