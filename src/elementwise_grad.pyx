"""Gradients of the elementwise activations: grad_x = grad_output * act'(x), parallel over fixed chunks.

Each derivative is written from the forward input ``x`` with PyTorch's conventions at the kinks and for
NaN: relu passes the gradient where x > 0 (``threshold_backward``: 0 at x = 0, the gradient for NaN);
relu6 where 0 < x < 6 (``hardtanh_backward``); leaky_relu multiplies by the slope unless x > 0; elu by
``alpha * exp(x)`` where x <= 0; sigmoid by ``s * (1 - s)``, tanh by ``1 - t**2``, from the forward
values recomputed with the same overflow-free forms (``activation.pxd``).  One loop per activation, each
branch-free (``pick``), so they vectorise.
"""
from cython cimport floating
from cython.parallel cimport prange

from activation cimport (ACT_ELU, ACT_LEAKY_RELU, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_TANH,
                         exp_nonpositive, pick, sigmoid, tanh)
from checks cimport check_min

cdef enum:
    CHUNK = 16384


cdef inline void backward_span(const floating* g, const floating* x, floating* dx, Py_ssize_t n,
                               int code, floating alpha) noexcept nogil:
    """dx[i] = g[i] * act'(x[i]) for i < n."""
    cdef Py_ssize_t i
    cdef floating one = 1, zero = 0, s
    if code == ACT_RELU:
        for i in range(n):
            dx[i] = pick(x[i] <= 0, zero, g[i])
    elif code == ACT_RELU6:
        for i in range(n):
            dx[i] = pick(x[i] <= 0 or x[i] >= 6, zero, g[i])
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            dx[i] = g[i] * pick(x[i] > 0, one, alpha)
    elif code == ACT_ELU:
        for i in range(n):
            dx[i] = g[i] * pick(x[i] <= 0, alpha * exp_nonpositive(pick(x[i] <= 0, x[i], zero)), one)
    elif code == ACT_SIGMOID:
        for i in range(n):
            s = sigmoid(x[i])
            dx[i] = g[i] * s * (one - s)
    elif code == ACT_TANH:
        for i in range(n):
            s = tanh(x[i])
            dx[i] = g[i] * (one - s * s)
    else:
        for i in range(n):
            dx[i] = g[i]


def activation_backward(const floating[::1] grad_output, const floating[::1] x, floating[::1] grad_x,
                        int code, double alpha, int num_threads):
    """grad_x = grad_output * act'(x) over three equally long 1-D spans (codes of elementwise.CODES)."""
    cdef Py_ssize_t n = x.shape[0], k, start
    cdef Py_ssize_t nchunks = (n + CHUNK - 1) // CHUNK
    cdef floating a = <floating>alpha
    if grad_output.shape[0] != n or grad_x.shape[0] != n:
        raise ValueError(f"expected spans of {n} elements, got {grad_output.shape[0]} and {grad_x.shape[0]}")
    check_min(num_threads, 1, "num_threads")
    if n == 0:
        return
    cdef const floating* gp = &grad_output[0]
    cdef const floating* xp = &x[0]
    cdef floating* dp = &grad_x[0]
    with nogil:
        for k in prange(nchunks, num_threads=num_threads, schedule="static"):
            start = k * CHUNK
            backward_span(gp + start, xp + start, dp + start, min(<Py_ssize_t>CHUNK, n - start), code, a)
