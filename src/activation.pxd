# Activation epilogue shared by the elementwise kernels and the convolution output stores.
#
# ``activate(v, code, alpha)`` applies activation ``code`` to one value; ``alpha`` is LeakyReLU's
# negative slope or ELU's alpha (ignored by the others) and has v's type.  ``activate_span`` applies it
# (after an optional per-element bias) over a span, with one loop per activation so each loop is
# straight-line code that vectorises.
#
# Every form is branch-free: selections go through ``pick`` (a bitwise blend: GCC's if-conversion will
# not turn a ``c ? a : b`` that feeds further floating-point arithmetic into a blend under its default
# -ftrapping-math, which would leave a branch in the loop and stop vectorisation).  exp/expm1 are our own
# polynomial versions for non-positive arguments (below), so sigmoid, tanh and ELU vectorise too, and no
# form can overflow for any |v|: sigmoid uses exp(-|v|) <= 1, tanh expm1(-2|v|), ELU expm1(min(v, 0)).
# NaN propagates through every activation, as in PyTorch.  ``activate_span_residual`` first adds a residual
# (ONNX Runtime's fused Conv + Add + activation).
from cython cimport floating
from libc.math cimport copysign, copysignf, fabs, fabsf

cdef enum:
    ACT_NONE = 0
    ACT_RELU = 1
    ACT_RELU6 = 2
    ACT_LEAKY_RELU = 3
    ACT_ELU = 4
    ACT_SIGMOID = 5
    ACT_TANH = 6

cdef extern from *:
    """
    #include <string.h>
    /* c ? a : b as a bitwise blend of the two values (both already computed). */
    static inline float convkit_pickf(int c, float a, float b) {
        unsigned int ia, ib, m = 0u - (unsigned int)(c != 0);
        memcpy(&ia, &a, sizeof ia); memcpy(&ib, &b, sizeof ib);
        ia = (ia & m) | (ib & ~m);
        memcpy(&a, &ia, sizeof a);
        return a;
    }
    static inline double convkit_pick(int c, double a, double b) {
        unsigned long long ia, ib, m = 0ull - (unsigned long long)(c != 0);
        memcpy(&ia, &a, sizeof ia); memcpy(&ib, &b, sizeof ib);
        ia = (ia & m) | (ib & ~m);
        memcpy(&a, &ia, sizeof a);
        return a;
    }
    /* 2**n from its exponent bits, for -126 <= n <= 0 (float) / -1022 <= n <= 0 (double). */
    static inline float convkit_pow2f(int n) {
        unsigned int i = (unsigned int)(n + 127) << 23;
        float f;
        memcpy(&f, &i, sizeof f);
        return f;
    }
    static inline double convkit_pow2(int n) {
        unsigned long long i = (unsigned long long)(n + 1023) << 52;
        double f;
        memcpy(&f, &i, sizeof f);
        return f;
    }
    """
    float convkit_pickf(bint c, float a, float b) noexcept nogil
    double convkit_pick(bint c, double a, double b) noexcept nogil
    float convkit_pow2f(int n) noexcept nogil
    double convkit_pow2(int n) noexcept nogil


cdef inline floating pick(bint c, floating a, floating b) noexcept nogil:
    """``a if c else b`` without a branch."""
    if floating is float:
        return convkit_pickf(c, a, b)
    else:
        return convkit_pick(c, a, b)


cdef inline floating exp_nonpositive(floating t) noexcept nogil:
    """exp(t) for t <= 0 (and -inf, NaN), to about 1 ulp; 0 where exp(t) is below the normal range.

    Cody-Waite reduction t = n*ln2 + r, |r| <= ln2/2, then a Taylor polynomial of e**r (degree 7 for
    float, 13 for double: truncation error < 1e-8 / 1e-17 relative) times 2**n from exponent bits.
    """
    cdef floating lo = <floating>-87.33654475 if floating is float else -708.3964185322641  # ln(min normal)
    cdef floating one = 1
    cdef floating tc = pick(t > lo, t, lo)        # NaN -> lo too, so the int conversion is defined
    cdef int n = <int>(tc * <floating>1.4426950408889634 - <floating>0.5)   # round(tc / ln2), tc <= 0
    cdef floating r = tc - n * <floating>0.693145751953125 - n * <floating>1.4286068203094173e-06
    cdef floating p
    if floating is float:
        p = one + r * (one + r * (<float>(1 / 2.) + r * (<float>(1 / 6.) + r * (<float>(1 / 24.) + r * (
            <float>(1 / 120.) + r * (<float>(1 / 720.) + r * <float>(1 / 5040.)))))))
        p = p * convkit_pow2f(n)
    else:
        p = 1 + r * (1 + r * (1 / 2. + r * (1 / 6. + r * (1 / 24. + r * (1 / 120. + r * (
            1 / 720. + r * (1 / 5040. + r * (1 / 40320. + r * (1 / 362880. + r * (
                1 / 3628800. + r * (1 / 39916800. + r * (1 / 479001600. + r * (
                    1 / 6227020800.)))))))))))))
        p = p * convkit_pow2(n)
    return pick(t < lo, <floating>0, pick(t == t, p, t))    # NaN in, NaN out


cdef inline floating expm1_nonpositive(floating t) noexcept nogil:
    """exp(t) - 1 for t <= 0 (and -inf, NaN), accurate relative to the result also for tiny |t|.

    |t| < ln2/2: the Taylor polynomial t + t**2/2! + ... (to t**9 for float, t**15 for double);
    otherwise exp(t) - 1, where no cancellation occurs (exp(t) <= 0.71).
    """
    cdef floating small
    cdef floating one = 1
    if floating is float:
        small = t * (one + t * (<float>(1 / 2.) + t * (<float>(1 / 6.) + t * (<float>(1 / 24.) + t * (
            <float>(1 / 120.) + t * (<float>(1 / 720.) + t * (<float>(1 / 5040.) + t * (
                <float>(1 / 40320.) + t * <float>(1 / 362880.)))))))))
    else:
        small = t * (1 + t * (1 / 2. + t * (1 / 6. + t * (1 / 24. + t * (1 / 120. + t * (
            1 / 720. + t * (1 / 5040. + t * (1 / 40320. + t * (1 / 362880. + t * (
                1 / 3628800. + t * (1 / 39916800. + t * (1 / 479001600. + t * (
                    1 / 6227020800. + t * (1 / 87178291200. + t * (1 / 1307674368000.)))))))))))))))
    return pick(t > <floating>-0.34657359027997264, small, exp_nonpositive(t) - one)


cdef inline floating relu(floating v) noexcept nogil:
    return pick(v < 0, <floating>0, v)


cdef inline floating relu6(floating v) noexcept nogil:
    return pick(v < 0, <floating>0, pick(v > 6, <floating>6, v))


cdef inline floating leaky_relu(floating v, floating slope) noexcept nogil:
    return v * pick(v < 0, slope, <floating>1)


cdef inline floating elu(floating v, floating alpha) noexcept nogil:
    # expm1 of min(v, 0): never overflows, and 0 for v >= 0 (and NaN), so the sum picks the right part.
    return alpha * expm1_nonpositive(pick(v < 0, v, <floating>0)) + pick(v < 0, <floating>0, v)


cdef inline floating magnitude(floating v) noexcept nogil:
    # (A conditional expression over both fabsf and fabs would be typed double for float too.)
    if floating is float:
        return fabsf(v)
    else:
        return fabs(v)


cdef inline floating sigmoid(floating v) noexcept nogil:
    """1 / (1 + exp(-v)) for v >= 0, exp(v) / (1 + exp(v)) for v < 0: both via e = exp(-|v|) <= 1."""
    cdef floating one = 1                         # typed constants keep float math in float
    cdef floating e = exp_nonpositive(-magnitude(v))
    return pick(v < 0, e, one) / (one + e)


cdef inline floating tanh(floating v) noexcept nogil:
    """sign(v) * (-u / (2 + u)) with u = expm1(-2|v|): tanh(|v|) = (1 - e**(-2|v|)) / (1 + e**(-2|v|))."""
    cdef floating two = 2
    cdef floating u = expm1_nonpositive(-two * magnitude(v))
    cdef floating t = -u / (two + u)
    if floating is float:
        return copysignf(t, v)
    else:
        return copysign(t, v)


cdef inline floating activate(floating v, int code, floating alpha) noexcept nogil:
    if code == ACT_RELU:
        return relu(v)
    if code == ACT_RELU6:
        return relu6(v)
    if code == ACT_LEAKY_RELU:
        return leaky_relu(v, alpha)
    if code == ACT_ELU:
        return elu(v, alpha)
    if code == ACT_SIGMOID:
        return sigmoid(v)
    if code == ACT_TANH:
        return tanh(v)
    return v


cdef inline void activate_span(const floating* x, const floating* bias, floating* y, Py_ssize_t n,
                               int code, floating alpha) noexcept nogil:
    """y[i] = activate(x[i] + bias[i]) for i < n; ``bias`` may be NULL; ``y`` may be ``x``."""
    cdef Py_ssize_t i
    if bias != NULL:
        for i in range(n):
            y[i] = x[i] + bias[i]
        x = y
    if code == ACT_RELU:
        for i in range(n):
            y[i] = relu(x[i])
    elif code == ACT_RELU6:
        for i in range(n):
            y[i] = relu6(x[i])
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            y[i] = leaky_relu(x[i], alpha)
    elif code == ACT_ELU:
        for i in range(n):
            y[i] = elu(x[i], alpha)
    elif code == ACT_SIGMOID:
        for i in range(n):
            y[i] = sigmoid(x[i])
    elif code == ACT_TANH:
        for i in range(n):
            y[i] = tanh(x[i])
    elif x != y:
        for i in range(n):
            y[i] = x[i]


cdef inline void activate_span_residual(floating* x, const floating* bias, const floating* res, floating* y,
                                        Py_ssize_t n, int code, floating alpha) noexcept nogil:
    """y[i] = activate(x[i] + res[i] + bias[i]) for i < n: ``res`` (may be NULL) is added into ``x``
    (a scratch tile, or ``y`` itself), then :func:`activate_span`."""
    cdef Py_ssize_t i
    if res != NULL:
        for i in range(n):
            x[i] += res[i]
    activate_span(x, bias, y, n, code, alpha)
