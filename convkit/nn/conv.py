"""Convolution layers: Conv2d, ConvTranspose2d and DeformConv2d, PyTorch's constructors and parameter names."""
import numpy as np

from .. import grad as G
from .._alloc import empty as aligned_empty
from .._layout import hwio_to_oihw, oihw_to_hwio
from .._validation import check_choice, conv_geometry, int_arg, pair
from .._threads import resolve_num_threads
from ..activations import resolve_activation
from ..autotune import autotune_enabled
from ..conv import ALGORITHMS, choose_algorithm, conv2d, prepare_weights, run_conv
from ..counts import conv_macs, conv_transpose_macs, deform_conv_macs
from ..conv_transpose import conv_transpose2d, transposed_output_size
from ..deform import deform_conv2d
from ..winograd import check_geometry
from .init import float_dtype, generator, kaiming_uniform
from .module import Module


class _ConvNd(Module):
    """Shared by the convolutions: the weight is 4-D, PyTorch's layout for NCHW layers and convkit's
    NHWC convention (the first two axes moved last, reversed) for NHWC layers."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 layout, dtype, rng):
        super().__init__(layout)
        self.in_channels = int_arg(in_channels, "in_channels", 1)
        self.out_channels = int_arg(out_channels, "out_channels", 1)
        self.groups = int_arg(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"expected groups to divide in_channels ({self.in_channels}) and out_channels "
                             f"({self.out_channels}), got groups={self.groups}")
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.dilation = pair(dilation, "dilation", 1)
        self.padding = (check_choice(padding, "padding", ("same", "valid")) if isinstance(padding, str)
                        else pair(padding, "padding", 0))
        dtype = float_dtype(dtype)
        rng = generator(rng)
        shape = self._torch_weight_shape()
        fan_in = shape[1] * shape[2] * shape[3]
        w = kaiming_uniform(rng, shape, fan_in, dtype)
        self.register_parameter("weight", self._from_torch("weight", w))
        if bias:
            self.register_parameter("bias", kaiming_uniform(rng, (self.out_channels,), fan_in, dtype))
        else:
            self.bias = None

    def _torch_weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def dtype(self):
        return self.weight.dtype

    def _to_torch(self, name, array):
        if name == "weight" and self.layout == "NHWC":
            return hwio_to_oihw(array)
        return array

    def _from_torch(self, name, array):
        if name == "weight" and self.layout == "NHWC":
            return oihw_to_hwio(array)
        return array

    def nhwc_weight(self):
        """The weight in the NHWC functions' convention, whatever the layout (converted once, cached)."""
        if self.layout == "NHWC":
            return self.weight
        return self._cached("hwio", lambda: oihw_to_hwio(self.weight))

    def _accumulate_weight_grad(self, grad_nhwc_weight):
        """Add a weight gradient given in the NHWC functions' convention to ``weight.grad``."""
        self.weight.accumulate_grad(grad_nhwc_weight if self.layout == "NHWC" else hwio_to_oihw(grad_nhwc_weight))

    def _accumulate_bias_grad(self, grad):
        if self.bias is not None:
            self.bias.accumulate_grad(G.conv2d_bias(grad))

    def _check_channels(self, shape):
        if len(shape) != 4 or shape[3] != self.in_channels:
            raise ValueError(f"expected input with {self.in_channels} channels, got shape "
                             f"{self._shape_from_internal(shape)}")

    def _out_shape(self, shape):
        self._check_channels(shape)
        n, h, w, _ = shape
        _, _, _, (hout, wout) = conv_geometry((h, w), self.kernel_size, self.stride, self.padding,
                                              self.dilation)
        return n, hout, wout, self.out_channels

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}")
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if getattr(self, "algo", "auto") != "auto":
            text += f", algo={self.algo!r}"
        return text + f", bias={self.bias is not None}, layout={self.layout!r}"


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d``: weight HWIO (KH, KW, Cin/groups, Cout) for NHWC, OIHW for NCHW.

    Initialised as PyTorch does (uniform within 1/sqrt(fan_in)), from ``rng`` (a Generator or a seed).
    In a container, a following BatchNorm2d and activation are fused into it (:mod:`convkit.nn.fusion`).
    ``algo`` is :func:`convkit.conv2d`'s; with ``"winograd"`` the layer keeps its transformed weights,
    rebuilt when parameters are assigned or loaded.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, layout="NHWC", dtype=np.float32, rng=0, algo="auto"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         layout, dtype, rng)
        self.algo = algo

    @property
    def algo(self):
        return self._algo

    @algo.setter
    def algo(self, value):
        check_choice(value, "algo", ALGORITHMS)
        if value == "winograd":
            check_geometry(self.kernel_size, self.stride, self.dilation, self.groups)
        object.__setattr__(self, "_algo", value)

    def winograd_eligible(self):
        """Whether ``algo="winograd"`` can compute this layer (3x3, stride 1, dilation 1, groups 1)."""
        return (self.kernel_size, self.stride, self.dilation, self.groups) == ((3, 3), (1, 1), (1, 1), 1)

    def _forward(self, x, weight=None, bias=None, activation=None):
        """The convolution on NHWC ``x``; a fusing container passes folded ``weight``/``bias``."""
        if weight is None:
            self._save(x)  # (fused calls are inference only: containers fuse in evaluation mode)
            return self._cached("bound", lambda: self.bind(self.nhwc_weight(), self.bias))(x)
        return self.bind(weight, bias, activation)(x)

    def bind(self, weight, bias=None, activation=None):
        """A callable on NHWC arrays: this layer's convolution with NHWC-convention ``weight``, ``bias``
        and ``activation`` fused, keeping whatever it derives from the weights (Winograd's transforms)."""
        return _BoundConv2d(self, weight, bias, activation)

    def _backward(self, grad, input_grad):
        x, = self._saved()
        w = self.nhwc_weight()
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        self._accumulate_weight_grad(G.conv2d_weight(x, w.shape, grad, *geometry))
        self._accumulate_bias_grad(grad)
        return G.conv2d_input(x.shape, w, grad, *geometry) if input_grad else None

    def _macs(self, in_shape, out_shape):
        return in_shape[0] * conv_macs(self.in_channels, self.out_channels, self.kernel_size,
                                       out_shape[1:3], self.groups)


def use_algorithm(module, algo):
    """Set ``algo`` on every Conv2d in ``module`` that can run it (``"winograd"``: the eligible ones)."""
    check_choice(algo, "algo", ALGORITHMS)
    for m in module.modules():
        if isinstance(m, Conv2d) and (algo != "winograd" or m.winograd_eligible()):
            m.algo = algo
    return module


class _BoundConv2d:
    """A Conv2d with fixed weights, ``act(conv(x) + bias + residual)`` on NHWC arrays, prepared as an
    inference engine prepares a graph: the weights are prepared for the algorithm once (the direct
    kernel's packed blocks, Winograd's transforms), and the algorithm and geometry resolved once per
    input shape and thread count.

    A C-contiguous input of the layer's dtype and channels (as the layers before produce) and a residual
    of the output's shape go straight to the kernels; anything else goes through :func:`convkit.conv2d`
    and its checks, and so does ``algo="auto"`` while :func:`convkit.set_autotune` is on (the measured
    choice is conv2d's).
    """

    def __init__(self, conv, weight, bias, activation):
        self.conv, self.weight, self.bias, self.activation = conv, weight, bias, activation
        self._act = resolve_activation(activation)
        self._plans = {}       # (input shape, threads) -> (output shape, stride, pads, dilation, algo, prepared)
        self._prepared = {}    # algo -> conv.prepare_weights(weight, groups, algo)

    def __call__(self, x, residual=None):
        nt = resolve_num_threads(None)
        plan = self._plan(x, nt) if self._fits(x) else None
        if plan is None or (residual is not None and not (self._fits(residual) and residual.shape == plan[0])):
            c = self.conv   # anything unusual: conv2d checks it (and copies what must be copied)
            return conv2d(x, self.weight, self.bias, c.stride, c.padding, c.dilation, c.groups, algo=c.algo,
                          activation=self.activation, residual=residual, num_threads=nt)
        out_shape, stride, pads, dilation, algo, prepared = plan
        y = aligned_empty(out_shape, self.weight.dtype)   # the next layer's input, as conv2d's outputs
        run_conv(x, self.weight, self.bias, self._act, stride, pads, dilation, self.conv.groups, algo, y,
                 nt, residual, prepared)
        return y

    def _fits(self, a):
        return type(a) is np.ndarray and a.dtype == self.weight.dtype and a.flags.c_contiguous

    def _plan(self, x, nt):
        """The plan for NHWC input ``x`` of the layer's dtype (None if its channels do not match)."""
        c = self.conv
        if c.algo == "auto" and autotune_enabled():
            return None
        plan = self._plans.get((x.shape, nt))
        if plan is None and x.ndim == 4 and x.shape[3] == c.in_channels:
            stride, dilation, pads, out_size = conv_geometry(x.shape[1:3], c.kernel_size, c.stride,
                                                             c.padding, c.dilation)
            algo = c.algo if c.algo != "auto" else choose_algorithm(
                c.kernel_size, stride, pads, c.groups, out_size, in_channels=c.in_channels,
                out_channels=c.out_channels, batch=x.shape[0], num_threads=nt, dilation=dilation,
                dtype=x.dtype, weights_kept=True)
            if algo not in self._prepared:
                self._prepared[algo] = prepare_weights(self.weight, c.groups, algo)
            plan = self._plans[x.shape, nt] = ((x.shape[0], *out_size, c.out_channels), stride, pads,
                                               dilation, algo, self._prepared[algo])
        return plan


class ConvTranspose2d(_ConvNd):
    """``torch.nn.ConvTranspose2d`` (upsampling): weight (KH, KW, Cout/groups, Cin) for NHWC, PyTorch's
    (Cin, Cout/groups, KH, KW) for NCHW; see :func:`convkit.conv_transpose2d`."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, *, layout="NHWC", dtype=np.float32, rng=0):
        self.output_padding = pair(output_padding, "output_padding", 0)
        super().__init__(in_channels, out_channels, kernel_size, stride, pair(padding, "padding", 0),
                         dilation, groups, bias, layout, dtype, rng)

    def _torch_weight_shape(self):
        return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)

    def _forward(self, x):
        self._save(x)
        return conv_transpose2d(x, self.nhwc_weight(), self.bias, self.stride, self.padding,
                                self.output_padding, self.groups, self.dilation)

    def _backward(self, grad, input_grad):
        x, = self._saved()
        w = self.nhwc_weight()
        geometry = (self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        self._accumulate_weight_grad(G.conv_transpose2d_weight(x, w.shape, grad, *geometry))
        self._accumulate_bias_grad(grad)
        return G.conv_transpose2d_input(x.shape, w, grad, *geometry) if input_grad else None

    def _out_shape(self, shape):
        self._check_channels(shape)
        n, h, w, _ = shape
        hout, wout = (transposed_output_size(*args) for args in zip(
            (h, w), self.kernel_size, self.stride, self.padding, self.output_padding, self.dilation))
        return n, hout, wout, self.out_channels

    def _macs(self, in_shape, out_shape):
        """Counted on the input map (every input value meets every tap), as PyTorch's FLOP counter."""
        return in_shape[0] * conv_transpose_macs(self.in_channels, self.out_channels, self.kernel_size,
                                                 in_shape[1:3], self.groups)


class DeformConv2d(_ConvNd):
    """``torchvision.ops.DeformConv2d``: called as ``layer(x, offset, mask=None)``.

    ``offset`` is (N, Hout, Wout, 2*G*KH*KW) for NHWC, (N, 2*G*KH*KW, Hout, Wout) for NCHW, and ``mask``
    (DCNv2) likewise with G*KH*KW channels; see :func:`convkit.deform_conv2d`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, layout="NHWC", dtype=np.float32, rng=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         layout, dtype, rng)

    def forward(self, x, offset, mask=None):
        x, offset = self._to_internal(x), self._to_internal(offset)
        mask = None if mask is None else self._to_internal(mask)
        y = self._from_internal(self._forward(x, offset, mask))
        if self.training:
            self.__dict__["_output_shape"] = y.shape
        return y

    def _forward(self, x, offset, mask=None):
        self._save(x, offset, mask)
        return deform_conv2d(x, offset, self.nhwc_weight(), self.bias, self.stride, self.padding,
                             self.dilation, mask)

    def backward(self, grad_output, input_grad=True):
        """As :meth:`Module.backward`, returning ``(grad_x, grad_offset, grad_mask)`` (``grad_mask``
        None without a mask) in the layer's layout."""
        grads = self._backward(self._internal_grad_output(grad_output), input_grad)
        return tuple(None if g is None else self._from_internal(g) for g in grads) if input_grad else None

    def _backward(self, grad, input_grad):
        x, offset, mask = self._saved()
        gx, goffset, gw, gmask, gb = G.deform_conv2d(grad, x, offset, self.nhwc_weight(), mask,
                                                     self.stride, self.padding, self.dilation)
        self._accumulate_weight_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return (gx, goffset, gmask) if input_grad else None

    def _macs(self, in_shape, out_shape):
        """The convolution's MACs plus the bilinear sampling's (without a mask: the shapes do not say)."""
        return in_shape[0] * deform_conv_macs(self.in_channels, self.out_channels, self.kernel_size,
                                              out_shape[1:3], self.groups)
