"""ResNet-18 with torchvision's architecture and state-dict keys."""
import numpy as np

from ..nn.activation import ReLU
from ..nn.blocks import BasicBlock
from ..nn.container import Sequential, backward_in_reverse, forward_in_order
from ..nn.conv import Conv2d, use_algorithm
from ..nn.fusion import fused_conv
from ..nn.init import generator
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.norm import BatchNorm2d
from ..nn.pooling import GlobalAvgPool2d, MaxPool2d
from ._init import torchvision_init


class ResNet(Module):
    """torchvision's ResNet built from :class:`~convkit.nn.BasicBlock` (``layers`` blocks per stage).

    In evaluation mode every convolution runs with its batch norm folded in and its ReLU fused.
    ``algo`` is given to every convolution that can run it (:func:`convkit.nn.conv.use_algorithm`):
    ``"winograd"`` computes the thirteen 3x3 stride-1 layers with Winograd's F(4x4,3x3) or F(2x2,3x3).
    """

    def __init__(self, layers=(2, 2, 2, 2), num_classes=1000, *, layout="NHWC", dtype=np.float32, rng=0,
                 algo="auto"):
        super().__init__(layout)
        rng = generator(rng)
        kw = dict(layout=layout, dtype=dtype)
        self.conv1 = Conv2d(3, 64, 7, 2, 3, bias=False, rng=rng, **kw)
        self.bn1 = BatchNorm2d(64, **kw)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, 2, 1, layout=layout)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(inplanes, planes, stride, rng=rng, **kw)]
            stage += [BasicBlock(planes, planes, 1, rng=rng, **kw) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", Sequential(*stage))
            inplanes = planes
        self.avgpool = GlobalAvgPool2d(layout=layout)
        self.fc = Linear(512, num_classes, dtype=dtype, rng=rng)
        torchvision_init(self, rng)
        use_algorithm(self, algo)

    def _stages(self):
        return (self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4, self.avgpool, self.fc)

    def _forward(self, x):
        if self.training:
            self._save()
            return forward_in_order(self._layers(), x)
        x = self._cached("stem", lambda: fused_conv(self.conv1, self.bn1, self.relu))(x)
        for m in self._stages():
            x = m._forward(x)
        return x

    def _layers(self):
        return self.conv1, self.bn1, self.relu, *self._stages()

    def _backward(self, grad, input_grad):
        self._saved()
        return backward_in_reverse(self._layers(), grad, input_grad)

    def _trace(self, shape, visit):
        for m in self._layers():
            shape = m._trace(shape, visit)
        return shape


def resnet18(layout="NHWC", *, num_classes=1000, dtype=np.float32, rng=0, algo="auto"):
    """ResNet-18 (torchvision's ``resnet18``): 11,689,512 parameters, 1.8 GMACs at 224x224.

    Weights are initialised as torchvision does, from ``rng`` (a Generator or a seed); load trained ones
    with ``model.load_state_dict({k: v.numpy() for k, v in tv_model.state_dict().items()})``.
    Input (N, 224, 224, 3) for NHWC or (N, 3, 224, 224) for NCHW; output logits (N, num_classes).
    ``algo="winograd"`` runs the 3x3 stride-1 layers with Winograd (see :class:`ResNet`).
    """
    return ResNet((2, 2, 2, 2), num_classes, layout=layout, dtype=dtype, rng=rng, algo=algo)
