"""The argument prologue of the convolutions (conv2d, conv_transpose2d, deform_conv2d), written once.

It validates the input, the weight and the bias, resolves the groups and the thread count, and brings the
arrays into the kernels' convention: ``x`` as a C-contiguous NHWC array and the weight as ``(KH, KW, I, O)``.
Each function then resolves its own geometry (stride, padding, dilation, output size).
"""
from ._layout import conv_weight_to_hwio, to_nhwc
from ._threads import resolve_num_threads
from ._validation import as_bias, as_float_array, check_choice, check_layout, check_ndim, int_arg

#: What the weight's axes mean, per kind of convolution and layout (for the ndim message).
_WEIGHT_AXES = {
    ("conv", "NHWC"): "(KH, KW, Cin/groups, Cout)",
    ("conv", "NCHW"): "(Cout, Cin/groups, KH, KW)",
    ("transposed", "NHWC"): "(KH, KW, Cout/groups, Cin)",
    ("transposed", "NCHW"): "(Cin, Cout/groups, KH, KW)",
}


def conv_prologue(x, weight, bias, groups, *, layout, algo, algorithms, num_threads, kind="conv"):
    """Checked arguments of a convolution: ``(x_nhwc, weight_khkwio, bias, groups, num_threads)``.

    ``kind`` is ``"conv"``, ``"deform"`` or ``"transposed"``.  ``weight`` is in ``layout``'s convention,
    ``(KH, KW, Cin/groups, Cout)`` / ``(Cout, Cin/groups, KH, KW)``, or for transposed convolutions
    ``(KH, KW, Cout/groups, Cin)`` / ``(Cin, Cout/groups, KH, KW)``.  ``groups=None`` infers the groups
    from the weight (input channels / the weight's input channels per group), as torchvision's
    deform_conv2d does.  ``bias`` must then have Cout values.

    Zero sizes follow PyTorch (torchvision for ``"deform"``): a zero kernel size is an error, and so are
    zero output channels except in deform_conv2d, and zero input channels except in conv2d (whose result
    is then the bias); an empty image (H or W = 0) is allowed only with an empty batch, or no channels for
    conv2d, and always for deform_conv2d (whose samples are then zero).
    """
    check_layout(layout)
    check_choice(algo, "algo", algorithms)
    x = as_float_array(x, "x")
    check_ndim(x, 4, "x", f"({', '.join(layout)})")
    weight = as_float_array(weight, "weight", x.dtype)
    check_ndim(weight, 4, "weight", _WEIGHT_AXES["transposed" if kind == "transposed" else "conv", layout])
    xh = to_nhwc(x, layout)
    w = conv_weight_to_hwio(weight, layout)
    _check_sizes(kind, xh.shape, w.shape, x.shape, weight.shape)
    c = xh.shape[3]
    if kind == "transposed":
        groups = int_arg(groups, "groups", 1)
        cout = _transposed_channels(c, w.shape, weight.shape, groups)
    else:
        if groups is None:
            groups = _weight_groups(c, w.shape[2], weight.shape)
            described = (f"the weight groups {groups} (input channels {c} / the weight's {w.shape[2]} "
                         f"input channels per group)")
        else:
            groups = int_arg(groups, "groups", 1)
            described = f"groups={groups}"
        cout = _conv_channels(c, w.shape, weight.shape, groups, described)
    bias = as_bias(bias, cout, x.dtype)
    return xh, w, bias, groups, resolve_num_threads(num_threads)


def _check_sizes(kind, x_nhwc_shape, weight_nhwc_shape, x_shape, weight_shape):
    """The zero sizes PyTorch rejects (see :func:`conv_prologue`), as ValueErrors naming the argument."""
    n, h, w, c = x_nhwc_shape
    kh, kw = weight_nhwc_shape[:2]
    o = weight_nhwc_shape[2 if kind == "transposed" else 3]   # (KH, KW, Cout/groups, Cin) if transposed
    if kh == 0 or kw == 0:
        raise ValueError(f"expected weight to have a kernel size of at least 1x1, got {kh}x{kw} "
                         f"(weight shape {weight_shape})")
    if o == 0 and kind != "deform":
        what = "output channels per group" if kind == "transposed" else "output channels"
        raise ValueError(f"expected weight to have at least one of its {what}, got weight shape {weight_shape}")
    if c == 0 and kind != "conv":
        raise ValueError(f"expected x to have at least one channel, got shape {x_shape}")
    if h * w == 0 and n != 0 and not (kind == "conv" and c == 0) and kind != "deform":
        raise ValueError(f"expected x to have a height and width of at least 1 (an empty image is allowed "
                         f"only in an empty batch), got shape {x_shape}")


def _conv_channels(c, hwio_shape, weight_shape, groups, described):
    """Output channels of a convolution; checks that ``groups`` divides both sides and fits the weight."""
    cin_g, cout = hwio_shape[2], hwio_shape[3]
    if c % groups:
        raise ValueError(f"expected groups to divide the input channels {c}, got {described}")
    if cout % groups:
        raise ValueError(f"expected groups to divide the output channels {cout} (weight shape {weight_shape}), "
                         f"got {described}")
    if cin_g != c // groups:
        raise ValueError(f"expected weight to have {c // groups} input channels per group "
                         f"(input channels {c} / groups {groups}), got {cin_g} (weight shape {weight_shape})")
    return cout


def _transposed_channels(c, weight_nhwc_shape, weight_shape, groups):
    """Output channels of a transposed convolution, ``groups * (Cout/groups)``."""
    cout_g, w_cin = weight_nhwc_shape[2], weight_nhwc_shape[3]
    if c % groups:
        raise ValueError(f"expected groups to divide the input channels {c}, got groups={groups}")
    if w_cin != c:
        raise ValueError(f"expected weight to have {c} input channels (the input's), got {w_cin} "
                         f"(weight shape {weight_shape})")
    return cout_g * groups


def _weight_groups(c, cin_g, weight_shape):
    """Weight groups = input channels / the weight's input channels per group."""
    if cin_g == 0 or c % cin_g:
        raise ValueError(f"expected weight's input channels per group to divide the input channels {c}, "
                         f"got {cin_g} (weight shape {weight_shape})")
    return c // cin_g
