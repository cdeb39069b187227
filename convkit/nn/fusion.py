"""Inference fusion: a convolution, the batch norm after it and the activation after that, as one call.

Batch norm is folded into the convolution's weight and bias (:func:`convkit.fold_batch_norm`) and the
activation applied in the convolution's epilogue (``conv2d(..., activation=)``), so a conv-BN-ReLU
triple reads and writes its activations once; a block's shortcut is added in the same epilogue (the
steps take ``residual=``).  Containers build their fused steps once and rebuild them when parameters are
assigned or loaded (not when arrays are modified in place).

An inverted residual block's three fused convolutions can run as one kernel
(:class:`FusedInvertedResidual`), its expanded tensors never leaving the cores' caches.
"""
import numpy as np

from .._alloc import empty as aligned_empty
from .._kernels import conv_direct as _direct
from .._kernels import depthwise as _depthwise
from .._kernels import gemm as _gemm
from .._kernels import inverted_residual as _inverted_residual
from .._threads import resolve_num_threads
from .._validation import conv_geometry
from ..normalization import fold_batch_norm
from .activation import _Activation
from .conv import Conv2d
from .norm import BatchNorm2d


def fused_conv(conv, bn=None, act=None):
    """A callable on NHWC arrays computing ``act(bn(conv(x)) + residual)`` as one convolution
    (``residual`` an optional keyword argument)."""
    weight, bias = conv.nhwc_weight(), conv.bias
    if bn is not None:
        weight, bias = fold_batch_norm(weight, bias, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                       bn.eps)
    return conv.bind(weight, bias, None if act is None else act.spec)


def fusion_plan(modules):
    """Steps (callables on internal arrays) computing ``modules`` in sequence, each Conv2d fused with a
    BatchNorm2d (in evaluation mode, with matching channels) and an activation that follow it."""
    steps, i, n = [], 0, len(modules)
    while i < n:
        m = modules[i]
        if not isinstance(m, Conv2d) or m.training:
            steps.append(m._forward)
            i += 1
            continue
        i += 1
        bn = None
        if i < n and isinstance(modules[i], BatchNorm2d) and not modules[i].training \
                and modules[i].num_features == m.out_channels:
            bn = modules[i]
            i += 1
        act = None
        if i < n and isinstance(modules[i], _Activation):
            act = modules[i]
            i += 1
        steps.append(fused_conv(m, bn, act))
    return steps


class FusedInvertedResidual:
    """``project(depthwise(expand(x))) + residual`` of three fused convolutions (``fused_conv``'s callables:
    an optional first layer, a 1x1 expansion or a KxK convolution with one group, a depthwise layer, a 1x1
    projection) as one call of the ``inverted_residual`` kernel, which keeps the expanded and depthwise
    tensors a few rows at a time in each core's cache instead of writing them out (see
    src/inverted_residual.pyx).  The weights are packed for it once, here.  An input or residual the kernel does not take as it is (another dtype, not
    C-contiguous) goes through the three steps instead."""

    def __init__(self, expand, depthwise, project):
        self.steps = [step for step in (expand, depthwise, project) if step is not None]
        self.depthwise = depthwise.conv
        channels = depthwise.conv.in_channels
        self.dtype = project.weight.dtype
        self.in_channels = channels if expand is None else expand.conv.in_channels
        self.out_channels = project.conv.out_channels
        # A first layer other than a 1x1 (MobileNetV2's 3x3 stem before its first block) runs the direct
        # kernel's tile on its packed weights; a 1x1 expansion the GEMM's.
        self.first_conv = None if expand is None or is_pointwise(expand.conv) else expand.conv
        if expand is None:
            self.expand = None
        elif self.first_conv is not None:
            self.expand = _direct.pack_weights(expand.weight, 1)
        else:
            self.expand = _gemm.pack_b(expand.weight.reshape(-1, channels))
        self.expand_bias = None if expand is None else expand.bias
        self.expand_act = (0, 0.0) if expand is None else expand._act
        self.dw_weight = _depthwise.pack_weights(depthwise.weight, channels)
        self.dw_bias = _depthwise.pack_bias(depthwise.bias, channels, 1, self.dtype)
        self.project = _gemm.pack_b(project.weight.reshape(channels, -1))
        self.acts = (depthwise._act, project._act)
        self.project_bias = project.bias
        self._geometry = {}   # input (H, W) -> (depthwise geometry, first layer's geometry or None)

    def _fits(self, a):
        return type(a) is np.ndarray and a.dtype == self.dtype and a.flags.c_contiguous

    def __call__(self, x, residual=None):
        if not (self._fits(x) and x.ndim == 4 and x.shape[3] == self.in_channels) \
                or (residual is not None and not self._fits(residual)):
            *first, last = self.steps
            for step in first:
                x = step(x)
            return last(x, residual=residual)
        geometry = self._geometry.get(x.shape[1:3])
        if geometry is None:
            geometry = self._geometry[x.shape[1:3]] = self._resolve(x.shape[1:3])
        ((sh, sw), (dh, dw), (pt, _, pl, _), (hout, wout)), first = geometry
        out = aligned_empty((x.shape[0], hout, wout, self.out_channels), self.dtype)
        (dw_act, dw_alpha), (project_act, project_alpha) = self.acts
        _inverted_residual.inverted_residual_nhwc(
            x, self.expand, self.expand_bias, *self.expand_act, self.dw_weight, self.dw_bias, dw_act, dw_alpha,
            self.project, self.project_bias, project_act, project_alpha, out, sh, sw, pt, pl, dh, dw,
            resolve_num_threads(None), residual=residual, expand_geometry=first)
        return out

    def _resolve(self, size):
        """The depthwise layer's geometry (conv_geometry's) on an input of ``size`` (H, W), and the first
        layer's as the kernel takes it (stride, top/left padding, dilation, output size), or None."""
        first = None
        if self.first_conv is not None:
            c = self.first_conv
            (sh, sw), (dh, dw), (pt, _, pl, _), size = conv_geometry(size, c.kernel_size, c.stride, c.padding,
                                                                     c.dilation)
            first = (sh, sw, pt, pl, dh, dw, *size)
        d = self.depthwise
        return conv_geometry(size, d.kernel_size, d.stride, d.padding, d.dilation), first


def is_pointwise(conv):
    """Whether ``conv`` is a plain 1x1 convolution: stride 1, no padding, one group."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.groups == 1)
