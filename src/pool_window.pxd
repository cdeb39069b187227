# Pooling windows along one axis, shared by the forward kernels (pooling.pyx) and their gradients
# (pooling_grad.pyx), which must agree on them tap for tap.

cdef inline void avg_window(Py_ssize_t o, Py_ssize_t k, Py_ssize_t s, Py_ssize_t p, Py_ssize_t size,
                            Py_ssize_t* start, Py_ssize_t* end) noexcept nogil:
    """Average-pooling window ``o``: [o*s - p, o*s - p + k) clipped to the padded input [-p, size + p)
    (only ceil_mode windows reach past it)."""
    start[0] = o * s - p
    end[0] = min(start[0] + k, size + p)


cdef inline Py_ssize_t avg_divisor(Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1, Py_ssize_t H,
                                   Py_ssize_t W, bint count_include_pad) noexcept nogil:
    """PyTorch's divisor for the window [h0, h1) x [w0, w1): its size with ``count_include_pad``, else
    the number of input pixels it covers."""
    if count_include_pad:
        return (h1 - h0) * (w1 - w0)
    return (min(h1, H) - max(h0, 0)) * (min(w1, W) - max(w0, 0))


cdef inline void taps_inside(Py_ssize_t start, Py_ssize_t d, Py_ssize_t k, Py_ssize_t size,
                             Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    """The taps j0 <= j < j1 of a k-tap window at ``start`` with dilation d >= 1 whose coordinates
    start + j*d lie inside [0, size) (none when j0 >= j1): the bounds test hoisted out of the tap loop."""
    j0[0] = 0 if start >= 0 else (d - 1 - start) // d
    j1[0] = 0 if start >= size else min(k, (size - start + d - 1) // d)
