"""conv2d: direct and im2col + GEMM, over NHWC or NCHW, with groups, dilation and asymmetric padding."""
import numpy as np

from ._kernels import conv_direct as _direct
from ._kernels import elementwise as _epilogue
from ._kernels import gemm as _gemm
from ._kernels import im2col as _im2col
from . import autotune as _autotune
from . import winograd as _winograd
from .activations import resolve_activation
from .grouped import grouped_direct_kernel
from ._conv_args import conv_prologue
from ._layout import copy_from_nhwc, from_nhwc, layout_shape, to_nhwc
from ._validation import as_float_array, check_out, conv_geometry

ALGORITHMS = ("auto", "direct", "im2col", "winograd")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, layout="NHWC",
           algo="auto", activation=None, residual=None, num_threads=None, out=None):
    """2-D convolution (cross-correlation, as every deep-learning framework computes it).

    Parameters
    ----------
    x : ndarray, float32 or float64
        ``(N, H, W, C)`` for ``layout="NHWC"`` (default), ``(N, C, H, W)`` for ``"NCHW"``.
    weight : ndarray, same dtype
        ``(KH, KW, C/groups, Cout)`` (HWIO, TensorFlow) for NHWC; ``(Cout, C/groups, KH, KW)``
        (PyTorch) for NCHW.
    bias : ndarray (Cout,), optional
    stride, dilation : int or (h, w)
    padding : int, (h, w), ``"valid"`` or ``"same"`` (TensorFlow's SAME: odd extra pixel bottom/right)
    groups : int
        Input and output channels are split into ``groups`` independent convolutions.
    algo : ``"direct"``, ``"im2col"``, ``"winograd"`` or ``"auto"`` (see :func:`choose_algorithm`)
        ``"winograd"`` (3x3, stride 1, dilation 1, groups 1 only) trades a little accuracy for speed:
        see :mod:`convkit.winograd`.
    activation : None, a name or a (name, parameter) pair
        Applied with the bias to each output tile while it is in cache (no second pass):
        ``"relu"``, ``"relu6"``, ``"leaky_relu"``, ``"elu"``, ``"sigmoid"``, ``"tanh"``, or e.g.
        ``("leaky_relu", 0.2)``; see :func:`convkit.activations.resolve_activation`.
    residual : ndarray, optional
        An array of the output's shape and dtype (in ``layout``) added to the convolution before the
        activation: ``act(conv(x) + bias + residual)``, ResNet's shortcut fused into the epilogue as ONNX
        Runtime fuses Conv + Add + Relu.  It must not overlap ``out``.
    num_threads : int, optional
        OpenMP threads; ``None`` uses :func:`convkit.get_num_threads`.
    out : ndarray, optional
        C-contiguous output of the right shape and dtype, not overlapping the inputs (``residual`` too).

    Returns the C-contiguous output, ``(N, Hout, Wout, Cout)`` or ``(N, Cout, Hout, Wout)``.  An empty
    batch gives an empty result, as in PyTorch; an input without channels gives the bias (zeros without
    one), the sum over no channels, where PyTorch returns an empty ``(N, 0, Hout, Wout)``.  Both may have
    an empty image (H or W = 0) when the padding makes the output non-empty.
    """
    act = resolve_activation(activation)
    xh, w, bias, groups, nt = conv_prologue(x, weight, bias, groups, layout=layout, algo=algo,
                                            algorithms=ALGORITHMS, num_threads=num_threads)
    n, h, wid, c = xh.shape
    kh, kw, cin_g, cout = w.shape
    stride, dilation, pads, (hout, wout) = conv_geometry((h, wid), (kh, kw), stride, padding, dilation)
    if algo == "winograd":
        _winograd.check_geometry((kh, kw), stride, dilation, groups)
    out_shape = layout_shape(n, hout, wout, cout, layout)
    if residual is not None:
        residual = as_float_array(residual, "residual", xh.dtype)
        if residual.shape != out_shape:
            raise ValueError(f"expected residual to have the output's shape {out_shape}, got {residual.shape}")
    if out is not None:
        check_out(out, out_shape, xh.dtype, (x, weight, bias, residual))
    res = None if residual is None else to_nhwc(residual, layout)
    y = out if (out is not None and layout == "NHWC") else np.empty((n, hout, wout, cout), xh.dtype)
    if y.size == 0:
        return from_nhwc(y, layout) if out is None else out
    if algo == "auto":
        algo = choose_algorithm((kh, kw), stride, pads, groups, (hout, wout))
        if _autotune.autotune_enabled():
            problem = _autotune.Problem(x.shape, weight.shape, stride, pads, dilation, groups, xh.dtype.name,
                                        layout, nt)
            algo = _autotune.tuned_algorithm(problem, lambda a: run_conv(
                xh, w, bias, act, stride, pads, dilation, groups, a, y, nt, res), algo)
    run_conv(xh, w, bias, act, stride, pads, dilation, groups, algo, y, nt, res)
    if layout == "NHWC":
        return y
    if out is None:
        return from_nhwc(y, layout)
    return copy_from_nhwc(y, out, layout)


def choose_algorithm(kernel_size, stride, pads, groups, out_size):
    """The ``algo="auto"`` rule, from ``python -m convkit bench`` on the 2-core AVX2 machine (with
    :func:`convkit.set_autotune`, a measured choice between the exact algorithms replaces it).

    * Small output maps (at most 256 pixels: ResNet's 14x14 and 7x7 stages), ungrouped: ``"im2col"``.
      The direct kernel reads each weight block once per run of at most 96 output pixels, so with few
      pixels and wide channels it streams weights, while the GEMM blocks them (measured 1.3x faster at
      14x14x256 and 2.2x at 7x7x512, 3x3, batch 1, 2 threads).
    * Everything else, 1x1, grouped and depthwise included: ``"direct"``, on par with PyTorch's oneDNN
      and, when measured, 2-3x faster than im2col at 2 threads (then on NumPy's BLAS on one thread),
      with no workspace.  Not yet re-measured with convkit's own GEMM (the 2-core machine was too
      loaded by other jobs to time thread scaling when the GEMM landed).
    """
    if groups == 1 and out_size[0] * out_size[1] <= 256:
        return "im2col"
    return "direct"


def run_conv(x, w, bias, act, stride, pads, dilation, groups, algo, y, nt, residual=None, prepared=None):
    """The convolution into ``y`` on checked NHWC arrays (``algo`` resolved): what :func:`conv2d` runs
    after its checks, and what the prepared layers of :mod:`convkit.nn` call directly.  ``residual``: None
    or an NHWC array of y's shape.  ``prepared``: None, or weights prepared once for ``algo`` and kept
    (:func:`prepare_weights`)."""
    if algo == "direct":
        _conv_direct(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual, prepared)
    elif algo == "winograd":
        weight = prepared if prepared is not None else _winograd.WinogradWeight(w)
        _winograd.conv2d_winograd(x, weight, bias, act, pads, y, nt, residual=residual)
    else:
        _conv_im2col(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual)


def _conv_direct(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual=None, packed=None):
    kernel = grouped_direct_kernel(x.shape[3], w.shape[3], groups, x.dtype)
    if kernel is None:
        _direct.conv2d_nhwc(x, w, bias, y, groups, stride[0], stride[1], pads[0], pads[2],
                            dilation[0], dilation[1], *act, nt, residual=residual, packed=packed)
    elif residual is None:  # depthwise, or few channels per group: convkit.grouped
        kernel(x, w, bias, act, stride, pads, dilation, groups, y, nt)
    else:  # no network fuses a residual into these: the add and the activation as a second pass
        kernel(x, w, bias, _NO_ACTIVATION, stride, pads, dilation, groups, y, nt)
        _add_residual(y, residual, act, nt)


def prepare_weights(w, groups, algo):
    """What ``run_conv(..., prepared=)`` takes for ``algo``: the general direct kernel's packed blocks, or
    Winograd's transforms; None where the algorithm has nothing to prepare."""
    if algo == "direct" and grouped_direct_kernel(w.shape[2] * groups, w.shape[3], groups, w.dtype) is None:
        return _direct.pack_weights(w, groups)
    if algo == "winograd":
        return _winograd.WinogradWeight(w)
    return None


_NO_ACTIVATION = resolve_activation(None)


def _add_residual(y, residual, act, nt):
    """y = act(y + residual) in place, on NHWC arrays."""
    _epilogue.bias_activation_inplace(_rows(y), None, *act, nt, residual=_rows(residual))


def _rows(a):
    """An NHWC array as its (pixels, channels) matrix (a view)."""
    return a.reshape(-1, a.shape[3])


def im2col_workspace_bytes(x_shape, weight_hwio_shape, stride, pads, dilation, groups, out_hw, itemsize,
                           num_threads=1):
    """Bytes of workspace ``algo="im2col"`` allocates for this convolution: the GEMM's packed panels
    (per thread, bounded by its block sizes; im2col writes straight into them)."""
    kh, kw, cin_g, cout = weight_hwio_shape
    dtype = np.float32 if itemsize == 4 else np.float64
    return _gemm.workspace_bytes(x_shape[0] * out_hw[0] * out_hw[1], cout // groups, kh * kw * cin_g,
                                 dtype, num_threads)


def _is_pointwise(kernel_size, stride, pads):
    return kernel_size == (1, 1) and stride == (1, 1) and not any(pads)


def _conv_im2col(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual=None):
    """One GEMM per group on convkit's GEMM, bias and activation applied to each tile before its store.

    A 1x1 stride-1 convolution in NHWC is already a GEMM: its A panels are packed from the input
    itself.  Otherwise im2col writes the patches straight into the GEMM's A panels
    (im2col.conv2d_im2col_nhwc): no column matrix.  ``residual`` (y's shape) is added in the same epilogue.
    """
    n, h, wid, c = x.shape
    kh, kw, cin_g, cout = w.shape
    cout_g = cout // groups
    if _is_pointwise((kh, kw), stride, pads):
        x2d, w2d, y2d = x.reshape(n * h * wid, c), w.reshape(cin_g, cout), y.reshape(-1, cout)
        for g in range(groups):
            cols = slice(g * cout_g, (g + 1) * cout_g)
            _gemm.gemm_into(x2d[:, g * cin_g:(g + 1) * cin_g], w2d[:, cols], y2d[:, cols], False,
                            None if bias is None else bias[cols],
                            None if residual is None else _rows(residual)[:, cols], *act, nt)
        return
    _im2col.conv2d_im2col_nhwc(x, w, bias, y, groups, stride[0], stride[1], pads[0], pads[2],
                               dilation[0], dilation[1], *act, nt, residual=residual)
