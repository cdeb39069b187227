"""Gradients of max_pool2d and avg_pool2d (same arguments as the forward, grad_output and x first)."""
import numpy as np

from .._kernels import pooling_grad as _pg
from .._layout import from_nhwc, layout_shape, to_nhwc
from .._threads import resolve_num_threads
from ..pooling import _prepare
from ._checks import as_grad_output


def max_pool2d(grad_output, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               layout="NHWC", num_threads=None):
    """Gradient of :func:`convkit.max_pool2d` with respect to ``x``.

    Each output's gradient goes to the tap PyTorch's CPU kernel records as the window's maximum: the
    first maximal value in scan order (a tie goes to the earlier tap), or the last NaN.
    """
    x, nhwc, (k, s, p, d, out_hw) = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode, layout)
    n, c = nhwc.shape[0], nhwc.shape[3]
    g = to_nhwc(as_grad_output(grad_output, layout_shape(n, *out_hw, c, layout), x.dtype), layout)
    dx = np.empty_like(nhwc)
    _pg.max_pool_backward_nhwc(nhwc, g, dx, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1],
                               resolve_num_threads(num_threads))
    return from_nhwc(dx, layout)


def avg_pool2d(grad_output, x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, *, layout="NHWC", num_threads=None):
    """Gradient of :func:`convkit.avg_pool2d` with respect to ``x`` (only its shape is used)."""
    x, nhwc, (k, s, p, _, out_hw) = _prepare(x, kernel_size, stride, padding, 1, ceil_mode, layout)
    n, c = nhwc.shape[0], nhwc.shape[3]
    g = to_nhwc(as_grad_output(grad_output, layout_shape(n, *out_hw, c, layout), x.dtype), layout)
    dx = np.empty_like(nhwc)
    _pg.avg_pool_backward_nhwc(g, dx, k[0], k[1], s[0], s[1], p[0], p[1], bool(count_include_pad),
                               resolve_num_threads(num_threads))
    return from_nhwc(dx, layout)
