"""Optimizers over convkit.nn parameters: SGD with PyTorch's update rule."""
import numbers

import numpy as np

from ._kernels import sgd as _sgd
from ._threads import resolve_num_threads
from .nn.module import _bump_version
from .nn.parameter import Parameter


class SGD:
    """Stochastic gradient descent, as ``torch.optim.SGD``: for each parameter ``p`` with a ``.grad``,

    ``d = grad + weight_decay * p``; with momentum, ``b = d`` on the first step and
    ``b = momentum * b + (1 - dampening) * d`` after, then ``d = d + momentum * b`` (Nesterov) or
    ``d = b``; finally ``p -= lr * d``.  Parameters without a gradient (``.grad`` None) are skipped.

    ``params`` are :class:`~convkit.nn.parameter.Parameter` arrays, e.g. ``model.parameters()``; they
    are updated in place (one fused, multithreaded pass each) and the modules' derived caches (folded
    or converted weights) are invalidated.  ``lr`` and the other settings are attributes that may be
    changed between steps; momentum buffers live in ``state`` (keyed by the parameter's position).
    """

    def __init__(self, params, lr, momentum=0, weight_decay=0, nesterov=False, *, dampening=0,
                 num_threads=None):
        self.params = list(params)
        if not self.params:
            raise ValueError("expected params to hold at least one parameter, got an empty list")
        seen = set()
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"expected params[{i}] to be a convkit.nn.Parameter (from "
                                f"module.parameters()), got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"expected every parameter once, got params[{i}] twice")
            seen.add(id(p))
        self.lr = _non_negative(lr, "lr")
        self.momentum = _non_negative(momentum, "momentum")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.dampening = _non_negative(dampening, "dampening")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"expected momentum > 0 and dampening = 0 with nesterov=True, got momentum="
                             f"{momentum!r}, dampening={dampening!r}")
        self.num_threads = num_threads
        self.state = {}

    def step(self):
        """One update of every parameter that has a gradient."""
        nt = resolve_num_threads(self.num_threads)
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = np.asarray(p.grad)
            if grad.shape != p.shape or grad.dtype != p.dtype:
                raise ValueError(f"expected params[{i}].grad to have shape {p.shape} and dtype {p.dtype}, "
                                 f"got {grad.shape} {grad.dtype}")
            buf, first = None, False
            if self.momentum != 0:
                buf = self.state.get(i)
                first = buf is None
                if first:
                    buf = self.state[i] = np.empty(p.size, p.dtype)
            _sgd.sgd_update(p.reshape(-1), np.ascontiguousarray(grad).reshape(-1), buf, self.lr,
                            self.weight_decay, self.momentum, self.dampening, first, self.nesterov, nt)
        _bump_version()  # weights changed in place: folded/converted copies are stale

    def zero_grad(self, set_to_none=True):
        """Reset the parameters' gradients: to None (PyTorch's default), or to zeros."""
        for p in self.params:
            p.grad = None if set_to_none else np.zeros(p.shape, p.dtype)


def _non_negative(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"expected {name} to be a real number >= 0, got {value!r}")
    return float(value)
