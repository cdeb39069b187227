"""Zero-sized arguments: PyTorch's empty result where PyTorch returns one, else a ValueError naming the argument.

``CASES`` lists, for every public function, every argument that can be zero-sized (batch, height, width,
channels, kernel size, offset groups, weight dimensions, bias, features, points).  Shapes are written in
PyTorch's convention (NCHW activations, OIHW weights); each case runs in both layouts (the shapes permuted
for NHWC) and both dtypes.  ``expected`` is the result's shape (NCHW) or the argument the ValueError must
name.  ``test_table_is_pytorchs`` checks the table against PyTorch and torchvision where they are
installed; the two places where convkit deliberately differs say why (``differs``).
"""
import dataclasses
import io
from typing import Callable

import numpy as np
import pytest

import convkit

from public_calls import PUBLIC


@dataclasses.dataclass(frozen=True)
class Case:
    function: str
    label: str
    arrays: dict                 # name -> shape (PyTorch's convention) or None
    expected: object             # NCHW result shape, or the name the ValueError must contain
    kwargs: dict = dataclasses.field(default_factory=dict)
    layouts: tuple = ("NHWC", "NCHW")
    values: Callable = None      # arrays -> the values of a non-empty result (broadcast to it in NHWC)
    differs: str = ""            # why convkit deliberately does not return what PyTorch returns

    @property
    def id(self):
        return f"{self.function}[{self.label}]"


def _case(function, label, expected, layouts=("NHWC", "NCHW"), values=None, differs="", **arrays_and_kwargs):
    arrays = {k: v for k, v in arrays_and_kwargs.items() if isinstance(v, tuple) and k != "kernel_size"
              and k != "output_size" or v is None and k in ("bias", "mask")}
    kwargs = {k: v for k, v in arrays_and_kwargs.items() if k not in arrays}
    return Case(function, label, arrays, expected, kwargs, layouts, values, differs)


ZERO_CHANNELS = ("PyTorch returns an empty (N, 0, Hout, Wout) result, without the weight's output channels; "
                 "convkit the sum over no channels: the bias, or zeros")

CONV = [
    _case("conv2d", "batch 0", (0, 6, 3, 3), x=(0, 4, 5, 5), weight=(6, 4, 3, 3), bias=(6,)),
    _case("conv2d", "batch 0, height 0, padded", (0, 6, 2, 7), x=(0, 4, 0, 5), weight=(6, 4, 1, 1), padding=1),
    _case("conv2d", "batch 0, height 0, unpadded", "output height", x=(0, 4, 0, 5), weight=(6, 4, 1, 1)),
    _case("conv2d", "height 0", "x", x=(1, 4, 0, 5), weight=(6, 4, 1, 1), padding=1),
    _case("conv2d", "width 0", "x", x=(2, 4, 5, 0), weight=(6, 4, 1, 1), padding=1),
    _case("conv2d", "channels 0", (1, 6, 3, 3), x=(1, 0, 5, 5), weight=(6, 0, 3, 3), bias=(6,),
          values=lambda a: a["bias"], differs=ZERO_CHANNELS),
    _case("conv2d", "channels 0, groups 2", (1, 6, 3, 3), x=(1, 0, 5, 5), weight=(6, 0, 3, 3), groups=2,
          values=lambda a: 0, differs=ZERO_CHANNELS),
    _case("conv2d", "channels 0, height 0", (1, 6, 2, 7), x=(1, 0, 0, 5), weight=(6, 0, 1, 1), padding=1,
          values=lambda a: 0, differs=ZERO_CHANNELS),
    _case("conv2d", "output channels 0", "weight", x=(1, 4, 5, 5), weight=(0, 4, 3, 3)),
    _case("conv2d", "output channels 0, bias 0", "weight", x=(1, 4, 5, 5), weight=(0, 4, 3, 3), bias=(0,)),
    _case("conv2d", "batch 0, output channels 0", "weight", x=(0, 4, 5, 5), weight=(0, 4, 3, 3)),
    _case("conv2d", "kernel height 0", "weight", x=(1, 4, 5, 5), weight=(6, 4, 0, 3)),
    _case("conv2d", "kernel width 0, batch 0", "weight", x=(0, 4, 5, 5), weight=(6, 4, 3, 0)),
    _case("conv2d", "kernel height 0, channels 0", "weight", x=(1, 0, 5, 5), weight=(6, 0, 0, 3),
          differs="PyTorch returns an (1, 0, 6, 3) result, sized as if the kernel had height -1"),
    _case("conv2d", "bias 0", "bias", x=(1, 4, 5, 5), weight=(6, 4, 3, 3), bias=(0,)),
]

TRANSPOSE = [
    _case("conv_transpose2d", "batch 0", (0, 4, 7, 7), x=(0, 3, 5, 5), weight=(3, 4, 3, 3), bias=(4,)),
    _case("conv_transpose2d", "batch 0, height 0", (0, 4, 2, 7), x=(0, 3, 0, 5), weight=(3, 4, 3, 3)),
    _case("conv_transpose2d", "batch 0, height 0, output height 0", (0, 4, 0, 5), x=(0, 3, 0, 5),
          weight=(3, 4, 1, 1)),
    _case("conv_transpose2d", "batch 0, output height < 0", "output", x=(0, 3, 0, 5), weight=(3, 4, 1, 1),
          padding=1),
    _case("conv_transpose2d", "height 0", "x", x=(1, 3, 0, 5), weight=(3, 4, 3, 3)),
    _case("conv_transpose2d", "width 0", "x", x=(1, 3, 5, 0), weight=(3, 4, 3, 3)),
    _case("conv_transpose2d", "channels 0", "x", x=(1, 0, 5, 5), weight=(0, 4, 3, 3)),
    _case("conv_transpose2d", "batch 0, channels 0", "x", x=(0, 0, 5, 5), weight=(0, 4, 3, 3)),
    _case("conv_transpose2d", "output channels 0", "weight", x=(1, 3, 5, 5), weight=(3, 0, 3, 3)),
    _case("conv_transpose2d", "kernel width 0", "weight", x=(1, 3, 5, 5), weight=(3, 4, 3, 0)),
    _case("conv_transpose2d", "bias 0", "bias", x=(1, 3, 5, 5), weight=(3, 4, 3, 3), bias=(0,)),
]

DEFORM = [
    _case("deform_conv2d", "batch 0", (0, 4, 3, 3), x=(0, 3, 5, 5), offset=(0, 18, 3, 3), weight=(4, 3, 3, 3),
          bias=(4,), mask=(0, 9, 3, 3)),
    _case("deform_conv2d", "height 0", (1, 4, 2, 7), x=(1, 3, 0, 5), offset=(1, 2, 2, 7), weight=(4, 3, 1, 1),
          padding=1, values=lambda a: 0),   # every sample outside the image: zero
    _case("deform_conv2d", "batch 0, width 0", (0, 4, 7, 2), x=(0, 3, 5, 0), offset=(0, 2, 7, 2),
          weight=(4, 3, 1, 1), padding=1),
    _case("deform_conv2d", "channels 0", "x", x=(1, 0, 5, 5), offset=(1, 18, 3, 3), weight=(4, 0, 3, 3)),
    _case("deform_conv2d", "output channels 0", (1, 0, 3, 3), x=(1, 3, 5, 5), offset=(1, 18, 3, 3),
          weight=(0, 3, 3, 3), bias=(0,)),
    _case("deform_conv2d", "batch 0, output channels 0", (0, 0, 3, 3), x=(0, 3, 5, 5), offset=(0, 18, 3, 3),
          weight=(0, 3, 3, 3)),
    _case("deform_conv2d", "kernel height 0", "weight", x=(1, 3, 5, 5), offset=(1, 0, 6, 3),
          weight=(4, 3, 0, 3)),
    _case("deform_conv2d", "weight input channels 0", "weight", x=(1, 3, 5, 5), offset=(1, 18, 3, 3),
          weight=(4, 0, 3, 3)),
    _case("deform_conv2d", "offset groups 0", "offset", x=(1, 3, 5, 5), offset=(1, 0, 3, 3), weight=(4, 3, 3, 3)),
    _case("deform_conv2d", "offset height 0", "offset", x=(1, 3, 5, 5), offset=(1, 18, 0, 3), weight=(4, 3, 3, 3)),
    _case("deform_conv2d", "mask 0", "mask", x=(1, 3, 5, 5), offset=(1, 18, 3, 3), weight=(4, 3, 3, 3),
          mask=(1, 0, 3, 3)),
    _case("deform_conv2d", "bias 0", "bias", x=(1, 3, 5, 5), offset=(1, 18, 3, 3), weight=(4, 3, 3, 3), bias=(0,)),
]

POOLS = [case for name in ("max_pool2d", "avg_pool2d") for case in (
    _case(name, "batch 0", (0, 3, 2, 2), x=(0, 3, 4, 4), kernel_size=2),
    _case(name, "channels 0", "x", x=(1, 0, 4, 4), kernel_size=2),
    _case(name, "height 0", "x", x=(1, 3, 0, 4), kernel_size=1),
    _case(name, "batch 0, height 0", "x", x=(0, 3, 0, 4), kernel_size=1),
)] + [
    _case("global_avg_pool2d", "batch 0", (0, 3, 1, 1), x=(0, 3, 4, 4), keepdims=True),
    _case("global_avg_pool2d", "channels 0", (2, 0, 1, 1), x=(2, 0, 4, 4), keepdims=True),
    _case("global_avg_pool2d", "batch 0, height 0", (0, 3, 1, 1), x=(0, 3, 0, 4), keepdims=True),
    _case("global_avg_pool2d", "height 0", "x", x=(2, 3, 0, 4), keepdims=True,
          differs="PyTorch returns NaN, the mean of nothing"),
]

NORM = [
    *[_case("batch_norm", f"{what} 0{' training' if training else ''}", shape, x=shape,
            running_mean=(shape[1],), running_var=(shape[1],), training=training,
            **(dict(weight=(shape[1],), bias=(shape[1],)) if shape[1] else {}))   # (PyTorch: IndexError)
      for training in (False, True)
      for what, shape in (("batch", (0, 3, 4, 4)), ("channels", (2, 0, 4, 4)), ("height", (2, 3, 0, 4)))],
    _case("batch_norm", "channels 0, affine", (2, 0, 4, 4), x=(2, 0, 4, 4), running_mean=(0,),
          running_var=(0,), weight=(0,), bias=(0,)),
    _case("batch_norm", "running_mean 0", "running_mean", x=(2, 3, 4, 4), running_mean=(0,), running_var=(3,)),
    _case("fold_batch_norm", "output channels 0", (0, 3, 3, 3), conv_weight=(0, 3, 3, 3), conv_bias=(0,),
          running_mean=(0,), running_var=(0,), weight=(0,), bias=(0,)),
    _case("fold_batch_norm", "input channels 0", (4, 0, 3, 3), conv_weight=(4, 0, 3, 3), conv_bias=(4,),
          running_mean=(4,), running_var=(4,), weight=(4,), bias=(4,)),
]

UNFOLD = [
    _case("im2col", "batch 0", (0, 12, 16), ("NCHW",), x=(0, 3, 5, 5), kernel_size=2),
    _case("im2col", "channels 0", "x", ("NCHW",), x=(1, 0, 5, 5), kernel_size=2),
    _case("im2col", "height 0", "x", ("NCHW",), x=(1, 3, 0, 5), kernel_size=1),
    _case("col2im", "batch 0", (0, 3, 5, 5), ("NCHW",), cols=(0, 12, 16), output_size=(5, 5), kernel_size=2),
    _case("col2im", "channels 0", "cols", ("NCHW",), cols=(1, 0, 16), output_size=(5, 5), kernel_size=2),
    _case("col2im", "blocks 0", "cols", ("NCHW",), cols=(1, 12, 0), output_size=(5, 5), kernel_size=2),
]

LINEAR = [
    _case("linear", "batch 0", (0, 4), ("NCHW",), x=(0, 3), weight=(4, 3), bias=(4,)),
    _case("linear", "leading 0", (2, 0, 4), ("NCHW",), x=(2, 0, 3), weight=(4, 3)),
    _case("linear", "in_features 0", (2, 4), ("NCHW",), values=lambda a: a["bias"],
          x=(2, 0), weight=(4, 0), bias=(4,)),
    _case("linear", "out_features 0", (2, 0), ("NCHW",), x=(2, 3), weight=(0, 3), bias=(0,)),
]

# No PyTorch peer: the empty result the shapes ask for; an empty image samples zero.
SAMPLING = [
    _case("bilinear_sample", "batch 0", (0, 7, 3), x=(0, 3, 5, 5), points=(0, 7, 2)),
    _case("bilinear_sample", "points 0", (2, 0, 3), x=(2, 3, 5, 5), points=(2, 0, 2)),
    _case("bilinear_sample", "channels 0", (2, 7, 0), x=(2, 0, 5, 5), points=(2, 7, 2)),
    _case("bilinear_sample", "height 0", (2, 7, 3), x=(2, 3, 0, 5), points=(2, 7, 2),
          values=lambda a: 0),
]

ACTIVATIONS = [_case(name, "size 0", (0, 3), ("NCHW",), x=(0, 3)) for name in
               ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh")]

CLASSIFIER = [
    *[_case(name, f"{what} 0", shape, ("NCHW",), x=shape) for name in ("softmax", "log_softmax")
      for what, shape in (("rows", (0, 3)), ("classes", (2, 0)))],
    _case("cross_entropy", "batch 0", (0,), ("NCHW",), logits=(0, 3), labels=(0,), reduction="none"),
    _case("cross_entropy", "classes 0", "labels", ("NCHW",), logits=(2, 0), labels=(2,), reduction="none"),
]

COUNTS = [
    *[_case(name, f"{arg} 0", arg, ("NCHW",), **dict(dict(c1=4, c2=6, kernel_size=3, output_size=5), **{arg: 0}))
      for name in ("conv_macs", "deform_conv_macs") for arg in ("c1", "c2", "kernel_size", "output_size")],
    *[_case(name, f"{arg} 0", arg, ("NCHW",), **dict(dict(c1=4, c2=6, kernel_size=3), **{arg: 0}))
      for name in ("conv_params", "conv_transpose_params", "deform_conv_params") for arg in ("c1", "c2", "kernel_size")],
    _case("conv_transpose_macs", "input_size 0", "input_size", ("NCHW",), c1=4, c2=6, kernel_size=3, input_size=0),
    _case("conv_macs", "groups 0", "groups", ("NCHW",), c1=4, c2=6, kernel_size=3, output_size=5, groups=0),
    _case("depthwise_conv_params", "channels 0", "channels", ("NCHW",), channels=0, kernel_size=3),
    _case("depthwise_conv_macs", "multiplier 0", "multiplier", ("NCHW",), channels=4, kernel_size=3,
          output_size=5, multiplier=0),
    _case("deform_sampling_macs", "c1 0", "c1", ("NCHW",), c1=0, kernel_size=3, output_size=5),
]

MATMUL = [
    _case("matmul", "rows 0", (0, 4), ("NCHW",), a=(0, 3), b=(3, 4)),
    _case("matmul", "inner 0", (2, 4), ("NCHW",), a=(2, 0), b=(0, 4), values=lambda a: 0),
    _case("matmul", "columns 0", (2, 0), ("NCHW",), a=(2, 3), b=(3, 0)),
]

CASES = (CONV + TRANSPOSE + DEFORM + POOLS + NORM + UNFOLD + LINEAR + MATMUL + SAMPLING + ACTIVATIONS + CLASSIFIER
         + COUNTS)

# Layers, models, summary and the optimizer: a batch of 0 images gives 0 results, an empty parameter is
# stepped (PyTorch's modules and torch.optim do the same).  The gradients: tests/test_zero_sizes_grad.py.
MODULES = ["nn", "models", "summary", "optim", "grad"]
NO_SIZES = ["clear_buffer_cache", "get_num_threads", "set_num_threads", "show_config", "autotune_cache", "set_autotune"]


def test_every_public_function_is_swept():
    swept = {case.function for case in CASES} | set(MODULES) | set(NO_SIZES)
    assert sorted(swept) == PUBLIC


_ACTIVATION_ARRAYS = ("x", "offset", "mask")


def _nhwc(name, shape, function):
    """A PyTorch-convention shape in convkit's NHWC convention."""
    if len(shape) != 4 or function in ("bilinear_sample",) and name != "x":
        return shape
    if name in _ACTIVATION_ARRAYS:
        return (shape[0], shape[2], shape[3], shape[1])
    return (shape[2], shape[3], shape[1], shape[0])      # OIHW -> HWIO (and the transposed convention)


def _arrays(case, layout, dtype):
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in case.arrays.items():
        if shape is None:
            arrays[name] = None
            continue
        if layout == "NHWC":
            shape = _nhwc(name, shape, case.function)
        if name == "labels":
            arrays[name] = np.zeros(shape, np.int64)
            continue
        a = rng.standard_normal(shape).astype(dtype)
        arrays[name] = np.abs(a) + 0.5 if name == "running_var" else a
    return arrays


def _call(case, layout, dtype):
    arrays = _arrays(case, layout, dtype)
    fn = getattr(convkit, case.function)
    kwargs = dict(case.kwargs)
    if case.layouts != ("NCHW",) or case.function in ("im2col", "col2im"):
        kwargs["layout"] = layout
    y = fn(**arrays, **kwargs)
    return arrays, y[0] if case.function == "fold_batch_norm" else y


def _expected_shape(case, layout):
    shape = case.expected
    if layout == "NHWC" and len(shape) == 4 and case.function != "bilinear_sample":
        return _nhwc("weight" if case.function == "fold_batch_norm" else "x", shape, case.function)
    return shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_zero_sized_arguments(case, dtype):
    for layout in case.layouts:
        if isinstance(case.expected, str):
            with pytest.raises(ValueError, match=case.expected):
                _call(case, layout, dtype)
            continue
        arrays, y = _call(case, layout, dtype)
        assert y.shape == _expected_shape(case, layout), (layout, y.shape)
        assert y.dtype == dtype
        if case.values is not None:
            nhwc = y.transpose(0, 2, 3, 1) if layout == "NCHW" and y.ndim == 4 else y
            np.testing.assert_array_equal(nhwc, np.broadcast_to(case.values(arrays), nhwc.shape))


WINOGRAD_SHAPES = [c for c in CONV if isinstance(c.expected, str)
                   or c.arrays["weight"][2:] == (3, 3) and c.kwargs.get("groups", 1) == 1]
ALGO_CASES = [(c, algo) for c in CONV for algo in ("direct", "im2col", "winograd")
              if algo != "winograd" or c in WINOGRAD_SHAPES]


@pytest.mark.parametrize("case,algo", ALGO_CASES, ids=[f"{c.id}-{a}" for c, a in ALGO_CASES])
def test_conv2d_zero_sizes_with_every_algorithm(case, algo):
    test_zero_sized_arguments(dataclasses.replace(case, kwargs=dict(case.kwargs, algo=algo)), np.float32)


def test_batch_norm_training_on_nothing_keeps_the_running_statistics():
    mean, var = np.ones(3), np.full(3, 2.0)
    y = convkit.batch_norm(np.zeros((0, 4, 4, 3)), mean, var, training=True)
    assert y.shape == (0, 4, 4, 3)
    assert mean.tolist() == [1, 1, 1] and var.tolist() == [2, 2, 2]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_layers_models_and_summary_take_a_batch_of_0(layout):
    x = np.zeros((0, 32, 32, 3) if layout == "NHWC" else (0, 3, 32, 32), np.float32)
    net = convkit.models.resnet18(layout, num_classes=10)
    assert net(x).shape == (0, 10)
    assert convkit.models.resnet18(layout, num_classes=10, algo="winograd")(x).shape == (0, 10)
    deform = convkit.nn.DeformConv2d(3, 4, 3, layout=layout)
    offset = np.zeros((0, 30, 30, 18) if layout == "NHWC" else (0, 18, 30, 30), np.float32)
    assert deform(x, offset).shape == ((0, 30, 30, 4) if layout == "NHWC" else (0, 4, 30, 30))
    text = io.StringIO()
    convkit.summary(net, x.shape, file=text)
    assert "Total MACs:   0 " in text.getvalue(), text.getvalue()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("training", [False, True])
def test_every_layer_takes_a_batch_of_0(layout, training):
    """Every layer of convkit.nn, forward and (training) backward, on an empty batch."""
    nn = convkit.nn
    net = nn.Sequential(
        nn.ConvBNAct(3, 8, layout=layout), nn.DepthwiseSeparable(8, 16, 2, layout=layout),
        nn.InvertedResidual(16, 16, 1, 2, layout=layout), nn.BasicBlock(16, 16, layout=layout),
        nn.MaxPool2d(2, layout=layout), nn.AvgPool2d(1, layout=layout), nn.ConvTranspose2d(16, 8, 2, 2, layout=layout),
        nn.BatchNorm2d(8, layout=layout), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1, layout=layout),
        nn.LeakyReLU(0.2), nn.ELU(), nn.Sigmoid(), nn.Tanh(), nn.ReLU(), nn.Dropout(),
        nn.GlobalAvgPool2d(layout=layout), nn.Flatten(layout=layout), nn.Linear(8, 5))
    net.train(training)
    x = np.zeros((0, 16, 16, 3) if layout == "NHWC" else (0, 3, 16, 16), np.float32)
    y = net(x)
    assert y.shape == (0, 5)
    if training:
        gx = net.backward(np.zeros((0, 5), np.float32))
        assert gx.shape == x.shape
        for p in net.parameters():     # PyTorch: the gradient of a sum over nothing, zeros
            assert p.grad is not None and p.grad.shape == p.shape and not p.grad.any()


def test_sgd_steps_an_empty_parameter():
    p = convkit.nn.Parameter(np.zeros((0, 3), np.float32))
    q = convkit.nn.Parameter(np.ones((2,), np.float32))
    p.grad, q.grad = np.zeros((0, 3), np.float32), np.ones((2,), np.float32)
    opt = convkit.optim.SGD([p, q], lr=0.5, momentum=0.9)
    opt.step()
    opt.step()
    assert p.shape == (0, 3)
    np.testing.assert_allclose(q, [-0.45, -0.45], rtol=1e-6)   # 1 - 0.5*1, then - 0.5*(0.9*1 + 1)


# -- the table is PyTorch's -------------------------------------------------------------------------------

def _torch_call(case, torch, arrays):
    F = torch.nn.functional
    t = {k: v if v is None or torch.is_tensor(v) else torch.from_numpy(v) for k, v in arrays.items()}
    kw = case.kwargs
    if case.function == "conv2d":
        return F.conv2d(t["x"], t["weight"], t.get("bias"), padding=kw.get("padding", 0), groups=kw.get("groups", 1))
    if case.function == "conv_transpose2d":
        return F.conv_transpose2d(t["x"], t["weight"], t.get("bias"), padding=kw.get("padding", 0))
    if case.function == "deform_conv2d":
        ops = pytest.importorskip("torchvision.ops")
        return ops.deform_conv2d(t["x"], t["offset"], t["weight"], t.get("bias"), padding=kw.get("padding", 0),
                                 mask=t.get("mask"))
    if case.function in ("max_pool2d", "avg_pool2d"):
        return getattr(F, case.function)(t["x"], kw["kernel_size"])
    if case.function == "global_avg_pool2d":
        return F.adaptive_avg_pool2d(t["x"], 1)
    if case.function == "batch_norm":
        return F.batch_norm(t["x"], t["running_mean"], t["running_var"], t.get("weight"), t.get("bias"),
                            training=kw.get("training", False))
    if case.function == "im2col":
        return F.unfold(t["x"], kw["kernel_size"])
    if case.function == "col2im":
        return F.fold(t["cols"], kw["output_size"], kw["kernel_size"])
    if case.function == "linear":
        return F.linear(t["x"], t["weight"], t.get("bias"))
    if case.function == "cross_entropy":
        return F.cross_entropy(t["logits"], t["labels"], reduction=kw["reduction"])
    if case.function == "matmul":
        return torch.matmul(t["a"], t["b"])
    if case.function in ("softmax", "log_softmax"):
        return getattr(F, case.function)(t["x"], -1)
    return getattr(F, case.function)(t["x"])


TORCH_CASES = [c for c in CASES if c.function not in ("bilinear_sample", "fold_batch_norm")
               and c.label != "channels 0, affine"         # PyTorch: IndexError from select() on weight
               and not c.function.endswith(("_macs", "_params"))]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.id for c in TORCH_CASES])
def test_table_is_pytorchs(case):
    torch = pytest.importorskip("torch")
    arrays = _arrays(case, "NCHW", np.float64)
    try:
        result = tuple(_torch_call(case, torch, arrays).shape)
    except (RuntimeError, ValueError, IndexError, ZeroDivisionError):
        result = "raises"
    if case.differs:
        assert result != ("raises" if isinstance(case.expected, str) else case.expected), case.differs
    elif isinstance(case.expected, str):
        assert result == "raises", f"PyTorch returns shape {result}"
    else:
        assert result == case.expected
