"""Checks and conversions of the Dask arguments shared by every wrapper."""
import math
import warnings

import dask
import dask.array as da
import numpy as np
from dask.utils import format_bytes, parse_bytes

#: Where the spatial axes and the channel axis sit in each layout.
SPATIAL_AXES = {"NHWC": (1, 2), "NCHW": (2, 3)}
CHANNEL_AXIS = {"NHWC": 3, "NCHW": 1}
AXIS_NAMES = {"NHWC": ("batch", "height", "width", "channels"),
              "NCHW": ("batch", "channels", "height", "width")}


class RechunkWarning(UserWarning):
    """An input was rechunked once because the computation needs whole chunks along some axes."""


def require_dask(x, name, in_memory):
    """``x`` must be a dask array; a NumPy array belongs to the in-memory call (``in_memory`` names it)."""
    if not isinstance(x, da.Array):
        raise TypeError(f"expected {name} to be a dask.array.Array, got {type(x).__name__}; for arrays in "
                        f"memory call {in_memory} directly")
    return x


def check_input(x, function, layout):
    """``x`` is a dask array and ``layout`` a layout name; returns the layout."""
    require_dask(x, "x", f"convkit.{function}")
    if layout not in SPATIAL_AXES:
        raise ValueError(f"expected layout to be 'NHWC' or 'NCHW', got {layout!r}")
    return layout


def empty_batch(x):
    """An empty batch with ``x``'s other dimensions: the in-memory call checks every argument on it."""
    return np.empty((0,) + tuple(x.shape[1:]), x.dtype)


def chunk_budget():
    """Largest chunk, in bytes, a rechunk may create: Dask's ``array.chunk-size`` setting."""
    return parse_bytes(dask.config.get("array.chunk-size"))


def whole_along(x, axes, name, names, why):
    """``x`` with a single chunk along ``axes``: unchanged when it already has one, else rechunked once
    with a RechunkWarning, or refused with ValueError when the merged chunks would exceed the budget."""
    axes = [a for a in axes if len(x.chunks[a]) > 1]
    if not axes:
        return x
    merged = [x.shape[a] if a in axes else max(c, default=0) for a, c in enumerate(x.chunks)]
    nbytes = math.prod(merged) * x.dtype.itemsize
    what = ", ".join(f"{names[a]} (chunks {x.chunks[a]})" for a in axes)
    budget = chunk_budget()
    if nbytes > budget:
        raise ValueError(
            f"expected {name} to have a single chunk along {what}, since {why}; merging them would make "
            f"chunks of {format_bytes(nbytes)} (shape {tuple(merged)}), above the chunk budget "
            f"{format_bytes(budget)} (dask.config 'array.chunk-size'): rechunk {name} yourself, smaller "
            f"along the other axes, or raise the budget")
    warnings.warn(f"rechunking {name} once to a single chunk along {what}, since {why} "
                  f"(chunks of {format_bytes(nbytes)})", RechunkWarning, stacklevel=3)
    return x.rechunk({a: -1 for a in axes})


def constant(value, name, dtype=None):
    """A small argument (weight, bias, per-channel vector) as one graph key, computed once and sent to
    each worker once; None stays None.  A dask array is merged into a single chunk first."""
    if value is None:
        return None
    if isinstance(value, da.Array):
        if dtype is not None and value.dtype != dtype:
            raise TypeError(f"expected {name} to have dtype {np.dtype(dtype)} like the input, got {value.dtype}")
        return value.rechunk(-1).to_delayed().ravel()[0]
    return dask.delayed(value, pure=True)


def placeholder(value):
    """A NumPy stand-in of a dask argument's shape and dtype (values not computed), for checking the
    arguments with the in-memory function; None and NumPy arrays pass through."""
    if isinstance(value, da.Array):
        return np.zeros(value.shape, value.dtype)
    return value
