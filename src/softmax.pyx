"""Softmax, log-softmax and cross-entropy over the rows of a C-contiguous (rows, classes) array.

Each row is shifted by its maximum first, so every exponential has a non-positive argument and goes
through ``activation.exp_nonpositive`` (vectorised, no overflow); the row sums are accumulated in
float64.  Rows are independent: OpenMP hands them out statically and each thread writes its own rows, so
results do not depend on the thread count.  A row holding NaN gives NaN, a row of -inf gives NaN (as in
PyTorch).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, log

from activation cimport exp_nonpositive
from checks cimport check_min, check_size


cdef inline floating row_max(const floating* x, Py_ssize_t L) noexcept nogil:
    cdef floating m = -INFINITY
    cdef Py_ssize_t i
    for i in range(L):
        m = x[i] if (x[i] > m or x[i] != x[i]) else m
    return m


cdef inline double sum_exp(const floating* x, floating m, Py_ssize_t L, floating* e) noexcept nogil:
    """sum_i exp(x[i] - m), storing each term in ``e`` (which may be NULL)."""
    cdef double total = 0
    cdef floating t
    cdef Py_ssize_t i
    for i in range(L):
        t = exp_nonpositive(x[i] - m)
        if e != NULL:
            e[i] = t
        total += t
    return total


cdef inline void softmax_row(const floating* x, floating* y, Py_ssize_t L, bint take_log) noexcept nogil:
    cdef floating m = row_max(x, L)
    cdef Py_ssize_t i
    cdef double total
    cdef floating shift, inv
    if take_log:
        total = sum_exp(x, m, L, NULL)
        shift = <floating>(m + log(total))
        for i in range(L):
            y[i] = x[i] - shift
    else:
        total = sum_exp(x, m, L, y)
        inv = <floating>(1.0 / total)
        for i in range(L):
            y[i] = y[i] * inv


cdef int check_rows(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t R, Py_ssize_t L, str what,
                    int num_threads) except -1:
    check_min(num_threads, 1, "num_threads")
    if rows != R or cols != L:
        raise ValueError(f"expected {what} to have shape ({R}, {L}), got ({rows}, {cols})")
    return 0


cdef int check_labels(const Py_ssize_t[::1] labels, Py_ssize_t R, Py_ssize_t L, int num_threads) except -1:
    """One label per row, each a column index (O(R), against the O(R*L) the kernels then do)."""
    cdef Py_ssize_t r, bad = -1
    check_min(num_threads, 1, "num_threads")
    check_size(labels.shape[0], R, "the number of labels (the rows)")
    for r in range(R):
        if <size_t>labels[r] >= <size_t>L:
            bad = r
            break
    if bad >= 0:
        raise ValueError(f"expected labels in [0, {L}), got {labels[bad]} at row {bad}")
    return 0


def softmax_rows(const floating[:, ::1] x, floating[:, ::1] y, bint take_log, int num_threads):
    """y[r] = softmax(x[r]) (or log_softmax with ``take_log``) for each row."""
    cdef Py_ssize_t R = x.shape[0], L = x.shape[1], r
    check_rows(y.shape[0], y.shape[1], R, L, "y", num_threads)
    if R * L == 0:
        return
    cdef const floating* xp = &x[0, 0]
    cdef floating* yp = &y[0, 0]
    with nogil:
        for r in prange(R, num_threads=num_threads, schedule="static"):
            softmax_row(xp + r * L, yp + r * L, L, take_log)


cdef inline void softmax_backward_row(const floating* g, const floating* y, floating* dx, Py_ssize_t L,
                                      bint take_log) noexcept nogil:
    """softmax: dx = y * (g - <g, y>); log_softmax: dx = g - exp(y) * sum(g)."""
    cdef double acc = 0
    cdef floating s
    cdef Py_ssize_t i
    if take_log:
        for i in range(L):
            acc += g[i]
        s = <floating>acc
        for i in range(L):
            dx[i] = g[i] - exp_nonpositive(y[i]) * s
    else:
        for i in range(L):
            acc += g[i] * y[i]
        s = <floating>acc
        for i in range(L):
            dx[i] = y[i] * (g[i] - s)


def softmax_backward_rows(const floating[:, ::1] grad_output, const floating[:, ::1] y,
                          floating[:, ::1] grad_x, bint take_log, int num_threads):
    """grad_x of softmax (or log_softmax) per row, from the forward's output ``y``."""
    cdef Py_ssize_t R = y.shape[0], L = y.shape[1], r
    check_rows(grad_output.shape[0], grad_output.shape[1], R, L, "grad_output", num_threads)
    check_rows(grad_x.shape[0], grad_x.shape[1], R, L, "grad_x", num_threads)
    if R * L == 0:
        return
    cdef const floating* gp = &grad_output[0, 0]
    cdef const floating* yp = &y[0, 0]
    cdef floating* dp = &grad_x[0, 0]
    with nogil:
        for r in prange(R, num_threads=num_threads, schedule="static"):
            softmax_backward_row(gp + r * L, yp + r * L, dp + r * L, L, take_log)


def cross_entropy_rows(const floating[:, ::1] logits, const Py_ssize_t[::1] labels, double[::1] losses,
                       int num_threads):
    """losses[r] = logsumexp(logits[r]) - logits[r, labels[r]] (labels already checked in range)."""
    cdef Py_ssize_t R = logits.shape[0], L = logits.shape[1], r
    cdef floating m
    check_size(losses.shape[0], R, "the length of losses (the rows)")
    check_labels(labels, R, L, num_threads)
    if R * L == 0:
        return
    cdef const floating* xp = &logits[0, 0]
    with nogil:
        for r in prange(R, num_threads=num_threads, schedule="static"):
            m = row_max(xp + r * L, L)
            losses[r] = m + log(sum_exp(xp + r * L, m, L, NULL)) - xp[r * L + labels[r]]


def cross_entropy_backward_rows(const floating[:, ::1] logits, const Py_ssize_t[::1] labels,
                                const double[::1] scale, floating[:, ::1] grad_logits, int num_threads):
    """grad_logits[r] = scale[r] * (softmax(logits[r]) - one_hot(labels[r]))."""
    cdef Py_ssize_t R = logits.shape[0], L = logits.shape[1], r, i
    cdef floating s
    check_size(scale.shape[0], R, "the length of scale (the rows)")
    check_rows(grad_logits.shape[0], grad_logits.shape[1], R, L, "grad_logits", num_threads)
    check_labels(labels, R, L, num_threads)
    if R * L == 0:
        return
    cdef const floating* xp = &logits[0, 0]
    cdef floating* dp = &grad_logits[0, 0]
    with nogil:
        for r in prange(R, num_threads=num_threads, schedule="static"):
            softmax_row(xp + r * L, dp + r * L, L, False)
            s = <floating>scale[r]
            dp[r * L + labels[r]] -= 1
            for i in range(L):
                dp[r * L + i] = dp[r * L + i] * s
