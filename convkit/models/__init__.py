"""Two real networks with torchvision's architectures and parameter names."""
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18

__all__ = ["MobileNetV2", "ResNet", "mobilenet_v2", "resnet18"]
