"""Gradients of the elementwise activations, from the forward input ``x``.

``grad_x = grad_output * act'(x)`` with PyTorch's values at the kinks: relu and relu6 pass nothing at
x = 0 (and x = 6), leaky_relu and elu take their negative branch at x = 0.  Shapes are free (any ndim);
``grad_output`` must have x's shape.  Results are C-contiguous arrays of x's shape and dtype.
"""
import numpy as np

from .._kernels import elementwise as _ew
from .._kernels import elementwise_grad as _ewg
from .._threads import resolve_num_threads
from .._validation import as_float_array, real_arg
from ._checks import as_grad_output


def relu(grad_output, x, *, num_threads=None):
    """``grad_output`` where x > 0, else 0."""
    return _backward(grad_output, x, "relu", 0.0, num_threads)


def relu6(grad_output, x, *, num_threads=None):
    """``grad_output`` where 0 < x < 6, else 0."""
    return _backward(grad_output, x, "relu6", 0.0, num_threads)


def leaky_relu(grad_output, x, negative_slope=0.01, *, num_threads=None):
    """``grad_output`` where x > 0, ``negative_slope * grad_output`` elsewhere."""
    return _backward(grad_output, x, "leaky_relu", real_arg(negative_slope, "negative_slope"), num_threads)


def elu(grad_output, x, alpha=1.0, *, num_threads=None):
    """``grad_output`` where x > 0, ``alpha * exp(x) * grad_output`` elsewhere."""
    return _backward(grad_output, x, "elu", real_arg(alpha, "alpha"), num_threads)


def sigmoid(grad_output, x, *, num_threads=None):
    """``grad_output * s * (1 - s)`` with ``s = sigmoid(x)``."""
    return _backward(grad_output, x, "sigmoid", 0.0, num_threads)


def tanh(grad_output, x, *, num_threads=None):
    """``grad_output * (1 - tanh(x)**2)``."""
    return _backward(grad_output, x, "tanh", 0.0, num_threads)


def _backward(grad_output, x, name, alpha, num_threads):
    x = as_float_array(x, "x")
    g = as_grad_output(grad_output, x.shape, x.dtype)
    dx = np.empty_like(x)
    _ewg.activation_backward(g.reshape(-1), x.reshape(-1), dx.reshape(-1), _ew.CODES[name], alpha,
                             resolve_num_threads(num_threads))
    return dx
