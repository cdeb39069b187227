"""Fully connected layer on convkit's GEMM, bias and activation applied to each tile before its store."""
import math

import numpy as np

from ._alloc import empty as aligned_empty
from ._kernels import gemm as _gemm
from ._kernels import gemv as _gemv
from ._threads import resolve_num_threads
from ._validation import as_bias, as_float_array, check_ndim
from .activations import resolve_activation


def linear(x, weight, bias=None, *, activation=None, num_threads=None):
    """``y = act(x @ weight.T + bias)`` with PyTorch's weight layout.

    Parameters
    ----------
    x : ndarray (..., in_features), float32 or float64
    weight : ndarray (out_features, in_features), x's dtype (``torch.nn.Linear.weight``)
    bias : ndarray (out_features,), optional
    activation : None, a name or a (name, parameter) pair, as ``resolve_activation`` takes
        Applied with the bias to each tile of the GEMM before it is stored.
    num_threads : int, optional
        OpenMP threads; ``None`` uses :func:`convkit.get_num_threads`.

    Returns a C-contiguous ``(..., out_features)`` array.
    """
    x, weight = linear_args(x, weight)
    return linear_packed(x, weight, bias, activation, num_threads, None)


#: Rows of x up to which linear runs as dot products of x's rows with the weight's (gemv.gemv_into: no
#: packing) rather than through the GEMM: one row always (1280 -> 1000, 1 thread, AMD EPYC Zen 4, machine
#: shared: 1.1-1.6x the GEMM on a weight packed ahead), up to GEMV_MAX_ROWS when the GEMM would have to
#: pack the weight in the call (a packed weight makes the GEMM level at 2 rows and faster from 3).
GEMV_MAX_ROWS = 4


def uses_gemv(rows, in_features, packed_weight):
    """Whether ``linear_packed`` multiplies ``rows`` rows by dot products (``packed_weight``: whether a
    packed weight is at hand)."""
    return in_features > 0 and 0 < rows <= (1 if packed_weight else GEMV_MAX_ROWS)


def pack_weight(weight, num_threads=None):
    """``weight`` (out_features, in_features) packed once into the GEMM's B panels, for
    :func:`linear_packed`: a copy, which does not follow later changes to ``weight``."""
    return _gemm.pack_b(weight.T, resolve_num_threads(num_threads))


def linear_packed(x, weight, bias, activation, num_threads, packed):
    """:func:`linear` on checked operands (``linear_args``), with ``packed = pack_weight(weight)`` (or
    None: packed in the call if the GEMM runs, see ``uses_gemv``).  ``nn.Linear`` keeps one per weight
    version in evaluation mode: packing the transposed 512 x 1000 weight was about a fifth of a batch-64
    call."""
    out_features, in_features = weight.shape
    bias = as_bias(bias, out_features, x.dtype)
    code, alpha = resolve_activation(activation)
    nt = resolve_num_threads(num_threads)
    rows = math.prod(x.shape[:-1])    # (reshape(-1, ...) fails on size 0)
    y = aligned_empty((rows, out_features), x.dtype)
    if uses_gemv(rows, in_features, packed is not None):
        _gemv.gemv_into(x.reshape(rows, in_features), weight, y, bias, code, alpha, nt)
    else:
        _gemm.gemm_into(x.reshape(rows, in_features), weight.T, y, False, bias, None, code, alpha, nt,
                        packed)
    return y.reshape(x.shape[:-1] + (out_features,))


def linear_args(x, weight):
    """Checked ``x`` (..., in_features) and ``weight`` (out_features, in_features), C-contiguous."""
    if isinstance(x, np.ndarray) and x.ndim == 0:  # (as_float_array would make it 1-D)
        raise ValueError(f"expected x to be at least 1-D (..., in_features), got shape {x.shape}")
    x = as_float_array(x, "x")
    weight = as_float_array(weight, "weight", x.dtype)
    check_ndim(weight, 2, "weight", "(out_features, in_features)")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"expected x to have {weight.shape[1]} features in its last dimension "
                         f"(weight {weight.shape}), got shape {x.shape}")
    return x, weight
