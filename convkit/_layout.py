"""Moving activations and weights between convkit's layouts.

The kernels compute in NHWC with HWIO weights; NCHW arguments (PyTorch's layout) are transposed on the way
in and the result transposed back, which is what PyTorch itself does for channels_last tensors.
"""
import numpy as np


def to_nhwc(x, layout):
    return x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def from_nhwc(y, layout):
    return y if layout == "NHWC" else np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def nhwc_shape(shape, layout):
    """An activation shape given in ``layout`` as (N, H, W, C)."""
    n, a, b, c = shape
    return (n, a, b, c) if layout == "NHWC" else (n, b, c, a)


def layout_shape(n, h, w, c, layout):
    return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


def conv_weight_to_hwio(weight, layout):
    """(KH, KW, Cin/g, Cout) from a weight in ``layout``'s convention ((Cout, Cin/g, KH, KW) for NCHW)."""
    return weight if layout == "NHWC" else np.ascontiguousarray(weight.transpose(2, 3, 1, 0))
