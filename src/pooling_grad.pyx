"""Gradients of max and average pooling over NHWC, without write races.

Max pooling: the gradient of each output goes to the first maximal tap of its window in scan order
(kh, then kw), or to the last NaN tap, and to the first tap inside the image when every value is -inf:
the index PyTorch's CPU kernels record.  Windows overlap when the stride is smaller than the kernel, so a
work item owns an image and a run of channels (disjoint parts of grad_x) and visits its outputs in order.

Average pooling is written as a gather: each input pixel sums ``grad_output / divisor`` over the
windows that cover it, so threads own whole input rows.  The divisor is the forward's (see
pooling.avg_pool_nhwc).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.string cimport memset

from checks cimport check_geometry, check_min, check_size
from pool_window cimport avg_divisor, avg_window, taps_inside

cdef enum:
    CHANNELS = 64   # channels per max-pool work item


cdef inline void max_pool_backward_item(
    const floating* x, const floating* g, floating* dx, Py_ssize_t c0, Py_ssize_t nc,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """Channels c0:c0+nc of one image: ``x``, ``g``, ``dx`` point at the image (dx already zero)."""
    cdef floating best[CHANNELS]
    cdef Py_ssize_t where[CHANNELS]
    cdef Py_ssize_t oh, ow, kh, kw, kh0, kh1, kw0, kw1, ih, iw, c, tap
    cdef const floating* src
    cdef const floating* go
    cdef floating v
    cdef bint take
    for oh in range(Hout):
        taps_inside(oh * sh - ph, dh, KH, H, &kh0, &kh1)
        for ow in range(Wout):
            taps_inside(ow * sw - pw, dw, KW, W, &kw0, &kw1)
            if kh0 >= kh1 or kw0 >= kw1:
                continue                      # no tap inside the image (cannot happen with PyTorch's rules)
            for c in range(nc):
                best[c] = -INFINITY
                where[c] = (oh * sh - ph + kh0 * dh) * W + ow * sw - pw + kw0 * dw
            for kh in range(kh0, kh1):
                ih = oh * sh - ph + kh * dh
                for kw in range(kw0, kw1):
                    iw = ow * sw - pw + kw * dw
                    tap = ih * W + iw
                    src = x + tap * C + c0
                    for c in range(nc):
                        v = src[c]
                        take = v > best[c] or v != v
                        best[c] = v if take else best[c]
                        where[c] = tap if take else where[c]
            go = g + (oh * Wout + ow) * C + c0
            for c in range(nc):
                dx[where[c] * C + c0 + c] += go[c]


cdef int check_pool_grad(Py_ssize_t gN, Py_ssize_t gC, Py_ssize_t* dx_shape, Py_ssize_t N, Py_ssize_t H,
                         Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int num_threads) except -1:
    """grad_output (N, Hout, Wout, C), grad_x (N, H, W, C), positive window sizes, strides, dilations
    (any padding is safe: taps outside the image are skipped, outputs are visited within Hout x Wout)."""
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(KH, 1, "the window height")
    check_min(KW, 1, "the window width")
    check_size(gN, N, "grad_output's batch")
    check_size(gC, C, "grad_output's channels")
    if dx_shape[0] != N or dx_shape[1] != H or dx_shape[2] != W or dx_shape[3] != C:
        raise ValueError(f"expected grad_x to have shape {(N, H, W, C)}, got "
                         f"{(dx_shape[0], dx_shape[1], dx_shape[2], dx_shape[3])}")
    return 0


def max_pool_backward_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] grad_output,
                           floating[:, :, :, ::1] grad_x, Py_ssize_t KH, Py_ssize_t KW,
                           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                           Py_ssize_t dh, Py_ssize_t dw, int num_threads):
    """grad_x (N, H, W, C) of max_pool_nhwc with these arguments; overwritten."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = grad_output.shape[1], Wout = grad_output.shape[2]
    cdef Py_ssize_t nchunks = (C + CHANNELS - 1) // CHANNELS
    cdef Py_ssize_t item, n, c0
    check_pool_grad(grad_output.shape[0], grad_output.shape[3], grad_x.shape, N, H, W, C, KH, KW, sh, sw, ph, pw,
                    dh, dw, num_threads)
    if N * H * W * C == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* gp = &grad_output[0, 0, 0, 0]
    cdef floating* dp = &grad_x[0, 0, 0, 0]
    with nogil:
        for item in prange(N * nchunks, num_threads=num_threads, schedule="static"):
            n = item // nchunks
            c0 = (item % nchunks) * CHANNELS
            if c0 == 0:
                memset(dp + n * H * W * C, 0, H * W * C * sizeof(floating))
        for item in prange(N * nchunks, num_threads=num_threads, schedule="static"):
            n = item // nchunks
            c0 = (item % nchunks) * CHANNELS
            max_pool_backward_item(xp + n * H * W * C, gp + n * Hout * Wout * C, dp + n * H * W * C,
                                   c0, min(<Py_ssize_t>CHANNELS, C - c0), H, W, C, KH, KW, sh, sw,
                                   ph, pw, dh, dw, Hout, Wout)


cdef inline Py_ssize_t first_window(Py_ssize_t i, Py_ssize_t k, Py_ssize_t s, Py_ssize_t p) noexcept nogil:
    """The first window (o*s - p <= i < o*s - p + k) covering input index i, clamped at 0."""
    cdef Py_ssize_t t = i + p - k + 1
    return 0 if t <= 0 else (t + s - 1) // s


cdef inline void avg_pool_backward_row(
    const floating* g, floating* dx, Py_ssize_t ih, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
    bint count_include_pad, Py_ssize_t Hout, Py_ssize_t Wout,
) noexcept nogil:
    """Input row ``ih`` of one image: ``g`` points at the image's grad_output, ``dx`` at the row."""
    cdef Py_ssize_t iw, oh, ow, h0, h1, w0, w1, c, divisor
    cdef Py_ssize_t oh_end = min(Hout, (ih + ph) // sh + 1)
    cdef floating inv
    cdef const floating* src
    cdef floating* dst
    memset(dx, 0, W * C * sizeof(floating))
    for oh in range(first_window(ih, KH, sh, ph), oh_end):
        avg_window(oh, KH, sh, ph, H, &h0, &h1)
        for iw in range(W):
            dst = dx + iw * C
            for ow in range(first_window(iw, KW, sw, pw), min(Wout, (iw + pw) // sw + 1)):
                avg_window(ow, KW, sw, pw, W, &w0, &w1)
                divisor = avg_divisor(h0, h1, w0, w1, H, W, count_include_pad)
                inv = 1 / <floating>divisor
                src = g + (oh * Wout + ow) * C
                for c in range(C):
                    dst[c] += src[c] * inv


def avg_pool_backward_nhwc(const floating[:, :, :, ::1] grad_output, floating[:, :, :, ::1] grad_x,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int num_threads):
    """grad_x (N, H, W, C) of avg_pool_nhwc with these arguments; overwritten."""
    cdef Py_ssize_t N = grad_x.shape[0], H = grad_x.shape[1], W = grad_x.shape[2], C = grad_x.shape[3]
    cdef Py_ssize_t Hout = grad_output.shape[1], Wout = grad_output.shape[2], r
    check_pool_grad(grad_output.shape[0], grad_output.shape[3], grad_x.shape, N, H, W, C, KH, KW, sh, sw, ph, pw,
                    1, 1, num_threads)
    if N * H * W * C == 0:
        return
    cdef const floating* gp = &grad_output[0, 0, 0, 0]
    cdef floating* dp = &grad_x[0, 0, 0, 0]
    with nogil:
        for r in prange(N * H, num_threads=num_threads, schedule="static"):
            avg_pool_backward_row(gp + (r // H) * Hout * Wout * C, dp + r * W * C, r % H, H, W, C,
                                  KH, KW, sh, sw, ph, pw, count_include_pad, Hout, Wout)
