"""Public im2col / col2im (PyTorch's unfold / fold in NCHW)."""
import numpy as np

from ._kernels import im2col as _k
from ._layout import nhwc_shape
from ._threads import resolve_num_threads
from ._validation import as_float_array, check_layout, check_ndim, conv_geometry, pair


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, layout="NHWC", num_threads=None):
    """Unfold sliding patches of ``x`` into columns.

    NHWC ``x`` (N, H, W, C) gives the ``(N*Hout*Wout, KH*KW*C)`` matrix: one row per output pixel,
    columns ordered (kh, kw, c) with c fastest (the seed's layout).  NCHW ``x`` (N, C, H, W) gives
    ``(N, C*KH*KW, Hout*Wout)``, as ``torch.nn.functional.unfold``.  Padding is zeros.
    """
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    kh, kw = pair(kernel_size, "kernel_size", 1)
    n, h, w, c = nhwc_shape(x.shape, layout)
    if c == 0 or h * w == 0:
        raise ValueError(f"expected x to have at least one channel and a non-empty image (PyTorch's "
                         f"unfold; only the batch may be 0), got shape {x.shape}")
    in_size = (h, w)
    (sh, sw), (dh, dw), pads, (hout, wout) = conv_geometry(in_size, (kh, kw), stride, padding, dilation)
    nt = resolve_num_threads(num_threads)
    if layout == "NHWC":
        cols = np.empty((n * hout * wout, kh * kw * c), dtype=x.dtype)
        _k.im2col_nhwc(x, cols, 0, n * hout, 0, c, kh, kw, sh, sw, pads[0], pads[2], dh, dw,
                       hout, wout, nt)
    else:
        cols = np.empty((n, c * kh * kw, hout * wout), dtype=x.dtype)
        _k.im2col_nchw(x, cols, kh, kw, sh, sw, pads[0], pads[2], dh, dw, hout, wout, nt)
    return cols


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1, *, layout="NHWC",
           num_threads=None):
    """The adjoint of :func:`im2col`: scatter columns back to an image, overlapping patches adding up.

    ``output_size`` is the image's (H, W).  NHWC ``cols`` (N*Hout*Wout, KH*KW*C) gives (N, H, W, C);
    NCHW ``cols`` (N, C*KH*KW, Hout*Wout) gives (N, C, H, W), as ``torch.nn.functional.fold``.
    """
    check_layout(layout)
    cols = as_float_array(cols, "cols")
    h, w = pair(output_size, "output_size", 1)
    kh, kw = pair(kernel_size, "kernel_size", 1)
    (sh, sw), (dh, dw), pads, (hout, wout) = conv_geometry((h, w), (kh, kw), stride, padding, dilation)
    nt = resolve_num_threads(num_threads)
    if layout == "NHWC":
        check_ndim(cols, 2, "cols", "(N*Hout*Wout, KH*KW*C)")
        rows, width = cols.shape
        if rows % (hout * wout) or width % (kh * kw) or width == 0:
            raise ValueError(f"expected cols to have shape (N*{hout * wout}, C*{kh * kw}) for a "
                             f"{hout}x{wout} output grid and a {kh}x{kw} kernel, got {cols.shape}")
        x = np.empty((rows // (hout * wout), h, w, width // (kh * kw)), dtype=cols.dtype)
        _k.col2im_nhwc(cols, x, kh, kw, sh, sw, pads[0], pads[2], dh, dw, hout, wout, nt)
    else:
        check_ndim(cols, 3, "cols", "(N, C*KH*KW, Hout*Wout)")
        n, width, length = cols.shape
        if length != hout * wout or width % (kh * kw) or width == 0:
            raise ValueError(f"expected cols to have shape (N, C*{kh * kw}, {hout * wout}) for a "
                             f"{hout}x{wout} output grid and a {kh}x{kw} kernel, got {cols.shape}")
        x = np.empty((n, width // (kh * kw), h, w), dtype=cols.dtype)
        _k.col2im_nchw(cols, x, kh, kw, sh, sw, pads[0], pads[2], dh, dw, hout, wout, nt)
    return x
