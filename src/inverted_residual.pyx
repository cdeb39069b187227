"""MobileNetV2's inverted residual block as one kernel: 1x1 expansion, depthwise KHxKW, 1x1 projection.

    hidden = act_e(x @ We + be)                  (N, H, W, Ch)       omitted when the block has no expansion
    depth  = act_d(depthwise(hidden, Wd) + bd)   (N, Hout, Wout, Ch)
    out    = act_p(depth @ Wp + bp + residual)   (N, Hout, Wout, Cout)

Run layer by layer, the expanded tensors go to memory and back between the layers: MobileNetV2's first
blocks expand 56x56 and 112x112 maps to 144 and 96 channels (1.8 and 4.8 MB an image), more than a core's
L2, and the depthwise layer reading the expansion's output ran 1.9-2.6x slower inside the network than
alone (AMD EPYC Zen 4, batch 1, 2 threads).  Here the hidden and depthwise tensors exist only a few rows at
a time, per thread: each work item is a band of output rows of one image, walked down in groups of
``group_rows`` rows.  For a group the item computes the expansion of the input rows the group's windows
need and have not been computed yet, into a ring of hidden rows (row ih in slot ih mod ``ring_rows``, so
nothing is recomputed or moved while walking down), then the group's depthwise rows from the ring
(``depthwise_row.pxd``, its window rows given as pointers into the ring), then the projection of those
rows straight into the output, the residual added in its epilogue.  The two 1x1 layers are products on one
thread with the GEMM's packing and register tile (``gemm.pxd``'s ``gemm_serial``), their weights packed
once ahead (``gemm.pack_b``).  Only the first rows of a band (the window's overlap with the band above) are
expanded twice.

Bands: an image is cut into as many bands as it takes for the images x bands to share evenly between the
threads (one band per image when the threads divide the batch).  Each thread's ring, depthwise rows and
packing panel come from one allocation per call.  On 7x7 maps with fewer images than threads the threads
split channels instead (``run_channel_split``).

The first layer may also be a KxK convolution (MobileNetV2's 3x3 stem before its first block, which has no
expansion): the ring's rows are then that convolution's output rows, computed by the direct kernel's tile
(``direct_tile.pxd``'s ``conv_run``), and the stem's output never exists whole.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from activation cimport ACT_NONE, activate_span
from checks cimport check_geometry, check_min, check_size, optional_image, optional_vector
from depthwise_row cimport dw_row, tap_rows
from direct_tile cimport conv_run
from gemm cimport (ALIGN, ROWS_IN_PLACE_MAX_N, StridedMatrix, aligned, block_sizes, gemm_serial,
                   pack_a_strided_f32, pack_a_strided_f64, round_up)
from simd cimport CK_NR_F32, CK_NR_F64

import math

import numpy as np

# A first layer that is a KxK convolution (MobileNetV2's stem before its first block) instead of a 1x1:
# the direct kernel's packed weights (1, blocks, KH, KW, Cin, B) and geometry, and a kernel row of zeros.
cdef struct ExpandConv:
    const void* weight
    const void* zeros
    Py_ssize_t blocks, KH, KW, sh, sw, pt, pl, dh, dw

cdef enum:
    GROUP_PIXELS = 64   # output pixels per group at least (rows of the projection's product), when a band has them
    # Output maps up to this size (7x7) split channels, not rows, between threads (run_channel_split).  On
    # MobileNetV2's blocks at batch 1, 2 threads, AMD EPYC Zen 4, against bands: 7x7 1.03x and 1.08x,
    # 14x14 0.85-0.98x (interleaved rounds, the two builds in one process).
    CHANNEL_SPLIT_MAX_PIXELS = 49


cdef inline void pointwise(const floating* a, Py_ssize_t M, Py_ssize_t K, const floating* b_packed,
                           Py_ssize_t N, Py_ssize_t j_begin, Py_ssize_t j_end, floating* c,
                           const floating* bias, const floating* res, int act, floating alpha,
                           floating* panel) noexcept nogil:
    """Columns j_begin:j_end (j_begin a multiple of the GEMM's panel width) of c (M x N, rows N apart) =
    act(a (M x K, rows K apart) @ B + bias + res) on this thread, B packed by gemm.pack_b; narrow
    products read ``a`` in place, as gemm.pxd's gemm does."""
    cdef StridedMatrix src
    src.data = a
    src.row_stride = K
    src.col_stride = 1
    cdef const floating* in_place = a if K > 0 and N <= ROWS_IN_PLACE_MAX_N else NULL
    gemm_serial(pack_a_strided_f32 if floating is float else pack_a_strided_f64, &src, in_place, K,
                0, M, j_begin, j_end, K, NULL, 0, 0, b_packed, N, c, N, False, bias, res, N, act, alpha,
                panel, NULL)


cdef inline void block_band(
    const floating* x, const floating* we, const floating* be, const ExpandConv* ec,
    const floating* wd, const floating* bd, const floating* wp, const floating* bp, const floating* res,
    floating* out, Py_ssize_t n, Py_ssize_t oh_begin, Py_ssize_t oh_end, Py_ssize_t group_rows,
    Py_ssize_t ring_rows, Py_ssize_t H0, Py_ssize_t W0,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t Cin, Py_ssize_t Ch, Py_ssize_t Cout, Py_ssize_t Hout,
    Py_ssize_t Wout, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
    Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int act_e, floating alpha_e, int act_d, floating alpha_d,
    int act_p, floating alpha_p, floating* ring, floating* depth, const floating** rows, floating* panel,
) noexcept nogil:
    """Output rows oh_begin:oh_end of image ``n`` (H0 x W0 x Cin; see the module's docstring).  The hidden
    rows (H x W x Ch) come from the 1x1 expansion ``we``, or, with ``ec`` not NULL, from its KxK
    convolution; neither: no expansion, the depthwise layer reads the input's rows.  ``ring`` holds
    ``ring_rows`` hidden rows, ``depth`` ``group_rows`` depthwise rows, ``rows`` KH pointers, ``panel``
    the GEMM's packed A block."""
    cdef Py_ssize_t oh, o, o_end, ih0, kh0, kh1, kh, ih, lo, hi, run, b
    cdef Py_ssize_t done = -1     # hidden rows below this one are in the ring (or not needed)
    cdef const floating* image = x + n * H0 * W0 * Cin
    cdef bint expands = we != NULL or ec != NULL
    o = oh_begin
    while o < oh_end:
        o_end = min(o + group_rows, oh_end)
        if expands:
            # Hidden rows [lo, hi): from the first row the group's first window reads to the last row
            # its last window reads, clipped to the image; those below `done` are in the ring already.
            ih0, kh0, kh1 = tap_rows(o, sh, pt, dh, KH, H)
            lo = max(ih0 + kh0 * dh, done)
            ih0, kh0, kh1 = tap_rows(o_end - 1, sh, pt, dh, KH, H)
            hi = ih0 + (kh1 - 1) * dh + 1
            while lo < hi:     # a run of consecutive slots, up to the ring's end
                run = min(hi - lo, ring_rows - lo % ring_rows)
                if ec != NULL:
                    for b in range(ec.blocks):
                        conv_run(image, <const floating*>ec.weight, be, NULL, <const floating*>ec.zeros,
                                 ring + (lo % ring_rows) * W * Ch, lo * W, (lo + run) * W, 0, b, H0, W0, Cin,
                                 1, Cin, Ch, ec.blocks, ec.KH, ec.KW, ec.sh, ec.sw, ec.pt, ec.pl, ec.dh,
                                 ec.dw, W, act_e, alpha_e)
                else:
                    pointwise(image + lo * W * Cin, run * W, Cin, we, Ch, 0, Ch,
                              ring + (lo % ring_rows) * W * Ch, be, NULL, act_e, alpha_e, panel)
                lo += run
            done = max(done, hi)
        for oh in range(o, o_end):
            ih0, kh0, kh1 = tap_rows(oh, sh, pt, dh, KH, H)
            for kh in range(kh0, kh1):
                ih = ih0 + kh * dh
                rows[kh] = ring + (ih % ring_rows) * W * Ch if expands else image + ih * W * Cin
            dw_row(rows, kh0, kh1, 0, Ch, wd, bd, depth + (oh - o) * Wout * Ch, W, Ch, 1, KW, sw, pl, dw, Wout)
            if act_d != ACT_NONE:
                activate_span(depth + (oh - o) * Wout * Ch, NULL, depth + (oh - o) * Wout * Ch, Wout * Ch,
                              act_d, alpha_d)
        pointwise(depth, (o_end - o) * Wout, Ch, wp, Cout, 0, Cout, out + (n * Hout + o) * Wout * Cout, bp,
                  res + (n * Hout + o) * Wout * Cout if res != NULL else NULL, act_p, alpha_p, panel)
        o = o_end


cdef inline void expand_depthwise_channels(
    const floating* x, const floating* we, const floating* be, const floating* wd, const floating* bd,
    floating* hidden, floating* depth, Py_ssize_t c_begin, Py_ssize_t c_end,
    Py_ssize_t H, Py_ssize_t W, Py_ssize_t Cin, Py_ssize_t Ch, Py_ssize_t Hout, Py_ssize_t Wout,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
    Py_ssize_t dh, Py_ssize_t dw, int act_e, floating alpha_e, int act_d, floating alpha_d,
    const floating** rows, floating* panel,
) noexcept nogil:
    """Hidden channels c_begin:c_end of one image, whole: its expansion into ``hidden`` (H x W x Ch), then
    its depthwise layer into ``depth`` (Hout x Wout x Ch).  The other channels are other threads'."""
    cdef Py_ssize_t oh, ow, kh, ih0, kh0, kh1
    cdef floating* d
    pointwise(x, H * W, Cin, we, Ch, c_begin, c_end, hidden, be, NULL, act_e, alpha_e, panel)
    for oh in range(Hout):
        ih0, kh0, kh1 = tap_rows(oh, sh, pt, dh, KH, H)
        for kh in range(kh0, kh1):
            rows[kh] = hidden + (ih0 + kh * dh) * W * Ch
        dw_row(rows, kh0, kh1, c_begin, c_end, wd, bd, depth + oh * Wout * Ch, W, Ch, 1, KW, sw, pl, dw, Wout)
        if act_d != ACT_NONE:
            for ow in range(Wout):
                d = depth + (oh * Wout + ow) * Ch + c_begin
                activate_span(d, NULL, d, c_end - c_begin, act_d, alpha_d)


def inverted_residual_nhwc(const floating[:, :, :, ::1] x, expand, expand_bias, int expand_act,
                           double expand_alpha, const floating[:, :, :, ::1] dw_weight,
                           const floating[:, ::1] dw_bias, int dw_act, double dw_alpha, project,
                           project_bias, int project_act, double project_alpha,
                           floating[:, :, :, ::1] out, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                           Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int num_threads, residual=None,
                           expand_geometry=None):
    """out (N, Hout, Wout, Cout) = the block of the module's docstring on x (N, H0, W0, Cin).

    ``expand``: None (no expansion layer), ``gemm.pack_b`` of the (Cin, Ch) weight of a 1x1 expansion,
    or, for a KxK first layer, ``conv_direct.pack_weights(w, 1)`` of its (KH, KW, Cin, Ch) weight with
    ``expand_geometry`` = (sh, sw, pt, pl, dh, dw, H, W): its stride, top/left padding, dilation and
    output size (the hidden map; otherwise the input's size).  ``dw_weight``/``dw_bias``:
    depthwise.pack_weights / pack_bias of the (KH, KW, 1, Ch) depthwise layer (channel multiplier 1);
    ``project``: ``gemm.pack_b`` of the (Ch, Cout) projection weight; biases None or vectors; ``*_act``
    and ``*_alpha``: each layer's activation code and parameter (resolve_activation); ``residual`` None or
    a C-contiguous array of out's shape not overlapping it.  The depthwise layer's padding pt/pl on
    top/left; the bottom and right follow from out's size.
    """
    cdef Py_ssize_t N = x.shape[0], H0 = x.shape[1], W0 = x.shape[2], Cin = x.shape[3]
    cdef Py_ssize_t H = H0, W = W0
    cdef Py_ssize_t KH = dw_weight.shape[1], KW = dw_weight.shape[2], Ch = dw_weight.shape[3]
    cdef Py_ssize_t Hout = out.shape[1], Wout = out.shape[2], Cout = out.shape[3]
    cdef ExpandConv ec
    cdef const floating[:, :, :, :, :, ::1] ec_view
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    check_geometry(sh, sw, dh, dw, num_threads)
    check_min(pt, 0, "the top padding")
    check_min(pl, 0, "the left padding")
    check_size(dw_weight.shape[0], 1, "the depthwise weight's channel multiplier")
    check_size(dw_bias.shape[0], 1, "the packed depthwise bias' rows")
    check_size(dw_bias.shape[1], Ch, "the packed depthwise bias' channels")
    check_size(out.shape[0], N, "out's batch")
    dtype = np.float32 if floating is float else np.float64
    cdef bint conv_first = expand_geometry is not None
    if conv_first:
        ec.sh, ec.sw, ec.pt, ec.pl, ec.dh, ec.dw, H, W = expand_geometry
        check_geometry(ec.sh, ec.sw, ec.dh, ec.dw, num_threads)
        check_min(ec.pt, 0, "the expansion's top padding")
        check_min(ec.pl, 0, "the expansion's left padding")
        check_min(H, 0, "the hidden height")
        check_min(W, 0, "the hidden width")
        ec_view = expand
        if (ec_view.shape[0], ec_view.shape[1], ec_view.shape[4], ec_view.shape[5]) != (1, (Ch + NR - 1) // NR,
                                                                                      Cin, NR):
            raise ValueError(f"expected expand packed by conv_direct.pack_weights as (1, {(Ch + NR - 1) // NR}, "
                             f"KH, KW, {Cin}, {NR}), got {tuple(expand.shape)}")
        ec.blocks, ec.KH, ec.KW = ec_view.shape[1], ec_view.shape[2], ec_view.shape[3]
    elif expand is None:
        check_size(Ch, Cin, "the depthwise channels without an expansion (the input channels)")
    elif expand.shape != (Cin, Ch) or expand.dtype != dtype:
        raise ValueError(f"expected expand packed as a ({Cin}, {Ch}) operand of the input's dtype, got "
                         f"{expand.shape} {expand.dtype}")
    if project.shape != (Ch, Cout) or project.dtype != dtype:
        raise ValueError(f"expected project packed as a ({Ch}, {Cout}) operand of the input's dtype, got "
                         f"{project.shape} {project.dtype}")
    cdef const floating* be
    cdef const floating* bp
    cdef const floating* rp
    optional_vector(expand_bias, Ch, "expand_bias", &be)
    optional_vector(project_bias, Cout, "project_bias", &bp)
    optional_image(residual, N, Hout, Wout, Cout, "residual", &rp)
    if N * Hout * Wout * Cout == 0:
        return
    if H == 0 or W == 0 or H0 == 0 or W0 == 0 or Ch == 0:
        raise ValueError(f"expected a non-empty input and hidden layer, got input {tuple(x.shape)[:3]}, "
                         f"hidden {H}x{W}x{Ch}")
    cdef const floating[::1] we_view = None if expand is None or conv_first else expand.buffer
    cdef const floating[::1] wp_view = project.buffer
    cdef const floating* we = &we_view[0] if expand is not None and not conv_first else NULL
    cdef const floating* wp = &wp_view[0]
    # Bands per image: enough for images x bands to be a multiple of the threads (at most a band a row).
    cdef Py_ssize_t bands = min(num_threads // math.gcd(N, num_threads), Hout)
    cdef Py_ssize_t MC, KC, NC
    MC, KC, NC = block_sizes(<floating>0)
    cdef Py_ssize_t panel_len = round_up(MC * min(KC, max(Cin, Ch)), ALIGN)
    cdef Py_ssize_t rows_len = round_up(KH * sizeof(floating*) // sizeof(floating) + 1, ALIGN)
    if bands > 1 and we != NULL and Hout * Wout <= CHANNEL_SPLIT_MAX_PIXELS:
        run_channel_split(&x[0, 0, 0, 0], we, be, &dw_weight[0, 0, 0, 0], &dw_bias[0, 0], wp, bp, rp,
                          &out[0, 0, 0, 0], N, H, W, Cin, Ch, Cout, Hout, Wout, KH, KW, sh, sw, pt, pl, dh,
                          dw, expand_act, <floating>expand_alpha, dw_act, <floating>dw_alpha, project_act,
                          <floating>project_alpha, panel_len + rows_len, panel_len, num_threads)
        return
    cdef Py_ssize_t band_rows = (Hout + bands - 1) // bands
    cdef Py_ssize_t group_rows = min(max((GROUP_PIXELS + Wout - 1) // Wout, 1), band_rows)
    # A group's windows span (group_rows - 1) * sh + (KH - 1) * dh + 1 input rows.
    cdef Py_ssize_t ring_rows = (group_rows - 1) * sh + (KH - 1) * dh + 1
    cdef Py_ssize_t ring_len = round_up(ring_rows * W * Ch if expand is not None else 0, ALIGN)
    cdef Py_ssize_t depth_len = round_up(group_rows * Wout * Ch, ALIGN)
    cdef Py_ssize_t per_thread = ring_len + depth_len + panel_len + rows_len
    # The expansion's padding reads a kernel row of zeros (conv_direct's convention).
    cdef Py_ssize_t zeros_len = round_up(ec.KW * Cin if conv_first else 0, ALIGN)
    cdef void* raw = malloc((num_threads * per_thread + zeros_len) * sizeof(floating) + ALIGN)
    if raw == NULL:
        raise MemoryError("cannot allocate the inverted residual block's per-thread rows")
    cdef floating* work = <floating*>aligned(raw)
    if conv_first:
        ec.weight = &ec_view[0, 0, 0, 0, 0, 0]
        ec.zeros = work + num_threads * per_thread
        memset(work + num_threads * per_thread, 0, zeros_len * sizeof(floating))
    cdef floating* mine
    cdef Py_ssize_t item, band
    with nogil:
        for item in prange(N * bands, num_threads=num_threads, schedule="static"):
            band = item % bands
            mine = work + threadid() * per_thread
            block_band(&x[0, 0, 0, 0], we, be, &ec if conv_first else NULL, &dw_weight[0, 0, 0, 0],
                       &dw_bias[0, 0], wp, bp, rp, &out[0, 0, 0, 0], item // bands, band * band_rows,
                       min((band + 1) * band_rows, Hout), group_rows, ring_rows, H0, W0, H, W, Cin, Ch,
                       Cout, Hout, Wout, KH, KW, sh, sw, pt, pl, dh, dw, expand_act, <floating>expand_alpha,
                       dw_act, <floating>dw_alpha, project_act, <floating>project_alpha,
                       mine, mine + ring_len, <const floating**>(mine + ring_len + depth_len + panel_len),
                       mine + ring_len + depth_len)
        free(raw)


cdef int run_channel_split(
    const floating* x, const floating* we, const floating* be, const floating* wd, const floating* bd,
    const floating* wp, const floating* bp, const floating* res, floating* out,
    Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Cin, Py_ssize_t Ch, Py_ssize_t Cout,
    Py_ssize_t Hout, Py_ssize_t Wout, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int act_e, floating alpha_e,
    int act_d, floating alpha_d, int act_p, floating alpha_p, Py_ssize_t per_thread, Py_ssize_t panel_len,
    int num_threads,
) except -1:
    """The block on small maps with fewer images than threads: there, bands of a few rows would expand
    their windows' overlap twice (a 7x7 map in two bands: 9 hidden rows for 7) and share the rows
    unevenly.  Instead each thread takes whole panels of hidden channels of an image (its expansion
    columns and depthwise channels, into tensors shared by the threads), then, after the threads meet,
    whole panels of the projection's output channels."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t parts = max(min(num_threads, (Ch + NR - 1) // NR), 1)
    cdef Py_ssize_t out_parts = max(min(num_threads, (Cout + NR - 1) // NR), 1)
    cdef Py_ssize_t hidden_len = round_up(H * W * Ch, ALIGN), depth_len = round_up(Hout * Wout * Ch, ALIGN)
    cdef void* raw = malloc((N * (hidden_len + depth_len) + num_threads * per_thread) * sizeof(floating)
                            + ALIGN)
    if raw == NULL:
        raise MemoryError("cannot allocate the inverted residual block's hidden tensors")
    cdef floating* hidden = <floating*>aligned(raw)
    cdef floating* depth = hidden + N * hidden_len
    cdef floating* work = depth + N * depth_len
    cdef floating* mine
    cdef Py_ssize_t item, n, part, panels
    with nogil:
        panels = (Ch + NR - 1) // NR
        for item in prange(N * parts, num_threads=num_threads, schedule="static"):
            n = item // parts
            part = item % parts
            mine = work + threadid() * per_thread
            expand_depthwise_channels(x + n * H * W * Cin, we, be, wd, bd, hidden + n * hidden_len,
                                      depth + n * depth_len, part * panels // parts * NR,
                                      min((part + 1) * panels // parts * NR, Ch), H, W, Cin, Ch, Hout, Wout,
                                      KH, KW, sh, sw, pt, pl, dh, dw, act_e, alpha_e, act_d, alpha_d,
                                      <const floating**>(mine + panel_len), mine)
        panels = (Cout + NR - 1) // NR
        for item in prange(N * out_parts, num_threads=num_threads, schedule="static"):
            n = item // out_parts
            part = item % out_parts
            pointwise(depth + n * depth_len, Hout * Wout, Ch, wp, Cout, part * panels // out_parts * NR,
                      min((part + 1) * panels // out_parts * NR, Cout), out + n * Hout * Wout * Cout, bp,
                      res + n * Hout * Wout * Cout if res != NULL else NULL, act_p, alpha_p,
                      work + threadid() * per_thread)
        free(raw)
    return 0
