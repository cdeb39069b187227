"""Batch normalisation with PyTorch's semantics, and folding it into a preceding convolution."""
import numpy as np

from ._kernels import batchnorm as _bn
from ._kernels import reductions as _red
from ._threads import resolve_num_threads
from ._validation import as_float_array, check_layout, check_ndim, check_vector, real_arg


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5, *, training=False,
               momentum=0.1, layout="NHWC", num_threads=None):
    """Batch normalisation over (N, H, W) per channel: ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    As ``torch.nn.functional.batch_norm``:

    - ``training=False`` (inference) uses ``running_mean``/``running_var``;
    - ``training=True`` normalises with the batch's mean and biased variance and, when the running
      arrays are given, updates them in place: ``running = (1 - momentum) * running + momentum * batch``,
      with the unbiased variance (``* count / (count - 1)``) for ``running_var``. They may be None in
      training (no running statistics tracked).

    Parameters
    ----------
    x : ndarray (N, H, W, C) for ``layout="NHWC"`` (default) or (N, C, H, W) for ``"NCHW"``
    running_mean, running_var, weight, bias : ndarray (C,) of x's dtype, or None
        ``weight``/``bias`` None mean 1 and 0.  The running arrays must be writeable in training.
    eps, momentum : float

    Statistics are accumulated in float64 (two passes: mean, then squared deviations), for both dtypes.
    Returns a new C-contiguous array in ``layout``.
    """
    return batch_norm_with_statistics(x, running_mean, running_var, weight, bias, eps, training=training,
                                      momentum=momentum, layout=layout, num_threads=num_threads)[0]


def batch_norm_with_statistics(x, running_mean, running_var, weight=None, bias=None, eps=1e-5, *,
                               training=False, momentum=0.1, layout="NHWC", num_threads=None):
    """:func:`batch_norm`, also returning the float64 per-channel ``(mean, var)`` it normalised with
    (the batch's biased ones in training): ``(y, mean, var)``.  A training step passes them to
    ``convkit.grad.batch_norm(..., statistics=(mean, var))`` instead of recomputing them from x."""
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    eps = real_arg(eps, "eps", minimum=0.0)
    momentum = real_arg(momentum, "momentum")
    channels = x.shape[3] if layout == "NHWC" else x.shape[1]
    for name, array in (("running_mean", running_mean), ("running_var", running_var)):
        if array is None and not training:
            raise ValueError(f"expected {name} to be an array in inference (training=False), got None")
        _check_channel_vector(array, name, channels, x.dtype, writeable=training)
    weight = _channel_vector(weight, "weight", channels, x.dtype)
    bias = _channel_vector(bias, "bias", channels, x.dtype)
    nt = resolve_num_threads(num_threads)
    if x.size == 0:   # nothing to normalise, no statistics to update (as PyTorch); a batch's are NaN
        if training:
            return np.empty_like(x), np.full(channels, np.nan), np.full(channels, np.nan)
        return np.empty_like(x), running_mean.astype(np.float64), running_var.astype(np.float64)
    if training:
        mean, var = _batch_statistics(x, layout, channels, nt)
        _update_running(running_mean, running_var, mean, var, momentum, x.size // max(channels, 1))
    else:
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
    scale = 1.0 / np.sqrt(var + eps)
    if weight is not None:
        scale *= weight
    shift = -mean * scale
    if bias is not None:
        shift += bias
    scale, shift = scale.astype(x.dtype), shift.astype(x.dtype)
    y = np.empty_like(x)
    if layout == "NHWC":
        rows = (x.shape[0] * x.shape[1] * x.shape[2], channels)
        _bn.affine_channels_last(x.reshape(rows), scale, shift, y.reshape(rows), nt)
    else:
        planes = (x.shape[0], channels, x.shape[2] * x.shape[3])   # (not -1: batch 0 is allowed)
        _bn.affine_channels_first(x.reshape(planes), scale, shift, y.reshape(planes), nt)
    return y, mean, var


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, weight, bias, eps=1e-5, *,
                    layout="NHWC"):
    """Fold an inference-mode batch norm into the convolution before it.

    Returns ``(folded_weight, folded_bias)`` such that ``conv2d(x, folded_weight, folded_bias)`` equals
    ``batch_norm(conv2d(x, conv_weight, conv_bias), running_mean, running_var, weight, bias, eps)``:
    ``scale = weight / sqrt(running_var + eps)`` multiplies each output channel's filter, and
    ``folded_bias = (conv_bias - running_mean) * scale + bias``.

    ``conv_weight`` is in conv2d's convention for ``layout``: HWIO ``(KH, KW, Cin/groups, Cout)`` for
    NHWC, OIHW ``(Cout, Cin/groups, KH, KW)`` for NCHW.  ``conv_bias``, ``weight`` and ``bias`` may be
    None (0, 1 and 0).  Computed in float64, returned in ``conv_weight``'s dtype.
    """
    check_layout(layout)
    conv_weight = as_float_array(conv_weight, "conv_weight")
    check_ndim(conv_weight, 4, "conv_weight", "(KH, KW, Cin/groups, Cout)" if layout == "NHWC"
               else "(Cout, Cin/groups, KH, KW)")
    eps = real_arg(eps, "eps", minimum=0.0)
    dtype = conv_weight.dtype
    cout = conv_weight.shape[3] if layout == "NHWC" else conv_weight.shape[0]
    for name, array in (("running_mean", running_mean), ("running_var", running_var)):
        if array is None:
            raise ValueError(f"expected {name} to be an array, got None")
    conv_bias, running_mean, running_var, weight, bias = (
        _channel_vector(a, name, cout, dtype) for name, a in (
            ("conv_bias", conv_bias), ("running_mean", running_mean), ("running_var", running_var),
            ("weight", weight), ("bias", bias)))
    scale = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    if weight is not None:
        scale *= weight
    folded_bias = -running_mean * scale
    if conv_bias is not None:
        folded_bias += conv_bias * scale
    if bias is not None:
        folded_bias += bias
    per_filter = scale if layout == "NHWC" else scale[:, None, None, None]
    return (conv_weight * per_filter).astype(dtype), folded_bias.astype(dtype)


def _check_channel_vector(array, name, channels, dtype, writeable=False):
    """A per-channel array must be an ndarray of ``dtype`` and shape (channels,) (None passes)."""
    if array is None:
        return
    check_vector(array, name, channels, dtype, ", one value per channel")
    if writeable and not array.flags.writeable:
        raise ValueError(f"expected {name} to be writeable in training, to update it in place")


def _channel_vector(array, name, channels, dtype):
    """A checked per-channel array as float64 (None stays None)."""
    _check_channel_vector(array, name, channels, dtype)
    return None if array is None else array.astype(np.float64)


def _batch_statistics(x, layout, channels, nt):
    """Per-channel mean and biased variance over (N, H, W), in float64."""
    count = x.size // max(channels, 1)
    if count <= 1:
        raise ValueError(f"expected more than 1 value per channel in training, got x of shape {x.shape}")
    sums = np.empty((x.shape[0] if layout == "NCHW" else 1, channels))
    if layout == "NHWC":
        rows = x.reshape(1, -1, channels)
        _red.row_sums(rows, None, sums, nt)
        mean = sums[0] / count
        _red.row_sums(rows, mean, sums, nt)
        return mean, sums[0] / count
    planes = x.reshape(x.shape[0], channels, -1)
    _red.plane_sums(planes, None, sums, nt)
    mean = sums.sum(axis=0) / count
    _red.plane_sums(planes, mean, sums, nt)
    return mean, sums.sum(axis=0) / count


def _update_running(running_mean, running_var, mean, var, momentum, count):
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += (momentum * mean).astype(running_mean.dtype)
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += (momentum * var * count / (count - 1)).astype(running_var.dtype)
