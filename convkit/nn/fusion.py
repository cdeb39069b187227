"""Inference fusion: a convolution, the batch norm after it and the activation after that, as one call.

Batch norm is folded into the convolution's weight and bias (:func:`convkit.fold_batch_norm`) and the
activation applied in the convolution's epilogue (``conv2d(..., activation=)``), so a conv-BN-ReLU
triple reads and writes its activations once; a block's shortcut is added in the same epilogue (the
steps take ``residual=``).  Containers build their fused steps once and rebuild them when parameters are
assigned or loaded (not when arrays are modified in place).
"""
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
