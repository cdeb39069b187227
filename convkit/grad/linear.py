"""Gradient of :func:`convkit.linear`."""
import math

import numpy as np

from .._kernels import gemm as _gemm
from .._kernels import reductions as _red
from .._threads import resolve_num_threads
from ..linear import linear_args
from ._checks import as_grad_output


def linear(grad_output, x, weight, *, num_threads=None):
    """Gradients of ``y = x @ weight.T + bias``: returns ``(grad_x, grad_weight, grad_bias)``.

    ``x`` is ``(..., in_features)``, ``weight`` ``(out_features, in_features)``, ``grad_output``
    ``(..., out_features)``.  ``grad_x = grad_output @ weight``, ``grad_weight = grad_output^T @ x``
    (over all leading dimensions), ``grad_bias`` = grad_output summed over them (in float64).
    """
    x, weight = linear_args(x, weight)
    out_features, in_features = weight.shape
    g = as_grad_output(grad_output, x.shape[:-1] + (out_features,), x.dtype)
    rows = math.prod(x.shape[:-1])
    g2, x2 = g.reshape(rows, out_features), x.reshape(rows, in_features)
    nt = resolve_num_threads(num_threads)
    grad_x = np.empty((rows, in_features), x.dtype)
    grad_weight = np.empty((out_features, in_features), x.dtype)
    _gemm.gemm_into(g2, weight, grad_x, num_threads=nt)
    _gemm.gemm_into(g2.T, x2, grad_weight, num_threads=nt)
    sums = np.empty((1, out_features))
    _red.row_sums(g2.reshape(1, rows, out_features), None, sums, nt)
    return grad_x.reshape(x.shape), grad_weight, sums[0].astype(x.dtype)
