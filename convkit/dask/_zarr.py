"""conv2d from a Zarr array to a Zarr array, one fused task per run of output row bands.

``da.to_zarr(convkit.dask.conv2d(da.from_zarr(src), ...), dst)`` runs four kinds of tasks per chunk
(read, cut and copy halo rows, convolve, write), and each allocates a fresh chunk-sized buffer.  On a thin
layer those are most of the cost (bench/dask_zarr.py measures it), so here one task handles a run of
consecutive output row bands: it reads each Zarr chunk of the source once, into buffers it reuses, builds
each band's rows plus halo in a reused buffer, convolves into a reused output and writes the band to the
target Zarr chunk it fills.  The halo rows at the ends of a run are the only rows read twice (the
neighbouring runs read those chunks too).  Row geometry is ``_windows.window_plan``'s, as for
``convkit.dask.conv2d``: the same in-memory calls on the same rows, so the same result bit for bit.
"""
import dataclasses
import uuid

import dask

import convkit

from .._alloc import empty as aligned_empty
from ._arrays import SPATIAL_AXES, constant, empty_batch, placeholder
from ._spatial import _image_size, _pads_before, _pair, chunk_rows, owned
from ._windows import window_plan


def conv2d_zarr(source, target, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                layout="NHWC", algo="auto", activation=None, num_threads=None, chunks_per_task=16,
                compute=True, **zarr_array_kwargs):
    """:func:`convkit.conv2d` from the Zarr array ``source`` into a new Zarr array ``target``, on the
    current Dask scheduler (the default ``distributed.Client`` if there is one).

    ``source``: a ``zarr.Array`` or anything ``zarr.open_array`` opens, chunked along the batch and height
    only (each chunk holds whole rows of every channel).  ``target``: a store or path for
    ``zarr.create_array`` (overwritten), with ``zarr_array_kwargs`` passed on (``compressors``, ...);
    its chunks are the source's along the batch and ``source rows per chunk // stride`` output rows.
    Chunks entirely equal to the fill value are written like any other (``write_empty_chunks``): the
    check would read every output value once more.  The other arguments are :func:`convkit.conv2d`'s.

    Each task writes ``chunks_per_task`` consecutive output chunks of one batch chunk, reading every
    source chunk they need once (more per task: fewer chunks read twice for their halo rows; fewer:
    more tasks to balance between workers).  Returns the target ``zarr.Array``, written; with
    ``compute=False``, the target created but not written and a ``dask.delayed`` that writes it (and
    returns the number of chunks written): ``target, write = conv2d_zarr(..., compute=False)``.
    """
    import zarr
    src = source if isinstance(source, zarr.Array) else zarr.open_array(source, mode="r")
    if layout not in SPATIAL_AXES:
        raise ValueError(f"expected layout to be 'NHWC' or 'NCHW', got {layout!r}")
    if not isinstance(chunks_per_task, int) or chunks_per_task < 1:
        raise ValueError(f"expected chunks_per_task to be a positive integer, got {chunks_per_task!r}")
    empty = convkit.conv2d(empty_batch(src), placeholder(weight), placeholder(bias), stride, padding, dilation,
                           groups, layout=layout, algo=algo, activation=activation, num_threads=num_threads)
    row_axis = SPATIAL_AXES[layout][0]
    whole = [a for a in range(1, src.ndim) if a != row_axis and src.chunks[a] < src.shape[a]]
    if whole:
        raise ValueError(f"expected source chunks to hold whole rows (chunks {src.chunks} of shape "
                         f"{src.shape}: axes {whole} are split); use convkit.dask.conv2d on "
                         f"dask.array.from_zarr(source) for other chunkings")
    kernel = weight.shape[:2] if layout == "NHWC" else weight.shape[2:]
    stride, dilation = _pair(stride), _pair(dilation)
    sizes, out_sizes = _image_size(src.shape, layout), _image_size(empty.shape, layout)
    before = _pads_before(padding, sizes, out_sizes, kernel, stride, dilation)
    band = max(src.chunks[row_axis] // stride[0], 1)              # output rows per target chunk
    out_shape = (src.shape[0],) + tuple(empty.shape[1:])
    out_chunks = list(out_shape)
    out_chunks[0], out_chunks[row_axis] = src.chunks[0], band
    zarr_array_kwargs.setdefault("config", {"write_empty_chunks": True})
    dst = zarr.create_array(target, shape=out_shape, chunks=tuple(out_chunks), dtype=empty.dtype,
                            overwrite=True, **zarr_array_kwargs)

    # Each band's anchor rows (window_plan's input chunks): band j owns output rows [j*band, (j+1)*band).
    n_bands = -(-out_sizes[0] // band)
    anchors = [band * stride[0]] * (n_bands - 1) + [sizes[0] - (n_bands - 1) * band * stride[0]]
    rows = window_plan(anchors, sizes[0], out_sizes[0], kernel[0], stride[0], dilation[0], before[0], "height")
    cols = window_plan((sizes[1],), sizes[1], out_sizes[1], kernel[1], stride[1], dilation[1], before[1],
                       "width").blocks[0]
    options = dict(stride=stride, dilation=dilation, groups=groups, layout=layout, algo=algo,
                   activation=activation, num_threads=num_threads)
    w, b = constant(weight, "weight", src.dtype), constant(bias, "bias", src.dtype)
    name = f"convkit-conv2d-zarr-{uuid.uuid4().hex}"
    tasks = []
    for n0 in range(0, src.shape[0], src.chunks[0]):
        batch = slice(n0, min(n0 + src.chunks[0], src.shape[0]))
        for j0 in range(0, n_bands, chunks_per_task):
            bands = [(j * band, rows.blocks[j]) for j in range(j0, min(j0 + chunks_per_task, n_bands))]
            tasks.append(dask.delayed(_write_bands)(src, dst, batch, bands, cols, w, b, options,
                                                    dask_key_name=(name, len(tasks))))
    write = dask.delayed(sum)(tasks, dask_key_name=f"{name}-done")
    if compute:
        write.compute()
        return dst
    return dst, write


def _write_bands(src, dst, batch, bands, cols, weight, bias, options):
    """One task: the output bands ``[(first output row, BlockPlan of its input rows)]`` of ``batch``, each
    computed from its rows of ``src`` and written to ``dst``.  Returns the number of bands written."""
    layout = options["layout"]
    axes = SPATIAL_AXES[layout]
    reader = _RowReader(src, batch, axes[0])
    outputs = {}                   # output buffers by shape, reused from band to band
    for first, block in bands:
        local = [dataclasses.replace(block, start=0, stop=block.stop - block.start), cols]
        x = chunk_rows(reader.rows(block.start, block.stop), local, axes)
        pads = (block.pad, cols.pad)
        y = convkit.conv2d(x, weight, bias, options["stride"], pads, options["dilation"], options["groups"],
                           layout=layout, algo=options["algo"], activation=options["activation"],
                           num_threads=options["num_threads"],
                           out=outputs.get(_output_shape(x.shape, weight, pads, options)))
        outputs[y.shape] = y
        index = [batch] + [slice(None)] * (dst.ndim - 1)
        index[axes[0]] = slice(first, first + block.size)
        dst[tuple(index)] = owned(y, local, axes, first)
    return len(bands)


def _output_shape(shape, weight, pads, options):
    """The shape of convkit.conv2d's output for an input of ``shape`` (to reuse an output buffer)."""
    layout = options["layout"]
    kernel = weight.shape[:2] if layout == "NHWC" else weight.shape[2:]
    cout = weight.shape[3] if layout == "NHWC" else weight.shape[0]
    spatial = [(shape[a] + 2 * p - d * (k - 1) - 1) // s + 1
               for a, p, k, s, d in zip(SPATIAL_AXES[layout], pads, kernel, options["stride"], options["dilation"])]
    return (shape[0], *spatial, cout) if layout == "NHWC" else (shape[0], cout, *spatial)


class _RowReader:
    """Rows ``[start, stop)`` of one batch chunk of a Zarr array read in increasing order, each Zarr chunk
    read once into a reused buffer; a range spanning several chunks is copied into a reused buffer."""

    def __init__(self, array, batch, axis):
        self.array, self.batch, self.axis = array, batch, axis
        self.step = array.chunks[axis]
        self.chunks = {}           # chunk index -> (its buffer, its rows: the buffer or its first rows)
        self.spare = []            # buffers of evicted chunks
        self.joined = None

    def rows(self, start, stop):
        first, last = start // self.step, (stop - 1) // self.step
        for k in [k for k in self.chunks if k < first]:
            self.spare.append(self.chunks.pop(k)[0])
        for k in range(first, last + 1):
            if k not in self.chunks:
                self.chunks[k] = self._read(k)
        if first == last:
            return self._cut(self.chunks[first][1], start - first * self.step, stop - first * self.step)
        shape = list(self.chunks[first][1].shape)
        shape[self.axis] = stop - start
        if self.joined is None or self.joined.shape[self.axis] < shape[self.axis]:
            self.joined = aligned_empty(shape, self.array.dtype)
        joined = self._cut(self.joined, 0, stop - start)
        at = 0
        for k in range(first, last + 1):
            lo, hi = max(start - k * self.step, 0), min(stop - k * self.step, self.step)
            self._cut(joined, at, at + hi - lo)[...] = self._cut(self.chunks[k][1], lo, hi)
            at += hi - lo
        return joined

    def _read(self, k):
        from zarr.core.buffer import default_buffer_prototype
        start, stop = k * self.step, min((k + 1) * self.step, self.array.shape[self.axis])
        shape = list(self.array.shape)
        shape[0], shape[self.axis] = self.batch.stop - self.batch.start, self.step
        buffer = self.spare.pop() if self.spare else aligned_empty(shape, self.array.dtype)
        view = self._cut(buffer, 0, stop - start)
        index = [self.batch] + [slice(None)] * (self.array.ndim - 1)
        index[self.axis] = slice(start, stop)
        self.array.get_basic_selection(tuple(index),
                                       out=default_buffer_prototype().nd_buffer.from_numpy_array(view))
        return buffer, view

    def _cut(self, array, start, stop):
        index = [slice(None)] * array.ndim
        index[self.axis] = slice(start, stop)
        return array[tuple(index)]
