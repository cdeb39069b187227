# Activation epilogue shared by the elementwise kernels and the convolution output stores.
#
# ``activate(v, code, alpha)`` applies activation ``code`` to one value; ``alpha`` is LeakyReLU's
# negative slope or ELU's alpha (ignored by the others).  ``activate_span`` applies it (after an
# optional per-element bias) over a span, dispatching on ``code`` once outside the loop so each loop
# sees a constant code, folds the switch away and vectorises (the exp/tanh ones call libm per value).
# Forms are overflow-free for any |v|: sigmoid uses exp(-|v|) <= 1, ELU calls expm1 only for v < 0.
# NaN propagates through every activation, as in PyTorch.
from cython cimport floating
from libc.math cimport exp, expf, expm1, expm1f, fabs, fabsf, tanh, tanhf

cdef enum:
    ACT_NONE = 0
    ACT_RELU = 1
    ACT_RELU6 = 2
    ACT_LEAKY_RELU = 3
    ACT_ELU = 4
    ACT_SIGMOID = 5
    ACT_TANH = 6


cdef inline floating activate(floating v, int code, floating alpha) noexcept nogil:
    cdef floating e
    if code == ACT_RELU:
        return 0 if v < 0 else v
    if code == ACT_RELU6:
        return 0 if v < 0 else (6 if v > 6 else v)
    if code == ACT_LEAKY_RELU:
        return v * alpha if v < 0 else v
    if code == ACT_ELU:
        if v < 0:
            return alpha * (expm1f(v) if floating is float else expm1(v))
        return v
    if code == ACT_SIGMOID:
        e = expf(-fabsf(v)) if floating is float else exp(-fabs(v))
        return 1 / (1 + e) if v >= 0 else e / (1 + e)
    if code == ACT_TANH:
        return tanhf(v) if floating is float else tanh(v)
    return v


cdef inline void _span(const floating* x, const floating* bias, floating* y, Py_ssize_t n,
                       int code, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    if bias == NULL:
        for i in range(n):
            y[i] = activate(x[i], code, alpha)
    else:
        for i in range(n):
            y[i] = activate(x[i] + bias[i], code, alpha)


cdef inline void activate_span(const floating* x, const floating* bias, floating* y, Py_ssize_t n,
                               int code, floating alpha) noexcept nogil:
    """y[i] = activate(x[i] + bias[i]) for i < n; ``bias`` may be NULL; ``y`` may be ``x``."""
    if code == ACT_RELU:
        _span(x, bias, y, n, ACT_RELU, alpha)
    elif code == ACT_RELU6:
        _span(x, bias, y, n, ACT_RELU6, alpha)
    elif code == ACT_LEAKY_RELU:
        _span(x, bias, y, n, ACT_LEAKY_RELU, alpha)
    elif code == ACT_ELU:
        _span(x, bias, y, n, ACT_ELU, alpha)
    elif code == ACT_SIGMOID:
        _span(x, bias, y, n, ACT_SIGMOID, alpha)
    elif code == ACT_TANH:
        _span(x, bias, y, n, ACT_TANH, alpha)
    else:
        _span(x, bias, y, n, ACT_NONE, alpha)
