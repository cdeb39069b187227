"""Gradient of :func:`convkit.deform_conv2d` (torchvision's semantics)."""
import numpy as np

from .._kernels import conv_grad as _cg
from .._kernels import deform_grad as _dg
from .._layout import from_nhwc, layout_shape, to_nhwc
from .._conv_args import conv_prologue
from ..deform import direct_chunk, offsets_and_mask
from ._checks import as_grad_output
from .conv import chunk_pixels, conv2d_bias


def deform_conv2d(grad_output, x, offset, weight, mask=None, stride=1, padding=0, dilation=1, *,
                  layout="NHWC", num_threads=None):
    """Gradients of ``deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)``.

    Returns ``(grad_x, grad_offset, grad_weight, grad_mask, grad_bias)`` in the shapes and ``layout``
    of the forward's arguments (``grad_mask`` is None without a mask), as torchvision's autograd
    computes them: each corner outside the image counts as zero, and samples outside
    ``-1 < y < H``, ``-1 < x < W`` contribute nothing, except that at y = -1 or x = -1 exactly the offset
    gradient is torchvision's one-sided derivative from the corners inside.

    Kernels: ``src/deform_grad.pyx`` (input, offset and mask gradients: per-thread image buffers added
    in a fixed order, no atomics) and ``src/conv_grad.pyx`` with deformable columns (weight gradient:
    per-thread partial sums).  The same thread count gives the same bits.
    """
    xh, w, _, groups, nt = conv_prologue(x, weight, None, None, layout=layout, algo="auto",
                                         algorithms=("auto",), num_threads=num_threads, kind="deform")
    off, m, g_off, (stride, pads, dilation, (hout, wout)) = offsets_and_mask(
        offset, mask, xh.shape, w.shape, stride, padding, dilation, layout, xh.dtype)
    n, h, wid, c = xh.shape
    kh, kw, cin_g, cout = w.shape
    go = as_grad_output(grad_output, layout_shape(n, hout, wout, cout, layout), xh.dtype)
    go = to_nhwc(go, layout)
    cpg = max(c // g_off, 1)
    gx = np.empty_like(xh)
    goff = np.empty_like(off)
    gm = None if m is None else np.empty_like(m)
    k = kh * kw * c
    _dg.deform_backward_nhwc(xh, off, m, go, _dg.pack_transposed_weights(w, groups), gx, goff, gm,
                             kh, kw, stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1],
                             cpg, direct_chunk(wout, k, xh.itemsize), nt)
    gw = np.empty_like(w)
    _cg.conv2d_weight_nhwc(xh, go, gw, groups, stride[0], stride[1], pads[0], pads[2], dilation[0],
                           dilation[1], chunk_pixels(k, xh.itemsize), nt, off, m, cpg)
    gb = conv2d_bias(go, num_threads=nt)
    if layout == "NCHW":
        gw = np.ascontiguousarray(gw.transpose(3, 2, 0, 1))
    return (from_nhwc(gx, layout), from_nhwc(goff, layout), gw,
            None if gm is None else from_nhwc(gm, layout), gb)
