"""The sliding-window functions over spatial chunks with halos: conv2d, conv_transpose2d and pooling.

Each wrapper checks its arguments by calling the in-memory function on an empty batch of ``x``'s image
size (same messages, no work), plans each spatial axis (``_windows``), lends each chunk its halo with
``_halo.overlap`` (Dask's overlap with boundary "none", the borrowed rows copied: nothing is invented at
the true border) and maps a task that calls the in-memory function on the chunk plus halo and keeps the
outputs the chunk owns.
"""
import numbers

import dask.array as da
import numpy as np

import convkit

from ._arrays import (AXIS_NAMES, CHANNEL_AXIS, SPATIAL_AXES, check_input, constant, empty_batch,
                      placeholder, whole_along)
from ._halo import overlap
from ._windows import merge_small_chunks, transposed_plan, window_plan


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, layout="NHWC",
           algo="auto", activation=None, num_threads=None):
    """:func:`convkit.conv2d` over a dask array, lazily, chunk by chunk (no ``out``: write the result
    with ``dask.array.to_zarr`` or ``.compute()``).

    ``x`` may be chunked along the batch and both spatial axes; chunks along the channels are merged
    once (see :class:`RechunkWarning`).  ``weight`` and ``bias`` are NumPy or dask arrays, sent once.
    """
    layout = check_input(x, "conv2d", layout)
    empty = convkit.conv2d(empty_batch(x), placeholder(weight), placeholder(bias), stride, padding,
                           dilation, groups, layout=layout, algo=algo, activation=activation,
                           num_threads=num_threads)
    kernel = weight.shape[:2] if layout == "NHWC" else weight.shape[2:]
    stride, dilation = _pair(stride), _pair(dilation)
    sizes, out_sizes = _image_size(x.shape, layout), _image_size(empty.shape, layout)
    before = _pads_before(padding, sizes, out_sizes, kernel, stride, dilation)
    x = whole_along(x, [CHANNEL_AXIS[layout]], "x", AXIS_NAMES[layout],
                    "each output channel reads every input channel of its group")

    def plan(chunks, axis, i):
        return window_plan(chunks, sizes[i], out_sizes[i], kernel[i], stride[i], dilation[i], before[i], axis)

    def call(part, pads, w, b):
        return convkit.conv2d(part, w, b, stride, pads, dilation, groups, layout=layout, algo=algo,
                              activation=activation, num_threads=num_threads)

    return _sliding(x, layout, plan, call, empty, (constant(weight, "weight", x.dtype),
                                                     constant(bias, "bias", x.dtype)))


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     layout="NHWC", algo="auto", num_threads=None):
    """:func:`convkit.conv_transpose2d` over a dask array, chunked along the batch and spatial axes."""
    layout = check_input(x, "conv_transpose2d", layout)
    empty = convkit.conv_transpose2d(empty_batch(x), placeholder(weight), placeholder(bias), stride,
                                     padding, output_padding, groups, dilation, layout=layout, algo=algo,
                                     num_threads=num_threads)
    kernel = weight.shape[:2] if layout == "NHWC" else weight.shape[2:]
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    sizes, out_sizes = _image_size(x.shape, layout), _image_size(empty.shape, layout)
    x = whole_along(x, [CHANNEL_AXIS[layout]], "x", AXIS_NAMES[layout],
                    "each output channel reads every input channel of its group")

    def plan(chunks, axis, i):
        return transposed_plan(chunks, sizes[i], out_sizes[i], kernel[i], stride[i], dilation[i],
                               padding[i], axis)

    def call(part, output_pads, w, b):
        return convkit.conv_transpose2d(part, w, b, stride, 0, output_pads, groups, dilation,
                                        layout=layout, algo=algo, num_threads=num_threads)

    return _sliding(x, layout, plan, call, empty, (constant(weight, "weight", x.dtype),
                                                     constant(bias, "bias", x.dtype)))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, layout="NHWC",
               num_threads=None):
    """:func:`convkit.max_pool2d` over a dask array, chunked along any axis."""
    layout = check_input(x, "max_pool2d", layout)
    empty = convkit.max_pool2d(empty_batch(x), kernel_size, stride, padding, dilation, ceil_mode,
                               layout=layout, num_threads=num_threads)

    def call(part, pads):
        return convkit.max_pool2d(part, kernel_size, stride, pads, dilation, ceil_mode, layout=layout,
                                  num_threads=num_threads)

    return _pool(x, layout, empty, call, kernel_size, stride, padding, dilation)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               layout="NHWC", num_threads=None):
    """:func:`convkit.avg_pool2d` over a dask array, chunked along any axis."""
    layout = check_input(x, "avg_pool2d", layout)
    empty = convkit.avg_pool2d(empty_batch(x), kernel_size, stride, padding, ceil_mode, count_include_pad,
                               layout=layout, num_threads=num_threads)

    def call(part, pads):
        return convkit.avg_pool2d(part, kernel_size, stride, pads, ceil_mode, count_include_pad,
                                  layout=layout, num_threads=num_threads)

    return _pool(x, layout, empty, call, kernel_size, stride, padding, 1)


def _pool(x, layout, empty, call, kernel_size, stride, padding, dilation):
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    padding, dilation = _pair(padding), _pair(dilation)
    sizes, out_sizes = _image_size(x.shape, layout), _image_size(empty.shape, layout)

    def plan(chunks, axis, i):
        return window_plan(chunks, sizes[i], out_sizes[i], kernel[i], stride[i], dilation[i], padding[i],
                           axis, pool_pad=padding[i])

    return _sliding(x, layout, plan, call, empty, ())


def _pair(value):
    return (value, value) if isinstance(value, numbers.Integral) else tuple(value)


def _image_size(shape, layout):
    return tuple(shape[a] for a in SPATIAL_AXES[layout])


def _pads_before(padding, sizes, out_sizes, kernel, stride, dilation):
    """Zero rows/columns before the image: conv2d's padding resolved ("same" puts the odd one after)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return tuple(max((o - 1) * s + d * (k - 1) + 1 - n, 0) // 2
                     for n, o, k, s, d in zip(sizes, out_sizes, kernel, stride, dilation))
    return _pair(padding)


def _sliding(x, layout, plan, call, empty, constants):
    """Map ``call(part, (pad_h, pad_w), *constants)`` over the chunks of ``x`` with their halos."""
    x, plans = with_halos(x, layout, plan)
    return da.map_blocks(_window_block, x, *constants, chunks=output_chunks(x, plans, layout, empty),
                         dtype=empty.dtype, meta=empty[:0], plans=plans, axes=SPATIAL_AXES[layout], call=call)


def with_halos(x, layout, plan):
    """``(x with halos, plans)``: each spatial axis planned by ``plan(chunks, axis name, i)``, chunks shorter
    than the halo they lend merged into a neighbour first."""
    axes, names = SPATIAL_AXES[layout], AXIS_NAMES[layout]
    plans = []
    for i, axis in enumerate(axes):
        p = plan(x.chunks[axis], names[axis], i)
        while len(p.in_chunks) > 1 and min(p.in_chunks) < max(p.depth):
            x = x.rechunk({axis: merge_small_chunks(p.in_chunks, max(p.depth))})
            p = plan(x.chunks[axis], names[axis], i)
        plans.append(p)
    return overlap(x, {axis: p.depth for axis, p in zip(axes, plans)}), tuple(plans)


def output_chunks(x, plans, layout, empty):
    """The output's chunks: ``x``'s along the batch, the plans' along the spatial axes, the channels whole
    when their number changes."""
    chunks = list(x.chunks)
    for axis, p in zip(SPATIAL_AXES[layout], plans):
        chunks[axis] = p.out_chunks
    channel = CHANNEL_AXIS[layout]
    if empty.shape[channel] != x.shape[channel]:
        chunks[channel] = (empty.shape[channel],)
    return tuple(chunks)


def _window_block(block, *constants, plans, axes, call, block_id=None):
    """One task: the in-memory call on this chunk plus halo, cropped to the outputs it owns."""
    local = [p.local(block_id[axis]) for axis, p in zip(axes, plans)]
    y = call(chunk_rows(block, local, axes), tuple(b.pad for b in local), *constants)
    return owned(y, local, axes, block_id)


def chunk_rows(block, local, axes):
    """The rows (and columns) of a chunk plus halo that its in-memory call reads, explicit zeros added."""
    index = [slice(None)] * block.ndim
    for axis, b in zip(axes, local):
        index[axis] = slice(b.start, b.stop)
    part = block[tuple(index)]
    if any(b.explicit != (0, 0) for b in local):
        widths = [(0, 0)] * block.ndim
        for axis, b in zip(axes, local):
            widths[axis] = b.explicit
        part = np.pad(part, widths)
    return part


def owned(y, local, axes, block_id):
    """The outputs of a chunk's in-memory call that the chunk owns."""
    index = [slice(None)] * y.ndim
    for axis, b in zip(axes, local):
        if y.shape[axis] < b.crop + b.size:
            raise RuntimeError(f"convkit.dask internal error: block {block_id} computed {y.shape[axis]} "
                               f"outputs along axis {axis}, needs {b.crop} + {b.size}")
        index[axis] = slice(b.crop, b.crop + b.size)
    return y[tuple(index)]
