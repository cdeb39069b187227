"""Winograd minimal filtering for 3x3 stride-1 convolutions: F(4x4, 3x3) and F(2x2, 3x3).

``conv2d(..., algo="winograd")`` lands here.  A 3x3 convolution over an m x m output tile needs
(m + 2)**2 multiplications per input/output channel pair instead of 9 m**2: 2.25x fewer for F(2,3),
4x fewer for F(4,3).  The price is rounding: the transforms' constants (up to 8 and 1/24 in F(4,3)) grow
the error; see the README's Winograd section for the measured figures and their test.

The weights are transformed (in their dtype, in C) once per layer, when
:class:`WinogradWeight` keeps them, as ``convkit.nn.Conv2d(..., algo="winograd")`` does, or, in a
plain ``conv2d`` call, inside the call's work items, a block of output channels and a chunk of input
channels at a time, never stored whole (see src/winograd.pyx).  Both give the same bits.
"""
import numpy as np

from ._alloc import empty as aligned_empty
from ._kernels import winograd as _wino
from ._threads import get_num_threads, resolve_num_threads
from ._validation import as_bias, as_float_array, check_ndim, conv_geometry
from .activations import resolve_activation

#: Bytes of transformed tiles (V and M, all threads together) one call may hold at once, as im2col's.
WORKSPACE_BYTES = 8 << 20

#: Tiles per work item at most: V[pos] (this x Cin) stays in L2 while the item's channel blocks reuse it.
MAX_TILE_BLOCK = 48

GEOMETRY_MESSAGE = 'algo="winograd" needs a 3x3 kernel, stride 1 and dilation 1, got '


def check_geometry(kernel_size, stride, dilation, groups):
    """Raise ValueError unless the convolution is one Winograd F(m, 3) computes."""
    if tuple(kernel_size) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
        raise ValueError(f"{GEOMETRY_MESSAGE}kernel_size={tuple(kernel_size)}, stride={tuple(stride)}, "
                         f"dilation={tuple(dilation)}")
    if groups != 1:
        raise ValueError(f'algo="winograd" needs groups=1, got groups={groups}')


def choose_tile(out_size):
    """Output tile side m: the one whose tile grid over ``out_size`` needs fewer products, ties to 2.

    A grid of ceil(Hout/m) x ceil(Wout/m) tiles costs (m + 2)**2 products per tile and channel pair, so
    F(4x4,3x3) runs ResNet's maps (7x7: four 4x4 tiles x 36 = 144 products beside sixteen 2x2 tiles x 16
    = 256; 56x56: 7,056 beside 12,544) and F(2x2,3x3), the more accurate, the maps where partial 4x4
    tiles waste as much as they save (5x5 and 6x6: 144 each; 1x1 and 2x2: 36 beside 16).
    """
    def products(m):
        return -(-out_size[0] // m) * -(-out_size[1] // m) * (m + 2) ** 2
    return 4 if products(4) < products(2) else 2


class WinogradWeight:
    """HWIO 3x3 weights with their Winograd transforms, computed on first use for each tile size and kept.

    ``packed(m)`` is U = G g G^T (in the weights' dtype; G for the interpolation points 0, +-1, infinity
    (F(2,3)) or 0, +-1, +-2, infinity (F(4,3)), Lavin & Gray 2016, in src/winograd_tile.h with B^T and
    A^T) packed for the kernel:
    (A*A, blocks, Cin, lanes), A = m + 2, Cout zero-padded to whole blocks of ``lanes`` channels.  What
    ``convkit.nn.Conv2d(..., algo="winograd")`` keeps between calls; the weights must not change after.
    """

    def __init__(self, weight_hwio):
        w = np.asarray(weight_hwio)
        if w.ndim != 4 or w.shape[:2] != (3, 3):
            raise ValueError(f"expected 3x3 HWIO weights (3, 3, Cin, Cout), got shape {w.shape}")
        self.weight = np.ascontiguousarray(w)
        self._packed = {}

    def packed(self, m):
        u = self._packed.get(m)
        if u is None:
            u = self._packed[m] = _transform(self.weight, m)    # a race only computes it twice
        return u

    def cached(self, m):
        """``packed(m)`` if it was computed already, else None."""
        return self._packed.get(m)

    def keep(self, m, u):
        """Keep ``u``, computed by the kernel as ``packed(m)`` would."""
        self._packed[m] = u


def _packed_empty(w, m):
    """An uninitialised array shaped as :meth:`WinogradWeight.packed` of HWIO ``w``."""
    _, _, cin, cout = w.shape
    lanes = _wino.lanes(w.dtype)
    return np.empty(((m + 2) ** 2, -(-cout // lanes), cin, lanes), w.dtype)


def _transform(w, m):
    _, _, cin, cout = w.shape
    return _wino.transform_weights(w, m, max(1, min(get_num_threads(), cin * cout // 4096)))


def plan(n, out_size, cin, cout, m, itemsize, num_threads, kept=False):
    """(tiles per block, channel blocks per chunk, threads used) for one call, with the weights' transforms
    ``kept`` or computed in the call (then each thread also holds a chunk of U).

    Tiles are shared evenly between blocks of at most MAX_TILE_BLOCK (a multiple of the micro-kernel's
    rows, ``_wino.tile_rows()``), a whole number of blocks per thread where there are few; with fewer
    blocks than threads (small maps at batch 1) the output channels are split into chunks instead, so
    every thread has work and reads only its share of U, the transformed weights, which is what such a
    layer's time is made of.  Blocks then shrink (down to one register tile of rows), and as a last resort
    fewer threads run, until the workspace of all threads fits WORKSPACE_BYTES.
    """
    a2 = (m + 2) ** 2
    lanes = _wino.lanes(np.float32 if itemsize == 4 else np.float64)
    nblk = max(1, -(-cout // lanes))
    cin_pad = -(-cin // lanes) * lanes
    tiles = n * -(-out_size[0] // m) * -(-out_size[1] // m)
    nt = max(1, num_threads)
    rows = _wino.tile_rows()
    blocks = max(1, -(-tiles // MAX_TILE_BLOCK))
    chunks = 1
    if blocks < nt:         # few tiles: split the output channels instead, each thread reads its part of U
        chunks = min(nblk, -(-nt // blocks))
    elif blocks < 8 * nt:   # a whole number of blocks per thread
        blocks = -(-blocks // nt) * nt
    block = min(_round_up(-(-tiles // blocks), rows), _round_up(MAX_TILE_BLOCK, rows))
    blocks = max(1, -(-tiles // block))
    chunk = -(-nblk // chunks)

    u_chunk = 0 if kept else _wino.weight_chunk_len(m, np.float32 if itemsize == 4 else np.float64)

    def workspace(block, chunk, teams):
        return teams * (a2 * block * (cin_pad + chunk * lanes) + u_chunk) * itemsize

    teams = max(1, min(nt, blocks * -(-nblk // chunk)))
    while workspace(block, chunk, teams) > WORKSPACE_BYTES and block > rows:
        block -= rows
    while workspace(block, chunk, teams) > WORKSPACE_BYTES and chunk > 1:
        chunk = -(-chunk // 2)
    while workspace(block, chunk, teams) > WORKSPACE_BYTES and teams > 1:
        teams -= 1
    return block, chunk, teams


def _round_up(n, m):
    return max(m, -(-n // m) * m)


def workspace_bytes(n, out_size, cin, cout, itemsize, num_threads, kept=False):
    """Bytes of transformed tiles ``algo="winograd"`` holds at once for this call, and of the chunks of
    transformed weights unless they are ``kept`` (not the kept weights themselves)."""
    m = choose_tile(out_size)
    block, chunk, teams = plan(n, out_size, cin, cout, m, itemsize, num_threads, kept)
    dtype = np.float32 if itemsize == 4 else np.float64
    lanes = _wino.lanes(dtype)
    cin_pad = -(-cin // lanes) * lanes
    chunk_width = min(chunk, -(-cout // lanes)) * lanes
    u_chunk = 0 if kept else _wino.weight_chunk_len(m, dtype)
    return teams * ((m + 2) ** 2 * block * (cin_pad + chunk_width) + u_chunk) * itemsize


def conv2d_winograd(x, weight, bias, act, pads, y, num_threads, m=None, residual=None):
    """y (N, Hout, Wout, Cout) = act(conv(x, weight) + bias + residual) for NHWC ``x`` and a
    :class:`WinogradWeight` (its transforms kept) or C-contiguous HWIO weights (transformed in the call's
    work items), with F(m, 3) (default :func:`choose_tile`); ``act`` from resolve_activation, ``pads``
    (t, b, l, r), ``residual`` None or a C-contiguous array of y's shape and dtype."""
    n, _, _, cin = x.shape
    _, hout, wout, cout = y.shape
    m = choose_tile((hout, wout)) if m is None else m
    kept = isinstance(weight, WinogradWeight)
    block, chunk, teams = plan(n, (hout, wout), cin, cout, m, x.itemsize, num_threads, kept)
    if y.size == 0:
        return
    if not kept:
        _wino.conv2d_nhwc(x, None, bias, y, m, pads[0], pads[2], block, chunk, *act, teams,
                          residual=residual, w=np.ascontiguousarray(weight))
        return
    u = weight.cached(m)
    fresh = u is None       # then the kernel's own threads transform the weights first, and u is kept
    if fresh:
        u = _packed_empty(weight.weight, m)
    _wino.conv2d_nhwc(x, u, bias, y, m, pads[0], pads[2], block, chunk, *act, teams, residual=residual,
                      w=weight.weight if fresh else None)
    if fresh:
        weight.keep(m, u)


def conv2d_transformed(x, weight, bias=None, padding=0, *, activation=None, num_threads=None):
    """``conv2d(x, weight.weight, bias, 1, padding, algo="winograd")`` on NHWC ``x`` with the transforms
    kept in ``weight`` (a :class:`WinogradWeight`) instead of computed for the call."""
    w = weight.weight
    x = as_float_array(x, "x", w.dtype)
    check_ndim(x, 4, "x", "(N, H, W, C)")
    n, h, wid, c = x.shape
    if c != w.shape[2]:
        raise ValueError(f"expected x to have {w.shape[2]} channels like the weights, got {c}")
    bias = as_bias(bias, w.shape[3], x.dtype)
    _, _, pads, (hout, wout) = conv_geometry((h, wid), (3, 3), 1, padding, 1)
    y = aligned_empty((n, hout, wout, w.shape[3]), x.dtype)
    conv2d_winograd(x, weight, bias, resolve_activation(activation), pads, y,
                    resolve_num_threads(num_threads))
    return y
