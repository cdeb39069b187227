"""One small call of every public convkit function, shared by the concurrency, resource and input-safety
tests (tests/test_concurrency.py, test_resources.py, test_inputs_unmodified.py).

Each ``Call`` makes its inputs from a seed (a dict: arrays and other arguments) and runs the function on
them.  ``mutates`` names the inputs the function is documented to modify (``out=``, in-place activations,
batch norm's running statistics); every other array input must be left as it was.  ``threads=False`` marks
calls that change or print process-wide state (the thread-count setting, stdout), which are not run from
several threads at once.  ``reps`` is how often the resource test repeats the call.

``PUBLIC`` is everything in ``convkit.__all__``; ``test_every_public_function_has_a_call`` keeps the
registry complete.
"""
import contextlib
import dataclasses
import functools
import io
from typing import Callable

import numpy as np

import convkit


@dataclasses.dataclass(frozen=True)
class Call:
    function: str                        # the public name it covers (in convkit.__all__)
    variant: str
    make: Callable                       # seed -> dict of inputs
    run: Callable                        # inputs -> result
    mutates: tuple = ()
    threads: bool = True
    reps: int = 300

    @property
    def id(self):
        return f"{self.function}[{self.variant}]"


def _normal(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _conv(seed, cin=8, cout=8, k=3, groups=1, layout="NHWC", dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = _normal(rng, (2, 8, 8, cin), dtype)
    w = _normal(rng, (k, k, cin // groups, cout), dtype)
    if layout == "NCHW":
        x, w = x.transpose(0, 3, 1, 2).copy(), w.transpose(3, 2, 0, 1).copy()
    return dict(x=x, weight=w, bias=_normal(rng, (cout,), dtype))


def _conv_call(variant, algo="auto", padding=1, activation=None, layout="NHWC", **geometry):
    def run(a):
        return convkit.conv2d(a["x"], a["weight"], a["bias"], padding=padding, groups=geometry.get("groups", 1),
                              layout=layout, algo=algo, activation=activation)
    return Call("conv2d", variant, lambda s: _conv(s, layout=layout, **geometry), run)


def _transpose(seed, cin=8, cout=8, k=4, groups=1, layout="NHWC"):
    """Transposed-convolution inputs: weight (KH, KW, Cout/groups, Cin), or (Cin, Cout/groups, KH, KW)."""
    rng = np.random.default_rng(seed)
    x = _normal(rng, (2, 8, 8, cin))
    w = _normal(rng, (k, k, cout // groups, cin))
    if layout == "NCHW":
        x, w = x.transpose(0, 3, 1, 2).copy(), w.transpose(3, 2, 0, 1).copy()
    return dict(x=x, weight=w, bias=_normal(rng, (cout,)))


def _image(seed, c=8, layout="NHWC", dtype=np.float32):
    x = _normal(np.random.default_rng(seed), (2, 8, 8, c), dtype)
    return dict(x=x if layout == "NHWC" else x.transpose(0, 3, 1, 2).copy())


def _deform(seed, mask=True, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return dict(x=_normal(rng, (2, 8, 8, 4), dtype), offset=(2 * _normal(rng, (2, 8, 8, 36), dtype)),
                weight=_normal(rng, (3, 3, 4, 8), dtype), bias=_normal(rng, (8,), dtype),
                mask=rng.uniform(0, 1, (2, 8, 8, 18)).astype(dtype) if mask else None)


def _deform_call(variant, algo, mask):
    return Call("deform_conv2d", variant, lambda s: _deform(s, mask),
                lambda a: convkit.deform_conv2d(a["x"], a["offset"], a["weight"], a["bias"], padding=1,
                                                mask=a["mask"], algo=algo))


def _bn(seed, c=8, layout="NHWC"):
    rng = np.random.default_rng(seed)
    return dict(_image(seed, c, layout), running_mean=_normal(rng, (c,)),
                running_var=rng.uniform(0.5, 2, c).astype(np.float32),
                weight=_normal(rng, (c,)), bias=_normal(rng, (c,)))


def _bn_statistics(seed, c=8):
    bn = _bn(seed, c)
    return dict(running_mean=bn["running_mean"], running_var=bn["running_var"], gamma=bn["weight"],
                beta=bn["bias"])


def _activation_calls():
    calls = []
    for name, args in (("relu", ()), ("relu6", ()), ("leaky_relu", (0.2,)), ("elu", (0.7,)),
                       ("sigmoid", ()), ("tanh", ())):
        fn = getattr(convkit, name)
        calls.append(Call(name, "new", _image, lambda a, fn=fn, args=args: fn(a["x"], *args)))
        calls.append(Call(name, "in_place", _image,
                          lambda a, fn=fn, args=args: fn(a["x"], *args, out=a["x"]), mutates=("x",)))
    return calls


def _model_input(seed, layout="NHWC"):
    x = _normal(np.random.default_rng(seed), (1, 32, 32, 3))
    return x if layout == "NHWC" else x.transpose(0, 3, 1, 2).copy()


def _small_net(layout="NHWC"):
    nn = convkit.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, layout=layout), nn.BatchNorm2d(8, layout=layout),
                         nn.ReLU(), nn.MaxPool2d(2, layout=layout), nn.Conv2d(8, 8, 3, 1, 1, groups=8, layout=layout),
                         nn.GlobalAvgPool2d(layout=layout), nn.Flatten(), nn.Linear(8, 5))


@functools.lru_cache(maxsize=None)
def _net(name, layout="NHWC"):
    """One network per configuration for the whole session (built once: resnet18 has 11M parameters)."""
    if name == "sequential":
        return _small_net(layout)
    if name == "blocks":
        return _blocks_net(layout)
    if name == "deform":
        return convkit.nn.DeformConv2d(4, 8, 3, padding=1, layout=layout)
    if name == "resnet18_winograd":
        return convkit.models.resnet18(layout, num_classes=10, algo="winograd")
    return getattr(convkit.models, name)(layout, num_classes=10)


def _blocks_net(layout):
    """Every other layer and module of convkit.nn (inference)."""
    nn = convkit.nn
    return nn.Sequential(
        nn.ConvBNAct(3, 8, layout=layout), nn.DepthwiseSeparable(8, 16, 2, layout=layout),
        nn.InvertedResidual(16, 16, 1, 2, layout=layout), nn.BasicBlock(16, 16, layout=layout),
        nn.AvgPool2d(2, layout=layout), nn.ConvTranspose2d(16, 8, 2, 2, layout=layout), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, layout=layout), nn.LeakyReLU(0.2), nn.ELU(), nn.Sigmoid(), nn.Tanh(),
        nn.Dropout(), nn.activation_layer("relu"), nn.GlobalAvgPool2d(keepdims=True, layout=layout))


def _logits(seed):
    rng = np.random.default_rng(seed)
    return dict(x=_normal(rng, (16, 10)), labels=rng.integers(0, 10, 16))


def _grad_calls():
    """One small call of each gradient in convkit.grad (all under the public name "grad")."""
    g = convkit.grad

    def conv(s, **kw):
        a = _conv(s, **kw)
        return dict(a, go=_normal(np.random.default_rng(s + 7), (2, 8, 8, a["weight"].shape[-1])))

    def unit(s):
        return dict(_image(s), go=_normal(np.random.default_rng(s + 7), (2, 4, 4, 8)),
                    go_same=_normal(np.random.default_rng(s + 8), (2, 8, 8, 8)))

    def tconv(s):
        return dict(_transpose(s, cout=16), go=_normal(np.random.default_rng(s + 7), (2, 16, 16, 16)))

    def deform(s):
        return dict(_deform(s), go=_normal(np.random.default_rng(s + 7), (2, 8, 8, 8)))

    return [
        Call("grad", "conv2d_input", conv, lambda a: g.conv2d_input(a["x"].shape, a["weight"], a["go"], padding=1)),
        Call("grad", "conv2d_input_depthwise_stride2", lambda s: dict(
            _conv(s, groups=8), go=_normal(np.random.default_rng(s), (2, 4, 4, 8))),
             lambda a: g.conv2d_input(a["x"].shape, a["weight"], a["go"], 2, 1, groups=8)),
        Call("grad", "conv2d_weight", conv, lambda a: g.conv2d_weight(a["x"], a["weight"].shape, a["go"], padding=1)),
        Call("grad", "conv2d_weight_grouped_nchw", lambda s: dict(
            _conv(s, groups=2, layout="NCHW"), go=_normal(np.random.default_rng(s), (2, 8, 8, 8))),
             lambda a: g.conv2d_weight(a["x"], a["weight"].shape, a["go"], padding=1, groups=2, layout="NCHW")),
        Call("grad", "conv2d_bias", conv, lambda a: g.conv2d_bias(a["go"])),
        Call("grad", "conv_transpose2d_input", tconv,
             lambda a: g.conv_transpose2d_input(a["x"].shape, a["weight"], a["go"], 2, 1)),
        Call("grad", "conv_transpose2d_weight", tconv,
             lambda a: g.conv_transpose2d_weight(a["x"], a["weight"].shape, a["go"], 2, 1)),
        Call("grad", "deform_conv2d", deform,
             lambda a: g.deform_conv2d(a["go"], a["x"], a["offset"], a["weight"], a["mask"], padding=1), reps=100),
        Call("grad", "max_pool2d", unit, lambda a: g.max_pool2d(a["go"], a["x"], 3, 2, 1)),
        Call("grad", "avg_pool2d", unit, lambda a: g.avg_pool2d(a["go"], a["x"], 2)),
        Call("grad", "batch_norm", lambda s: dict(_bn(s), go=_normal(np.random.default_rng(s), (2, 8, 8, 8))),
             lambda a: g.batch_norm(a["go"], a["x"], a["weight"])),
        Call("grad", "activations", unit, lambda a: [getattr(g, name)(a["go_same"], a["x"]) for name in
                                                     ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh")]),
        Call("grad", "linear", lambda s: dict(x=_normal(np.random.default_rng(s), (16, 32)),
                                              weight=_normal(np.random.default_rng(s + 1), (24, 32)),
                                              go=_normal(np.random.default_rng(s + 2), (16, 24))),
             lambda a: g.linear(a["go"], a["x"], a["weight"])),
        Call("grad", "softmax", lambda s: dict(_logits(s), go=_normal(np.random.default_rng(s), (16, 10))),
             lambda a: (g.softmax(a["go"], a["x"]), g.log_softmax(a["go"], a["x"]))),
        Call("grad", "cross_entropy", _logits, lambda a: g.cross_entropy(a["x"], a["labels"])),
    ]


def _sgd(seed):
    rng = np.random.default_rng(seed)
    return dict(param=convkit.nn.Parameter(_normal(rng, (300, 100))), grad=_normal(rng, (300, 100)))


def _sgd_steps(a):
    """Two steps (the second decays the momentum buffer the first filled)."""
    a["param"].grad = a["grad"]
    opt = convkit.optim.SGD([a["param"]], lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    opt.step()
    opt.step()
    return a["param"]


def _quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        fn()
    return out.getvalue()


def _autotuned(fn):
    convkit.set_autotune(True)
    try:
        return fn()
    finally:
        convkit.set_autotune(False)


CALLS = [
    _conv_call("direct", "direct"),
    _conv_call("im2col", "im2col"),
    _conv_call("auto_nchw", "auto", layout="NCHW"),
    _conv_call("same_relu", "direct", padding="same", activation="relu", k=4),
    _conv_call("pointwise", "auto", padding=0, k=1, cout=24),
    _conv_call("depthwise", "direct", groups=8, cout=16),
    _conv_call("grouped", "direct", groups=4),
    _conv_call("grouped_im2col", "im2col", groups=2),
    _conv_call("winograd", "winograd"),
    _conv_call("winograd_nchw_same_elu", "winograd", padding="same", activation="elu", layout="NCHW"),
    Call("conv_transpose2d", "direct", lambda s: _transpose(s, cout=16),
         lambda a: convkit.conv_transpose2d(a["x"], a["weight"], a["bias"], 2, 1, algo="direct")),
    Call("conv_transpose2d", "col2im_groups_nchw", lambda s: _transpose(s, cout=6, groups=2, layout="NCHW"),
         lambda a: convkit.conv_transpose2d(a["x"], a["weight"], a["bias"], 2, 1, 1, 2, layout="NCHW",
                                            algo="col2im")),
    Call("im2col", "nhwc", _image, lambda a: convkit.im2col(a["x"], 3, 2, 1, 2)),
    Call("im2col", "nchw", lambda s: _image(s, layout="NCHW"),
         lambda a: convkit.im2col(a["x"], (3, 2), 1, (1, 0), layout="NCHW")),
    Call("col2im", "nhwc", lambda s: dict(cols=_normal(np.random.default_rng(s), (2 * 16, 9 * 4))),
         lambda a: convkit.col2im(a["cols"], (8, 8), 3, 2, 1)),
    Call("col2im", "nchw", lambda s: dict(cols=_normal(np.random.default_rng(s), (2, 4 * 6, 56))),
         lambda a: convkit.col2im(a["cols"], (8, 8), (3, 2), 1, (1, 0), layout="NCHW")),
    _deform_call("direct_mask", "direct", True),
    _deform_call("im2col", "im2col", False),
    Call("bilinear_sample", "nhwc",
         lambda s: dict(_image(s), points=np.random.default_rng(s).uniform(-2, 10, (2, 50, 2)).astype(np.float32)),
         lambda a: convkit.bilinear_sample(a["x"], a["points"])),
    *_activation_calls(),
    Call("softmax", "rows", _logits, lambda a: convkit.softmax(a["x"])),
    Call("log_softmax", "axis0", _logits, lambda a: convkit.log_softmax(a["x"], 0)),
    Call("cross_entropy", "mean", _logits, lambda a: convkit.cross_entropy(a["x"], a["labels"])),
    *_grad_calls(),
    Call("batch_norm", "inference", _bn,
         lambda a: convkit.batch_norm(a["x"], a["running_mean"], a["running_var"], a["weight"], a["bias"])),
    Call("batch_norm", "training_nchw", lambda s: _bn(s, layout="NCHW"),
         lambda a: convkit.batch_norm(a["x"], a["running_mean"], a["running_var"], a["weight"], a["bias"],
                                      training=True, layout="NCHW"),
         mutates=("running_mean", "running_var")),
    Call("fold_batch_norm", "nhwc", lambda s: dict(_conv(s), **_bn_statistics(s)),
         lambda a: convkit.fold_batch_norm(a["weight"], a["bias"], a["running_mean"], a["running_var"],
                                           a["gamma"], a["beta"])),
    Call("max_pool2d", "ceil", _image, lambda a: convkit.max_pool2d(a["x"], 3, 2, 1, ceil_mode=True)),
    Call("avg_pool2d", "nchw", lambda s: _image(s, layout="NCHW"),
         lambda a: convkit.avg_pool2d(a["x"], 3, 2, 1, count_include_pad=False, layout="NCHW")),
    Call("global_avg_pool2d", "nhwc", _image, lambda a: convkit.global_avg_pool2d(a["x"])),
    Call("linear", "relu", lambda s: dict(x=_normal(np.random.default_rng(s), (16, 32)),
                                          weight=_normal(np.random.default_rng(s + 1), (24, 32)),
                                          bias=_normal(np.random.default_rng(s + 2), (24,))),
         lambda a: convkit.linear(a["x"], a["weight"], a["bias"], activation="relu")),
    Call("matmul", "transposed", lambda s: dict(a=_normal(np.random.default_rng(s), (40, 70)),
                                                b=_normal(np.random.default_rng(s + 1), (50, 70)).T),
         lambda a: convkit.matmul(a["a"], a["b"])),
    Call("matmul", "out", lambda s: dict(a=_normal(np.random.default_rng(s), (33, 20), np.float64),
                                         b=_normal(np.random.default_rng(s + 1), (20, 17), np.float64),
                                         out=np.zeros((33, 17))),
         lambda a: convkit.matmul(a["a"], a["b"], out=a["out"]), mutates=("out",)),
    *[Call(name, "ints", lambda s: {}, lambda a, fn=getattr(convkit, name), args=args: fn(*args))
      for name, args in (("conv_params", (64, 128, 3, 2, True)), ("conv_macs", (64, 128, 3, (56, 56), 2)),
                         ("depthwise_conv_params", (32, 3, 2, True)), ("depthwise_conv_macs", (32, 3, 56, 2)),
                         ("conv_transpose_params", (128, 64, 4)), ("conv_transpose_macs", (128, 64, 4, 32)),
                         ("deform_conv_params", (64, 64, 3, 1, True)),
                         ("deform_conv_macs", (64, 64, 3, 64, 1, True)),
                         ("deform_sampling_macs", (64, 3, 64, True)))],
    Call("nn", "sequential", lambda s: dict(net=_net("sequential"), x=_model_input(s)),
         lambda a: a["net"](a["x"]), reps=100),
    Call("nn", "blocks_nchw", lambda s: dict(net=_net("blocks", "NCHW"), x=_model_input(s, "NCHW")),
         lambda a: a["net"](a["x"]), reps=100),
    Call("nn", "deform_conv2d", lambda s: dict(_deform(s), net=_net("deform")),
         lambda a: a["net"](a["x"], a["offset"], a["mask"]), reps=100),
    Call("models", "resnet18_nchw", lambda s: dict(net=_net("resnet18", "NCHW"), x=_model_input(s, "NCHW")),
         lambda a: a["net"](a["x"]), reps=10),
    Call("models", "resnet18_winograd", lambda s: dict(net=_net("resnet18_winograd"), x=_model_input(s)),
         lambda a: a["net"](a["x"]), reps=10),
    Call("models", "mobilenet_v2", lambda s: dict(net=_net("mobilenet_v2"), x=_model_input(s)),
         lambda a: a["net"](a["x"]), reps=10),
    Call("optim", "sgd_nesterov", _sgd, _sgd_steps, mutates=("param",)),
    Call("summary", "sequential", lambda s: dict(net=_net("sequential")),
         lambda a: convkit.summary(a["net"], (1, 32, 32, 3), file=io.StringIO()), reps=100),
    Call("show_config", "stdout", lambda s: {}, lambda a: _quiet(convkit.show_config), threads=False, reps=100),
    Call("set_autotune", "tuned_conv2d", _conv, lambda a: _autotuned(
        lambda: convkit.conv2d(a["x"], a["weight"], a["bias"], padding=1)), threads=False, reps=100),
    Call("clear_buffer_cache", "release", lambda s: {}, lambda a: convkit.clear_buffer_cache(),
         threads=False),
    Call("autotune_cache", "read", lambda s: {}, lambda a: convkit.autotune_cache()),
    Call("get_num_threads", "default", lambda s: {}, lambda a: convkit.get_num_threads()),
    Call("set_num_threads", "set_and_restore", lambda s: {},
         lambda a: (convkit.set_num_threads(1), convkit.get_num_threads(), convkit.set_num_threads(None)),
         threads=False),
]

PUBLIC = sorted(convkit.__all__)


def assert_identical(actual, expected):
    """The same values bit for bit (NaN included), recursively through tuples, lists and dicts."""
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray)
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape)
        assert actual.tobytes() == expected.tobytes()
    elif isinstance(expected, (tuple, list)):
        assert type(actual) is type(expected) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_identical(a, e)
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            assert_identical(actual[key], expected[key])
    else:
        assert actual == expected
