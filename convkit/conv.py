"""conv2d: direct and im2col + GEMM, over NHWC or NCHW, with groups, dilation and asymmetric padding."""
import numpy as np

from ._alloc import empty as aligned_empty
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
    y = out if (out is not None and layout == "NHWC") else aligned_empty((n, hout, wout, cout), xh.dtype)
    if y.size == 0:
        return from_nhwc(y, layout) if out is None else out
    if algo == "auto":
        algo = choose_algorithm((kh, kw), stride, pads, groups, (hout, wout), in_channels=c,
                                out_channels=cout, batch=n, num_threads=nt, dilation=dilation,
                                dtype=xh.dtype)
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


#: A k x k convolution (k > 1) goes to im2col + GEMM when it has at least this many weights per output pixel
#: per thread (see :func:`choose_algorithm`).
IM2COL_MIN_WEIGHTS_PER_PIXEL = 4096

#: ``algo="auto"`` runs Winograd on a float32 3x3 stride-1 layer with at least this many input and output
#: channels and :data:`WINOGRAD_MIN_TILES` output tiles (see :func:`choose_algorithm`).
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_TILES = 16


def choose_algorithm(kernel_size, stride, pads, groups, out_size, *, in_channels, out_channels, batch,
                     num_threads, dilation=(1, 1), dtype=None, weights_kept=False):
    """The ``algo="auto"`` rule (with :func:`convkit.set_autotune`, a measured choice between the exact
    algorithms replaces it).  ``num_threads`` is the resolved thread count the call runs with; ``dtype``
    the call's (None: choose between the exact algorithms only); ``weights_kept``: the caller keeps the
    weights prepared for the algorithm across calls (``nn.Conv2d`` in evaluation mode).

    * Float32, 3x3, stride 1, dilation 1, ungrouped, at least :data:`WINOGRAD_MIN_CHANNELS` channels in
      and out and :data:`WINOGRAD_MIN_TILES` tiles of :func:`convkit.winograd.choose_tile` over the batch:
      ``"winograd"``, its weights transformed in the call (kept by ``nn.Conv2d`` in evaluation mode).  It
      rounds differently (max error 2e-5 of the largest output at 512 channels against 3e-6 for direct,
      the README's Winograd section): pass ``algo="direct"`` or ``"im2col"`` for the exact sums; float64
      never gets it.  Measured below the thresholds: 7x7x512 at batch 1 (4 tiles) 0.8x im2col, 3->64 on
      224x224 0.5x; level at 32-64 channels.  With ``weights_kept`` the tile count does not apply: the
      transform that made 7x7x512 at batch 1 lose is done once (resnet18's layer as the network runs it,
      2 threads, AMD EPYC Zen 4: Winograd 0.95 ms against im2col's 1.33, ``python -m convkit bench
      --only resnet18_layers``).

    * Grouped and depthwise: ``"direct"`` (their own kernels; im2col runs one GEMM per group, 6x slower
      on ResNeXt's 3x3 56x56x128 in 32 groups and 120x on a depthwise layer, 2 threads).
    * 1x1 without padding: ``"im2col"`` (the GEMM, packed straight from the input at stride 1) when the
      layer widens (``out_channels >= in_channels``), ``"direct"`` when it narrows.
    * Otherwise ``"im2col"`` when the weights per output pixel per thread,
      ``KH*KW*Cin*Cout * num_threads / (N*Hout*Wout)``, reach :data:`IM2COL_MIN_WEIGHTS_PER_PIXEL`:
      small maps with wide channels, where the direct kernel streams its weight blocks once per run of
      output pixels and the GEMM reuses a packed panel from L2.  Each thread of either algorithm
      handles 1/num_threads of the pixels and reads all the weights, so it is the pixels per thread
      that count.

    Measured (direct's time over im2col's: above 1 im2col is faster; float32 NHWC, bias + ReLU fused,
    ``num_threads=1``, AMD EPYC Zen 4 with the 512-bit tile, machine shared with other jobs at load 7,
    interleaved rounds, two runs; weights per pixel in brackets):

    ==================================  ==========  ====================================
    layer (3x3 unless said), batch 1    direct ms   direct / im2col
    ==================================  ==========  ====================================
    stem 7x7/2 224x224 3->64 [0.75]     6.3-7.1     0.40-0.64
    56x56x64 [12]                       5.4-5.9     0.73-0.78
    3x3/2 56x56 64->128 [94]            1.5-1.7     0.74-0.80
    28x28x128 [188]                     6.6         0.91-0.92
    3x3/2 28x28 128->256 [1505]         1.6-2.0     0.93-0.98
    14x14x256 [3009]                    6.7-7.0     0.96-0.98
    3x3/2 14x14 256->512 [24074]        7.0-7.3     1.13-1.17
    7x7x512 [48149]                     9.0-13.4    1.19
    batch 8: 56x56x64 / 28x28x128       39-42       0.61-0.72
    batch 8: 14x14x256 [376]            39-45       0.67-0.85
    batch 8: 7x7x512 [6019]             50-60       1.06-1.09
    1x1/2 56 64->128; 14 256->512       0.25-0.26   1.03-1.23 (widening)
    1x1 56x56 24->144; 14x14 64->384    0.17-0.66   1.22-1.42 (b8: 1.58-1.66)
    1x1 28 32->192; 7 160->960, 320->1k 0.19-0.97   1.02-1.26
    1x1 56x56 144->24                   0.36-0.38   0.56-0.65 (narrowing)
    1x1 14 384->96; 7 960->320          0.18-0.61   0.89-1.04
    1x1 112x112 32->16                  0.47-0.50   0.88-1.06
    ==================================  ==========  ====================================

    The crossover lies between 3009 (level) and 6019 weights per pixel (im2col 1.06-1.09x faster).
    Whole networks at batch 1, 1 thread, against the previous rule (im2col for ungrouped layers of at
    most 256 output pixels), two runs of 7 and 11 interleaved rounds: resnet18 0.96x and 1.03x the
    previous rule's speed, mobilenet_v2 0.99x and 1.11x (level within the rounds' spread, 0.8-1.2).
    Two-thread timings could not be taken on the shared machine (a 0.2 ms layer took 10-30 ms at 2
    threads, for PyTorch too: threads waiting for a descheduled partner), so the thread term is the
    per-thread argument above, not a measurement.
    """
    if groups != 1:
        return "direct"
    if _winograd_wins(kernel_size, stride, dilation, out_size, in_channels, out_channels, batch, dtype,
                      1 if weights_kept else WINOGRAD_MIN_TILES):
        return "winograd"
    if tuple(kernel_size) == (1, 1) and not any(pads):
        return "im2col" if out_channels >= in_channels else "direct"
    weights = kernel_size[0] * kernel_size[1] * in_channels * out_channels
    pixels = max(batch * out_size[0] * out_size[1], 1)
    return "im2col" if weights * num_threads >= IM2COL_MIN_WEIGHTS_PER_PIXEL * pixels else "direct"


def _winograd_wins(kernel_size, stride, dilation, out_size, in_channels, out_channels, batch, dtype, min_tiles):
    if dtype is None or np.dtype(dtype) != np.float32 or min(in_channels, out_channels) < WINOGRAD_MIN_CHANNELS:
        return False
    try:
        _winograd.check_geometry(kernel_size, stride, dilation, 1)
    except ValueError:
        return False
    m = _winograd.choose_tile(out_size)
    return batch * -(-out_size[0] // m) * -(-out_size[1] // m) >= min_tiles


def run_conv(x, w, bias, act, stride, pads, dilation, groups, algo, y, nt, residual=None, prepared=None):
    """The convolution into ``y`` on checked NHWC arrays (``algo`` resolved): what :func:`conv2d` runs
    after its checks, and what the prepared layers of :mod:`convkit.nn` call directly.  ``residual``: None
    or an NHWC array of y's shape.  ``prepared``: None, or weights prepared once for ``algo`` and kept
    (:func:`prepare_weights`)."""
    if algo == "direct":
        _conv_direct(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual, prepared)
    elif algo == "winograd":
        _winograd.conv2d_winograd(x, w if prepared is None else prepared, bias, act, pads, y, nt,
                                  residual=residual)
    else:
        _conv_im2col(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual, prepared)


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
    """What ``run_conv(..., prepared=)`` takes for ``algo``: the general direct kernel's packed blocks,
    Winograd's transforms, or, without groups, im2col's GEMM operand B (the (KH*KW*Cin, Cout) weight
    matrix; a 1x1's is the plain GEMM's) packed into the GEMM's panels; None where the algorithm has
    nothing to prepare."""
    if algo == "direct" and grouped_direct_kernel(w.shape[2] * groups, w.shape[3], groups, w.dtype) is None:
        return _direct.pack_weights(w, groups)
    if algo == "winograd":
        return _winograd.WinogradWeight(w)
    if algo == "im2col" and groups == 1:
        return _gemm.pack_b(w.reshape(-1, w.shape[3]))
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


def _conv_im2col(x, w, bias, act, stride, pads, dilation, groups, y, nt, residual=None, packed=None):
    """One GEMM per group on convkit's GEMM, bias and activation applied to each tile before its store.

    A 1x1 stride-1 convolution in NHWC is already a GEMM: its A panels are packed from the input
    itself.  Otherwise im2col writes the patches straight into the GEMM's A panels
    (im2col.conv2d_im2col_nhwc): no column matrix.  ``residual`` (y's shape) is added in the same epilogue.
    ``packed`` (``prepare_weights``: the whole weight as a packed B, ungrouped layers) replaces packing
    the weight in the call: MobileNetV2's 7x7 160->960 and 320->1280 expansions at batch 1, 1 thread,
    spent about 40% of their time packing it (gemm.gemm_into alone, machine shared: 1.6x with it packed
    ahead); resnet18's 3x3 7x7x512->512, 1.8x.
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
                            None if residual is None else _rows(residual)[:, cols], *act, nt, packed)
        return
    _im2col.conv2d_im2col_nhwc(x, w, bias, y, groups, stride[0], stride[1], pads[0], pads[2],
                               dilation[0], dilation[1], *act, nt, residual=residual, packed=packed)
