"""Pooling layers: MaxPool2d, AvgPool2d (PyTorch's arguments and window rules) and GlobalAvgPool2d."""
from .. import grad as G
from .._validation import pair
from ..pooling import avg_pool2d, global_avg_pool2d, max_pool2d, pool_output_size
from .module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode, layout):
        super().__init__(layout)
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", 1)
        self.padding = pair(padding, "padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        self.ceil_mode = bool(ceil_mode)

    def _out_shape(self, shape):
        n, h, w, c = shape
        hout, wout = (pool_output_size(size, k, s, p, d, self.ceil_mode) for size, k, s, p, d in zip(
            (h, w), self.kernel_size, self.stride, self.padding, self.dilation))
        return n, hout, wout, c

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}, layout={self.layout!r}")


class MaxPool2d(_Pool2d):
    """``torch.nn.MaxPool2d``: padding counts as -inf and may be at most half the kernel."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, layout="NHWC"):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, layout)

    def _forward(self, x):
        self._save(x)
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def _backward(self, grad, input_grad):
        x, = self._saved()
        return G.max_pool2d(grad, x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode)


class AvgPool2d(_Pool2d):
    """``torch.nn.AvgPool2d``, with PyTorch's divisor rules (``count_include_pad``)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
                 layout="NHWC"):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, layout)
        self.count_include_pad = bool(count_include_pad)

    def _forward(self, x):
        self._save(x)
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad)

    def _backward(self, grad, input_grad):
        x, = self._saved()
        return G.avg_pool2d(grad, x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class GlobalAvgPool2d(Module):
    """Mean over H and W: ``(N, C)`` (a classifier's input, as ``torch.flatten(adaptive_avg_pool2d(x, 1),
    1)``), or with ``keepdims=True`` ``(N, 1, 1, C)`` / ``(N, C, 1, 1)`` in the layout."""

    def __init__(self, keepdims=False, *, layout="NHWC"):
        super().__init__(layout)
        self.keepdims = bool(keepdims)

    def _forward(self, x):
        self._save(x)
        return global_avg_pool2d(x, keepdims=self.keepdims)

    def _backward(self, grad, input_grad):
        """An average pool whose one window is the whole image."""
        x, = self._saved()
        n, h, w, c = x.shape
        return G.avg_pool2d(grad.reshape(n, 1, 1, c), x, (h, w))

    def _out_shape(self, shape):
        n, _, _, c = shape
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def extra_repr(self):
        return f"keepdims={self.keepdims}, layout={self.layout!r}"
