"""Deformable convolution (DCNv1 and modulated DCNv2) and bilinear sampling, torchvision's semantics."""
import numpy as np

from ._alloc import empty as aligned_empty
from ._kernels import conv_direct as _direct
from ._kernels import deform as _deform
from ._kernels import deform_direct as _deform_direct
from ._kernels import gemm as _gemm
from ._conv_args import conv_prologue
from ._layout import from_nhwc, layout_shape, to_nhwc
from ._threads import resolve_num_threads
from ._validation import as_float_array, check_layout, check_ndim, conv_geometry

ALGORITHMS = ("auto", "direct", "im2col")

#: Bytes of column matrix ``algo="im2col"`` materialises at once.  Output rows are processed in tiles of
#: as many rows as fit (at least one), so the workspace is bounded whatever the batch or image size,
#: while each GEMM still has hundreds of rows (e.g. 1,800 for a 3x3x128 layer in float32).
IM2COL_WORKSPACE_BYTES = 8 << 20
#: Bytes of each thread's column buffer in ``algo="direct"``: whole output rows of columns while they
#: fit (66 pixels, 64 rounded up to the register tile, of a 3x3x64 float32 layer: 148.5 KiB), so the
#: buffer stays in a core's L2.
DIRECT_TILE_BYTES = 192 << 10
#: ``algo="auto"`` picks im2col when one group's weights are larger than this (see choose_algorithm).
AUTO_IM2COL_WEIGHT_BYTES = 8 << 20
_PIXELS = _deform_direct.tile_pixels()  # pixels of the direct kernel's register tile (src/simd.h)


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None, *,
                  layout="NHWC", algo="auto", num_threads=None):
    """Deformable 2-D convolution: ``y(p0) = sum_n w(pn) * m_n * x(p0 + pn + dpn)``.

    The semantics of ``torchvision.ops.deform_conv2d``: for output pixel (oy, ox) and kernel tap
    (i, j) the input is sampled bilinearly at ``y = oy*stride - pad + i*dilation + dy`` (same for x),
    zero outside the image (see :func:`bilinear_sample`); non-finite offsets sample zero.

    Parameters
    ----------
    x : ndarray, float32 or float64
        ``(N, H, W, C)`` for ``layout="NHWC"`` (default), ``(N, C, H, W)`` for ``"NCHW"``.
    offset : ndarray, same dtype
        ``(N, Hout, Wout, 2*G*KH*KW)`` (NHWC) or ``(N, 2*G*KH*KW, Hout, Wout)`` (NCHW); channels ordered
        (offset group, kernel tap row-major, then dy before dx).  The offset groups ``G`` are inferred
        from its channels; group g deforms input channels ``g*C/G:(g+1)*C/G``.
    weight : ndarray, same dtype
        ``(KH, KW, C/groups, Cout)`` for NHWC, ``(Cout, C/groups, KH, KW)`` for NCHW; the weight groups
        are ``C / (C/groups)``.
    bias : ndarray (Cout,), optional
    stride, padding, dilation : as :func:`convkit.conv2d` (padding may be ``"same"``/``"valid"``)
    mask : ndarray, optional
        ``(N, Hout, Wout, G*KH*KW)`` (NHWC) or ``(N, G*KH*KW, Hout, Wout)`` (NCHW): the modulated
        variant (DCNv2), multiplying each sample; ``None`` is the original (DCNv1).
    algo : ``"im2col"``, ``"direct"`` or ``"auto"`` (see :func:`choose_algorithm`)
    num_threads : int, optional

    Returns the C-contiguous output, ``(N, Hout, Wout, Cout)`` or ``(N, Cout, Hout, Wout)``.
    """
    xh, w, bias, groups, nt = conv_prologue(x, weight, bias, None, layout=layout, algo=algo,
                                            algorithms=ALGORITHMS, num_threads=num_threads, kind="deform")
    off, m, g_off, (stride, pads, dilation, (hout, wout)) = offsets_and_mask(
        offset, mask, xh.shape, w.shape, stride, padding, dilation, layout, xh.dtype)
    n, h, wid, c = xh.shape
    kh, kw, cin_g, cout = w.shape
    if algo == "auto":
        algo = choose_algorithm((kh, kw), cin_g, cout // groups, xh.itemsize)

    y = aligned_empty((n, hout, wout, cout), xh.dtype)
    if y.size == 0:
        return from_nhwc(y, layout)
    cpg = max(c // g_off, 1)
    if algo == "direct":
        _deform_conv_direct(xh, off, m, w, bias, stride, pads, dilation, groups, cpg, y, nt)
    else:
        _deform_conv_im2col(xh, off, m, w, bias, stride, pads, dilation, groups, cpg, y, nt)
    return from_nhwc(y, layout)


def offsets_and_mask(offset, mask, x_shape, hwio_shape, stride, padding, dilation, layout, dtype):
    """deform_conv2d's checks of ``offset`` and ``mask`` for an NHWC input shape and HWIO weight shape:
    ``(offset_nhwc, mask_nhwc or None, offset groups, (stride, pads, dilation, (Hout, Wout)))``."""
    offset = as_float_array(offset, "offset", dtype)
    check_ndim(offset, 4, "offset", "(N, Hout, Wout, 2*G*KH*KW)" if layout == "NHWC"
               else "(N, 2*G*KH*KW, Hout, Wout)")
    if mask is not None:
        mask = as_float_array(mask, "mask", dtype)
        check_ndim(mask, 4, "mask", "(N, Hout, Wout, G*KH*KW)" if layout == "NHWC"
                   else "(N, G*KH*KW, Hout, Wout)")
    n, h, wid, c = x_shape
    kh, kw, _, _ = hwio_shape
    stride, dilation, pads, (hout, wout) = conv_geometry((h, wid), (kh, kw), stride, padding, dilation)
    off = to_nhwc(offset, layout)
    g_off = _offset_groups(off.shape, offset.shape, (n, hout, wout), (kh, kw), c, layout)
    if mask is not None:
        m = to_nhwc(mask, layout)
        if m.shape != (n, hout, wout, g_off * kh * kw):
            expected = layout_shape(n, hout, wout, g_off * kh * kw, layout)
            raise ValueError(f"expected mask to have shape {expected} (G*KH*KW = {g_off}*{kh}*{kw} "
                             f"channels, G from offset), got {mask.shape}")
    else:
        m = None
    return off, m, g_off, (stride, pads, dilation, (hout, wout))


def choose_algorithm(kernel_size, cin_per_group, cout_per_group, itemsize):
    """The ``algo="auto"`` rule: ``"direct"`` unless one group's weights exceed AUTO_IM2COL_WEIGHT_BYTES.

    The direct kernel multiplies every 6-pixel tile of sampled columns with the whole weight tensor of
    its group, so it reads the weights once per tile (CK_TILE_PIXELS, 6-12 pixels): fast while they stay
    in cache, memory-bound once they do not.  A GEMM blocks the reduction and reads them once per large panel of rows.  Measured
    on the 2-core development machine (2 threads, median of interleaved runs; im2col then multiplied with
    NumPy's BLAS, not yet re-measured on convkit's own GEMM): direct was faster or
    level on every layer with weights up to 4.5 MiB (3x3 64->64 at 64x64: 2.3x; 128->128: 1.2-2.3x;
    256->256 at 14x14: 1.0-1.5x; 1x1 and few channels: 5-13x, where im2col's per-call costs dominate;
    32 groups: 5-7x), and im2col from 9 MiB on (3x3 512->512 float32: 1.1-1.6x; 1024->1024: 2.7-4x).
    """
    weight_bytes = kernel_size[0] * kernel_size[1] * cin_per_group * cout_per_group * itemsize
    return "im2col" if weight_bytes > AUTO_IM2COL_WEIGHT_BYTES else "direct"


def bilinear_sample(x, points, *, layout="NHWC", num_threads=None):
    """Sample every channel of ``x`` bilinearly at fractional points, as deform_conv2d does.

    ``x`` is ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)`` (NCHW); ``points`` ``(N, P, 2)`` holds
    (y, x) pixel coordinates (pixel centres at integers).  Returns ``(N, P, C)`` in both layouts.
    torchvision's rules: a point samples zero unless ``-1 < y < H`` and ``-1 < x < W`` (so NaN and
    infinite points sample zero); each of its four neighbouring pixels outside the image counts as zero.
    ``num_threads`` (OpenMP threads over the points) as everywhere in convkit.
    """
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    points = as_float_array(points, "points", x.dtype)
    check_ndim(points, 3, "points", "(N, P, 2)")
    xh = to_nhwc(x, layout)
    n, _, _, c = xh.shape
    if points.shape[0] != n or points.shape[2] != 2:
        raise ValueError(f"expected points to have shape ({n}, P, 2) as (y, x) per point, got {points.shape}")
    out = np.empty((n, points.shape[1], c), x.dtype)
    _deform.bilinear_sample_nhwc(xh, points, out, resolve_num_threads(num_threads))
    return out


def _offset_groups(nhwc_shape, given_shape, out_shape, kernel_size, c, layout):
    """Offset groups G from offset's channels (2*G*KH*KW), checking its shape against the output's."""
    taps2 = 2 * kernel_size[0] * kernel_size[1]
    channels = nhwc_shape[3]
    if nhwc_shape[:3] != out_shape or channels == 0 or channels % taps2:
        expected = "(" + ", ".join(layout_shape(*map(str, out_shape), f"{taps2}*G", layout)) + ")"
        raise ValueError(f"expected offset to have shape {expected} (2*G*KH*KW channels for G >= 1 "
                         f"offset groups, Hout x Wout the output size), got {given_shape}")
    g = channels // taps2
    if c % g:
        raise ValueError(f"expected the offset groups to divide the input channels {c}, got G={g} "
                         f"(offset has {channels} channels = 2*G*{kernel_size[0]}*{kernel_size[1]})")
    return g


def direct_chunk(out_width, column_length, itemsize):
    """Output pixels per column chunk of ``algo="direct"``: a multiple of the register tile, whole rows
    while they fit DIRECT_TILE_BYTES (``column_length`` = KH*KW*C values per pixel)."""
    tiles = max(DIRECT_TILE_BYTES // max(column_length * itemsize, 1) // _PIXELS, 1)
    return min(-(-out_width // _PIXELS), tiles) * _PIXELS


def im2col_tile_rows(out_rows, out_width, reduction, itemsize):
    """Output rows (over batch x height) per im2col tile under IM2COL_WORKSPACE_BYTES."""
    per_row = max(out_width * reduction * itemsize, 1)
    return max(1, min(out_rows, IM2COL_WORKSPACE_BYTES // per_row))


def workspace_bytes(algo, x_shape, weight_hwio_shape, out_hw, itemsize, num_threads):
    """Bytes of column workspace ``algo`` ("direct" or "im2col") allocates for an NHWC deform_conv2d."""
    n, _, _, c = x_shape
    kh, kw, cin_g, _ = weight_hwio_shape
    if algo == "direct":
        k = kh * kw * c
        return num_threads * direct_chunk(out_hw[1], k, itemsize) * k * itemsize
    rows = im2col_tile_rows(n * out_hw[0], out_hw[1], kh * kw * cin_g, itemsize)
    return rows * out_hw[1] * kh * kw * cin_g * itemsize


def _deform_conv_direct(x, off, m, w, bias, stride, pads, dilation, groups, cpg, y, nt):
    kh, kw, cin_g, cout = w.shape
    k = kh * kw * x.shape[3]
    chunk = direct_chunk(y.shape[2], k, x.itemsize)
    workspace = np.empty((nt, chunk * k), x.dtype)
    _deform_direct.deform_conv2d_nhwc(x, off, m, _direct.pack_weights(w, groups), bias, y, workspace,
                                      stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1],
                                      cpg, cout // groups, chunk, nt)


def _deform_conv_im2col(x, off, m, w, bias, stride, pads, dilation, groups, cpg, y, nt):
    kh, kw, cin_g, cout = w.shape
    cout_g = cout // groups
    n, hout, wout, _ = y.shape
    reduction = kh * kw * cin_g
    w2d = w.reshape(reduction, cout)
    y2d = y.reshape(n * hout * wout, cout)
    tile_rows = im2col_tile_rows(n * hout, wout, reduction, x.itemsize)
    cols = np.empty((tile_rows * wout, reduction), dtype=x.dtype)
    for r0 in range(0, n * hout, tile_rows):
        r1 = min(r0 + tile_rows, n * hout)
        y_tile = y2d[r0 * wout:r1 * wout]
        for g in range(groups):
            _deform.deform_im2col_nhwc(x, off, m, cols, r0, r1, g * cin_g, cin_g, cpg, kh, kw,
                                       stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1], nt)
            cols_g = slice(g * cout_g, (g + 1) * cout_g)
            _gemm.gemm_into(cols[:(r1 - r0) * wout], w2d[:, cols_g], y_tile[:, cols_g], False,
                            None if bias is None else bias[cols_g], num_threads=nt)
