"""Activation layers: elementwise, any shape and layout.

Each has ``spec``, the ``activation=`` value of convkit's fused convolutions, so a container can fold
the activation into the convolution before it.
"""
from .. import activations as F
from .. import grad as G
from .._validation import real_arg
from .module import Module


class _Activation(Module):
    """An elementwise layer; its layout does not matter (``None``: it fits any container)."""

    def __init__(self):
        super().__init__(layout=None)

    @property
    def spec(self):
        return self.name

    def _keep_input(self, x, out):
        """In training mode keep the input for backward, so never overwrite it (``out`` is dropped)."""
        if self.training:
            self._save(x)
            return None
        return out

    def _backward(self, grad, input_grad):
        x, = self._saved()
        name, *param = self.spec if isinstance(self.spec, tuple) else (self.spec,)
        return getattr(G, name)(grad, x, *param)

    def _out_shape(self, shape):
        return shape


class ReLU(_Activation):
    name = "relu"

    def _forward(self, x, out=None):
        return F.relu(x, self._keep_input(x, out))


class ReLU6(_Activation):
    name = "relu6"

    def _forward(self, x, out=None):
        return F.relu6(x, self._keep_input(x, out))


class Sigmoid(_Activation):
    name = "sigmoid"

    def _forward(self, x, out=None):
        return F.sigmoid(x, self._keep_input(x, out))


class Tanh(_Activation):
    name = "tanh"

    def _forward(self, x, out=None):
        return F.tanh(x, self._keep_input(x, out))


class LeakyReLU(_Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = real_arg(negative_slope, "negative_slope")

    @property
    def spec(self):
        return (self.name, self.negative_slope)

    def _forward(self, x, out=None):
        return F.leaky_relu(x, self.negative_slope, self._keep_input(x, out))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(_Activation):
    name = "elu"

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = real_arg(alpha, "alpha")

    @property
    def spec(self):
        return (self.name, self.alpha)

    def _forward(self, x, out=None):
        return F.elu(x, self.alpha, self._keep_input(x, out))

    def extra_repr(self):
        return f"alpha={self.alpha}"


_BY_NAME = {cls.name: cls for cls in (ReLU, ReLU6, LeakyReLU, ELU, Sigmoid, Tanh)}


def activation_layer(activation):
    """The layer for an ``activation=`` spec (None, a name, or ``(name, parameter)``), or None."""
    F.resolve_activation(activation)  # validates, with the functional API's message
    if activation is None:
        return None
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    return _BY_NAME[name]() if param is None else _BY_NAME[name](param)
