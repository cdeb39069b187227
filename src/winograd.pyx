"""Winograd F(m x m, 3 x 3) convolution over NHWC, m = 2 or 4 (A = m + 2 points per tile side).

The output is cut into m x m tiles (partial at the right and bottom edges).  Work items are (block of
``tile_block`` tiles, chunk of output-channel blocks); each thread runs items with its own workspace:

1. input transform: each tile's A x A input pixels (channel vectors; zeros outside the image) become
   V[pos][tile][ci] for the A*A positions (``winograd_tile.h``);
2. element-wise stage: for each position a GEMM M[pos] (tiles x Cout) = V[pos] (tiles x Cin) times
   U[pos] (Cin x Cout), on the register tile of the direct convolution and the GEMM (``microkernel.h``:
   CK_TILE_PIXELS tiles x one block of output channels; V[pos]'s rows are its input pointers);
3. output transform of each tile and channel block, with bias and activation, stored to the pixels
   inside the image.

U, the transformed weights, comes packed (A*A, channel blocks, Cin, block) from convkit/winograd.py.
The workspace is V (A*A x tile_block x Cin padded to a block) plus M (A*A x tile_block x the chunk's
channels) per thread; convkit/winograd.py picks the block sizes so it stays within its budget.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.string cimport memset

from activation cimport activate_span
from checks cimport check_min, check_size, optional_image, optional_vector
from microkernel cimport micro_tile
from omp cimport omp_get_thread_num

import numpy as np

cdef extern from "microkernel.h" nogil:
    enum: CK_TILE_PIXELS   # rows (tiles) of the register tile

cdef extern from "winograd_tile.h" nogil:
    enum: CK_WINO_MAX_A
    enum: LANES_F32 "CK_WINO_LANES_F32"     # output channels per register tile
    enum: LANES_F64 "CK_WINO_LANES_F64"
    void ck_wino_input_f32(int A, const float* const* d, Py_ssize_t nc, float* v, Py_ssize_t pos_stride)
    void ck_wino_input_f64(int A, const double* const* d, Py_ssize_t nc, double* v, Py_ssize_t pos_stride)
    void ck_wino_output_f32(int A, const float* mm, Py_ssize_t pos_stride, float* o)
    void ck_wino_output_f64(int A, const double* mm, Py_ssize_t pos_stride, double* o)
    enum: CK_WINO_WEIGHT_RUN
    void ck_wino_weights_f32(int A, const float* w, Py_ssize_t tap_stride, Py_ssize_t ci_stride, int nci,
                             Py_ssize_t n, float* u, Py_ssize_t pos_stride)
    void ck_wino_weights_f64(int A, const double* w, Py_ssize_t tap_stride, Py_ssize_t ci_stride, int nci,
                             Py_ssize_t n, double* u, Py_ssize_t pos_stride)


def lanes(dtype):
    """Channels per packed weight block (and per transform run) for ``dtype``."""
    return LANES_F32 if np.dtype(dtype) == np.float32 else LANES_F64


def tile_rows():
    """Tiles per register tile: work items hold a multiple of this many tiles."""
    return CK_TILE_PIXELS


cdef inline void input_tile(int A, const floating* const* d, Py_ssize_t nc, floating* v,
                            Py_ssize_t pos_stride) noexcept nogil:
    if floating is float:
        ck_wino_input_f32(A, d, nc, v, pos_stride)
    else:
        ck_wino_input_f64(A, d, nc, v, pos_stride)


cdef inline void output_tile(int A, const floating* mm, Py_ssize_t pos_stride, floating* o) noexcept nogil:
    if floating is float:
        ck_wino_output_f32(A, mm, pos_stride, o)
    else:
        ck_wino_output_f64(A, mm, pos_stride, o)


cdef inline void weight_run(int A, const floating* w, Py_ssize_t tap_stride, Py_ssize_t ci_stride, int nci,
                            Py_ssize_t n, floating* u, Py_ssize_t pos_stride) noexcept nogil:
    if floating is float:
        ck_wino_weights_f32(A, w, tap_stride, ci_stride, nci, n, u, pos_stride)
    else:
        ck_wino_weights_f64(A, w, tap_stride, ci_stride, nci, n, u, pos_stride)


cdef inline void wino_item(
    const floating* x, const floating* u, const floating* bias, const floating* res, const floating* zeros,
    floating* y, floating* v, floating* mbuf, int A, Py_ssize_t blk, Py_ssize_t chunk,
    Py_ssize_t T, Py_ssize_t chunk_blocks, Py_ssize_t ntiles, Py_ssize_t tiles_w, Py_ssize_t tiles_img,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t Cp, Py_ssize_t Cout, Py_ssize_t nblk,
    Py_ssize_t Hout, Py_ssize_t Wout, Py_ssize_t pt, Py_ssize_t pl, int act, floating alpha,
) noexcept nogil:
    """Tiles [blk*T, blk*T + T) x channel blocks [chunk*chunk_blocks, ...) of the output."""
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef int m = A - 2
    cdef Py_ssize_t P = A * A
    cdef const floating* d[CK_WINO_MAX_A * CK_WINO_MAX_A]
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef floating o[(CK_WINO_MAX_A - 2) * (CK_WINO_MAX_A - 2) * LANES_F32]
    cdef Py_ssize_t t0 = blk * T, nt = min(T, ntiles - t0)
    cdef Py_ssize_t b0 = chunk * chunk_blocks, nb = min(chunk_blocks, nblk - b0)
    cdef Py_ssize_t t, g, tile, img, ty, tx, ih, iw, i, j, pos, bl, tg, r, co0, nco, oh, ow, off, c
    cdef floating* op
    # 1. input transform, V[pos][t][0:Cp]
    for t in range(nt):
        tile = t0 + t
        img = tile // tiles_img
        ty = (tile % tiles_img) // tiles_w
        tx = tile % tiles_w
        for i in range(A):
            ih = ty * m - pt + i
            for j in range(A):
                iw = tx * m - pl + j
                if <size_t>ih < <size_t>H and <size_t>iw < <size_t>W:
                    d[i * A + j] = x + ((img * H + ih) * W + iw) * C
                else:
                    d[i * A + j] = zeros
        input_tile(A, d, C, v + t * Cp, T * Cp)
    # 2. one GEMM per position: M[pos][bl][t][0:B] = V[pos][t][:] . U[pos][b0 + bl][:][0:B]
    memset(mbuf, 0, P * nb * T * B * sizeof(floating))
    for pos in range(P):
        for bl in range(nb):
            for g in range((nt + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS):
                tg = g * CK_TILE_PIXELS
                for r in range(CK_TILE_PIXELS):
                    xp[r] = v + (pos * T + tg + r) * Cp if tg + r < nt else zeros
                micro_tile(xp, u + (pos * nblk + b0 + bl) * C * B, C,
                           mbuf + ((pos * nb + bl) * T + tg) * B)
    # 3. output transform, bias and activation, stored inside the image
    for bl in range(nb):
        co0 = (b0 + bl) * B
        nco = min(B, Cout - co0)
        for t in range(nt):
            tile = t0 + t
            img = tile // tiles_img
            oh = ((tile % tiles_img) // tiles_w) * m
            ow = (tile % tiles_w) * m
            output_tile(A, mbuf + (bl * T + t) * B, nb * T * B, o)
            for i in range(min(m, Hout - oh)):
                for j in range(min(m, Wout - ow)):
                    off = ((img * Hout + oh + i) * Wout + ow + j) * Cout + co0
                    op = o + (i * m + j) * B
                    if res != NULL:     # the shortcut, added before the activation
                        for c in range(nco):
                            op[c] += res[off + c]
                    activate_span(op, bias + co0 if bias != NULL else NULL, y + off, nco, act, alpha)


cdef inline Py_ssize_t transform_items(Py_ssize_t C, Py_ssize_t nblk) noexcept nogil:
    """Work items of the weight transform: output-channel blocks x runs of CK_WINO_WEIGHT_RUN input channels."""
    return nblk * ((C + CK_WINO_WEIGHT_RUN - 1) // CK_WINO_WEIGHT_RUN)


cdef inline void transform_item(int A, const floating* w, Py_ssize_t C, Py_ssize_t Cout, Py_ssize_t nblk,
                                floating* u, Py_ssize_t item) noexcept nogil:
    """U (layout of transform_weights) for output-channel block item // runs and the item % runs'th run
    of CK_WINO_WEIGHT_RUN input channels, runs = ceil(C / CK_WINO_WEIGHT_RUN)."""
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t runs = (C + CK_WINO_WEIGHT_RUN - 1) // CK_WINO_WEIGHT_RUN
    cdef Py_ssize_t b = item // runs, ci = item % runs * CK_WINO_WEIGHT_RUN
    weight_run(A, w + ci * Cout + b * B, C * Cout, Cout, <int>min(CK_WINO_WEIGHT_RUN, C - ci),
               min(B, Cout - b * B), u + (b * C + ci) * B, nblk * C * B)


cdef int check_tile(int m, int num_threads) except -1:
    if m != 2 and m != 4:
        raise ValueError(f"expected m (the output tile) to be 2 or 4, got {m}")
    check_min(num_threads, 1, "num_threads")
    return 0


def conv2d_nhwc(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] u, bias,
                floating[:, :, :, ::1] out, int m, Py_ssize_t pt, Py_ssize_t pl,
                Py_ssize_t tile_block, Py_ssize_t chunk_blocks, int act, double alpha, int num_threads,
                residual=None, w=None):
    """out (N, Hout, Wout, Cout) = act(winograd F(m, 3)(x (N, H, W, C), U) + bias + residual).

    ``u``: transformed weights packed (A*A, ceil(Cout / lanes), C, lanes), A = m + 2; with the HWIO
    weights ``w`` given, ``u`` is filled from them first, by the same thread team (a per-call transform
    costs no second parallel region).  Work items are ``tile_block`` tiles (a multiple of the
    micro-kernel's CK_TILE_PIXELS rows) x ``chunk_blocks`` channel blocks.
    """
    cdef int A = m + 2
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t nblk = u.shape[1], Cp = (C + B - 1) // B * B
    cdef Py_ssize_t T = tile_block, tiles_w, tiles_img, ntiles, nblocks, nchunks, items, item, tid, wi
    check_tile(m, num_threads)
    check_size(u.shape[0], A * A, "u's positions (A*A)")
    check_size(u.shape[2], C, "u's input channels")
    check_size(u.shape[3], B, "u's lanes")
    check_min(nblk * B, Cout, "u's output channels (blocks * lanes)")
    check_min(T, CK_TILE_PIXELS, "tile_block")
    check_size(T % CK_TILE_PIXELS, 0, "tile_block modulo the micro-kernel's rows")
    check_min(chunk_blocks, 1, "chunk_blocks")
    check_size(out.shape[0], N, "out's batch")
    cdef const floating* bp
    cdef const floating* rp
    optional_vector(bias, Cout, "bias", &bp)
    optional_image(residual, N, Hout, Wout, Cout, "residual", &rp)
    if w is not None and (w.shape != (3, 3, C, Cout)):
        raise ValueError(f"expected w to have shape {(3, 3, C, Cout)}, got {w.shape}")
    tiles_w = (Wout + m - 1) // m
    tiles_img = (Hout + m - 1) // m * tiles_w
    ntiles = N * tiles_img
    nblocks = (ntiles + T - 1) // T
    nchunks = (nblk + chunk_blocks - 1) // chunk_blocks
    items = nblocks * nchunks
    if ntiles == 0 or Cout == 0:
        return
    cdef int teams = max(1, min(num_threads, items))
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] zeros = np.zeros(max(Cp, 1), dtype=dtype)
    cdef floating[:, ::1] vbuf = np.empty((teams, max(A * A * T * Cp, 1)), dtype=dtype)
    cdef floating[:, ::1] mbuf = np.empty((teams, A * A * T * min(chunk_blocks, nblk) * B), dtype=dtype)
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef floating* up = &u[0, 0, 0, 0] if C > 0 else &zeros[0]    # no input channels: bias only
    cdef const floating[:, :, :, ::1] w_view
    cdef const floating* wp = NULL
    cdef Py_ssize_t fresh_items = 0
    if w is not None and C > 0:
        w_view = w
        wp = &w_view[0, 0, 0, 0]
        fresh_items = transform_items(C, nblk)
    with nogil, parallel(num_threads=teams):
        for wi in prange(fresh_items, schedule="static"):
            transform_item(A, wp, C, Cout, nblk, up, wi)
        for item in prange(items, schedule="static"):
            tid = omp_get_thread_num()
            wino_item(xp, up, bp, rp, &zeros[0], &out[0, 0, 0, 0], &vbuf[tid, 0], &mbuf[tid, 0],
                      A, item // nchunks, item % nchunks, T, chunk_blocks, ntiles, tiles_w, tiles_img,
                      H, W, C, Cp, Cout, nblk, Hout, Wout, pt, pl, act, <floating>alpha)


def transform_weights(const floating[:, :, :, ::1] w, int m, int num_threads):
    """HWIO 3x3 weights (3, 3, Cin, Cout) -> U = G g G^T packed (A*A, ceil(Cout / lanes), Cin, lanes),
    A = m + 2, computed in float64 and rounded once; output channels past Cout are zeros."""
    cdef int A = m + 2
    cdef Py_ssize_t C = w.shape[2], Cout = w.shape[3]
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t nblk = (Cout + B - 1) // B, item
    check_tile(m, num_threads)
    check_size(w.shape[0], 3, "the kernel height")
    check_size(w.shape[1], 3, "the kernel width")
    u = np.empty((A * A, nblk, C, B), dtype=np.float32 if floating is float else np.float64)
    if u.size == 0:
        return u
    cdef floating[:, :, :, ::1] uv = u
    with nogil:
        for item in prange(transform_items(C, nblk), num_threads=num_threads, schedule="static"):
            transform_item(A, &w[0, 0, 0, 0], C, Cout, nblk, &uv[0, 0, 0, 0], item)
    return u
