"""torchvision's initialisation of its classification networks, drawn from a NumPy Generator."""
import math

from ..nn.conv import Conv2d
from ..nn.init import normal
from ..nn.linear import Linear


def torchvision_init(model, rng, linear_std=None):
    """Conv weights ~ N(0, 2 / fan_out) (``kaiming_normal_(mode="fan_out")``), conv biases 0; batch norm
    keeps 1 and 0; Linear layers keep PyTorch's default, or ~ N(0, linear_std) with bias 0 when given
    (MobileNetV2 uses 0.01)."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            out_channels, _, kh, kw = shape = m._to_torch("weight", m.weight).shape
            m.weight = m._from_torch("weight", normal(rng, shape, math.sqrt(2.0 / (out_channels * kh * kw)),
                                                      m.dtype))
            if m.bias is not None:
                m.bias = m.bias * 0
        elif isinstance(m, Linear) and linear_std is not None:
            m.weight = normal(rng, m.weight.shape, linear_std, m.dtype)
            if m.bias is not None:
                m.bias = m.bias * 0
    return model
