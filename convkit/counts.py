"""Parameter and operation counts of the convolutions, in the seed's symbols.

``c1``/``c2`` are the input/output channels, ``kernel_size`` is (K_H, K_W) = (h_l, w_l), ``output_size``
is the output map (H, W) and ``groups`` is g.  The seed's formulas, for standard (g = 1) and group
convolution::

    P = (c1/g) * (c2/g) * K_H * K_W * g              (+ c2 with a bias)
    # = H * W * (c2/g) * h_l * w_l * (c1/g) * g       multiply-accumulates (MACs) per image

Operation counts are MACs per image (one MAC = one multiply and one add, 2 FLOPs); the bias adds are
not counted, as in the seed.  An int or an (h, w) pair is accepted for every size.
"""
from ._validation import int_arg, pair


def conv_params(c1, c2, kernel_size, groups=1, bias=False):
    """Parameters of a (group) convolution: ``(c1/g)*(c2/g)*K_H*K_W*g``, plus ``c2`` with a bias."""
    c1, c2, (kh, kw), g = _channels(c1, c2, kernel_size, groups)
    return (c1 // g) * (c2 // g) * kh * kw * g + (c2 if _flag(bias, "bias") else 0)


def conv_macs(c1, c2, kernel_size, output_size, groups=1):
    """MACs per image of a (group) convolution: ``H*W*(c2/g)*h_l*w_l*(c1/g)*g``."""
    c1, c2, (kh, kw), g = _channels(c1, c2, kernel_size, groups)
    h, w = pair(output_size, "output_size", 1)
    return h * w * (c2 // g) * kh * kw * (c1 // g) * g


def depthwise_conv_params(channels, kernel_size, multiplier=1, bias=False):
    """Parameters of a depthwise convolution (g = c1 = ``channels``, c2 = channels*multiplier):
    ``c1*m*K_H*K_W`` (+ ``c1*m`` with a bias)."""
    c = int_arg(channels, "channels", 1)
    return conv_params(c, c * int_arg(multiplier, "multiplier", 1), kernel_size, c, bias)


def depthwise_conv_macs(channels, kernel_size, output_size, multiplier=1):
    """MACs per image of a depthwise convolution: ``H*W*c1*m*h_l*w_l`` (g = c1: one input channel
    per output channel)."""
    c = int_arg(channels, "channels", 1)
    return conv_macs(c, c * int_arg(multiplier, "multiplier", 1), kernel_size, output_size, c)


def conv_transpose_params(c1, c2, kernel_size, groups=1, bias=False):
    """Parameters of a transposed convolution from c1 to c2 channels: the weight (c1, c2/g, K_H, K_W)
    has as many as the convolution from c2 to c1, ``(c1/g)*(c2/g)*K_H*K_W*g`` (+ ``c2`` with a bias)."""
    return conv_params(c1, c2, kernel_size, groups, bias)


def conv_transpose_macs(c1, c2, kernel_size, input_size, groups=1):
    """MACs per image of a transposed convolution, counted on its *input* map (H_in, W_in):
    ``H_in*W_in*(c2/g)*h_l*w_l*(c1/g)*g``.

    Every input value is multiplied by every tap of its group's weights (the scatter form, and what
    ``algo="col2im"`` computes), including the products that land in the cropped ``padding``; the
    gather kernel (``algo="direct"``) skips those, so it does slightly fewer (PyTorch's FLOP counter
    counts the same as this function).
    """
    return conv_macs(c1, c2, kernel_size, pair(input_size, "input_size", 1), groups)


def deform_conv_params(c1, c2, kernel_size, groups=1, bias=False):
    """Parameters of a deformable convolution: the weights and bias, as :func:`conv_params`.

    The offsets (and mask) are inputs, usually predicted by a separate convolution with
    2*G*K_H*K_W (+ G*K_H*K_W) output channels, whose parameters that layer counts.
    """
    return conv_params(c1, c2, kernel_size, groups, bias)


def deform_sampling_macs(c1, kernel_size, output_size, mask=False):
    """MACs per image of deformable convolution's bilinear sampling: ``H*W*h_l*w_l*c1*(4 + mask)``.

    Each output pixel samples every input channel at its h_l*w_l shifted points; each sampled value is
    a weighted sum of four neighbours (4 MACs) and, with a mask (DCNv2), one more multiply.  The corner
    weights themselves (a few operations per point and offset group, independent of the channels) are
    not counted.
    """
    c1 = int_arg(c1, "c1", 1)
    kh, kw = pair(kernel_size, "kernel_size", 1)
    h, w = pair(output_size, "output_size", 1)
    return h * w * kh * kw * c1 * (4 + (1 if _flag(mask, "mask") else 0))


def deform_conv_macs(c1, c2, kernel_size, output_size, groups=1, mask=False):
    """MACs per image of a deformable convolution: the convolution's own
    ``H*W*(c2/g)*h_l*w_l*(c1/g)*g`` plus the bilinear sampling of :func:`deform_sampling_macs`."""
    return (conv_macs(c1, c2, kernel_size, output_size, groups)
            + deform_sampling_macs(c1, kernel_size, output_size, mask))


def _channels(c1, c2, kernel_size, groups):
    c1 = int_arg(c1, "c1", 1)
    c2 = int_arg(c2, "c2", 1)
    kernel_size = pair(kernel_size, "kernel_size", 1)
    g = int_arg(groups, "groups", 1)
    if c1 % g or c2 % g:
        raise ValueError(f"expected groups to divide c1={c1} and c2={c2}, got groups={g}")
    return c1, c2, kernel_size, g


def _flag(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"expected {name} to be True or False, got {value!r}")
    return value
