"""Halos: each chunk extended by copies of its neighbours' edge rows and columns.

The layout of ``dask.array.overlap.overlap(x, depth, boundary="none")`` (no halo past the array's ends),
built differently in one respect: each borrowed slice is copied.  Dask cuts it as a view, and a view
keeps its neighbour's whole chunk in memory until the chunk it is lent to has been computed, which on a
busy worker can be much later: out of core (32 MiB chunks, 2 workers) that is what pushed a worker's
peak above 1 GiB.  A copy holds only the rows lent.
"""
import functools
import itertools

import numpy as np
from dask.array.core import Array
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph


def overlap(x, depth):
    """``x`` with every chunk extended by ``depth[axis] = (before, after)`` elements of its neighbours
    along each axis of ``depth``.  Every chunk must be at least as long as the halo it lends."""
    axes = {a: d for a, d in depth.items() if any(d) and x.numblocks[a] > 1}
    if not axes:
        return x
    token = tokenize(x, depth)
    name, piece = f"convkit-halo-{token}", f"convkit-halo-piece-{token}"
    moves = list(itertools.product(*([-1, 0, 1] if a in axes else [0] for a in range(x.ndim))))
    dsk = {}
    for idx in np.ndindex(*x.numblocks):
        keys, shifts = [], []
        for move in moves:
            source = tuple(i + m for i, m in zip(idx, move))
            if any(not 0 <= s < n for s, n in zip(source, x.numblocks)):
                continue
            if not any(move):
                keys.append((x.name, *idx))
            else:
                if any(m and not axes[a][0 if m < 0 else 1] for a, m in enumerate(move)):
                    continue   # no halo on that side
                key = (piece, *idx, *(m + 1 for m in move))
                dsk[key] = (_copy_edge, (x.name, *source), _edges(move, axes))
                keys.append(key)
            shifts.append(move)
        dsk[(name, *idx)] = (functools.partial(_assemble, shifts=tuple(shifts)), keys)
    chunks = list(x.chunks)
    for a, (before, after) in axes.items():
        last = len(chunks[a]) - 1
        chunks[a] = tuple(c + (before if j else 0) + (after if j < last else 0) for j, c in enumerate(chunks[a]))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return Array(graph, name, tuple(chunks), meta=x._meta)


def _edges(move, axes):
    """The slices of a neighbour lent to a chunk ``move`` blocks away: its last ``before`` rows for a
    neighbour before the chunk, its first ``after`` rows for one after it."""
    return tuple(slice(None) if m == 0 else slice(-axes[a][0], None) if m < 0 else slice(0, axes[a][1])
                 for a, m in enumerate(move))


def _copy_edge(block, edges):
    return block[edges].copy()


def _assemble(pieces, shifts):
    """One array from the chunk (shift all zeros) and the neighbours' edges around it (shift -1 before,
    +1 after along each axis)."""
    center = pieces[shifts.index((0,) * len(shifts[0]))]
    before = [max((p.shape[a] for p, s in zip(pieces, shifts) if s[a] < 0), default=0)
              for a in range(center.ndim)]
    after = [max((p.shape[a] for p, s in zip(pieces, shifts) if s[a] > 0), default=0)
             for a in range(center.ndim)]
    out = np.empty([b + c + f for b, c, f in zip(before, center.shape, after)], center.dtype)
    for p, s in zip(pieces, shifts):
        out[tuple(slice(0, b) if m < 0 else slice(b, b + c) if m == 0 else slice(b + c, None)
                  for m, b, c in zip(s, before, center.shape))] = p
    return out
