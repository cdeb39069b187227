"""The direct kernels for grouped convolution with few channels per group, behind conv2d(algo="direct").

- depthwise (groups == input channels, channel multiplier Cout/Cin >= 1): ``src/depthwise.pyx``,
  vectorised over contiguous channels, output channel c*m + k reading input channel c (PyTorch's rule);
- grouped with fewer output channels per group than the general direct kernel's register block
  (ResNeXt's 4 per group): ``src/conv_grouped.pyx``, groups as vector lanes.

Arguments are already validated by :func:`convkit.conv.conv2d`; x is NHWC, w HWIO, y the NHWC output.
"""
import numpy as np

from ._kernels import conv_direct as _direct
from ._kernels import conv_grouped as _grouped
from ._kernels import depthwise as _depthwise


def grouped_direct_kernel(in_channels, out_channels, groups, dtype):
    """The kernel ``conv2d(algo="direct")`` uses for this grouping: a function, or None for the general one.

    Depthwise (every group one input channel) -> :func:`depthwise_direct`.  Fewer output channels per
    group than the general kernel's register block (16 float32, 8 float64), in at least one vector of
    groups (8 float32, 4 float64) -> :func:`grouped_direct`, which fills the vector lanes with groups
    instead of leaving most of a block idle.  Measured (3x3, 28x28, 1 thread, float32): 1.2x faster than
    the general kernel with 8 groups of 8 channels, 1.35x with 16 of 8, 2.9x with 32 of 4; with 2 or 4
    groups (lanes idle) the general kernel is 2-3x faster.
    """
    if groups == 1:
        return None
    if in_channels == groups:
        return depthwise_direct
    if out_channels // groups < _direct.block_width(dtype) and groups >= _grouped.lanes(dtype):
        return grouped_direct
    return None


def direct_workspace_bytes(x_shape, kernel_size, dilation, groups, out_channels, num_threads, dtype):
    """Bytes ``conv2d(algo="direct")`` allocates besides the output: for the grouped kernel, each
    thread's ring of repacked input rows ((KH-1)*dilation + 1 rows, zero-padded to whole blocks of
    groups); 0 for the depthwise kernel and the general one."""
    n, h, w, c = x_shape
    if grouped_direct_kernel(c, out_channels, groups, dtype) is not grouped_direct:
        return 0
    lanes = _grouped.lanes(dtype)
    row = w * -(-groups // lanes) * lanes * (c // groups) * np.dtype(dtype).itemsize
    return num_threads * _grouped.ring_rows(kernel_size[0], dilation[0]) * row


def depthwise_direct(x, w, bias, act, stride, pads, dilation, groups, y, nt):
    c = x.shape[3]
    multiplier = w.shape[3] // c
    _depthwise.depthwise_nhwc(x, _depthwise.pack_weights(w, c),
                              _depthwise.pack_bias(bias, c, multiplier, x.dtype), y,
                              stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1],
                              *act, nt)


def grouped_direct(x, w, bias, act, stride, pads, dilation, groups, y, nt):
    _grouped.grouped_nhwc(x, _grouped.pack_weights(w, groups), bias, y, groups, stride[0], stride[1],
                          pads[0], pads[2], dilation[0], dilation[1], *act, nt)
