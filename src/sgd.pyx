"""One parameter's SGD update in a single pass: PyTorch's rule for ``torch.optim.SGD``.

Per element, with ``d`` the gradient and ``b`` the momentum buffer (PyTorch's operation order):

    d = grad + weight_decay * p                       (when weight_decay != 0)
    b = d on the first step, else momentum * b + (1 - dampening) * d      (when momentum != 0)
    d = d + momentum * b (Nesterov) or b               (when momentum != 0)
    p = p - lr * d

Work is split into fixed chunks handed out statically; every element is independent, so the result does
not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from checks cimport check_min

cdef enum:
    CHUNK = 16384  # elements per parallel task


cdef inline void sgd_span(floating* p, const floating* grad, floating* buf, Py_ssize_t n, floating lr,
                          floating weight_decay, floating momentum, floating dampening, bint first,
                          bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d
    for i in range(n):
        d = grad[i]
        if weight_decay != 0:
            d = d + weight_decay * p[i]
        if buf != NULL:
            buf[i] = d if first else momentum * buf[i] + (1 - dampening) * d
            d = d + momentum * buf[i] if nesterov else buf[i]
        p[i] = p[i] - lr * d


def sgd_update(floating[::1] param, const floating[::1] grad, momentum_buffer, double lr,
               double weight_decay, double momentum, double dampening, bint first, bint nesterov,
               int num_threads):
    """Update ``param`` (and ``momentum_buffer``, None without momentum) in place from ``grad``; all
    C-contiguous 1-D arrays of one length and dtype.  ``first``: the buffer is filled, not decayed."""
    cdef Py_ssize_t n = param.shape[0], k, start
    cdef floating[::1] buf_view
    cdef floating* bp = NULL
    if grad.shape[0] != n:
        raise ValueError(f"expected grad to have {n} elements, got {grad.shape[0]}")
    check_min(num_threads, 1, "num_threads")
    if momentum_buffer is not None:
        buf_view = momentum_buffer
        if buf_view.shape[0] != n:
            raise ValueError(f"expected momentum_buffer to have {n} elements, got {buf_view.shape[0]}")
        if n:
            bp = &buf_view[0]
    if n == 0:
        return
    cdef floating* pp = &param[0]
    cdef const floating* gp = &grad[0]
    cdef Py_ssize_t nchunks = (n + CHUNK - 1) // CHUNK
    with nogil:
        for k in prange(nchunks, num_threads=num_threads, schedule="static"):
            start = k * CHUNK
            sgd_span(pp + start, gp + start, NULL if bp == NULL else bp + start,
                     min(<Py_ssize_t>CHUNK, n - start), <floating>lr, <floating>weight_decay,
                     <floating>momentum, <floating>dampening, first, nesterov)
