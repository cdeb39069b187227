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
            return array
        array = array.view(np.ndarray)
        return array[()] if return_scalar else array

    def accumulate_grad(self, grad):
        """Add ``grad`` to ``self.grad`` (which takes ``grad`` itself, owned, when it is None)."""
        if grad.shape != self.shape or grad.dtype != self.dtype:
            raise ValueError(f"expected a gradient of shape {self.shape} and dtype {self.dtype}, got "
                             f"{grad.shape} {grad.dtype}")
        if self.grad is None:
            self.grad = np.ascontiguousarray(grad)
        else:
            self.grad += grad
