"""Direct NHWC convolution: no column matrix, register-blocked over output pixels and channels.

Weights are packed by ``pack_weights`` (one pass; a caller that runs a layer many times, such as a
network's fused layers, packs once and passes ``packed=``) into blocks of ``block_width(dtype)``
output channels, zero-padded, laid out (group, block, kh, kw, ci, block): a block's rows are then
contiguous, where in HWIO they would sit Cout apart (for Cout = 512, 2 KiB: the same few cache sets,
measured 2-3x slower).  The innermost loop streams one block row and updates a tile of CK_TILE_PIXELS
output pixels x one block of accumulators held in vector registers (the tile itself is
``microkernel.h``).  Input pixels outside the image read from a row of zeros, so the inner loop has no
branches.

Work is split into items of (image, run of consecutive output pixels, channel block): an image's tiles
are shared evenly between runs of at most CHUNK_TILES tiles, and the runs cross output rows, so short
rows (7x7 maps) do not leave tiles half empty, and one weight block serves a whole run while it is in
cache.  OpenMP hands out items statically; each writes
its own pixels x channels of the output.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport calloc, free

from checks cimport check_geometry, check_min, check_size, optional_image, optional_vector
from direct_tile cimport conv_run
from simd cimport CK_TILE_PIXELS, tile_width

import numpy as np

cdef enum:
    CHUNK_TILES = 16  # at most this many tiles (of CK_TILE_PIXELS pixels) per work item


def block_width(dtype):
    """Output channels per packed weight block for ``dtype`` (the register tile's columns)."""
    return tile_width(np.dtype(dtype) == np.float32)


def conv2d_nhwc(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, bias,
                floating[:, :, :, ::1] out, Py_ssize_t groups,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                Py_ssize_t dh, Py_ssize_t dw, int act, double alpha, int num_threads,
                residual=None, packed=None):
    """out (N, Hout, Wout, Cout) = act(conv(x (N, H, W, C), w (KH, KW, C/groups, Cout)) + bias + residual).

    ``act``/``alpha``: the activation code and parameter from convkit.activations.resolve_activation.
    ``residual``: None or a C-contiguous array of out's shape, not overlapping it.  ``packed``: None, or
    ``pack_weights(w, groups)`` computed earlier (then only w's shape is read).
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], cin_g = w.shape[2], Cout = w.shape[3]
    cdef Py_ssize_t G = groups, cout_g, nblk, ntiles, nchunks, chunk_tiles, item, blocks
    cdef Py_ssize_t B = tile_width(floating is float)
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2]
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(groups, 1, "groups")
    check_size(groups * cin_g, C, "groups * the weight's input channels (the input channels)")
    check_size(Cout % groups, 0, "the weight's output channels modulo groups")
    check_size(out.shape[0], N, "out's batch")
    check_size(out.shape[3], Cout, "out's channels")
    check_min(pt, 0, "the top padding")
    check_min(pl, 0, "the left padding")
    cdef const floating* bp
    cdef const floating* rp
    optional_vector(bias, Cout, "bias", &bp)
    optional_image(residual, N, Hout, Wout, Cout, "residual", &rp)
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0:
        return
    cout_g = Cout // groups
    nblk = (cout_g + B - 1) // B
    blocks = G * nblk
    ntiles = (Hout * Wout + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS
    nchunks = (ntiles + CHUNK_TILES - 1) // CHUNK_TILES
    chunk_tiles = (ntiles + nchunks - 1) // nchunks
    if packed is None:
        packed = pack_weights(np.asarray(w), G)
    elif packed.shape != (G, nblk, KH, KW, cin_g, B):
        raise ValueError(f"expected packed weights of shape {(G, nblk, KH, KW, cin_g, B)}, got {packed.shape}")
    cdef const floating[:, :, :, :, :, ::1] wpk = packed
    # The padding's source: a kernel row of zeros (calloc'd, not an array: this runs once per layer call)
    cdef floating* zeros = <floating*>calloc(max(KW * C, 1), sizeof(floating))
    if zeros == NULL:
        raise MemoryError("cannot allocate the direct kernel's row of zeros")
    cdef const floating* xp = &x[0, 0, 0, 0] if N * H * W * C > 0 else zeros
    cdef const floating* wp = &wpk[0, 0, 0, 0, 0, 0] if wpk.size > 0 else zeros
    cdef floating* op = &out[0, 0, 0, 0]
    cdef Py_ssize_t P = Hout * Wout, n, p_begin, p_end
    with nogil:
        # item = ((n * nchunks + chunk) * G + g) * nblk + b
        for item in prange(N * nchunks * blocks, num_threads=num_threads, schedule="static"):
            n = item // (nchunks * blocks)
            p_begin = (item // blocks) % nchunks * chunk_tiles * CK_TILE_PIXELS
            p_end = min(p_begin + chunk_tiles * CK_TILE_PIXELS, P)
            conv_run(xp + n * H * W * C, wp, bp, rp + (n * P + p_begin) * Cout if rp != NULL else NULL, zeros,
                     op + (n * P + p_begin) * Cout, p_begin, p_end, (item % blocks) // nblk, item % nblk,
                     H, W, C, G, cin_g, cout_g, nblk, KH, KW, sh, sw, pt, pl, dh, dw, Wout,
                     act, <floating>alpha)
        free(zeros)


def pack_weights(w, Py_ssize_t groups):
    """HWIO weights (KH, KW, Cin/groups, Cout) -> (groups, blocks, KH, KW, Cin/groups, block), one copy."""
    KH, KW, cin_g, Cout = w.shape
    B = block_width(w.dtype)
    cout_g = Cout // groups
    full, tail = divmod(cout_g, B)
    packed = np.empty((groups, full + (tail > 0), KH, KW, cin_g, B), dtype=w.dtype)
    w = w.reshape(KH, KW, cin_g, groups, cout_g)
    if full:
        np.copyto(packed[:, :full], w[..., :full * B].reshape(KH, KW, cin_g, groups, full, B)
                  .transpose(3, 4, 0, 1, 2, 5))
    if tail:  # the last block is zero-padded
        packed[:, full, ..., tail:] = 0
        np.copyto(packed[:, full, ..., :tail], w[..., full * B:].transpose(3, 0, 1, 2, 4))
    return packed
