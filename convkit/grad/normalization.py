"""Gradient of :func:`convkit.batch_norm` in training mode (the batch's own statistics)."""
import numpy as np

from .._kernels import batchnorm_grad as _bng
from .._threads import resolve_num_threads
from .._validation import as_float_array, check_layout, check_ndim, real_arg
from ..normalization import _batch_statistics, _channel_vector
from ._checks import as_grad_output


def batch_norm(grad_output, x, weight=None, eps=1e-5, *, statistics=None, layout="NHWC", num_threads=None):
    """Gradients of ``batch_norm(x, ..., weight, bias, eps, training=True)``.

    Returns ``(grad_x, grad_weight, grad_bias)`` as PyTorch computes them: with ``xhat`` the
    normalised input and M values per channel, ``grad_bias = sum(g)``, ``grad_weight = sum(g * xhat)``,
    ``grad_x = weight / std * (g - grad_bias / M - xhat * grad_weight / M)``, sums over (N, H, W)
    accumulated in float64.  ``weight`` None means 1 (grad_weight is still returned).

    ``statistics``: the forward's batch ``(mean, var)`` (per channel, biased variance, as
    :func:`convkit.normalization.batch_norm_with_statistics` returns them), which spares the two passes over x that
    recompute them (PyTorch's backward likewise takes the forward's saved mean and inverse std).
    """
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    eps = real_arg(eps, "eps", minimum=0.0)
    channels = x.shape[3] if layout == "NHWC" else x.shape[1]
    weight = _channel_vector(weight, "weight", channels, x.dtype)
    g = as_grad_output(grad_output, x.shape, x.dtype)
    nt = resolve_num_threads(num_threads)
    if x.size == 0:   # the forward of nothing is nothing: zero sums, as PyTorch's autograd gives
        return np.empty_like(x), np.zeros(channels, x.dtype), np.zeros(channels, x.dtype)
    if statistics is None:
        mean, var = _batch_statistics(x, layout, channels, nt)
    else:
        mean, var = (_statistic(v, name, channels) for v, name in zip(statistics, ("mean", "var")))
    count = x.size // max(channels, 1)
    sums = np.empty((2, channels))
    if layout == "NHWC":
        rows = (count, channels)
        _bng.grad_sums_channels_last(g.reshape(rows), x.reshape(rows), mean, sums, nt)
    else:
        planes = (x.shape[0], channels, x.shape[2] * x.shape[3])
        _bng.grad_sums_channels_first(g.reshape(planes), x.reshape(planes), mean, sums, nt)
    invstd = 1.0 / np.sqrt(var + eps)
    grad_bias, grad_weight = sums[0], sums[1] * invstd
    k = invstd if weight is None else weight * invstd
    a = k
    b = -k * invstd * grad_weight / count
    d = -k * grad_bias / count - b * mean
    a, b, d = (v.astype(x.dtype) for v in (a, b, d))
    dx = np.empty_like(x)
    if layout == "NHWC":
        _bng.affine2_channels_last(g.reshape(rows), x.reshape(rows), a, b, d, dx.reshape(rows), nt)
    else:
        _bng.affine2_channels_first(g.reshape(planes), x.reshape(planes), a, b, d, dx.reshape(planes), nt)
    return dx, grad_weight.astype(x.dtype), grad_bias.astype(x.dtype)


def _statistic(value, name, channels):
    value = np.asarray(value, dtype=np.float64)
    if value.shape != (channels,):
        raise ValueError(f"expected statistics' {name} of shape ({channels},), got {value.shape}")
    return value
