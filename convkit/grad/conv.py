"""Gradients of conv2d and conv_transpose2d, named and ordered after ``torch.nn.grad``.

- The input gradient of a convolution is the transposed convolution of grad_output with the same
  weights: conv_transpose2d's direct gather when the input channels per group fill its register blocks
  (measured 1.1-1.3x faster than the alternative on ResNet's 3x3 layers, 2 threads, Zen 4); else, with
  stride 1, a convolution with the kernel flipped and its in/out channels swapped, run by conv2d's own
  direct kernels (grouped, depthwise); else conv_transpose2d's col2im.
- The weight gradient is ``src/conv_grad.pyx``: per-thread partial sums over fixed chunks of output
  pixels, added in thread order (the same thread count gives the same bits), workspace bounded by
  :func:`weight_workspace_bytes`.
- A transposed convolution's gradients are the same two kernels with the roles swapped: its input
  gradient is conv2d of grad_output, its weight gradient conv2d's weight gradient with grad_output as the
  input and its input as the output gradient.
"""
import numpy as np

from .._kernels import conv_grad as _cg
from .._kernels import conv_transpose as _tconv
from .._kernels import reductions as _red
from .._conv_args import _check_sizes, _conv_channels, _transposed_channels
from .._layout import conv_weight_to_hwio, from_nhwc, layout_shape, nhwc_shape, to_nhwc
from .._threads import resolve_num_threads
from .._validation import as_float_array, check_layout, check_ndim, conv_geometry, int_arg
from ..activations import resolve_activation
from ..conv import _conv_direct
from ..conv_transpose import _conv_transpose_col2im, transposed_geometry
from ._checks import as_grad_output, as_shape

#: Bytes of im2col columns per chunk of output pixels in the weight gradient (each thread holds one
#: chunk, packed once more for the register tile, beside its partial sums): the pair stays in a core's L2.
#: Measured on the 2-core Zen 4 (2 threads, ResNet's 3x3 layers, batch 8, interleaved): 256 KiB was 4% and
#: 21% faster than 96 KiB at 56x56x64 and 28x28x128, and 3-17% faster than 512 KiB or 1 MiB.
WEIGHT_CHUNK_BYTES = 256 << 10
_NO_ACTIVATION = resolve_activation(None)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                 layout="NHWC", num_threads=None):
    """Gradient of :func:`convkit.conv2d` with respect to its input.

    ``input_shape`` is x's shape in ``layout``; ``weight`` and the other arguments are conv2d's;
    ``grad_output`` has the forward output's shape.  Returns an array of ``input_shape``.
    """
    check_layout(layout)
    weight = _conv_weight(weight, layout)
    n, h, wid, c = nhwc_shape(as_shape(input_shape, "input_shape", 4), layout)
    w = conv_weight_to_hwio(weight, layout)
    stride, dilation, pads, out_hw = _conv_setup((n, h, wid, c), w.shape, stride, padding, dilation, groups,
                                                 (input_shape, weight.shape))
    go = to_nhwc(as_grad_output(grad_output, layout_shape(n, *out_hw, w.shape[3], layout), weight.dtype),
                 layout)
    gx = input_grad_nhwc(go, w, (n, h, wid, c), stride, pads, dilation, groups,
                         resolve_num_threads(num_threads))
    return from_nhwc(gx, layout)


def conv2d_weight(x, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                  layout="NHWC", num_threads=None):
    """Gradient of :func:`convkit.conv2d` with respect to its weight.

    ``weight_shape`` is the weight's shape in ``layout``'s convention ((KH, KW, Cin/groups, Cout) for
    NHWC, (Cout, Cin/groups, KH, KW) for NCHW); the result has that shape.
    """
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    xh = to_nhwc(x, layout)
    hwio = _hwio_shape(as_shape(weight_shape, "weight_shape", 4), layout)
    n, h, wid, c = xh.shape
    stride, dilation, pads, out_hw = _conv_setup(xh.shape, hwio, stride, padding, dilation, groups,
                                                 (x.shape, weight_shape))
    go = to_nhwc(as_grad_output(grad_output, layout_shape(n, *out_hw, hwio[3], layout), x.dtype), layout)
    gw = weight_grad_nhwc(xh, go, hwio, stride, pads, dilation, groups, resolve_num_threads(num_threads))
    return gw if layout == "NHWC" else np.ascontiguousarray(gw.transpose(3, 2, 0, 1))


def conv2d_bias(grad_output, *, layout="NHWC", num_threads=None):
    """Gradient of a convolution's bias: ``grad_output`` summed over (N, H, W) (in float64), shape (C,)."""
    check_layout(layout)
    go = as_float_array(grad_output, "grad_output")
    check_ndim(go, 4, "grad_output", f"({', '.join(layout)})")
    nt = resolve_num_threads(num_threads)
    n, a, b, c = go.shape
    if layout == "NHWC":
        sums = np.empty((1, c))
        _red.row_sums(go.reshape(1, n * a * b, c), None, sums, nt)
        return sums[0].astype(go.dtype)
    sums = np.empty((n, a))
    _red.plane_sums(go.reshape(n, a, b * c), None, sums, nt)
    return sums.sum(axis=0).astype(go.dtype)


def conv_transpose2d_input(input_shape, weight, grad_output, stride=1, padding=0, output_padding=0,
                           groups=1, dilation=1, *, layout="NHWC", num_threads=None):
    """Gradient of :func:`convkit.conv_transpose2d` with respect to its input: conv2d of grad_output."""
    check_layout(layout)
    weight = _conv_weight(weight, layout, transposed=True)
    n, h, wid, cin = nhwc_shape(as_shape(input_shape, "input_shape", 4), layout)
    w = weight if layout == "NHWC" else np.ascontiguousarray(weight.transpose(2, 3, 1, 0))
    stride, pads, dilation, out_hw, cout = _transpose_setup(
        (n, h, wid, cin), w.shape, stride, padding, output_padding, dilation, groups, (input_shape, weight.shape))
    go = to_nhwc(as_grad_output(grad_output, layout_shape(n, *out_hw, cout, layout), weight.dtype), layout)
    gx = np.empty((n, h, wid, cin), weight.dtype)
    if gx.size:
        if go.size == 0 or w.size == 0:
            gx[...] = 0
        else:
            _conv_direct(go, w, None, _NO_ACTIVATION, stride, pads, dilation, groups, gx,
                         resolve_num_threads(num_threads))
    return from_nhwc(gx, layout)


def conv_transpose2d_weight(x, weight_shape, grad_output, stride=1, padding=0, output_padding=0, groups=1,
                            dilation=1, *, layout="NHWC", num_threads=None):
    """Gradient of :func:`convkit.conv_transpose2d` with respect to its weight.

    ``weight_shape`` in conv_transpose2d's convention: (KH, KW, Cout/groups, Cin) for NHWC,
    (Cin, Cout/groups, KH, KW) for NCHW.
    """
    check_layout(layout)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    xh = to_nhwc(x, layout)
    shape = as_shape(weight_shape, "weight_shape", 4)
    wshape = shape if layout == "NHWC" else (shape[2], shape[3], shape[1], shape[0])
    n, h, wid, cin = xh.shape
    stride, pads, dilation, out_hw, cout = _transpose_setup(
        xh.shape, wshape, stride, padding, output_padding, dilation, groups, (x.shape, shape))
    go = to_nhwc(as_grad_output(grad_output, layout_shape(n, *out_hw, cout, layout), x.dtype), layout)
    # conv_transpose2d(x, w) is the adjoint of conv2d(., w): its weight gradient is conv2d's, with
    # grad_output as conv2d's input and x as conv2d's output gradient.
    gw = weight_grad_nhwc(go, xh, wshape, stride, pads, dilation, groups, resolve_num_threads(num_threads))
    return gw if layout == "NHWC" else np.ascontiguousarray(gw.transpose(3, 2, 0, 1))


def input_grad_nhwc(go, w, x_shape, stride, pads, dilation, groups, nt):
    """conv2d's input gradient in NHWC: go (N, Hout, Wout, Cout), w HWIO; returns (N, H, W, C)."""
    gx = np.empty(x_shape, go.dtype)
    kh, kw, cin_g, cout = w.shape
    if gx.size == 0:
        return gx
    if go.size == 0 or w.size == 0:
        gx[...] = 0
        return gx
    reach_h, reach_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    if cin_g % _tconv.block_width(go.dtype) == 0:
        _tconv.conv_transpose2d_nhwc(go, _tconv.pack_weights(w, groups), None, gx, cin_g,
                                     stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1], nt)
    elif stride == (1, 1) and pads[0] <= reach_h and pads[2] <= reach_w:
        # Stride 1: a convolution of grad_output with the flipped kernel, padded by reach - pad.
        flipped = _flip_swap(w, groups)
        pads_t = (reach_h - pads[0], reach_h - pads[1], reach_w - pads[2], reach_w - pads[3])
        _conv_direct(go, flipped, None, _NO_ACTIVATION, (1, 1), pads_t, dilation, groups, gx, nt)
    else:
        _conv_transpose_col2im(go, w, None, stride, (pads[0], pads[2]), dilation, groups, gx, nt)
    return gx


def weight_grad_nhwc(x, go, hwio_shape, stride, pads, dilation, groups, nt):
    """conv2d's weight gradient in NHWC: x (N, H, W, C), go (N, Hout, Wout, Cout); returns HWIO."""
    gw = np.empty(hwio_shape, x.dtype)
    kh, kw, _, _ = hwio_shape
    _cg.conv2d_weight_nhwc(x, go, gw, groups, stride[0], stride[1], pads[0], pads[2],
                           dilation[0], dilation[1], chunk_pixels(kh * kw * x.shape[3], x.itemsize), nt)
    return gw


def chunk_pixels(column_length, itemsize):
    """Output pixels per chunk of the weight gradient: a multiple of 8, 16 to 512."""
    pixels = WEIGHT_CHUNK_BYTES // max(column_length * itemsize, 1)
    return int(min(max(pixels // 8 * 8, 16), 512))


def weight_workspace_bytes(x_shape, weight_shape, groups=1, *, dtype=np.float32, num_threads=None,
                           layout="NHWC"):
    """Bytes of workspace :func:`conv2d_weight` allocates for these shapes (all threads together)."""
    n, h, w, c = nhwc_shape(x_shape, layout)
    kh, kw, _, cout = _hwio_shape(weight_shape, layout)
    itemsize = np.dtype(dtype).itemsize
    pc = chunk_pixels(kh * kw * c, itemsize)
    per_thread = _cg.workspace_size(kh * kw, c, groups, cout, pc, dtype)
    return resolve_num_threads(num_threads) * per_thread * itemsize


def _flip_swap(w, groups):
    """HWIO (KH, KW, cin_g, G*cout_g) -> the kernel of the adjoint convolution, (KH, KW, cout_g, G*cin_g),
    flipped in space: [i, j, co, g*cin_g + ci] = w[KH-1-i, KW-1-j, ci, g*cout_g + co]."""
    kh, kw, cin_g, cout = w.shape
    w = w[::-1, ::-1].reshape(kh, kw, cin_g, groups, cout // groups)
    return np.ascontiguousarray(w.transpose(0, 1, 4, 3, 2)).reshape(kh, kw, cout // groups, groups * cin_g)


def _hwio_shape(shape, layout):
    return shape if layout == "NHWC" else (shape[2], shape[3], shape[1], shape[0])


def _conv_weight(weight, layout, transposed=False):
    weight = as_float_array(weight, "weight")
    if transposed:
        meaning = "(KH, KW, Cout/groups, Cin)" if layout == "NHWC" else "(Cin, Cout/groups, KH, KW)"
    else:
        meaning = "(KH, KW, Cin/groups, Cout)" if layout == "NHWC" else "(Cout, Cin/groups, KH, KW)"
    check_ndim(weight, 4, "weight", meaning)
    return weight


def _conv_setup(in_nhwc, hwio, stride, padding, dilation, groups, shapes):
    """conv2d's checks for an input (N, H, W, C) and weight shape (KH, KW, Cin/groups, Cout), the
    forward's own (``shapes``: x's and the weight's as the caller gave them, for the messages):
    (stride, dilation, pads (t, b, l, r), (Hout, Wout))."""
    h, wid, c = in_nhwc[1:]
    _check_sizes("conv", in_nhwc, hwio, *shapes)
    groups = int_arg(groups, "groups", 1)
    _conv_channels(c, hwio, hwio, groups, f"groups={groups}")
    return conv_geometry((h, wid), hwio[:2], stride, padding, dilation)


def _transpose_setup(in_nhwc, wshape, stride, padding, output_padding, dilation, groups, shapes):
    """conv_transpose2d's checks (``shapes`` as for :func:`_conv_setup`):
    (stride, pads (p, p, q, q), dilation, (Hout, Wout), Cout)."""
    n, h, wid, cin = in_nhwc
    _check_sizes("transposed", in_nhwc, wshape, *shapes)
    groups = int_arg(groups, "groups", 1)
    cout = _transposed_channels(cin, wshape, wshape, groups)
    stride, padding, dilation, out_hw = transposed_geometry((h, wid), wshape[:2], stride, padding,
                                                            output_padding, dilation, empty_batch=n == 0)
    return stride, (padding[0], padding[0], padding[1], padding[1]), dilation, out_hw, cout
