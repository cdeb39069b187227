"""Max and average pooling over NHWC, parallel over (image, output row).

For each output pixel the window's taps are visited in order and each tap adds (or maxes) a whole
contiguous channel vector into the output pixel, so the inner loop runs over C and vectorises; taps
outside the input are skipped (Caffe's unsigned bounds compare).  Window geometry follows PyTorch: the
output size and ceil_mode rule are decided by convkit.pooling, the average divisor here (see avg_pool_nhwc).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY

from checks cimport check_geometry, check_min, check_size
from pool_window cimport avg_divisor, avg_window, taps_inside


cdef inline void max_pool_row(
    const floating* x, floating* y, Py_ssize_t n, Py_ssize_t oh, Py_ssize_t H, Py_ssize_t W,
    Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
    Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Wout,
) noexcept nogil:
    """Output row ``oh`` of image ``n`` (y points at that row); NaN wins, as in PyTorch."""
    cdef Py_ssize_t ow, kh, kw, kh0, kh1, kw0, kw1, ih, iw, c
    cdef const floating* src
    cdef floating* dst
    cdef floating v, m
    taps_inside(oh * sh - ph, dh, KH, H, &kh0, &kh1)
    for ow in range(Wout):
        dst = y + ow * C
        for c in range(C):
            dst[c] = -INFINITY
        taps_inside(ow * sw - pw, dw, KW, W, &kw0, &kw1)
        for kh in range(kh0, kh1):
            ih = oh * sh - ph + kh * dh
            for kw in range(kw0, kw1):
                iw = ow * sw - pw + kw * dw
                src = x + ((n * H + ih) * W + iw) * C
                for c in range(C):
                    v = src[c]
                    m = dst[c]
                    dst[c] = v if (v > m or v != v) else m


cdef inline void avg_pool_row(
    const floating* x, floating* y, Py_ssize_t n, Py_ssize_t oh, Py_ssize_t H, Py_ssize_t W,
    Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
    Py_ssize_t pw, bint count_include_pad, Py_ssize_t Wout,
) noexcept nogil:
    cdef Py_ssize_t ow, ih, iw, c, h0, h1, w0, w1, divisor
    cdef const floating* src
    cdef floating* dst
    cdef floating d
    avg_window(oh, KH, sh, ph, H, &h0, &h1)
    for ow in range(Wout):
        avg_window(ow, KW, sw, pw, W, &w0, &w1)
        divisor = avg_divisor(h0, h1, w0, w1, H, W, count_include_pad)
        dst = y + ow * C
        for c in range(C):
            dst[c] = 0
        for ih in range(max(h0, 0), min(h1, H)):
            for iw in range(max(w0, 0), min(w1, W)):
                src = x + ((n * H + ih) * W + iw) * C
                for c in range(C):
                    dst[c] += src[c]
        d = <floating>divisor
        for c in range(C):
            dst[c] = dst[c] / d


cdef int check_pooling(Py_ssize_t N, Py_ssize_t C, Py_ssize_t yN, Py_ssize_t yC, Py_ssize_t KH,
                       Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, int num_threads) except -1:
    check_geometry(sh, sw, 1, 1, num_threads)
    check_min(KH, 1, "the window height")
    check_min(KW, 1, "the window width")
    check_size(yN, N, "y's batch")
    check_size(yC, C, "y's channels")
    return 0


def max_pool_nhwc(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                  Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int num_threads):
    """y (N, Hout, Wout, C) = max over each dilated window of x (N, H, W, C), padding -inf."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = y.shape[1], Wout = y.shape[2], r
    check_pooling(N, C, y.shape[0], y.shape[3], KH, KW, sh, sw, num_threads)
    if N * Hout * Wout * C == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* yp = &y[0, 0, 0, 0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            max_pool_row(xp, yp + r * Wout * C, r // Hout, r % Hout, H, W, C, KH, KW, sh, sw,
                         ph, pw, dh, dw, Wout)


def avg_pool_nhwc(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                  Py_ssize_t pw, bint count_include_pad, int num_threads):
    """y (N, Hout, Wout, C) = mean over each window of x (N, H, W, C), PyTorch's divisor.

    The window [h0, h0 + KH) is first clipped to the padded input [-ph, H + ph) (only ceil_mode
    windows reach past it); ``count_include_pad`` divides by that clipped window's size, otherwise by
    the number of input pixels it covers.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = y.shape[1], Wout = y.shape[2], r
    check_pooling(N, C, y.shape[0], y.shape[3], KH, KW, sh, sw, num_threads)
    if N * Hout * Wout * C == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* yp = &y[0, 0, 0, 0]
    with nogil:
        for r in prange(N * Hout, num_threads=num_threads, schedule="static"):
            avg_pool_row(xp, yp + r * Wout * C, r // Hout, r % Hout, H, W, C, KH, KW, sh, sw,
                         ph, pw, count_include_pad, Wout)
