"""deform_conv2d over dask arrays: spatial chunks with a halo from a bound on the offsets, or whole images."""
import math
import numbers
import warnings

import dask.array as da
import numpy as np

import convkit
from convkit._validation import resolve_padding

from ._arrays import (AXIS_NAMES, CHANNEL_AXIS, SPATIAL_AXES, RechunkWarning, check_input, constant, empty_batch,
                      placeholder, require_dask, whole_along)
from ._spatial import _pair, chunk_rows, owned, output_chunks, with_halos
from ._windows import deformable_plan


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None, *,
                  offset_bound=None, layout="NHWC", algo="auto", num_threads=None):
    """:func:`convkit.deform_conv2d` over dask arrays, ``offset`` and ``mask`` chunked with the output.

    An offset can move a sample anywhere, so what a spatial chunk reads is bounded only by a bound on the
    offsets, ``offset_bound``:

    * a number ``B``: every finite offset (``dy`` and ``dx``) is at most ``B`` pixels in magnitude.  ``x``
      is chunked along the batch and both spatial axes like :func:`conv2d`, each chunk borrowing from its
      neighbours the ``dilation*(k-1)`` rows of its windows plus ``ceil(B) + 1`` on each side (the
      bilinear corners of the farthest samples); a chunk whose offsets exceed ``B`` raises ``ValueError``
      when it is computed, so a wrong bound never gives a wrong answer.
    * ``"compute"``: ``B`` is the largest finite ``|offset|``, computed now (one pass over ``offset``).
    * ``None`` (default): whole images per task, chunks along the batch only: ``x`` is merged into one
      chunk along height, width and channels (with a :class:`RechunkWarning`, or refused over the chunk
      budget).

    ``offset`` and ``mask`` are rechunked (with a :class:`RechunkWarning`) to the output's chunks when they
    are not chunked like it.  Equal to the in-memory call, bit for bit with ``algo="direct"`` and float32
    (a float32 offset added to a row index is exact in the double-precision sampling coordinate unless it
    is nonzero and below ``2**-29`` times the image size); with float64 offsets the coordinate is rounded
    at the magnitude of the row index, which differs between a chunk and the image: equal up to rounding.
    """
    layout = check_input(x, "deform_conv2d", layout)
    for name, value in (("offset", offset), ("mask", mask)):
        if value is not None:
            require_dask(value, name, "convkit.deform_conv2d")
    empty = convkit.deform_conv2d(empty_batch(x), empty_batch(offset), placeholder(weight), placeholder(bias),
                                  stride, padding, dilation, None if mask is None else empty_batch(mask),
                                  layout=layout, algo=algo, num_threads=num_threads)
    if offset.shape[0] != x.shape[0] or (mask is not None and mask.shape[0] != x.shape[0]):
        raise ValueError(f"expected offset and mask to have x's batch size {x.shape[0]}, got "
                         f"{offset.shape[0]} and {None if mask is None else mask.shape[0]}")
    bound = _offset_bound(offset_bound, offset)

    def call(part, pads, off, m, w, b):
        return convkit.deform_conv2d(part, off, w, b, stride, pads, dilation, m, layout=layout, algo=algo,
                                     num_threads=num_threads)

    constants = (constant(weight, "weight", x.dtype), constant(bias, "bias", x.dtype))
    if bound is None:
        return _whole_images(x, offset, mask, layout, empty, call, padding, constants)
    return _spatial(x, offset, mask, weight, stride, padding, dilation, bound, layout, empty, call, constants)


def _offset_bound(offset_bound, offset):
    if offset_bound is None:
        return None
    if isinstance(offset_bound, str) and offset_bound == "compute":
        if offset.size == 0:
            return 0.0
        return float(da.where(da.isfinite(offset), abs(offset), 0).max().compute())
    if (isinstance(offset_bound, numbers.Real) and not isinstance(offset_bound, bool)
            and math.isfinite(offset_bound) and offset_bound >= 0):
        return float(offset_bound)
    raise ValueError(f"expected offset_bound to be a finite number >= 0, 'compute' or None, got {offset_bound!r}")


def _whole_images(x, offset, mask, layout, empty, call, padding, constants):
    names = AXIS_NAMES[layout]
    why = "a deformable sample can fall anywhere in the image (pass offset_bound for spatial chunks)"
    x = whole_along(x, (1, 2, 3), "x", names, why)
    offset, mask = (None if a is None else whole_along(a, (1, 2, 3), name, names, why).rechunk({0: x.chunks[0]})
                    for name, a in (("offset", offset), ("mask", mask)))
    chunks = (x.chunks[0],) + tuple((s,) for s in empty.shape[1:])

    def whole(xb, off, m, w, b):
        return call(xb, padding, off, m, w, b)

    return da.map_blocks(whole, x, offset, mask, *constants, chunks=chunks, dtype=empty.dtype, meta=empty)


def _spatial(x, offset, mask, weight, stride, padding, dilation, bound, layout, empty, call, constants):
    axes = SPATIAL_AXES[layout]
    kernel = weight.shape[:2] if layout == "NHWC" else weight.shape[2:]
    stride, dilation = (_pair(v) for v in (stride, dilation))
    sizes, out_sizes = ([shape[a] for a in axes] for shape in (x.shape, empty.shape))
    pads = resolve_padding(padding, kernel, stride, dilation, sizes)
    x = whole_along(x, [CHANNEL_AXIS[layout]], "x", AXIS_NAMES[layout],
                    "each output channel reads every input channel of its group")

    def plan(chunks, axis, i):
        return deformable_plan(chunks, sizes[i], out_sizes[i], kernel[i], stride[i], dilation[i],
                               pads[2 * i], bound, axis)

    x, plans = with_halos(x, layout, plan)
    chunks = output_chunks(x, plans, layout, empty)
    offset, mask = (None if a is None else _chunked_like(a, name, chunks, CHANNEL_AXIS[layout])
                    for name, a in (("offset", offset), ("mask", mask)))
    return da.map_blocks(_deform_block, x, offset, mask, *constants, chunks=chunks, dtype=empty.dtype,
                         meta=empty[:0], plans=plans, axes=axes, call=call, bound=bound)


def _chunked_like(a, name, chunks, channel):
    """``a`` chunked like the output (its own channels whole), rechunked once with a warning if not."""
    target = tuple((a.shape[channel],) if axis == channel else c for axis, c in enumerate(chunks))
    if a.chunks == target:
        return a
    warnings.warn(f"rechunking {name} once from chunks {a.chunks} to the output's {target}",
                  RechunkWarning, stacklevel=5)   # the caller of deform_conv2d
    return a.rechunk(target)


def _deform_block(block, offset, mask, weight, bias, *, plans, axes, call, bound, block_id=None):
    """One task: the in-memory call on this chunk plus halo, its offsets and mask padded with zeros for
    the outputs before and after its own that the call also computes, cropped to the outputs it owns."""
    finite = np.abs(offset[np.isfinite(offset)])
    if finite.size and finite.max() > bound:
        raise ValueError(f"expected every finite offset to be at most offset_bound={bound} pixels in "
                         f"magnitude, got {finite.max()} in output chunk {block_id}: pass a larger "
                         f"offset_bound, or offset_bound='compute'")
    local = [p.local(block_id[axis]) for axis, p in zip(axes, plans)]
    offset, mask = (None if a is None else _padded(a, local, axes) for a in (offset, mask))
    y = call(chunk_rows(block, local, axes), tuple(b.pad for b in local), offset, mask, weight, bias)
    return owned(y, local, axes, block_id)


def _padded(a, local, axes):
    """``a`` (offsets or mask of the owned outputs) within zeros for every output the call computes."""
    shape, index = list(a.shape), [slice(None)] * a.ndim
    for axis, b in zip(axes, local):
        shape[axis], index[axis] = b.outputs, slice(b.crop, b.crop + b.size)
    full = np.zeros(shape, a.dtype)
    full[tuple(index)] = a
    return full

