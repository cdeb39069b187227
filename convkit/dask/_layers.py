"""Chunk-local functions (activations, batch norm) and the whole-image one (predict)."""
import functools
import uuid

import dask
import dask.array as da
import numpy as np

import convkit

from ._arrays import CHANNEL_AXIS, check_input, empty_batch, placeholder, require_dask, whole_along


def _elementwise(name, x, num_threads, **params):
    require_dask(x, "x", f"convkit.{name}")
    fn = functools.partial(getattr(convkit, name), num_threads=num_threads, **params)
    fn(np.empty((0,) * max(x.ndim, 1), x.dtype))   # checks the dtype and parameters, as in memory
    return x.map_blocks(fn, dtype=x.dtype)


def relu(x, *, num_threads=None):
    """:func:`convkit.relu` chunk by chunk (any chunking; no ``out``)."""
    return _elementwise("relu", x, num_threads)


def relu6(x, *, num_threads=None):
    """:func:`convkit.relu6` chunk by chunk."""
    return _elementwise("relu6", x, num_threads)


def leaky_relu(x, negative_slope=0.01, *, num_threads=None):
    """:func:`convkit.leaky_relu` chunk by chunk."""
    return _elementwise("leaky_relu", x, num_threads, negative_slope=negative_slope)


def elu(x, alpha=1.0, *, num_threads=None):
    """:func:`convkit.elu` chunk by chunk."""
    return _elementwise("elu", x, num_threads, alpha=alpha)


def sigmoid(x, *, num_threads=None):
    """:func:`convkit.sigmoid` chunk by chunk."""
    return _elementwise("sigmoid", x, num_threads)


def tanh(x, *, num_threads=None):
    """:func:`convkit.tanh` chunk by chunk."""
    return _elementwise("tanh", x, num_threads)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5, *, training=False,
               momentum=0.1, layout="NHWC", num_threads=None):
    """:func:`convkit.batch_norm` in inference, chunk by chunk (channel chunks get their slice of the
    per-channel arrays, which may be NumPy or dask arrays).

    ``training=True`` is refused: batch statistics span every chunk, and updating the running arrays in
    place would need the whole array computed.  Compute the statistics with Dask (``x.mean(axis=...)``,
    ``x.var(axis=...)``) and pass them as ``running_mean``/``running_var``.
    """
    layout = check_input(x, "batch_norm", layout)
    if training:
        raise ValueError("expected training=False: convkit.dask.batch_norm normalises with given statistics; "
                         "compute batch statistics with dask (x.mean(axis), x.var(axis)) and pass them as "
                         "running_mean and running_var")
    vectors = (running_mean, running_var, weight, bias)
    convkit.batch_norm(empty_batch(x), *map(placeholder, vectors), eps,
                       momentum=momentum, layout=layout, num_threads=num_threads)
    channel = CHANNEL_AXIS[layout]
    index = "nhwc" if layout == "NHWC" else "nchw"
    args = [x, index]
    for v in vectors:
        args += [None, None] if v is None else [da.asarray(v).rechunk((x.chunks[channel],)), "c"]
    return da.blockwise(_batch_norm_block, index, *args, dtype=x.dtype, eps=eps, layout=layout,
                        num_threads=num_threads)


def _batch_norm_block(x, mean, var, weight, bias, *, eps, layout, num_threads):
    return convkit.batch_norm(x, mean, var, weight, bias, eps, layout=layout, num_threads=num_threads)


def predict(model, x):
    """``model(x)`` for a convkit model (any :class:`convkit.nn.Module`), batch chunk by batch chunk.

    ``x`` is merged into one chunk along every axis but the batch (rechunked once with a warning when
    needed, refused over the chunk budget); the model is one graph key, sent to each worker once.
    The model runs as it is (evaluation mode unless you called ``train()``).
    """
    require_dask(x, "x", "model(x)")
    empty = model(empty_batch(x))
    x = whole_along(x, range(1, x.ndim), "x", [f"axis {a}" for a in range(x.ndim)],
                    "the model reads whole images")
    chunks = (x.chunks[0],) + tuple((s,) for s in empty.shape[1:])
    shared = dask.delayed(model, name=f"convkit-model-{uuid.uuid4().hex}")
    axes = {"drop_axis": list(range(empty.ndim, x.ndim))} if empty.ndim < x.ndim else \
        {"new_axis": list(range(x.ndim, empty.ndim))} if empty.ndim > x.ndim else {}
    return da.map_blocks(_predict_block, x, shared, chunks=chunks, dtype=empty.dtype, meta=empty, **axes)


def _predict_block(x, model):
    return model(x)
