"""Max, average and global average pooling with PyTorch's window rules, over NHWC or NCHW.

The kernels compute in NHWC (a contiguous channel vector per tap); NCHW input is transposed in and
the result back, as for conv2d.  ``global_avg_pool2d`` reads either layout directly.
"""
import numpy as np

from ._alloc import empty as aligned_empty
from ._kernels import pooling as _pool
from ._kernels import reductions as _red
from ._layout import from_nhwc, layout_shape, to_nhwc
from ._threads import resolve_num_threads
from ._validation import as_float_array, check_layout, check_ndim, pair


def pool_output_size(in_size, kernel_size, stride, padding, dilation, ceil_mode):
    """PyTorch's pooling output size along one axis.

    ``floor((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``, rounded up instead with
    ``ceil_mode``, where a last window that would start past the input and its left padding (at or
    beyond ``in + padding``) is dropped.
    """
    span = in_size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= in_size + padding:
        out -= 1
    return out


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               layout="NHWC", num_threads=None):
    """Maximum over each (dilated) window; padding counts as -inf; NaN propagates.

    ``kernel_size``, ``stride`` (default: ``kernel_size``), ``padding`` and ``dilation`` are ints or
    (h, w) pairs; ``padding`` must be at most half the kernel size (PyTorch's rule).
    """
    x, nhwc, geometry = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode, layout)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (hout, wout) = geometry
    y = aligned_empty((nhwc.shape[0], hout, wout, nhwc.shape[3]), x.dtype)
    _pool.max_pool_nhwc(nhwc, y, kh, kw, sh, sw, ph, pw, dh, dw, resolve_num_threads(num_threads))
    return from_nhwc(y, layout)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               layout="NHWC", num_threads=None):
    """Mean over each window, with PyTorch's divisor.

    Each window is clipped to the zero-padded input (only ``ceil_mode`` windows reach past it);
    ``count_include_pad=True`` divides by the clipped window's size (padding included), ``False`` by
    the number of input pixels it covers.
    """
    x, nhwc, geometry = _prepare(x, kernel_size, stride, padding, 1, ceil_mode, layout)
    (kh, kw), (sh, sw), (ph, pw), _, (hout, wout) = geometry
    y = aligned_empty((nhwc.shape[0], hout, wout, nhwc.shape[3]), x.dtype)
    _pool.avg_pool_nhwc(nhwc, y, kh, kw, sh, sw, ph, pw, bool(count_include_pad),
                        resolve_num_threads(num_threads))
    return from_nhwc(y, layout)


def global_avg_pool2d(x, *, layout="NHWC", keepdims=False, num_threads=None):
    """Mean over H and W per image and channel.

    Returns ``(N, C)`` (as ``torch.flatten(adaptive_avg_pool2d(x, 1), 1)``, what a classifier head
    takes), or with ``keepdims=True`` ``(N, 1, 1, C)`` / ``(N, C, 1, 1)`` in ``layout``.  Sums are
    accumulated in float64.
    """
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    n, h, w, c = x.shape if layout == "NHWC" else (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    if h * w == 0 and n * c != 0:
        raise ValueError(f"expected x to have a non-empty image (the mean of nothing is undefined), "
                         f"got shape {x.shape}")
    sums = np.empty((n, c))
    nt = resolve_num_threads(num_threads)
    if layout == "NHWC":
        _red.row_sums(x.reshape(n, h * w, c), None, sums, nt)
    else:
        _red.plane_sums(x.reshape(n, c, h * w), None, sums, nt)
    y = (sums / (h * w)).astype(x.dtype)
    return y.reshape(layout_shape(n, 1, 1, c, layout)) if keepdims else y


def _prepare(x, kernel_size, stride, padding, dilation, ceil_mode, layout):
    """Checked input, its NHWC form and the window geometry (kernel, stride, padding, dilation, out)."""
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    kernel = pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else pair(stride, "stride", 1)
    pads = pair(padding, "padding", 0)
    dilation = pair(dilation, "dilation", 1)
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ValueError(f"expected padding to be at most half the kernel size {kernel}, "
                         f"i.e. at most {(kernel[0] // 2, kernel[1] // 2)}, got {padding!r}")
    nhwc = to_nhwc(x, layout)
    if nhwc.shape[3] == 0 or nhwc.shape[1] * nhwc.shape[2] == 0:
        raise ValueError(f"expected x to have at least one channel and a non-empty image (PyTorch's rule; "
                         f"only the batch may be 0), got shape {x.shape}")
    out = []
    for axis, size, k, s, p, d in zip(("height", "width"), nhwc.shape[1:3], kernel, stride, pads, dilation):
        o = pool_output_size(size, k, s, p, d, bool(ceil_mode))
        if o <= 0:
            raise ValueError(f"expected a non-empty output, got output {axis} {o} from input {axis} "
                             f"{size}, padding {p}, kernel {k}, dilation {d}, stride {s}")
        out.append(o)
    return x, nhwc, (kernel, stride, pads, dilation, tuple(out))
