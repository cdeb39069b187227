"""Moving activations and weights between convkit's layouts: the one place where NHWC/NCHW is converted.

The kernels compute in NHWC with HWIO weights; NCHW arguments (PyTorch's layout) are transposed on the way
in and the result transposed back, which is what PyTorch itself does for channels_last tensors.  A
convolution weight is ``(KH, KW, I, O)`` in the NHWC functions' convention and PyTorch's ``(O, I, KH, KW)``
for NCHW (for a transposed convolution I and O are Cout/groups and Cin, in both conventions).
"""
import numpy as np

_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_TO_NCHW = (0, 3, 1, 2)
_OIHW_TO_HWIO = (2, 3, 1, 0)
_HWIO_TO_OIHW = (3, 2, 0, 1)


def to_nhwc(x, layout):
    """A 4-D activation given in ``layout`` as a C-contiguous NHWC array (``x`` itself for NHWC)."""
    return x if layout == "NHWC" else np.ascontiguousarray(x.transpose(_NCHW_TO_NHWC))


def from_nhwc(y, layout):
    """An NHWC result as a C-contiguous array in ``layout`` (``y`` itself for NHWC)."""
    return y if layout == "NHWC" else np.ascontiguousarray(y.transpose(_NHWC_TO_NCHW))


def copy_from_nhwc(y, out, layout):
    """Write the NHWC result ``y`` into ``out``, an array in ``layout``; return ``out``."""
    out[...] = y if layout == "NHWC" else y.transpose(_NHWC_TO_NCHW)
    return out


def nhwc_shape(shape, layout):
    """An activation shape given in ``layout`` as (N, H, W, C)."""
    return tuple(shape) if layout == "NHWC" else tuple(shape[i] for i in _NCHW_TO_NHWC)


def layout_shape(n, h, w, c, layout):
    """The activation shape (N, H, W, C) as ``layout`` orders it."""
    return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


def oihw_to_hwio(weight):
    """PyTorch's ``(O, I, KH, KW)`` weight as a C-contiguous ``(KH, KW, I, O)`` array."""
    return np.ascontiguousarray(weight.transpose(_OIHW_TO_HWIO))


def hwio_to_oihw(weight):
    """A ``(KH, KW, I, O)`` weight as PyTorch's ``(O, I, KH, KW)`` (a view)."""
    return weight.transpose(_HWIO_TO_OIHW)


def conv_weight_from_hwio(weight, layout):
    """A ``(KH, KW, I, O)`` weight in ``layout``'s convention, C-contiguous (``weight`` itself for NHWC)."""
    return weight if layout == "NHWC" else np.ascontiguousarray(hwio_to_oihw(weight))


def conv_weight_to_hwio(weight, layout):
    """A convolution weight in ``layout``'s convention as ``(KH, KW, I, O)`` (``weight`` itself for NHWC)."""
    return weight if layout == "NHWC" else oihw_to_hwio(weight)
