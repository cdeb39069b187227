"""Elementwise activations on arrays of any shape, and the activation spec of fused epilogues.

Every function takes ``out=``: a writeable array of ``x``'s shape and dtype that receives the result and
is returned; ``out=x`` computes in place.  Arrays of any shape and memory order work: a C-, F- or
otherwise permuted-contiguous ``x`` (e.g. an NHWC array viewed as NCHW) is processed in one pass in
memory order, and the result (when ``out`` is None) has ``x``'s memory order; a strided ``x`` (a
slice), or an ``out`` laid out differently from ``x`` or partly overlapping it, goes through one
contiguous temporary.  The layout (NHWC/NCHW) does not matter to these functions.

Sigmoid, tanh and ELU are computed in overflow-free forms, with convkit's own vectorised exp/expm1
(within 3 units in the last place): ``sigmoid(x) = 1 / (1 + exp(-x))`` for x >= 0 and
``exp(x) / (1 + exp(x))`` for x < 0, both through ``exp(-|x|) <= 1``; ``tanh`` through
``expm1(-2|x|)``; ELU through ``expm1(min(x, 0))``, so no exponential of a positive number is ever
taken.  Sigmoid results below the smallest normal number (x < -87.3 in float32, -708.4 in float64)
are 0.  NaN propagates.
"""
import numpy as np

from ._kernels import elementwise as _ew
from ._kernels.buffers import data_address
from ._threads import resolve_num_threads
from ._validation import check_float_array, check_out, is_real, real_arg

#: Names accepted by ``resolve_activation`` (and ``activation=`` of fused layers).
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh")
# Activations that take a parameter (LeakyReLU's negative slope, ELU's alpha) and its default.
_DEFAULT_PARAM = {"leaky_relu": 0.01, "elu": 1.0}


def resolve_activation(activation):
    """An activation spec -> ``(code, alpha)`` for the kernels' ``activate`` epilogue.

    ``activation`` is None (no activation), a name from ``ACTIVATIONS``, or a ``(name, parameter)``
    pair for the parametrised ones: ``("leaky_relu", negative_slope)`` or ``("elu", alpha)``.
    Without a parameter, LeakyReLU's slope is 0.01 and ELU's alpha 1.0 (PyTorch's defaults).
    """
    if activation is None:
        return _ew.CODES["none"], 0.0
    name, param = activation, None
    if isinstance(activation, tuple) and len(activation) == 2:
        name, param = activation
    valid_name = isinstance(name, str) and name in ACTIVATIONS
    if param is None and valid_name:
        return _ew.CODES[name], _DEFAULT_PARAM.get(name, 0.0)
    if valid_name and name in _DEFAULT_PARAM and is_real(param):
        return _ew.CODES[name], float(param)
    raise ValueError(
        f"expected activation to be None, one of {', '.join(map(repr, ACTIVATIONS))}, or a (name, "
        f"parameter) pair for 'leaky_relu' or 'elu' such as ('leaky_relu', 0.2), got {activation!r}")


def relu(x, out=None, *, num_threads=None):
    """max(x, 0) elementwise."""
    return _apply(x, out, "relu", 0.0, num_threads)


def relu6(x, out=None, *, num_threads=None):
    """min(max(x, 0), 6) elementwise (MobileNetV2's activation)."""
    return _apply(x, out, "relu6", 0.0, num_threads)


def leaky_relu(x, negative_slope=0.01, out=None, *, num_threads=None):
    """x for x >= 0, negative_slope * x for x < 0."""
    return _apply(x, out, "leaky_relu", real_arg(negative_slope, "negative_slope"), num_threads)


def elu(x, alpha=1.0, out=None, *, num_threads=None):
    """x for x >= 0, alpha * (exp(x) - 1) for x < 0 (through expm1, so no overflow)."""
    return _apply(x, out, "elu", real_arg(alpha, "alpha"), num_threads)


def sigmoid(x, out=None, *, num_threads=None):
    """1 / (1 + exp(-x)) elementwise, in a form that never overflows."""
    return _apply(x, out, "sigmoid", 0.0, num_threads)


def tanh(x, out=None, *, num_threads=None):
    """tanh(x) elementwise."""
    return _apply(x, out, "tanh", 0.0, num_threads)


def _memory_order(a):
    """``a``'s elements as a 1-D view in memory order, or None when they are not one dense block."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    axes = np.argsort([-s for s in a.strides], kind="stable")
    permuted = a.transpose(axes)
    return permuted.reshape(-1) if permuted.flags.c_contiguous else None


def _apply(x, out, name, alpha, num_threads):
    check_float_array(x, "x")
    nt = resolve_num_threads(num_threads)
    if out is not None:
        check_out(out, x.shape, x.dtype, contiguous=False)
    src = _memory_order(x)
    if src is None:  # a strided view: one compacting copy (which no longer overlaps out)
        x = np.ascontiguousarray(x)
        src = x.reshape(-1)
    if out is None:
        out = np.empty_like(x)  # x's memory order
    if x.size == 0:
        return out
    code = _ew.CODES[name]
    dst = _memory_order(out) if out.strides == x.strides else None
    if dst is not None and (data_address(x) == data_address(out) or not np.may_share_memory(x, out)):
        _ew.activation(src, dst, code, alpha, nt)  # in memory order; in place when out is x
        return out
    result = np.empty(x.shape, x.dtype)  # out laid out differently, or partly overlapping x
    _ew.activation(np.ascontiguousarray(x).reshape(-1), result.reshape(-1), code, alpha, nt)
    np.copyto(out, result)
    return out
