"""conv_transpose2d: transposed convolution (deconvolution), PyTorch's arguments, NHWC or NCHW.

Input pixel (ih, iw) of channel ci scatters ``x * w[kh, kw, co, ci]`` to output pixel
(ih*stride - padding + kh*dilation, ...): the adjoint of conv2d with the same weights.  Two algorithms:

- ``"col2im"``: one GEMM per group, ``cols = x @ W^T`` (N*H*W rows of KH*KW*Cout/groups), then
  ``col2im`` folds the columns into the output (the classic; convkit's GEMM does the arithmetic; col2im is a
  gather, each output row summing the columns that reach it).
- ``"direct"``: ``src/conv_transpose.pyx``, the gather written as stride*stride ordinary convolutions of the
  input, one per output phase (the output pixels that take the same taps: 4 convolutions of 2x2 taps for a
  4x4 stride-2 kernel), register-blocked over a phase's pixels and the output channels, no workspace.
"""
import itertools

import numpy as np

from ._alloc import empty as aligned_empty
from ._kernels import conv_transpose as _direct
from ._kernels import gemm as _gemm
from ._kernels import im2col as _im2col
from ._conv_args import conv_prologue
from ._layout import from_nhwc
from ._validation import check_extent, pair

ALGORITHMS = ("auto", "col2im", "direct")

#: Bytes of column matrix ``algo="col2im"`` materialises at once: images are processed in chunks of as
#: many as fit (at least one), the column matrix of one image being H*W x KH*KW*Cout values.
COL2IM_WORKSPACE_BYTES = 16 << 20


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, layout="NHWC", algo="auto", num_threads=None):
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Parameters
    ----------
    x : ndarray, float32 or float64
        ``(N, H, W, Cin)`` for ``layout="NHWC"`` (default), ``(N, Cin, H, W)`` for ``"NCHW"``.
    weight : ndarray, same dtype
        ``(KH, KW, Cout/groups, Cin)`` for NHWC (TensorFlow's ``conv2d_transpose`` filter, which is
        also the HWIO weight of the conv2d it is the adjoint of); ``(Cin, Cout/groups, KH, KW)`` for
        NCHW (PyTorch).
    bias : ndarray (Cout,), optional
    stride, padding, output_padding, dilation : int or (h, w)
        Output size ``(H-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1``;
        ``output_padding`` (extra rows/columns at the bottom/right) must be smaller than the stride
        or the dilation, as in PyTorch.
    groups : int
        Input and output channels split into ``groups`` independent transposed convolutions.
    algo : ``"col2im"``, ``"direct"`` or ``"auto"`` (see :func:`choose_algorithm`)
    num_threads : int, optional
        OpenMP threads; ``None`` uses :func:`convkit.get_num_threads`.

    Returns the C-contiguous output, ``(N, Hout, Wout, Cout)`` or ``(N, Cout, Hout, Wout)``.
    """
    xh, w, bias, groups, nt = conv_prologue(x, weight, bias, groups, layout=layout, algo=algo,
                                            algorithms=ALGORITHMS, num_threads=num_threads,
                                            kind="transposed")
    n, h, wid, cin = xh.shape
    kh, kw, cout_g, _ = w.shape
    cout = cout_g * groups
    stride, padding, dilation, (hout, wout) = transposed_geometry(
        (h, wid), (kh, kw), stride, padding, output_padding, dilation, empty_batch=n == 0)
    if algo == "auto":
        algo = choose_algorithm(cout_g, xh.dtype)

    y = aligned_empty((n, hout, wout, cout), xh.dtype)
    if y.size == 0:
        return from_nhwc(y, layout)
    if algo == "direct":
        _direct.conv_transpose2d_nhwc(xh, _direct.pack_weights(w, groups, nt), bias, y, cout_g,
                                      stride[0], stride[1], padding[0], padding[1],
                                      dilation[0], dilation[1], nt)
    else:
        _conv_transpose_col2im(xh, w, bias, stride, padding, dilation, groups, y, nt)
    return from_nhwc(y, layout)


def transposed_geometry(in_size, kernel_size, stride, padding, output_padding, dilation, empty_batch=False):
    """Checked arguments of a transposed convolution: (stride, padding, dilation, (Hout, Wout)).

    With ``empty_batch`` an output size of 0 is accepted, as PyTorch does for an empty batch."""
    stride = pair(stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    output_padding = pair(output_padding, "output_padding", 0)
    dilation = pair(dilation, "dilation", 1)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"expected output_padding to be smaller than stride or dilation, got "
                             f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    for axis, size, k, s, p, op, d in zip(("height", "width"), in_size, kernel_size, stride, padding,
                                           output_padding, dilation):
        check_extent((size - 1) * s + d * (k - 1) + op + 1,
                     f"the uncropped output {axis} ((input - 1)*stride + dilation*(kernel - 1) "
                     f"+ output_padding + 1)")
    hout, wout = (transposed_output_size(size, k, s, p, op, d) for size, k, s, p, op, d in
                  zip(in_size, kernel_size, stride, padding, output_padding, dilation))
    if min(hout, wout) < (0 if empty_batch else 1):
        raise ValueError(f"expected a non-empty output, got output size ({hout}, {wout}) from input "
                         f"{tuple(in_size)}, kernel {tuple(kernel_size)}, stride {stride}, padding {padding}, "
                         f"output_padding {output_padding}, dilation {dilation}")
    return stride, padding, dilation, (hout, wout)


def transposed_output_size(size, kernel, stride, padding, output_padding, dilation):
    """(size-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1 (PyTorch's formula)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def choose_algorithm(out_channels_per_group, dtype):
    """The ``algo="auto"`` rule: ``"direct"`` when the output channels per group fill its register
    blocks (a multiple of the register tile's width: 16 float32 / 8 float64 with 256-bit vectors, 32 / 16
    with 512-bit ones), else ``"col2im"``.

    Measured on a 2-core AVX2 machine (1 thread, float32): the direct kernel is 1.05-1.6x faster than
    col2im with 16-256 output channels (e.g. 32x32x128 -> 64, 4x4 stride 2: 4.3 vs 4.5 ms;
    8x4x4x512 -> 256: 12.8 vs 19.9 ms), but with 3, 8, 12 or 24 (a block partly idle) col2im's GEMM
    is 1.3-2.5x faster.  With phase tiles (Zen 4, 512-bit, 1 thread, machine shared): 32x32x128 -> 64,
    4x4 stride 2: 3.0 ms direct, 4.1 ms col2im.
    """
    return "direct" if out_channels_per_group % _direct.block_width(dtype) == 0 else "col2im"


def col2im_workspace_bytes(x_shape, weight_nhwc_shape, groups, itemsize):
    """Bytes of column workspace ``algo="col2im"`` allocates (one chunk of images)."""
    n, h, w, _ = x_shape
    kh, kw, cout_g, _ = weight_nhwc_shape
    per_image = h * w * kh * kw * cout_g * groups * itemsize
    return _images_per_chunk(n, per_image) * per_image


def _images_per_chunk(n, per_image_bytes):
    return max(1, min(n, COL2IM_WORKSPACE_BYTES // max(per_image_bytes, 1)))


def _conv_transpose_col2im(x, w, bias, stride, padding, dilation, groups, y, nt):
    n, h, wid, cin = x.shape
    kh, kw, cout_g, _ = w.shape
    cin_g, cout = cin // groups, cout_g * groups
    _, hout, wout, _ = y.shape
    if n == 0:
        return
    # W_g^T: (cin_g, KH*KW*cout_g), columns (kh, kw, co): the column order col2im_nhwc folds.
    wt = [np.ascontiguousarray(w[..., g * cin_g:(g + 1) * cin_g].reshape(-1, cin_g).T)
          for g in range(groups)]
    chunk = _images_per_chunk(n, h * wid * kh * kw * cout * x.itemsize)
    cols = np.empty((chunk * h * wid, kh * kw * cout), x.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n0 + chunk, n)
        m = (n1 - n0) * h * wid
        x2d = x[n0:n1].reshape(m, cin)
        if groups == 1:
            _gemm.gemm_into(x2d, wt[0], cols[:m], num_threads=nt)
        else:   # group g's columns of tap t: cols[:, t*cout + g*cout_g : ... + cout_g]
            for g, t in itertools.product(range(groups), range(kh * kw)):
                _gemm.gemm_into(x2d[:, g * cin_g:(g + 1) * cin_g], wt[g][:, t * cout_g:(t + 1) * cout_g],
                                cols[:m, t * cout + g * cout_g:t * cout + (g + 1) * cout_g], num_threads=nt)
        _im2col.col2im_nhwc(cols[:m], y[n0:n1], kh, kw, stride[0], stride[1], padding[0],
                            padding[1], dilation[0], dilation[1], h, wid, nt)
    if bias is not None:
        y += bias
