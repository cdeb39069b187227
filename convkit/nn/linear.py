"""Linear, Flatten and Dropout: the classifier end of a network."""
import math

import numpy as np

from .. import grad as G
from .._layout import from_nhwc, to_nhwc
from ..linear import linear, linear_args, linear_packed, pack_weight, uses_gemv
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
        self._save(x)
        if self.training:   # (the weight changes every step: packed in the call)
            return linear(x, self.weight, self.bias)
        x, weight = linear_args(x, self.weight)
        rows = math.prod(x.shape[:-1])
        packed = None if uses_gemv(rows, self.in_features, True) else self._cached(
            "packed", lambda: pack_weight(weight))      # (the GEMM's; a single row runs without it)
        return linear_packed(x, weight, self.bias, None, None, packed)

    def _backward(self, grad, input_grad):
        x, = self._saved()
        gx, gw, gb = G.linear(grad, x, self.weight)
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

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
        self._save(x.shape)
        if self._channels_first(x.shape):
            x = from_nhwc(x, self.layout)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))   # (not -1: an empty batch has no size to infer)

    def _channels_first(self, shape):
        return len(shape) == 4 and self.layout == "NCHW" and shape[1] * shape[2] > 1

    def _backward(self, grad, input_grad):
        shape, = self._saved()
        if self._channels_first(shape):
            n, h, w, c = shape
            return to_nhwc(grad.reshape(n, c, h, w), self.layout)
        return grad.reshape(shape)

    def _out_shape(self, shape):
        return shape[0], int(np.prod(shape[1:], dtype=np.int64))

    def extra_repr(self):
        return f"layout={self.layout!r}"


class Dropout(Module):
    """``torch.nn.Dropout``: the identity in evaluation mode; in training mode each value is zeroed with
    probability ``p`` and the others scaled by ``1 / (1 - p)``, the mask drawn from ``rng`` (a Generator
    or a seed: training runs are repeatable)."""

    def __init__(self, p=0.5, *, rng=0):
        super().__init__(layout=None)
        if not 0 <= p <= 1:
            raise ValueError(f"expected p to be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = generator(rng)

    def _forward(self, x):
        if not self.training or self.p == 0:
            self._save(None)
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        scale = x.dtype.type(0 if self.p == 1 else 1 / (1 - self.p))
        mask = np.where(keep, scale, x.dtype.type(0))
        self._save(mask)
        return x * mask

    def _backward(self, grad, input_grad):
        mask, = self._saved()
        return grad if mask is None else grad * mask

    def _out_shape(self, shape):
        return shape

    def extra_repr(self):
        return f"p={self.p}"
