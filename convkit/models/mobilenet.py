"""MobileNetV2 with torchvision's architecture and state-dict keys."""
import numpy as np

from ..nn.blocks import ConvBNAct, InvertedResidual, fuse_into_block
from ..nn.container import Sequential, backward_in_reverse, forward_in_order
from ..nn.init import generator
from ..nn.linear import Dropout, Linear
from ..nn.module import Module
from ..nn.pooling import GlobalAvgPool2d
from ._init import torchvision_init

# torchvision's MobileNetV2 table: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(Module):
    """torchvision's MobileNetV2 (width 1.0): ``features`` (a 3x3 stem, 17 inverted residual blocks, a
    1x1 to 1280 channels), global average pooling, ``classifier`` (dropout, linear)."""

    def __init__(self, num_classes=1000, *, layout="NHWC", dtype=np.float32, rng=0):
        super().__init__(layout)
        rng = generator(rng)
        kw = dict(layout=layout, dtype=dtype, rng=rng)
        features = [ConvBNAct(3, 32, 3, 2, activation="relu6", **kw)]
        inp = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t, **kw))
                inp = c
        features.append(ConvBNAct(inp, 1280, 1, activation="relu6", **kw))
        self.features = Sequential(*features)
        self.pool = GlobalAvgPool2d(layout=layout)
        self.classifier = Sequential(Dropout(0.2), Linear(1280, num_classes, dtype=dtype, rng=rng))
        torchvision_init(self, rng, linear_std=0.01)

    def _stages(self):
        return self.features, self.pool, self.classifier

    def _forward(self, x):
        self._save()
        if self.training:
            return forward_in_order(self._stages(), x)
        # In evaluation mode the stem and the first block run as one kernel (nn.blocks.fuse_into_block).
        head = self._cached("head", lambda: fuse_into_block(self.features[0], self.features[1]))
        if head is None:
            return forward_in_order(self._stages(), x)
        rest = self._cached("rest", lambda: (*list(self.features)[2:], self.pool, self.classifier))
        return forward_in_order(rest, head(x))

    def _backward(self, grad, input_grad):
        self._saved()
        return backward_in_reverse(self._stages(), grad, input_grad)

    def _trace(self, shape, visit):
        for m in self._stages():
            shape = m._trace(shape, visit)
        return shape


def mobilenet_v2(layout="NHWC", *, num_classes=1000, dtype=np.float32, rng=0):
    """MobileNetV2 (torchvision's ``mobilenet_v2``): 3,504,872 parameters, 0.3 GMACs at 224x224.

    Weights are initialised as torchvision does, from ``rng``; ``load_state_dict`` takes torchvision's.
    Input (N, 224, 224, 3) for NHWC or (N, 3, 224, 224) for NCHW; output logits (N, num_classes).
    """
    return MobileNetV2(num_classes, layout=layout, dtype=dtype, rng=rng)
