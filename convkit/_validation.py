"""Argument checks shared by every public function.

Messages follow torchvision's style: "expected <what>, got <value>", naming the argument.
"""
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
LAYOUTS = ("NHWC", "NCHW")

#: Largest int argument (a stride, padding, dilation, kernel or output size) and largest padded extent
#: (input size + padding on both sides, or a transposed convolution's uncropped output) the kernels accept.
#: Their index arithmetic is 64-bit (Py_ssize_t): with these bounds every intermediate coordinate stays
#: below 2**63 with a margin of 2**61, so none overflows.
MAX_INT_ARG = 2**62
MAX_EXTENT = 3 * 2**61


def check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError(f"expected layout to be 'NHWC' or 'NCHW', got {layout!r}")
    return layout


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"expected {name} to be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _is_int(value):
    # ``type(value) is int`` first: the ABC check costs about 1 us, several times per convolution call
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def pair(value, name, minimum):
    """An int or a pair of ints, each >= ``minimum``, as an (h, w) tuple."""
    if type(value) is int and minimum <= value <= MAX_INT_ARG:    # the common case, without the checks' cost
        return value, value
    items = (value, value) if _is_int(value) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(_is_int(v) and minimum <= v <= MAX_INT_ARG for v in items):
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        kind += " (at most 2**62)"
        raise ValueError(f"expected {name} to be {kind} or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def check_float_array(array, name, dtype=None):
    """``array`` must be a float32/float64 ndarray; with ``dtype`` given, of that dtype (no silent
    mixing of precisions).  Returns it unchanged."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected {name} to be a numpy.ndarray, got {type(array).__name__}")
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"expected {name} to have dtype float32 or float64, got {array.dtype}")
    if dtype is not None and array.dtype != dtype:
        raise TypeError(f"expected {name} to have dtype {np.dtype(dtype)} like the input, got {array.dtype}")
    return array


def as_float_array(array, name, dtype=None):
    """``array`` checked by :func:`check_float_array`, as a C-contiguous array (copied only when it is not
    one already)."""
    return np.ascontiguousarray(check_float_array(array, name, dtype))


def check_vector(array, name, length, dtype, meaning=""):
    """``array`` must be a ``(length,)`` ndarray of ``dtype``; returns it unchanged (no copy)."""
    check_float_array(array, name, dtype)
    if array.shape != (length,):
        raise ValueError(f"expected {name} to have shape ({length},){meaning}, got {array.shape}")
    return array


def as_bias(bias, length, dtype):
    """``bias`` (None, or ``length`` values of ``dtype``) as a C-contiguous array, or None."""
    return None if bias is None else np.ascontiguousarray(check_vector(bias, "bias", length, dtype))


def check_ndim(array, ndim, name, meaning):
    if array.ndim != ndim:
        raise ValueError(f"expected {name} to be {ndim}-D {meaning}, got shape {array.shape}")


def is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real_arg(value, name, minimum=None):
    """A real number (not a bool), optionally ``>= minimum`` (NaN fails that), as a float."""
    if not is_real(value) or (minimum is not None and not value >= minimum):
        kind = "a real number" if minimum is None else f"a real number >= {minimum}"
        raise ValueError(f"expected {name} to be {kind}, got {value!r}")
    return float(value)


def int_arg(value, name, minimum):
    if not _is_int(value) or not minimum <= value <= MAX_INT_ARG:
        raise ValueError(f"expected {name} to be an int >= {minimum} (at most 2**62), got {value!r}")
    return int(value)


def check_extent(extent, what):
    """A padded extent the kernels index into must stay within MAX_EXTENT (64-bit index arithmetic)."""
    if extent > MAX_EXTENT:
        raise ValueError(f"expected {what} to be at most 3*2**61 (64-bit index arithmetic), got {extent}")


def resolve_padding(padding, kernel_size, stride, dilation, in_size):
    """Padding as (top, bottom, left, right).

    ``padding`` is an int, an (h, w) pair, ``"valid"`` (no padding) or ``"same"``: output size
    ``ceil(in / stride)``, the total padding split with the odd pixel at the bottom/right, as
    TensorFlow and ONNX's SAME_UPPER.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(f"expected padding to be an int, a pair, 'valid' or 'same', got {padding!r}")
        pads = []
        for size, k, s, d in zip(in_size, kernel_size, stride, dilation):
            total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = pair(padding, "padding", 0)
    return ph, ph, pw, pw


def conv_output_size(in_size, kernel_size, stride, pads, dilation):
    """(Hout, Wout) = floor((in + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1.

    Raises ValueError with the numbers when either is not positive.
    """
    out = []
    for axis, size, k, s, before, after, d in zip(
            ("height", "width"), in_size, kernel_size, stride, pads[0::2], pads[1::2], dilation):
        if size + before + after > MAX_EXTENT:   # (the message only then: formatting it costs a call's 1 us)
            check_extent(size + before + after, f"the padded input {axis} (input {axis} {size} + padding "
                                                f"({before}, {after}))")
        span = size + before + after - d * (k - 1) - 1
        n = span // s + 1 if span >= 0 else 0
        if n <= 0:
            raise ValueError(
                f"expected a non-empty output, got output {axis} {n} from input {axis} {size}, "
                f"padding ({before}, {after}), kernel {k}, dilation {d}, stride {s}")
        out.append(n)
    return tuple(out)


def check_out(out, shape, dtype, inputs=(), contiguous=True):
    """Check a caller-provided output array; ``inputs`` are the arrays it must not overlap.

    ``contiguous=False`` accepts any writeable layout (for functions that copy into it).
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"expected out to be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"expected out to have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"expected out to have dtype {np.dtype(dtype)}, got {out.dtype}")
    if contiguous and not out.flags.c_contiguous:
        raise ValueError("expected out to be a writeable C-contiguous array")
    if not out.flags.writeable:
        raise ValueError("expected out to be writeable")
    for array in inputs:
        if array is not None and np.may_share_memory(out, array):
            raise ValueError("expected out not to overlap an input array")
    return out


def conv_geometry(in_size, kernel_size, stride, padding, dilation):
    """Normalise a convolution's arguments: (stride, dilation, pads (t, b, l, r), (Hout, Wout))."""
    stride = pair(stride, "stride", 1)
    dilation = pair(dilation, "dilation", 1)
    pads = resolve_padding(padding, kernel_size, stride, dilation, in_size)
    return stride, dilation, pads, conv_output_size(in_size, kernel_size, stride, pads, dilation)
