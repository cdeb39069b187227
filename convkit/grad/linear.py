"""Gradient of :func:`convkit.linear`."""
import math

import numpy as np

from .._blas import single_threaded_blas
from .._kernels import reductions as _red
from .._threads import resolve_num_threads
from .._validation import as_float_array, check_ndim
from ._checks import as_grad_output


def linear(grad_output, x, weight, *, num_threads=None):
    """Gradients of ``y = x @ weight.T + bias``: returns ``(grad_x, grad_weight, grad_bias)``.

    ``x`` is ``(..., in_features)``, ``weight`` ``(out_features, in_features)``, ``grad_output``
    ``(..., out_features)``.  ``grad_x = grad_output @ weight``, ``grad_weight = grad_output^T @ x``
    (over all leading dimensions), ``grad_bias`` = grad_output summed over them (in float64).
    """
    x = as_float_array(x, "x")
    if x.ndim == 0:
        raise ValueError(f"expected x to be at least 1-D (..., in_features), got shape {x.shape}")
    weight = as_float_array(weight, "weight", x.dtype)
    check_ndim(weight, 2, "weight", "(out_features, in_features)")
    out_features, in_features = weight.shape
    if x.shape[-1] != in_features:
        raise ValueError(f"expected x to have {in_features} features in its last dimension "
                         f"(weight {weight.shape}), got shape {x.shape}")
    g = as_grad_output(grad_output, x.shape[:-1] + (out_features,), x.dtype)
    rows = math.prod(x.shape[:-1])
    g2, x2 = g.reshape(rows, out_features), x.reshape(rows, in_features)
    with single_threaded_blas():  # see convkit._blas
        grad_x = np.matmul(g2, weight)
        grad_weight = np.matmul(g2.T, x2)
    sums = np.empty((1, out_features))
    _red.row_sums(g2.reshape(1, rows, out_features), None, sums, resolve_num_threads(num_threads))
    return grad_x.reshape(x.shape), grad_weight, sums[0].astype(x.dtype)
