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

U, the transformed weights, comes packed (A*A, channel blocks, Cin, block) from convkit/winograd.py
(weights kept between calls), or is computed in the item, for one block of output channels and
CK_WINO_WEIGHT_CHUNK input channels at a time, from the HWIO weights (a call's own weights): U is then
never stored whole (a 512 -> 512 layer's is 38 MB: writing it and reading it back cost more than the
layer's products at batch 8).
The workspace is V (A*A x tile_block x Cin padded to a block) plus M (A*A x tile_block x the chunk's
channels) per thread, and the U chunk computed in the item; convkit/winograd.py picks the block sizes
so that V and M stay within its budget.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.string cimport memset

from activation cimport activate_span
from checks cimport check_min, check_size, optional_image, optional_vector
from microkernel cimport micro_tile_rows
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
    enum: CK_WINO_WEIGHT_CHUNK
    void ck_wino_weight_f32(int A, const float* w, Py_ssize_t tap_stride, Py_ssize_t n, float* u,
                            Py_ssize_t pos_stride)
    void ck_wino_weight_f64(int A, const double* w, Py_ssize_t tap_stride, Py_ssize_t n, double* u,
                            Py_ssize_t pos_stride)
    void ck_wino_weights_f32(int A, const float* w, Py_ssize_t tap_stride, Py_ssize_t ci_stride, int nci,
                             Py_ssize_t n, float* u, Py_ssize_t pos_stride)
    void ck_wino_weights_f64(int A, const double* w, Py_ssize_t tap_stride, Py_ssize_t ci_stride, int nci,
                             Py_ssize_t n, double* u, Py_ssize_t pos_stride)


def lanes(dtype):
    """Channels per packed weight block (and per transform run) for ``dtype``."""
    return LANES_F32 if np.dtype(dtype) == np.float32 else LANES_F64


def weight_chunk_len(int m, dtype):
    """Elements of the U chunk each thread computes at once when the weights are transformed in the call."""
    return (m + 2) ** 2 * chunk_pos_stride(LANES_F32 if np.dtype(dtype) == np.float32 else LANES_F64)


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


cdef inline void weight_one(int A, const floating* w, Py_ssize_t tap_stride, Py_ssize_t n, floating* u,
                            Py_ssize_t pos_stride) noexcept nogil:
    if floating is float:
        ck_wino_weight_f32(A, w, tap_stride, n, u, pos_stride)
    else:
        ck_wino_weight_f64(A, w, tap_stride, n, u, pos_stride)


cdef inline Py_ssize_t chunk_pos_stride(Py_ssize_t B) noexcept nogil:
    """Elements between positions in an item's U chunk: CK_WINO_WEIGHT_CHUNK rows of B, plus half a row
    so that a channel's A*A stores are not a power of two apart (one cache set)."""
    return CK_WINO_WEIGHT_CHUNK * B + B // 2


cdef inline void position_gemm(const floating* vp, const floating* up, Py_ssize_t kc, floating* mp,
                               Py_ssize_t nt, Py_ssize_t Cp, const floating* zeros) noexcept nogil:
    """mp[t][0:B] += vp[t*Cp : t*Cp + kc] . up (kc rows of B) for the tiles t < nt of one position (the
    last register tile cut to a third or two thirds of its rows where that holds the rest: 16 tiles, a
    14x14 map's, take 12 + 4 rows rather than 24)."""
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef Py_ssize_t g, tg, r
    for g in range((nt + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS):
        tg = g * CK_TILE_PIXELS
        for r in range(CK_TILE_PIXELS):
            xp[r] = vp + (tg + r) * Cp if tg + r < nt else zeros
        micro_tile_rows(nt - tg, xp, up, kc, mp + tg * B)


cdef inline void wino_item(
    const floating* x, const floating* u, const floating* w, const floating* bias, const floating* res,
    const floating* zeros, floating* y, floating* v, floating* mbuf, floating* ubuf, int A, Py_ssize_t blk,
    Py_ssize_t chunk,
    Py_ssize_t T, Py_ssize_t chunk_blocks, Py_ssize_t ntiles, Py_ssize_t tiles_w, Py_ssize_t tiles_img,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t Cp, Py_ssize_t Cout, Py_ssize_t nblk,
    Py_ssize_t Hout, Py_ssize_t Wout, Py_ssize_t pt, Py_ssize_t pl, int act, floating alpha,
) noexcept nogil:
    """Tiles [blk*T, blk*T + T) x channel blocks [chunk*chunk_blocks, ...) of the output; U read from
    ``u`` (packed), or, with ``u`` NULL, computed from the HWIO weights ``w`` a chunk at a time in ``ubuf``."""
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef int m = A - 2
    cdef Py_ssize_t P = A * A
    cdef const floating* d[CK_WINO_MAX_A * CK_WINO_MAX_A]
    cdef floating o[(CK_WINO_MAX_A - 2) * (CK_WINO_MAX_A - 2) * LANES_F32]
    cdef Py_ssize_t t0 = blk * T, nt = min(T, ntiles - t0)
    cdef Py_ssize_t b0 = chunk * chunk_blocks, nb = min(chunk_blocks, nblk - b0)
    cdef Py_ssize_t t, tile, img, ty, tx, ih, iw, i, j, pos, bl, co0, nco, oh, ow, off, c, k, ci0, kc
    cdef Py_ssize_t ups = chunk_pos_stride(B)
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
    if u != NULL:
        for pos in range(P):
            for bl in range(nb):
                position_gemm(v + pos * T * Cp, u + (pos * nblk + b0 + bl) * C * B, C,
                              mbuf + (pos * nb + bl) * T * B, nt, Cp, zeros)
    else:   # U of channel block b0 + bl, input channels [ci0, ci0 + kc), then its share of the products
        for bl in range(nb):
            co0 = (b0 + bl) * B
            for k in range((C + CK_WINO_WEIGHT_CHUNK - 1) // CK_WINO_WEIGHT_CHUNK):
                ci0 = k * CK_WINO_WEIGHT_CHUNK
                kc = min(CK_WINO_WEIGHT_CHUNK, C - ci0)
                for c in range(kc):
                    weight_one(A, w + (ci0 + c) * Cout + co0, C * Cout, min(B, Cout - co0), ubuf + c * B, ups)
                for pos in range(P):
                    position_gemm(v + pos * T * Cp + ci0, ubuf + pos * ups, kc,
                                  mbuf + (pos * nb + bl) * T * B, nt, Cp, zeros)
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


def conv2d_nhwc(const floating[:, :, :, ::1] x, u, bias,
                floating[:, :, :, ::1] out, int m, Py_ssize_t pt, Py_ssize_t pl,
                Py_ssize_t tile_block, Py_ssize_t chunk_blocks, int act, double alpha, int num_threads,
                residual=None, w=None):
    """out (N, Hout, Wout, Cout) = act(winograd F(m, 3)(x (N, H, W, C), U) + bias + residual).

    ``u``: transformed weights packed (A*A, ceil(Cout / lanes), C, lanes), A = m + 2, or None.  With the
    HWIO weights ``w`` given too, ``u`` is filled from them first, by the same thread team (a per-call
    transform costs no second parallel region); with ``w`` alone, each work item computes the U of its
    channel blocks a chunk at a time and U is never stored whole.  Work items are ``tile_block`` tiles (a
    multiple of the micro-kernel's CK_TILE_PIXELS rows) x ``chunk_blocks`` channel blocks.
    """
    cdef int A = m + 2
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef Py_ssize_t B = LANES_F32 if floating is float else LANES_F64
    cdef Py_ssize_t nblk = (Cout + B - 1) // B, Cp = (C + B - 1) // B * B
    cdef Py_ssize_t T = tile_block, tiles_w, tiles_img, ntiles, nblocks, nchunks, items, item, tid, wi
    cdef floating[:, :, :, ::1] u_view
    check_tile(m, num_threads)
    if u is None and w is None:
        raise ValueError("expected the weights w or their transforms u, got neither")
    if u is not None:
        u_view = u
        nblk = u_view.shape[1]
        check_size(u_view.shape[0], A * A, "u's positions (A*A)")
        check_size(u_view.shape[2], C, "u's input channels")
        check_size(u_view.shape[3], B, "u's lanes")
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
    cdef floating[:, ::1] ubuf = np.empty((teams, weight_chunk_len(m, dtype) if u is None else 1), dtype=dtype)
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else &zeros[0]
    cdef floating* up = NULL
    cdef const floating[:, :, :, ::1] w_view
    cdef const floating* wp = NULL
    cdef Py_ssize_t fresh_items = 0
    if w is not None and C > 0:
        w_view = w
        wp = &w_view[0, 0, 0, 0]
    if u is not None:
        up = &u_view[0, 0, 0, 0] if C > 0 else &zeros[0]    # no input channels: bias only
        if wp != NULL:
            fresh_items = transform_items(C, nblk)
    elif wp == NULL:
        wp = &zeros[0]      # no input channels: no chunk of U is computed
    with nogil, parallel(num_threads=teams):
        for wi in prange(fresh_items, schedule="static"):
            transform_item(A, wp, C, Cout, nblk, up, wi)
        for item in prange(items, schedule="static"):
            tid = omp_get_thread_num()
            wino_item(xp, up, wp, bp, rp, &zeros[0], &out[0, 0, 0, 0], &vbuf[tid, 0], &mbuf[tid, 0],
                      &ubuf[tid, 0], A, item // nchunks, item % nchunks, T, chunk_blocks, ntiles, tiles_w,
                      tiles_img, H, W, C, Cp, Cout, nblk, Hout, Wout, pt, pl, act, <floating>alpha)


def transform_weights(const floating[:, :, :, ::1] w, int m, int num_threads):
    """HWIO 3x3 weights (3, 3, Cin, Cout) -> U = G g G^T packed (A*A, ceil(Cout / lanes), Cin, lanes),
    A = m + 2, computed in the weights' dtype; output channels past Cout are zeros."""
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
