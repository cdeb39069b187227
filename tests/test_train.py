"""Training: convkit.nn layers, blocks and networks take the same training step as PyTorch after loading
the same weights (forward in training mode, backward, batch-norm running statistics, SGD), and misuse
raises clear errors."""
import numpy as np
import pytest

from convkit import grad, nn
from convkit.models import mobilenet_v2, resnet18
from convkit.optim import SGD
from helpers import nchw

torch = pytest.importorskip("torch")
from convkit.models.torch_reference import (randomize_batch_norm, torch_mobilenet_v2,  # noqa: E402
                                            torch_resnet18)

LAYOUTS = ["NHWC", "NCHW"]
# Relative to the largest magnitude of PyTorch's result: float32 within 1e-4 (the bound);
# float64 within 1e-10 for one layer (looser through whole networks: see there).
TOL = {np.float32: 1e-4, np.float64: 1e-10}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def assert_rel(actual, expected, tol, what, floor=1e-30):
    """max |actual - expected| <= tol * max(|expected|), or tol * floor when that is larger (for a
    gradient that is 0 up to rounding, e.g. of a batch norm's bias whose output is normalised again)."""
    expected = np.asarray(expected, np.float64)
    assert actual is not None, what
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = np.abs(np.asarray(actual, np.float64) - expected).max(initial=0.0)
    scale = max(np.abs(expected).max(initial=0.0), floor)
    assert err <= tol * scale, f"{what}: max abs error {err:.3g}, scale {scale:.3g}"


def to_ours(t, layout):
    """A torch NCHW tensor as a NumPy array in ``layout`` (2-D and smaller pass unchanged)."""
    a = t.detach().numpy()
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if layout == "NHWC" and a.ndim == 4 else a


def to_torch(a, layout):
    a = nchw(a) if layout == "NHWC" and a.ndim == 4 else np.ascontiguousarray(a)
    return torch.from_numpy(a)


def param_grads(module):
    """{state-dict key: the parameter's .grad in PyTorch's layout}."""
    return {(f"{prefix}.{name}" if prefix else name): m._to_torch(name, p.grad)
            for prefix, m in module.named_modules() for name, p in m._parameters.items()}


def load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def training_step(ours, theirs, x_nhwc, layout, dtype, rng, tol=None):
    """Forward in training mode and backward of a random output gradient, in both libraries; check the
    outputs, the input gradients, every parameter's gradient and the state (running statistics)."""
    tol = TOL[dtype] if tol is None else tol
    x = x_nhwc.astype(dtype)
    y = ours(x if layout == "NHWC" else nchw(x))
    xt = to_torch(x, "NHWC").requires_grad_()
    yt = theirs(xt)
    assert_rel(y, to_ours(yt, layout), tol, "output")
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(to_torch(g, layout))
    gx = ours.backward(g)
    assert_rel(gx, to_ours(xt.grad, layout), tol, "input gradient")
    tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    largest = max((np.abs(g).max() for g in tgrads.values()), default=0.0)
    grads = param_grads(ours)
    assert grads.keys() == tgrads.keys()
    for key, value in grads.items():
        assert_rel(value, tgrads[key], tol, f"gradient of {key}", floor=largest)
    tstate = theirs.state_dict()
    for key, value in ours.state_dict().items():
        assert_rel(value, tstate[key].numpy(), tol, key)


class NHWCFlatten(torch.nn.Module):
    """torch.flatten in (H, W, C) order: what an NHWC convkit Flatten computes."""

    def forward(self, x):
        return torch.flatten(x.permute(0, 2, 3, 1), 1)


def flatten_for(layout):
    return NHWCFlatten() if layout == "NHWC" else torch.nn.Flatten()


def layer_cases(layout):
    """(convkit layer, PyTorch layer, NHWC input shape) for every convkit.nn layer."""
    kw = dict(layout=layout, dtype=np.float64)
    T = torch.nn
    return {
        "conv": (nn.Conv2d(5, 6, 3, 2, 1, **kw), T.Conv2d(5, 6, 3, 2, 1), (2, 9, 8, 5)),
        "conv_grouped_dilated": (nn.Conv2d(4, 6, (3, 2), 1, (2, 1), 2, 2, bias=False, **kw),
                                 T.Conv2d(4, 6, (3, 2), 1, (2, 1), 2, 2, bias=False), (2, 7, 9, 4)),
        "conv_depthwise_same": (nn.Conv2d(6, 6, 3, padding="same", groups=6, **kw),
                                T.Conv2d(6, 6, 3, padding="same", groups=6), (3, 6, 5, 6)),
        "conv_transpose": (nn.ConvTranspose2d(4, 3, 3, 2, 1, 1, **kw), T.ConvTranspose2d(4, 3, 3, 2, 1, 1),
                           (2, 4, 5, 4)),
        "batch_norm": (nn.BatchNorm2d(5, **kw), T.BatchNorm2d(5), (3, 4, 5, 5)),
        "max_pool": (nn.MaxPool2d(3, 2, 1, ceil_mode=True, layout=layout), T.MaxPool2d(3, 2, 1, ceil_mode=True),
                     (2, 7, 8, 3)),
        "avg_pool": (nn.AvgPool2d(3, 2, 1, count_include_pad=False, layout=layout),
                     T.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 7, 8, 3)),
        "global_avg_pool": (nn.GlobalAvgPool2d(layout=layout),
                            T.Sequential(T.AdaptiveAvgPool2d(1), T.Flatten()), (2, 5, 3, 4)),
        "relu": (nn.ReLU(), T.ReLU(), (2, 3, 4, 5)),
        "relu6": (nn.ReLU6(), T.ReLU6(), (2, 3, 4, 5)),
        "leaky_relu": (nn.LeakyReLU(0.2), T.LeakyReLU(0.2), (2, 3, 4, 5)),
        "elu": (nn.ELU(0.7), T.ELU(0.7), (2, 3, 4, 5)),
        "sigmoid": (nn.Sigmoid(), T.Sigmoid(), (2, 3, 4, 5)),
        "tanh": (nn.Tanh(), T.Tanh(), (2, 3, 4, 5)),
        "flatten_linear": (nn.Sequential(nn.Flatten(layout=layout), nn.Linear(24, 7, dtype=np.float64)),
                           T.Sequential(flatten_for(layout), T.Linear(24, 7)), (2, 2, 3, 4)),
    }


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(layer_cases("NHWC")))
def test_layer_training_step_matches_pytorch(name, layout, rng):
    ours, theirs, shape = layer_cases(layout)[name]
    theirs = randomize_batch_norm(theirs.double(), seed=3)
    load_from_torch(ours, theirs)
    ours.train()
    theirs.train()
    training_step(ours, theirs, rng.standard_normal(shape) * 3, layout, np.float64, rng)


def small_network(layout, dtype):
    """conv-BN-ReLU-maxpool, conv-BN-LeakyReLU-avgpool, flatten, linear; and PyTorch's twin.  (No
    convolution bias before batch norm: its gradient is 0 up to rounding, nothing to compare.)"""
    kw = dict(layout=layout, dtype=dtype)
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, **kw), nn.BatchNorm2d(8, **kw), nn.ReLU(),
                         nn.MaxPool2d(2, layout=layout),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False, **kw), nn.BatchNorm2d(16, **kw),
                         nn.LeakyReLU(0.1), nn.AvgPool2d(2, layout=layout),
                         nn.Flatten(layout=layout), nn.Linear(64, 10, dtype=dtype))
    T = torch.nn
    theirs = T.Sequential(T.Conv2d(3, 8, 3, padding=1, bias=False), T.BatchNorm2d(8), T.ReLU(), T.MaxPool2d(2),
                          T.Conv2d(8, 16, 3, padding=1, bias=False), T.BatchNorm2d(16), T.LeakyReLU(0.1),
                          T.AvgPool2d(2), flatten_for(layout), T.Linear(64, 10))
    theirs = randomize_batch_norm(theirs.to(TORCH_DTYPE[dtype]), seed=1)
    load_from_torch(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_network_trains_as_pytorch(layout, dtype, rng):
    """Three SGD steps on a cross-entropy loss; after each, every gradient, parameter and running
    statistic equals PyTorch's; then evaluation mode (batch norm folded) gives PyTorch's eval output."""
    tol = 1e-9 if dtype == np.float64 else TOL[dtype]
    ours, theirs = small_network(layout, dtype)
    ours.train()
    theirs.train()
    opt = SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    labels = rng.integers(0, 10, 6)
    for step in range(3):
        x = rng.standard_normal((6, 8, 8, 3)).astype(dtype)
        opt.zero_grad()
        topt.zero_grad()
        logits = ours(x if layout == "NHWC" else nchw(x))
        tlogits = theirs(to_torch(x, "NHWC"))
        assert_rel(logits, tlogits.detach().numpy(), tol, f"step {step} logits")
        torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(labels)).backward()
        assert ours.backward(grad.cross_entropy(logits, labels), input_grad=False) is None
        tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
        for key, value in param_grads(ours).items():
            assert_rel(value, tgrads[key], tol, f"step {step} gradient of {key}")
        opt.step()
        topt.step()
        tstate = theirs.state_dict()
        for key, value in ours.state_dict().items():
            assert_rel(value, tstate[key].numpy(), tol, f"step {step} {key}")
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 8, 8, 3)).astype(dtype)
    with torch.no_grad():
        expected = theirs(to_torch(x, "NHWC")).numpy()
    assert_rel(ours(x if layout == "NHWC" else nchw(x)), expected, tol, "evaluation after training")


NETWORKS = {"resnet18": (resnet18, torch_resnet18), "mobilenet_v2": (mobilenet_v2, torch_mobilenet_v2)}


@pytest.mark.parametrize("name, layout", [("resnet18", "NHWC"), ("mobilenet_v2", "NCHW")])
def test_networks_training_step_matches_pytorch(name, layout, rng):
    """resnet18 (BasicBlock, downsample, the shared ReLU) and mobilenet_v2 (InvertedResidual, ConvBNAct,
    depthwise) at 32x32, float64: output, input gradient, every parameter gradient, running statistics."""
    build, build_torch = NETWORKS[name]
    theirs = randomize_batch_norm(build_torch(num_classes=10).double(), seed=2)
    ours = build(layout, num_classes=10, dtype=np.float64)
    if name == "mobilenet_v2":      # dropout's random mask differs between the libraries
        ours.classifier[0].p = theirs.classifier[0].p = 0.0
    load_from_torch(ours, theirs)
    ours.train()
    theirs.train()
    # 1e-7: batch norm over the last stages' 1x1 maps (3 values per channel) amplifies rounding; runs
    # differed from PyTorch by 1e-10 to 3e-9 relative (PyTorch's own reductions vary between runs).
    training_step(ours, theirs, rng.standard_normal((3, 32, 32, 3)), layout, np.float64, rng, tol=1e-7)


def test_blocks_train(rng):
    """ConvBNAct, DepthwiseSeparable and the blocks on their own: the input gradient matches central
    finite differences of a random projection of the output (batch statistics included)."""
    x = rng.standard_normal((2, 5, 6, 4))
    for block in (nn.ConvBNAct(4, 6, 3, 2, dtype=np.float64), nn.DepthwiseSeparable(4, 5, dtype=np.float64),
                  nn.InvertedResidual(4, 4, 1, 3, dtype=np.float64), nn.BasicBlock(4, 6, 2, dtype=np.float64)):
        block.train()
        g = rng.standard_normal(block(x).shape)
        gx = block.backward(g)
        for idx in [(0, 0, 0, 0), (1, 2, 3, 1), (0, 4, 5, 3)]:
            e = np.zeros_like(x)
            e[idx] = 1e-6
            numeric = (np.sum(block(x + e) * g) - np.sum(block(x - e) * g)) / 2e-6
            assert abs(gx[idx] - numeric) <= 1e-6 * max(1, abs(numeric)), (type(block).__name__, idx)


def test_dropout_training_mode(rng):
    layer = nn.Dropout(0.25, rng=7)
    x = rng.standard_normal((40, 50)) + 5
    assert layer(x) is x            # evaluation mode: the identity
    layer.train()
    y = layer(x)
    kept = y != 0
    assert 0.2 < 1 - kept.mean() < 0.3
    np.testing.assert_allclose(y[kept], x[kept] / 0.75)
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(g), np.where(kept, g / 0.75, 0))
    again = nn.Dropout(0.25, rng=7).train()
    np.testing.assert_array_equal(again(x), y)  # seeded: repeatable


def test_backward_before_training_forward_raises(rng):
    model, _ = small_network("NHWC", np.float32)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    g = np.ones((2, 10), np.float32)
    with pytest.raises(RuntimeError, match="backward.. called before a training-mode forward"):
        model.backward(g)
    model(x)                        # evaluation mode: nothing kept
    with pytest.raises(RuntimeError, match="before a training-mode forward"):
        model.backward(g)
    model.train()
    with pytest.raises(RuntimeError, match="before a training-mode forward"):
        model.backward(g)
    model(x)
    model.backward(g)
    with pytest.raises(RuntimeError, match="twice for one forward"):
        model.backward(g)           # one backward per forward
    model(x)
    with pytest.raises(ValueError, match=r"expected grad_output to have the forward output's shape "
                                         r"\(2, 10\), got \(2, 9\)"):
        model.backward(g[:, :9])
    model.eval()                    # leaving training mode drops what forward kept
    with pytest.raises(RuntimeError, match="before a training-mode forward"):
        model.backward(g)


def test_gradients_accumulate_until_zero_grad(rng):
    layer = nn.Conv2d(3, 4, 3, dtype=np.float64).train()
    x = rng.standard_normal((2, 6, 6, 3))
    g = rng.standard_normal((2, 4, 4, 4))
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_latest_forward_is_differentiated(rng):
    """Each call in training mode starts a new record, so backward goes with the latest forward."""
    layer = nn.Linear(3, 2, dtype=np.float64).train()
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    layer(a)
    layer(b)
    g = np.ones((4, 2))
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, g.T @ b)


def test_training_mode_is_unfused_and_eval_folds_again(rng):
    """In training mode batch norm uses batch statistics (no folding) and updates its running ones;
    eval() folds the updated statistics."""
    model = nn.ConvBNAct(3, 4, 3, dtype=np.float64)
    x = rng.standard_normal((4, 6, 6, 3)) * 2 + 1
    model.train()
    y = model(x)
    pre = model[0]._forward(x)
    np.testing.assert_allclose(y, np.maximum((pre - pre.mean((0, 1, 2))) / np.sqrt(pre.var((0, 1, 2)) + 1e-5),
                                             0), atol=1e-12)
    bn = model[1]
    np.testing.assert_allclose(bn.running_mean, 0.1 * pre.mean((0, 1, 2)))
    assert bn.num_batches_tracked == 1
    model.eval()
    expected = np.maximum((pre - bn.running_mean) / np.sqrt(bn.running_var + 1e-5), 0)
    np.testing.assert_allclose(model(x), expected, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deform_conv2d_layer_training_step_matches_torchvision(layout, rng):
    """backward returns (grad_x, grad_offset, grad_mask) and accumulates the weight and bias gradients."""
    ops = pytest.importorskip("torchvision.ops")
    theirs = ops.DeformConv2d(4, 6, 3, padding=1).double()
    ours = nn.DeformConv2d(4, 6, 3, padding=1, layout=layout, dtype=np.float64)
    load_from_torch(ours, theirs)
    ours.train()
    x = rng.standard_normal((2, 5, 6, 4))
    offset = rng.uniform(-2, 2, (2, 5, 6, 18))
    mask = rng.uniform(0, 1, (2, 5, 6, 9))
    args = [a if layout == "NHWC" else nchw(a) for a in (x, offset, mask)]
    targs = [to_torch(a, "NHWC").requires_grad_() for a in (x, offset, mask)]
    y = ours(*args)
    yt = theirs(targs[0], targs[1], mask=targs[2])
    assert_rel(y, to_ours(yt, layout), TOL[np.float64], "output")
    g = rng.standard_normal(y.shape)
    yt.backward(to_torch(g, layout))
    grads = ours.backward(g)
    for name, ours_g, t in zip(("x", "offset", "mask"), grads, targs):
        assert_rel(ours_g, to_ours(t.grad, layout), TOL[np.float64], f"gradient of {name}")
    for key, value in param_grads(ours).items():
        assert_rel(value, dict(theirs.named_parameters())[key].grad.numpy(), TOL[np.float64], key)
