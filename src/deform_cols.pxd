# One output pixel's deformable column: shared by the im2col and the direct deformable kernels.
from cython cimport floating

from bilinear cimport bilinear_sample_vec


cdef inline void deform_pixel_columns(
    const floating* img, const floating* off, const floating* msk, const floating* zeros,
    floating* dst, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t c0, Py_ssize_t cg,
    Py_ssize_t cpg, Py_ssize_t KH, Py_ssize_t KW, double ybase, double xbase,
    Py_ssize_t dh, Py_ssize_t dw,
) noexcept nogil:
    """dst[(i*KW + j)*cg + c - c0] = m * x(y, x, c) for every tap (i, j) and channel c in [c0, c0+cg).

    ``img`` is one NHWC image (H, W, C); ``off`` the pixel's ``2*G*KH*KW`` offsets ordered (offset
    group, tap row-major, dy then dx); ``msk`` its ``G*KH*KW`` mask values or NULL (DCNv1, mask 1).
    The sampling point of tap (i, j) is ``(ybase + i*dh + dy, xbase + j*dw + dx)`` with
    ``ybase = oh*stride_h - pad_top`` (same for x).  Channel c belongs to offset group ``c // cpg``;
    a channel range crossing offset groups is sampled in one segment per group.
    """
    cdef Py_ssize_t i, j, t, c, e, g
    cdef Py_ssize_t taps = KH * KW
    cdef Py_ssize_t g0 = c0 // cpg
    cdef double m
    for i in range(KH):
        for j in range(KW):
            t = i * KW + j
            c = c0
            g = g0
            while c < c0 + cg:
                e = min(c0 + cg, (g + 1) * cpg)
                m = msk[g * taps + t] if msk != NULL else 1.0
                bilinear_sample_vec(img + c, H, W, C,
                                    ybase + i * dh + off[2 * (g * taps + t)],
                                    xbase + j * dw + off[2 * (g * taps + t) + 1],
                                    m, zeros, e - c, dst + t * cg + c - c0)
                c = e
                g += 1
