"""The basic modules networks are built from, with torchvision's structure and parameter names."""
import numpy as np

from .._validation import pair
from .activation import ReLU, activation_layer
from .container import Sequential, backward_in_reverse, forward_in_order
from .conv import Conv2d, _BoundConv2d
from .fusion import FusedInvertedResidual, fused_conv
from .init import generator
from .module import Module
from .norm import BatchNorm2d


class ConvBNAct(Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation: torchvision's ``Conv2dNormActivation``, so its
    layers are named ``0``, ``1``, ``2``.  ``padding=None`` keeps the size at stride 1
    (``(kernel_size - 1) // 2 * dilation``); ``activation`` is a spec as :func:`convkit.conv2d`'s
    (``None`` for none).  In evaluation mode it runs as one convolution (BN folded, activation fused)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 dilation=1, activation="relu", *, layout="NHWC", dtype=np.float32, rng=0):
        if padding is None:
            (kh, kw), (dh, dw) = pair(kernel_size, "kernel_size", 1), pair(dilation, "dilation", 1)
            padding = ((kh - 1) // 2 * dh, (kw - 1) // 2 * dw)
        layers = [Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias=False, layout=layout, dtype=dtype, rng=generator(rng)),
                  BatchNorm2d(out_channels, layout=layout, dtype=dtype)]
        act = activation_layer(activation)
        super().__init__(*layers, *([act] if act is not None else []))


class DepthwiseSeparable(Sequential):
    """MobileNet's block: a depthwise 3x3 ConvBNAct (groups = channels; it mixes space) then a pointwise
    1x1 ConvBNAct (it mixes channels)."""

    def __init__(self, in_channels, out_channels, stride=1, activation="relu", *, layout="NHWC",
                 dtype=np.float32, rng=0):
        rng = generator(rng)
        kw = dict(activation=activation, layout=layout, dtype=dtype, rng=rng)
        super().__init__(ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, **kw),
                         ConvBNAct(in_channels, out_channels, 1, **kw))


class InvertedResidual(Module):
    """MobileNetV2's block (torchvision's ``InvertedResidual``): a 1x1 expansion by ``expand_ratio``
    (omitted when 1) with ReLU6, a depthwise 3x3 with ReLU6, a linear 1x1 projection with batch norm, and
    the input added back when the stride is 1 and the channels match.  Layers live in ``conv``.  In
    evaluation mode the add runs in the epilogue of the projection (``conv2d(..., residual=x)``)."""

    def __init__(self, inp, oup, stride, expand_ratio, *, layout="NHWC", dtype=np.float32, rng=0):
        super().__init__(layout)
        if stride not in (1, 2):
            raise ValueError(f"expected stride to be 1 or 2, got {stride!r}")
        rng = generator(rng)
        kw = dict(layout=layout, dtype=dtype, rng=rng)
        hidden = int(round(inp * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers = [ConvBNAct(inp, hidden, 1, activation="relu6", **kw)] if expand_ratio != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation="relu6", **kw),
                   Conv2d(hidden, oup, 1, bias=False, **kw),
                   BatchNorm2d(oup, layout=layout, dtype=dtype)]
        self.conv = Sequential(*layers)

    def _forward(self, x):
        if self.training:
            self._save()
            y = self.conv._forward(x)
            if self.use_res_connect:
                y += x
            return y
        residual = x if self.use_res_connect else None
        fused = self._cached("fused", self._fused_kernel)
        if fused is not None:
            return fused(x, residual=residual)
        *steps, last = self.conv._plan()
        y = x
        for step in steps:
            y = step(y)
        if isinstance(last, _BoundConv2d):
            return last(y, residual=residual)
        y = last(y)
        if residual is not None:
            y += residual
        return y

    def _fused_kernel(self):
        """The block as one :class:`FusedInvertedResidual` call, or None when a layer is not the plain
        one (an ``algo`` set, a module in training mode)."""
        *head, project, bn = self.conv
        steps = [m._plan() for m in head] + [[fused_conv(project, bn)]]
        convs = [m[0] for m in head] + [project]
        if not all(len(p) == 1 and isinstance(p[0], _BoundConv2d) for p in steps) \
                or any(c.algo != "auto" or c.training for c in convs) or bn.training:
            return None
        bound = [p[0] for p in steps]
        return FusedInvertedResidual(None if len(bound) == 2 else bound[0], *bound[-2:])

    def _backward(self, grad, input_grad):
        self._saved()
        g = self.conv._backward(grad, input_grad)
        return g + grad if self.use_res_connect and input_grad else g

    def _trace(self, shape, visit):
        return self.conv._trace(shape, visit)


class BasicBlock(Module):
    """ResNet-18/34's block (torchvision's ``BasicBlock``): conv3x3-BN-ReLU, conv3x3-BN, plus the
    shortcut, then ReLU.  The shortcut is the input, or ``downsample`` (1x1 conv with the stride, then BN)
    when the stride is not 1 or the channels change, as torchvision's ``_make_layer`` builds it.  In
    evaluation mode the shortcut's add and the last ReLU run in the epilogue of ``conv2``."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, *, layout="NHWC", dtype=np.float32, rng=0):
        super().__init__(layout)
        rng = generator(rng)
        kw = dict(layout=layout, dtype=dtype)
        self.conv1 = Conv2d(inplanes, planes, 3, stride, 1, bias=False, rng=rng, **kw)
        self.bn1 = BatchNorm2d(planes, **kw)
        self.relu = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=False, rng=rng, **kw)
        self.bn2 = BatchNorm2d(planes, **kw)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = Sequential(Conv2d(inplanes, planes, 1, stride, bias=False, rng=rng, **kw),
                                         BatchNorm2d(planes, **kw))
        self.stride = stride

    def _forward(self, x):
        identity = x if self.downsample is None else self.downsample._forward(x)
        if not self.training:
            conv1, conv2 = self._cached("plan", lambda: (fused_conv(self.conv1, self.bn1, self.relu),
                                                         fused_conv(self.conv2, self.bn2, self.relu)))
            return conv2(conv1(x), residual=identity)
        self._save()
        out = forward_in_order(self._main_path(), x)
        out += identity
        return self.relu._forward(out, out)  # in training the ReLU keeps ``out`` and writes a new array

    def _main_path(self):
        return self.conv1, self.bn1, self.relu, self.conv2, self.bn2

    def _backward(self, grad, input_grad):
        self._saved()
        grad = self.relu._backward(grad, True)  # the shared ReLU's last use in forward comes first
        g = backward_in_reverse(self._main_path(), grad, input_grad)
        if self.downsample is not None:
            grad = self.downsample._backward(grad, input_grad)
        return g + grad if input_grad else None

    def _trace(self, shape, visit):
        out = shape
        for m in self._main_path():
            out = m._trace(out, visit)
        if self.downsample is not None:
            self.downsample._trace(shape, visit)
        return self.relu._trace(out, visit)


def fuse_into_block(first, block):
    """``first`` (a ConvBNAct with one group) then ``block`` (an InvertedResidual without expansion or
    shortcut: MobileNetV2's stem and first block) as one :class:`FusedInvertedResidual` call whose first
    layer is ``first``'s convolution, so that its output, the largest activation of the network, exists
    only a few rows at a time; None when they do not qualify (another structure, training mode, an
    ``algo`` set)."""
    if not isinstance(first, ConvBNAct) or not isinstance(block, InvertedResidual) or block.use_res_connect \
            or len(block.conv) != 3:
        return None
    fused, plan = block._cached("fused", block._fused_kernel), first._plan()
    conv = first[0]
    if fused is None or len(plan) != 1 or not isinstance(plan[0], _BoundConv2d) or conv.groups != 1 \
            or conv.algo != "auto" or any(m.training for m in first):
        return None
    return FusedInvertedResidual(plan[0], *fused.steps)
