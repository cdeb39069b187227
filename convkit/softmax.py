"""softmax, log_softmax and cross_entropy, as ``torch.nn.functional``'s, over NumPy arrays.

Computed along one axis in rows (``src/softmax.pyx``): each row is shifted by its maximum, so nothing
overflows, and sums are accumulated in float64.
"""
import numbers

import numpy as np

from ._kernels import softmax as _sm
from ._threads import resolve_num_threads
from ._validation import as_float_array, check_choice, check_ndim

REDUCTIONS = ("mean", "sum", "none")


def softmax(x, axis=-1, *, num_threads=None):
    """``exp(x) / sum(exp(x))`` along ``axis``; returns a new array of x's shape and dtype."""
    return _rows_op(x, axis, num_threads, take_log=False)


def log_softmax(x, axis=-1, *, num_threads=None):
    """``x - log(sum(exp(x)))`` along ``axis``, without forming ``exp(x)`` of large values."""
    return _rows_op(x, axis, num_threads, take_log=True)


def cross_entropy(logits, labels, reduction="mean", *, num_threads=None):
    """The negative log-likelihood of ``labels`` under ``softmax(logits)``, as ``F.cross_entropy``.

    ``logits`` is ``(N, classes)``, float32 or float64; ``labels`` ``(N,)`` integers in
    ``[0, classes)``.  ``reduction``: ``"mean"`` (over N; NaN for N = 0, as PyTorch), ``"sum"``, or
    ``"none"`` (the N losses).  Computed in float64 from the log-sum-exp of each row, returned in the
    logits' dtype (a 0-d array for "mean"/"sum").
    """
    logits, labels = check_classification(logits, labels)
    check_choice(reduction, "reduction", REDUCTIONS)
    losses = np.empty(logits.shape[0])
    _sm.cross_entropy_rows(logits, labels, losses, resolve_num_threads(num_threads))
    if reduction == "none":
        return losses.astype(logits.dtype)
    total = losses.sum() if reduction == "sum" else (losses.mean() if losses.size else np.nan)
    return np.asarray(total, logits.dtype)


def check_classification(logits, labels):
    """(logits (N, classes) C-contiguous, labels (N,) as intp), or ValueError/TypeError."""
    logits = as_float_array(logits, "logits")
    check_ndim(logits, 2, "logits", "(N, classes)")
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        kind = labels.dtype if isinstance(labels, np.ndarray) else type(labels).__name__
        raise TypeError(f"expected labels to be a numpy.ndarray of integers, got {kind}")
    n, classes = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"expected labels to have shape ({n},), one per row of logits {logits.shape}, "
                         f"got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise ValueError(f"expected labels in [0, {classes}) for logits of {classes} classes, got {bad}")
    return logits, np.ascontiguousarray(labels, dtype=np.intp)


def as_rows(x, axis, name="x"):
    """(rows, length) C-contiguous view/copy of ``x`` with ``axis`` last, and the axis as an int."""
    x = as_float_array(x, name)
    if x.ndim == 0:
        raise ValueError(f"expected {name} to be at least 1-D, got shape {x.shape}")
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"expected axis to be an int in [{-x.ndim}, {x.ndim}), got {axis!r}")
    axis = int(axis) % x.ndim
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    return moved.reshape(-1, x.shape[axis]) if moved.size else moved.reshape(0, x.shape[axis]), axis


def from_rows(rows, shape, axis):
    """Inverse of :func:`as_rows` for a result of the same shape."""
    moved_shape = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    return np.ascontiguousarray(np.moveaxis(rows.reshape(moved_shape), -1, axis))


def _rows_op(x, axis, num_threads, take_log):
    rows, axis = as_rows(x, axis)
    y = np.empty_like(rows)
    _sm.softmax_rows(rows, y, take_log, resolve_num_threads(num_threads))
    return from_rows(y, np.shape(x), axis)
