"""Functional gradients of convkit's units, named after ``torch.nn.grad``.

Conventions: NHWC activations and HWIO weights by default, PyTorch's NCHW/OIHW with ``layout="NCHW"``;
``grad_output`` (the gradient of the forward's output) comes first except where ``torch.nn.grad`` puts
it third (the convolutions: ``conv2d_input(input_shape, weight, grad_output, ...)``), followed by the
forward's inputs and arguments.  A ``grad_output`` whose shape is not the forward output's raises
ValueError naming both shapes.  Every function takes ``num_threads``.

=========================  ======================================================================
conv2d_input / _weight     ``(input_shape, weight, grad_output, stride, padding, dilation, groups)``
conv2d_bias                ``(grad_output)``
conv_transpose2d_input     ``(input_shape, weight, grad_output, stride, padding, output_padding,
 / _weight                 groups, dilation)``
deform_conv2d              ``(grad_output, x, offset, weight, mask=None, stride, padding, dilation)``
                           -> ``(grad_x, grad_offset, grad_weight, grad_mask, grad_bias)``
max_pool2d, avg_pool2d     ``(grad_output, x, <the forward's arguments>)`` -> grad_x
batch_norm                 ``(grad_output, x, weight=None, eps)`` -> ``(grad_x, grad_weight, grad_bias)``
relu, relu6, sigmoid,      ``(grad_output, x[, parameter])`` -> grad_x, from the forward's input
tanh, leaky_relu, elu
linear                     ``(grad_output, x, weight)`` -> ``(grad_x, grad_weight, grad_bias)``
softmax, log_softmax       ``(grad_output, y, axis=-1)`` -> grad_x, from the forward's output
cross_entropy              ``(logits, labels, reduction="mean", *, grad_output=None)`` -> grad_logits
=========================  ======================================================================
"""
from .activations import elu, leaky_relu, relu, relu6, sigmoid, tanh
from .conv import (conv2d_bias, conv2d_input, conv2d_weight, conv_transpose2d_input,
                   conv_transpose2d_weight, weight_workspace_bytes)
from .deform import deform_conv2d
from .linear import linear
from .normalization import batch_norm
from .pooling import avg_pool2d, max_pool2d
from .softmax import cross_entropy, log_softmax, softmax

__all__ = [
    "conv2d_bias", "conv2d_input", "conv2d_weight", "conv_transpose2d_input", "conv_transpose2d_weight",
    "weight_workspace_bytes",
    "deform_conv2d", "avg_pool2d", "batch_norm", "linear", "max_pool2d",
    "elu", "leaky_relu", "relu", "relu6", "sigmoid", "tanh",
    "cross_entropy", "log_softmax", "softmax",
]
