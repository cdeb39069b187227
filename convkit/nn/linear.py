"""Linear, Flatten and Dropout: the classifier end of a network."""
import numpy as np

from .._layout import from_nhwc
from ..linear import linear
from .._validation import int_arg
from .init import float_dtype, generator, kaiming_uniform
from .module import Module


class Linear(Module):
    """``torch.nn.Linear``: weight (out_features, in_features) in every layout, over the last axis."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=0):
        super().__init__(layout=None)
        self.in_features = int_arg(in_features, "in_features", 1)
        self.out_features = int_arg(out_features, "out_features", 1)
        dtype = float_dtype(dtype)
        rng = generator(rng)
        self.register_parameter("weight", kaiming_uniform(rng, (out_features, in_features), in_features,
                                                          dtype))
        if bias:
            self.register_parameter("bias", kaiming_uniform(rng, (out_features,), in_features, dtype))
        else:
            self.bias = None

    @property
    def dtype(self):
        return self.weight.dtype

    def _forward(self, x):
        return linear(x, self.weight, self.bias)

    def _out_shape(self, shape):
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"expected input with {self.in_features} features in its last axis, got "
                             f"shape {shape}")
        return (*shape[:-1], self.out_features)

    def _macs(self, in_shape, out_shape):
        return int(np.prod(in_shape, dtype=np.int64)) * self.out_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """(N, ...) -> (N, features), in the layout's element order: an NCHW layer flattens (C, H, W) as
    ``torch.flatten(x, 1)``, an NHWC one (H, W, C) as Keras does.  The two agree when H = W = 1."""

    def _forward(self, x):
        if x.ndim == 4 and self.layout == "NCHW" and x.shape[1] * x.shape[2] > 1:
            x = from_nhwc(x, self.layout)
        return x.reshape(x.shape[0], -1)

    def _out_shape(self, shape):
        return shape[0], int(np.prod(shape[1:], dtype=np.int64))

    def extra_repr(self):
        return f"layout={self.layout!r}"


class Dropout(Module):
    """``torch.nn.Dropout`` at inference: the identity.  It keeps torchvision's layer indices (and so its
    state-dict keys, e.g. ``classifier.1.weight``); convkit computes no gradients, so it never drops."""

    def __init__(self, p=0.5):
        super().__init__(layout=None)
        self.p = float(p)

    def _forward(self, x):
        return x

    def _out_shape(self, shape):
        return shape

    def extra_repr(self):
        return f"p={self.p}"
