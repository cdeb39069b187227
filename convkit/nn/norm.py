"""BatchNorm2d: PyTorch's parameters and buffers, over NHWC or NCHW activations."""
import numpy as np

from .. import grad as G
from ..normalization import batch_norm_with_statistics
from .._validation import int_arg
from .init import float_dtype
from .module import Module, _bump_version


class BatchNorm2d(Module):
    """``torch.nn.BatchNorm2d``: ``weight``/``bias`` parameters, ``running_mean``/``running_var``/
    ``num_batches_tracked`` buffers (the state-dict keys PyTorch uses).

    In evaluation mode (the default) it normalises with the running statistics, and containers fold it
    into the convolution before it.  In training mode (``train()``) it normalises with the batch's
    statistics and updates the running ones in place, as PyTorch does, and is never folded; its
    backward is :func:`convkit.grad.batch_norm` (the batch statistics' gradient).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *, layout="NHWC",
                 dtype=np.float32):
        super().__init__(layout)
        self.num_features = int_arg(num_features, "num_features", 1)
        self.eps = float(eps)
        self.momentum = float(momentum)
        dtype = float_dtype(dtype)
        if affine:
            self.register_parameter("weight", np.ones(num_features, dtype))
            self.register_parameter("bias", np.zeros(num_features, dtype))
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", np.zeros(num_features, dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    @property
    def dtype(self):
        return self.running_mean.dtype

    def _forward(self, x):
        y, mean, var = batch_norm_with_statistics(x, self.running_mean, self.running_var, self.weight,
                                                  self.bias, self.eps, training=self.training,
                                                  momentum=self.momentum)
        if self.training:
            self._save(x, (mean, var))
            self.num_batches_tracked += 1
            _bump_version()  # the running statistics changed: folded copies are stale
        return y

    def _backward(self, grad, input_grad):
        x, statistics = self._saved()
        gx, gw, gb = G.batch_norm(grad, x, self.weight, self.eps, statistics=statistics)
        if self.weight is not None:
            self.weight.accumulate_grad(gw)
            self.bias.accumulate_grad(gb)
        return gx

    def _out_shape(self, shape):
        if len(shape) != 4 or shape[3] != self.num_features:
            raise ValueError(f"expected input with {self.num_features} channels, got shape "
                             f"{self._shape_from_internal(shape)}")
        return shape

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, layout={self.layout!r}"
