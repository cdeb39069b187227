"""Layers holding NumPy weights, called like functions, in NHWC (default) or NCHW.

Each layer reports ``num_params()``, ``macs(input_shape)`` and ``output_shape(input_shape)``; state dicts
use PyTorch's names and layouts.  Modules compute inference (they start in evaluation mode), with batch
norm folded into the convolution before it and activations fused into its epilogue.
"""
from .activation import ELU, LeakyReLU, ReLU, ReLU6, Sigmoid, Tanh, activation_layer
from .blocks import BasicBlock, ConvBNAct, DepthwiseSeparable, InvertedResidual
from .container import Sequential
from .conv import Conv2d, ConvTranspose2d, DeformConv2d
from .linear import Dropout, Flatten, Linear
from .module import Module
from .parameter import Parameter
from .norm import BatchNorm2d
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = [
    "AvgPool2d", "BasicBlock", "BatchNorm2d", "Conv2d", "ConvBNAct", "ConvTranspose2d", "DeformConv2d",
    "DepthwiseSeparable", "Dropout", "ELU", "Flatten", "GlobalAvgPool2d", "InvertedResidual", "LeakyReLU",
    "Linear", "MaxPool2d", "Module", "Parameter", "ReLU", "ReLU6", "Sequential", "Sigmoid", "Tanh", "activation_layer",
]
