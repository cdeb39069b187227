"""Where each chunk's sliding windows read: the per-axis plans behind the spatial wrappers.

Pure index arithmetic (no Dask, no arrays), one axis at a time.  Output row ``o`` of a convolution or
pooling reads input rows ``o*stride - pad_before + i*dilation`` (i < kernel) and sits over input row
``o*stride`` (its anchor: the centre of a "same" convolution's window).  Output rows belong to the input
chunk holding their anchor, so output chunk ``j`` is rows ``[ceil(b_j / stride), ceil(b_{j+1} / stride))``
for input chunk ``[b_j, b_{j+1})``: output chunks tile the output exactly with their boundaries on the
stride's grid, and a "same" convolution's output chunks are its input chunks (or those divided by the
stride), regular wherever the input's are, as Zarr needs to write them.  Each chunk borrows from its
neighbours the rows its windows reach beyond it (the halos, at most ``dilation*(kernel-1)`` in all, plus
up to ``stride-1`` when it pads its last rows, see ``window_plan``).

Each chunk is computed by the in-memory function with a symmetric padding ``pad`` of its own and the
outputs it does not own cropped: its first ``crop`` outputs and any past ``crop + size``.  Zeros (or
-inf) enter only at the true image border, as in the in-memory call.
"""
import dataclasses
import math
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    start: int        # first input row handed to the in-memory call (absolute)
    stop: int         # one past the last
    pad: int          # symmetric padding of that call
    crop: int         # outputs of that call to skip before the owned ones
    size: int         # owned output rows
    explicit: Tuple[int, int] = (0, 0)   # zero rows added before/after the rows start:stop
    outputs: int = 0  # outputs of that call (deformable_plan only: its offsets are padded to that many)


@dataclasses.dataclass(frozen=True)
class AxisPlan:
    in_chunks: Tuple[int, ...]
    out_chunks: Tuple[int, ...]
    depth: Tuple[int, int]          # halo rows (before, after) each chunk borrows from its neighbours
    blocks: Tuple[BlockPlan, ...]

    def local(self, j):
        """Block ``j``'s plan with start/stop relative to its chunk plus halo (as map_overlap hands it)."""
        b = self.blocks[j]
        origin = max(sum(self.in_chunks[:j]) - self.depth[0], 0)
        return dataclasses.replace(b, start=b.start - origin, stop=b.stop - origin)


def ceil_div(a, b):
    return -(-a // b)


def _chunk_bounds(chunks):
    bounds = [0]
    for c in chunks:
        bounds.append(bounds[-1] + c)
    return bounds


def empty_chunk_error(axis, j, lo, hi, what, geometry):
    return ValueError(
        f"expected every chunk of x along {axis} to produce output, but chunk {j} (input {axis} "
        f"{lo}:{hi}, {hi - lo} pixels) would give an empty output chunk with {geometry}; rechunk x along "
        f"{axis} so that this chunk joins its neighbour (each chunk needs at least {what})")


def window_plan(chunks, size, out_size, kernel, stride, dilation, pad_before, axis, *, pool_pad=None):
    """The AxisPlan of a convolution (``pool_pad=None``) or a pooling (``pool_pad`` its padding).

    A convolution chunk pads ``max(top, bottom)`` of the zeros it needs; when that padding cannot be
    lined up with the stride (an asymmetric "same" padding on a short image), or its windows read no
    row of the image (a 1-pixel kernel over a padded border), it gets explicit zero rows instead.  A
    pooling chunk that touches a padded border uses the pooling's own padding, so that
    windows past the border are clipped, and counted, exactly as in the in-memory call.
    """
    span = dilation * (kernel - 1) + 1
    bounds, outs = _anchored_outputs(chunks, out_size, kernel, stride, dilation, pad_before, axis)
    blocks = []
    for j in range(len(chunks)):
        first = outs[j] * stride - pad_before                      # window start of the first owned output
        last = (outs[j + 1] - 1) * stride - pad_before + span - 1  # last row the last owned output reads
        top, bottom = max(-first, 0), max(last - (size - 1), 0)
        if pool_pad is not None:
            pad = pool_pad if (top or bottom) else 0
        else:
            pad = max(top, bottom)
        skip = ceil_div(pad - top, stride) if pad > top else 0
        start = first + pad - skip * stride
        stop = min(last, size - 1) + 1
        if start < 0 and pool_pad is not None:
            # first + pad = outs[j]*stride: start at the true top, skipping every output before ours.
            skip, start = outs[j], 0
        if start < 0 or stop <= start:
            # Conv only: the stride cannot absorb this padding's asymmetry, or the chunk's windows read
            # padding only (the in-memory call refuses an image of no rows): zero rows, no padding.
            blocks.append(BlockPlan(max(first, 0), stop, 0, 0, outs[j + 1] - outs[j], (top, bottom)))
        else:
            blocks.append(BlockPlan(start, stop, pad, skip, outs[j + 1] - outs[j]))
    return _with_depth(tuple(chunks), bounds, outs, blocks)


def transposed_plan(chunks, size, out_size, kernel, stride, dilation, padding, axis):
    """The AxisPlan of a transposed convolution: input row ``i`` scatters to output rows
    ``i*stride - padding + t*dilation``; output chunk ``j`` starts at row ``b_j*stride`` (so output chunks
    are the input's times the stride, regular where those are).

    Each chunk is computed with padding 0 and the output_padding that completes its last owned rows
    (``BlockPlan.pad`` holds that output_padding), from every input row that reaches them: about
    ``(dilation*(kernel-1) - padding) / stride`` rows of its predecessor and ``padding / stride`` of its
    successor.
    """
    reach = dilation * (kernel - 1)
    bounds = _chunk_bounds(chunks)
    outs = [0] + [min(b * stride, out_size) for b in bounds[1:-1]] + [out_size]
    geometry = f"kernel {kernel}, stride {stride}, dilation {dilation}, padding {padding}"
    for j in range(len(chunks)):
        if outs[j + 1] <= outs[j]:
            raise empty_chunk_error(axis, j, bounds[j], bounds[j + 1],
                                    "1 pixel", geometry)
    blocks = []
    for j in range(len(chunks)):
        o0, o1 = outs[j], outs[j + 1]
        # First input row reaching o0, but not past the row whose first output is o0 or earlier.
        start = max(min(ceil_div(o0 + padding - reach, stride), (o0 + padding) // stride), 0)
        stop = min((o1 - 1 + padding) // stride + 1, size)
        stop = max(stop, start + 1)
        crop = o0 + padding - start * stride                    # output o = start*stride - padding + r
        produced = (stop - start - 1) * stride + reach + 1
        output_padding = max(o1 + padding - start * stride - produced, 0)
        assert output_padding < max(stride, dilation), (j, output_padding)
        blocks.append(BlockPlan(start, stop, output_padding, crop, o1 - o0))
    return _with_depth(tuple(chunks), bounds, outs, blocks)


def _anchored_outputs(chunks, out_size, kernel, stride, dilation, pad_before, axis):
    """``(bounds, outs)``: the chunks' first rows and their first owned outputs (the output rows whose
    anchor ``o*stride`` they hold), each followed by the end; ValueError for a chunk that owns none."""
    bounds = _chunk_bounds(chunks)
    outs = [0] + [min(ceil_div(b, stride), out_size) for b in bounds[1:-1]] + [out_size]
    geometry = f"kernel {kernel}, stride {stride}, dilation {dilation}, padding {pad_before}"
    for j in range(len(chunks)):
        if outs[j + 1] <= outs[j]:
            raise empty_chunk_error(axis, j, bounds[j], bounds[j + 1], f"{stride} pixel(s)", geometry)
    return bounds, outs


def deformable_plan(chunks, size, out_size, kernel, stride, dilation, before, bound, axis):
    """The AxisPlan of a deformable convolution whose finite offsets are at most ``bound`` pixels along
    this axis; ``before`` is its padding before the image.

    Output row ``o``'s samples lie in ``[o*stride - before - bound, o*stride - before + span - 1 + bound]``
    and read the rows ``floor`` of that and one more.  Each chunk is computed with the symmetric padding
    ``before`` from input rows starting ``extra*stride`` rows before its first owned output's, so that
    every row its owned outputs read is in the rows it gets (or past the true border): ``extra`` outputs
    before its own are computed with zero offsets and cropped, and the offsets given to the call are
    padded with zeros to its ``outputs``.  A sample falls at the same place of the same rows as in the
    in-memory call.  The last chunk of a "same" padding with its odd row after gets that zero row
    explicitly.
    """
    span = dilation * (kernel - 1) + 1
    bounds, outs = _anchored_outputs(chunks, out_size, kernel, stride, dilation, before, axis)
    reach_before, reach_after = math.ceil(bound), math.floor(bound) + 1
    extra_before = ceil_div(before + reach_before, stride)
    blocks = []
    for j in range(len(chunks)):
        o0, o1 = outs[j], outs[j + 1]
        extra = min(extra_before, o0)       # at the top: from output 0, row 0, as in memory
        start = (o0 - extra) * stride
        stop = min((o1 - 1) * stride - before + span - 1 + reach_after + 1, size)
        outputs = extra + o1 - o0
        missing = (outputs - 1) * stride + span - 2 * before - (stop - start)   # rows short of ``outputs``
        bottom = max(missing, 0)
        assert not bottom or stop == size, (j, missing)
        blocks.append(BlockPlan(start, stop, before, extra, o1 - o0, (0, bottom),
                                (stop - start + bottom + 2 * before - span) // stride + 1))
    return _with_depth(tuple(chunks), bounds, outs, blocks)


def _with_depth(chunks, bounds, outs, blocks):
    before = max([bounds[j] - b.start for j, b in enumerate(blocks) if j > 0] + [0])
    after = max([b.stop - bounds[j + 1] for j, b in enumerate(blocks[:-1])] + [0])
    out_chunks = tuple(outs[j + 1] - outs[j] for j in range(len(chunks)))
    return AxisPlan(chunks, out_chunks, (before, after), tuple(blocks))


def merge_small_chunks(chunks, minimum):
    """``chunks`` with every chunk smaller than ``minimum`` merged into its neighbour (Dask's overlap
    needs each chunk at least as large as the halo it lends)."""
    merged = list(chunks)
    j = 0
    while len(merged) > 1 and j < len(merged):
        if merged[j] < minimum:
            k = j - 1 if j == len(merged) - 1 else j + 1
            merged[min(j, k)] = merged[j] + merged[k]
            del merged[max(j, k)]
            j = max(min(j, k) - 1, 0)
        else:
            j += 1
    return tuple(merged)
