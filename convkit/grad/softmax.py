"""Gradients of softmax, log_softmax and cross_entropy."""
import numpy as np

from .._kernels import softmax as _sm
from .._threads import resolve_num_threads
from .._validation import check_choice
from ..softmax import REDUCTIONS, as_rows, check_classification, from_rows
from ._checks import as_grad_output


def softmax(grad_output, y, axis=-1, *, num_threads=None):
    """Gradient of :func:`convkit.softmax` from its output ``y``: ``y * (g - sum(g * y))`` along ``axis``."""
    return _backward(grad_output, y, axis, num_threads, take_log=False)


def log_softmax(grad_output, y, axis=-1, *, num_threads=None):
    """Gradient of :func:`convkit.log_softmax` from its output ``y``: ``g - exp(y) * sum(g)``."""
    return _backward(grad_output, y, axis, num_threads, take_log=True)


def cross_entropy(logits, labels, reduction="mean", *, grad_output=None, num_threads=None):
    """Gradient of :func:`convkit.cross_entropy` with respect to the logits.

    ``(softmax(logits) - one_hot(labels))`` times ``grad_output`` (default 1: the loss itself is the
    objective), divided by N for ``reduction="mean"``.  ``grad_output`` is a scalar for "mean"/"sum"
    and ``(N,)`` for "none".  Returns an array of the logits' shape and dtype.
    """
    logits, labels = check_classification(logits, labels)
    check_choice(reduction, "reduction", REDUCTIONS)
    n = logits.shape[0]
    if reduction == "none":
        scale = np.ones(n) if grad_output is None else as_grad_output(
            grad_output, (n,), logits.dtype).astype(np.float64)
    else:
        g = 1.0 if grad_output is None else _scalar(grad_output)
        scale = np.full(n, g / n if reduction == "mean" else g)
    grad = np.empty_like(logits)
    _sm.cross_entropy_backward_rows(logits, labels, np.ascontiguousarray(scale), grad,
                                    resolve_num_threads(num_threads))
    return grad


def _scalar(grad_output):
    """A scalar grad_output (a number or a 0-d / 1-element array) as a float."""
    shape = np.shape(grad_output)
    if shape not in ((), (1,)):
        raise ValueError(f"expected grad_output to have the forward output's shape () (a scalar loss), "
                         f"got {shape}")
    return float(np.asarray(grad_output).reshape(()))


def _backward(grad_output, y, axis, num_threads, take_log):
    rows, axis = as_rows(y, axis, "y")
    g = as_grad_output(grad_output, np.shape(y), rows.dtype)
    g_rows, _ = as_rows(g, axis, "grad_output")
    dx = np.empty_like(rows)
    _sm.softmax_backward_rows(g_rows, rows, dx, take_log, resolve_num_threads(num_threads))
    return from_rows(dx, np.shape(y), axis)
