"""convkit.optim.SGD against a float64 NumPy transcription of PyTorch's rule and against torch.optim.SGD."""
import numpy as np
import pytest

from convkit import nn
from convkit.optim import SGD

SETTINGS = [
    dict(),
    dict(weight_decay=1e-2),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3, weight_decay=5e-4),
    dict(momentum=0.8, nesterov=True),
    dict(momentum=0.9, nesterov=True, weight_decay=1e-3),
]


def sgd_reference(p, grads, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """PyTorch's documented SGD algorithm, in float64, over a sequence of gradients."""
    p = p.astype(np.float64)
    buf = None
    for g in grads:
        d = g.astype(np.float64) + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def gradients(rng, shape, steps, dtype):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_sgd_matches_reference(settings, dtype, rtol, rng):
    layer = nn.Linear(70000, 3, dtype=dtype, rng=rng)   # 210,000 weights: several parallel chunks
    start = layer.weight.copy()
    grads = gradients(rng, layer.weight.shape, 4, dtype)
    opt = SGD([layer.weight], lr=0.05, **settings)
    for g in grads:
        layer.weight.grad = g
        opt.step()
    expected = sgd_reference(start, grads, 0.05, **settings)
    assert layer.weight.dtype == dtype
    np.testing.assert_allclose(layer.weight, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_sgd_matches_torch(settings, rng):
    torch = pytest.importorskip("torch")
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    params = list(model.parameters())
    tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    opt = SGD(model.parameters(), lr=0.1, **settings)
    topt = torch.optim.SGD(tparams, lr=0.1, **settings)
    for step in range(3):
        for p, tp in zip(params, tparams):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, tp.grad = g, torch.from_numpy(g.copy())
        if step == 1:       # a parameter without a gradient is skipped by both
            params[0].grad, tparams[0].grad = None, None
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_sgd_updates_live_parameters_and_invalidates_folding(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, rng=rng), nn.BatchNorm2d(3), nn.ReLU())
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
    before = model(x)                       # builds the folded weights
    conv = model[0]
    conv.weight.grad = np.ones_like(conv.weight)
    SGD(model.parameters(), lr=0.5).step()
    after = model(x)
    assert not np.allclose(before, after)
    expected = nn.Sequential(nn.Conv2d(2, 3, 3, rng=rng), nn.BatchNorm2d(3), nn.ReLU())
    expected.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(after, expected(x))


def test_zero_grad(rng):
    layer = nn.Linear(3, 2, rng=rng)
    opt = SGD(layer.parameters(), lr=0.1)
    layer.weight.grad = np.ones((2, 3), np.float32)
    opt.zero_grad(set_to_none=False)
    assert np.array_equal(layer.weight.grad, np.zeros((2, 3))) and np.array_equal(layer.bias.grad, np.zeros(2))
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=-1), ValueError, "expected lr to be a real number >= 0, got -1"),
    (dict(lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (dict(lr=0.1, weight_decay="x"), ValueError, "weight_decay"),
    (dict(lr=0.1, nesterov=True), ValueError, "momentum > 0 and dampening = 0"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening = 0"),
])
def test_sgd_rejects_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        SGD(nn.Linear(2, 2).parameters(), **kwargs)


def test_sgd_rejects_bad_params():
    with pytest.raises(ValueError, match="at least one parameter"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"expected params\[0\] to be a convkit.nn.Parameter"):
        SGD([np.zeros(3, np.float32)], lr=0.1)
    w = nn.Linear(2, 2).weight
    with pytest.raises(ValueError, match="once"):
        SGD([w, w], lr=0.1)
    w.grad = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"expected params\[0\].grad to have shape \(2, 2\)"):
        SGD([w], lr=0.1).step()


def test_loading_keeps_parameters_and_assignment_replaces_them(rng):
    """load_state_dict copies into the existing arrays (as PyTorch's copies into its tensors), so an
    optimizer built before keeps updating the live parameters and nothing aliases the loaded arrays;
    assignment replaces a parameter with a new one (as assigning a new torch.nn.Parameter)."""
    layer = nn.Linear(3, 2, rng=rng)
    weight = layer.weight
    opt = SGD(layer.parameters(), lr=1.0)
    state = {"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32)}
    layer.load_state_dict(state)
    assert layer.weight is weight and isinstance(weight, nn.Parameter)
    weight.grad = np.ones((2, 3), np.float32)
    opt.step()
    np.testing.assert_array_equal(layer.weight, np.zeros((2, 3)))
    np.testing.assert_array_equal(state["weight"], np.ones((2, 3)))   # the loaded array is untouched
    layer.bias = np.full(2, 3, np.float32)
    assert isinstance(layer.bias, nn.Parameter) and layer.bias.grad is None
    np.testing.assert_array_equal(layer.bias, [3, 3])
    assert type(layer.weight * 2) is np.ndarray     # arithmetic gives plain arrays
