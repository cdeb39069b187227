# Bilinear sampling of a contiguous NHWC channel vector: the one sampling routine of every
# deformable kernel and of convkit.bilinear_sample.
from cython cimport floating
from libc.math cimport floor
from libc.string cimport memset


cdef inline void bilinear_sample_vec(
    const floating* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
    double y, double x, double scale, const floating* zeros, Py_ssize_t n, floating* dst,
) noexcept nogil:
    """dst[0:n] = scale * (bilinear sample at (y, x) of ``n`` contiguous channels), torchvision's rules.

    ``img`` points at the first sampled channel of pixel (0, 0) of one H x W image whose pixels are
    ``C`` elements apart (NHWC), so pixel (h, w) is ``img + (h*W + w)*C``.  ``zeros`` holds at least
    ``n`` zeros.  Edge rules (torchvision's ``bilinear_interpolate``):

    - the sample is zero unless ``-1 < y < H`` and ``-1 < x < W``.  These ordered comparisons are false
      for NaN and +-inf, and they run on the floating-point value before any ``floor`` or integer
      conversion, so non-finite or huge coordinates sample zero and never index memory;
    - otherwise, with ``h0 = floor(y)``, ``w0 = floor(x)``, ``ly = y - h0``, ``lx = x - w0``, the four
      corners (h0, w0), (h0, w0+1), (h0+1, w0), (h0+1, w0+1) get weights ``(1-ly)(1-lx)``,
      ``(1-ly)lx``, ``ly(1-lx)``, ``ly*lx``; each corner is bounds-checked on its own and one outside
      the image reads the zero vector, so it contributes exactly zero.

    ``scale`` (the DCNv2 modulation mask, 1 for plain sampling) is folded into the four weights, and
    the channel loop is branch-free: four corner vectors, four weights, one pass.
    """
    if not (y > -1.0 and y < H and x > -1.0 and x < W):
        memset(dst, 0, n * sizeof(floating))
        return
    cdef Py_ssize_t h0 = <Py_ssize_t>floor(y)
    cdef Py_ssize_t w0 = <Py_ssize_t>floor(x)
    cdef double ly = y - h0, lx = x - w0
    cdef floating w00 = <floating>(scale * (1.0 - ly) * (1.0 - lx))
    cdef floating w01 = <floating>(scale * (1.0 - ly) * lx)
    cdef floating w10 = <floating>(scale * ly * (1.0 - lx))
    cdef floating w11 = <floating>(scale * ly * lx)
    cdef bint top = <size_t>h0 < <size_t>H
    cdef bint bottom = <size_t>(h0 + 1) < <size_t>H
    cdef bint left = <size_t>w0 < <size_t>W
    cdef bint right = <size_t>(w0 + 1) < <size_t>W
    cdef const floating* p00 = img + (h0 * W + w0) * C if top and left else zeros
    cdef const floating* p01 = img + (h0 * W + w0 + 1) * C if top and right else zeros
    cdef const floating* p10 = img + ((h0 + 1) * W + w0) * C if bottom and left else zeros
    cdef const floating* p11 = img + ((h0 + 1) * W + w0 + 1) * C if bottom and right else zeros
    cdef Py_ssize_t c
    for c in range(n):
        dst[c] = w00 * p00[c] + w01 * p01[c] + w10 * p10[c] + w11 * p11[c]
