"""Chunk-local functions (activations, batch norm) and whole-image ones (deform_conv2d, predict)."""
import functools
import uuid

import dask
import dask.array as da
import numpy as np

import convkit

from ._arrays import (AXIS_NAMES, CHANNEL_AXIS, check_input, constant, empty_batch, placeholder,
                      require_dask, whole_along)


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


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None, *,
                  layout="NHWC", algo="auto", num_threads=None):
    """:func:`convkit.deform_conv2d` over a dask array, chunked along the batch.

    An offset can move a sample anywhere in the image, so no halo bounds what a spatial chunk reads:
    each task gets whole images.  ``x`` is merged into one chunk along height, width and channels, and
    ``offset`` and ``mask`` are chunked with the output (``x``'s batch chunks, whole images), each
    rechunked once with a warning when needed or refused over the chunk budget.
    """
    layout = check_input(x, "deform_conv2d", layout)
    for name, value in (("offset", offset), ("mask", mask)):
        if value is not None:
            require_dask(value, name, "convkit.deform_conv2d")
    empty = convkit.deform_conv2d(empty_batch(x),
                                  empty_batch(offset),
                                  placeholder(weight), placeholder(bias), stride, padding, dilation,
                                  None if mask is None else empty_batch(mask),
                                  layout=layout, algo=algo, num_threads=num_threads)
    if offset.shape[0] != x.shape[0] or (mask is not None and mask.shape[0] != x.shape[0]):
        raise ValueError(f"expected offset and mask to have x's batch size {x.shape[0]}, got "
                         f"{offset.shape[0]} and {None if mask is None else mask.shape[0]}")
    names = AXIS_NAMES[layout]
    why = "a deformable sample can fall anywhere in the image"
    x = whole_along(x, (1, 2, 3), "x", names, why)
    offset, mask = (None if a is None else whole_along(a, (1, 2, 3), name, names, why).rechunk({0: x.chunks[0]})
                    for name, a in (("offset", offset), ("mask", mask)))
    chunks = (x.chunks[0],) + tuple((s,) for s in empty.shape[1:])

    def call(xb, off, m, w, b):
        return convkit.deform_conv2d(xb, off, w, b, stride, padding, dilation, m, layout=layout, algo=algo,
                                     num_threads=num_threads)

    return da.map_blocks(call, x, offset, mask, constant(weight, "weight", x.dtype),
                         constant(bias, "bias", x.dtype), chunks=chunks, dtype=empty.dtype, meta=empty)


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
