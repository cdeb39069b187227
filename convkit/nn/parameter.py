"""Parameter: a NumPy array that carries its gradient, as ``torch.nn.Parameter`` does."""
import numpy as np


class Parameter(np.ndarray):
    """A layer's weight or bias: an ``ndarray`` with a ``grad`` attribute.

    ``grad`` is None until a backward pass accumulates into it (an array of the parameter's shape and
    dtype, in the layer's storage layout); ``Module.zero_grad()`` resets it.  Arithmetic on a Parameter
    gives plain arrays; views and copies (``.T``, ``astype``) are Parameters without a gradient.
    """

    def __new__(cls, array):
        obj = np.ascontiguousarray(array).view(cls)
        obj.grad = None
        return obj

    def __array_finalize__(self, obj):
        self.grad = None

    def __array_wrap__(self, array, context=None, return_scalar=False):
        if array is self:   # an in-place operation (p -= ...) keeps the Parameter
            _changed_in_place()
            return array
        array = array.view(np.ndarray)
        return array[()] if return_scalar else array

    def __setitem__(self, index, value):
        super().__setitem__(index, value)
        _changed_in_place()

    def fill(self, value):
        super().fill(value)
        _changed_in_place()

    def accumulate_grad(self, grad):
        """Add ``grad`` to ``self.grad`` (which takes ``grad`` itself, owned, when it is None)."""
        if grad.shape != self.shape or grad.dtype != self.dtype:
            raise ValueError(f"expected a gradient of shape {self.shape} and dtype {self.dtype}, got "
                             f"{grad.shape} {grad.dtype}")
        if self.grad is None:
            self.grad = np.ascontiguousarray(grad)
        else:
            self.grad += grad


def _changed_in_place():
    """Values written into a Parameter (``p[...] = v``, ``p -= v``, ``p.fill(v)``, also through a view
    that is a Parameter, such as ``p.T``): caches derived from parameters (packed or converted weights,
    folded batch norm) are stale.  Writes that bypass the Parameter (``np.copyto``, a plain-array view)
    are not seen: assign the array again or load a state dict."""
    from .module import _bump_version
    _bump_version()
