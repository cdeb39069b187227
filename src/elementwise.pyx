"""Elementwise activations and the bias + activation epilogue, parallel over fixed-size chunks.

Both kernels go through ``activation.activate_span``, which dispatches on the activation code once per
span, so each inner loop is a straight vectorisable loop.  Work is split into chunks of ``CHUNK``
elements (64 KiB of float32) handed out statically, so threads stream disjoint pieces of memory.
"""
from cython cimport floating
from cython.parallel cimport prange

from activation cimport (ACT_ELU, ACT_LEAKY_RELU, ACT_NONE, ACT_RELU, ACT_RELU6, ACT_SIGMOID,
                         ACT_TANH, activate_span, activate_span_residual)
from checks cimport check_min, check_size, optional_rows, optional_vector

cdef enum:
    CHUNK = 16384

#: Activation name -> the code the kernels' ``activate`` epilogue understands.
CODES = {
    "none": ACT_NONE, "relu": ACT_RELU, "relu6": ACT_RELU6, "leaky_relu": ACT_LEAKY_RELU,
    "elu": ACT_ELU, "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH,
}


def activation(const floating[::1] x, floating[::1] y, int code, double alpha, int num_threads):
    """y = act(x) over two equally long 1-D spans; ``y`` may be ``x`` itself (in place)."""
    cdef Py_ssize_t n = x.shape[0], k, start
    cdef Py_ssize_t nchunks = (n + CHUNK - 1) // CHUNK
    cdef floating a = <floating>alpha
    check_min(num_threads, 1, "num_threads")
    check_size(y.shape[0], n, "the length of y")
    if n == 0:
        return
    cdef const floating* xp = &x[0]
    cdef floating* yp = &y[0]
    with nogil:
        for k in prange(nchunks, num_threads=num_threads, schedule="static"):
            start = k * CHUNK
            activate_span(xp + start, NULL, yp + start, min(<Py_ssize_t>CHUNK, n - start), code, a)


def bias_activation_inplace(floating[:, ::1] y, bias, int code, double alpha, int num_threads,
                            residual=None):
    """y[r, c] = act(y[r, c] + residual[r, c] + bias[c]) in one pass over a C-contiguous (rows, channels) array.

    ``bias`` is None or a C-contiguous (channels,) array of y's dtype; ``residual`` None or a
    C-contiguous array of y's shape and dtype; ``code``/``alpha`` as returned by
    ``convkit.activations.resolve_activation``.  Rows are processed in chunks of about ``CHUNK``
    elements, each row while it is in cache.
    """
    cdef Py_ssize_t R = y.shape[0], C = y.shape[1], k, r, r0, r1
    cdef floating a = <floating>alpha
    cdef const floating* bp
    optional_vector(bias, C, "bias", &bp)
    cdef const floating* rp
    optional_rows(residual, R, C, "residual", &rp)
    check_min(num_threads, 1, "num_threads")
    if R * C == 0 or (bp == NULL and rp == NULL and code == ACT_NONE):
        return
    cdef Py_ssize_t rows_per_chunk = max(1, CHUNK // C)
    cdef Py_ssize_t nchunks = (R + rows_per_chunk - 1) // rows_per_chunk
    cdef floating* yp = &y[0, 0]
    with nogil:
        for k in prange(nchunks, num_threads=num_threads, schedule="static"):
            r0 = k * rows_per_chunk
            r1 = min(r0 + rows_per_chunk, R)
            for r in range(r0, r1):
                activate_span_residual(yp + r * C, bp, rp + r * C if rp != NULL else NULL, yp + r * C,
                                       C, code, a)
