"""convkit.grad against PyTorch autograd (float64 reference): every gradient, both layouts, 1-3 threads."""
import numpy as np
import pytest

import convkit
from convkit import grad
from helpers import nchw
from helpers_grad import (CONV_CASES, DTYPES, LAYOUTS, assert_grad, conv_case, in_layout, normal,
                          weight_in_layout)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def t64(a, requires_grad=True):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=requires_grad)


def torch_backward(y, g):
    y.backward(torch.tensor(np.asarray(g, np.float64)))


def torch_conv_pads(padding, h, w, k, s, d):
    from reference import pads_of
    return pads_of(padding, (h, w), k, s, d)


def torch_conv(x, weight, case):
    """PyTorch's conv2d (float64, NCHW) of NHWC x and HWIO weight, padding as convkit's."""
    n, h, w, c, cout, k, s, p, d, g = case
    kh, kw = weight.shape[:2]
    pads = torch_conv_pads(p, h, w, (kh, kw), s, d)
    xt = F.pad(x.permute(0, 3, 1, 2), (pads[2], pads[3], pads[0], pads[1]))
    return F.conv2d(xt, weight.permute(3, 2, 0, 1), stride=s, dilation=d, groups=g).permute(0, 2, 3, 1)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_gradients_match_torch(case, dtype, layout, rng):
    n, h, w, c, cout, k, s, p, d, g = case
    x, weight = conv_case(case, dtype, rng)
    xt, wt = t64(x), t64(weight)
    y = torch_conv(xt, wt, case)
    go = normal(rng, tuple(y.shape), dtype)
    torch_backward(y, go)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, layout=layout)
    xl, wl, gol = in_layout(x, layout), weight_in_layout(weight, layout), in_layout(go, layout)
    for nt in (1, 2, 3):
        gx = grad.conv2d_input(xl.shape, wl, gol, num_threads=nt, **kwargs)
        assert_grad(gx, in_layout(xt.grad.numpy(), layout), dtype)
        gw = grad.conv2d_weight(xl, wl.shape, gol, num_threads=nt, **kwargs)
        assert_grad(gw, weight_in_layout(wt.grad.numpy(), layout), dtype)
    gb = grad.conv2d_bias(gol, layout=layout)
    assert_grad(gb, go.astype(np.float64).sum(axis=(0, 1, 2)), dtype)


# (N, H, W, Cin, Cout, kernel, stride, padding, output_padding, groups, dilation)
TRANSPOSE_CASES = [
    (2, 4, 5, 3, 4, 3, 2, 1, 1, 1, 1),
    (1, 5, 4, 4, 6, (4, 3), (2, 1), (1, 0), (0, 0), 2, 1),
    (1, 3, 3, 16, 16, 4, 2, 1, 0, 1, 1),
    (1, 4, 4, 2, 2, 3, 1, 0, (0, 1), 1, 2),      # output_padding < dilation
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv_transpose2d_gradients_match_torch(case, dtype, layout, rng):
    n, h, w, cin, cout, k, s, p, op, g, d = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = normal(rng, (n, h, w, cin), dtype)
    weight = normal(rng, (kh, kw, cout // g, cin), dtype)        # NHWC convention
    xt, wt = t64(x), t64(weight)
    y = F.conv_transpose2d(xt.permute(0, 3, 1, 2), wt.permute(3, 2, 0, 1), stride=s, padding=p,
                           output_padding=op, groups=g, dilation=d).permute(0, 2, 3, 1)
    go = normal(rng, tuple(y.shape), dtype)
    torch_backward(y, go)
    kwargs = dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d, layout=layout)
    xl, wl, gol = in_layout(x, layout), weight_in_layout(weight, layout), in_layout(go, layout)
    for nt in (1, 3):
        assert_grad(grad.conv_transpose2d_input(xl.shape, wl, gol, num_threads=nt, **kwargs),
                    in_layout(xt.grad.numpy(), layout), dtype)
        assert_grad(grad.conv_transpose2d_weight(xl, wl.shape, gol, num_threads=nt, **kwargs),
                    weight_in_layout(wt.grad.numpy(), layout), dtype)


POOL_CASES = [
    # (N, H, W, C, kernel, stride, padding, dilation, ceil_mode)
    (2, 7, 6, 3, 3, 2, 1, 1, False),
    (2, 7, 6, 3, 3, 2, 1, 1, True),
    (1, 6, 6, 4, 3, 2, 0, 1, True),
    (1, 8, 5, 70, (3, 2), (2, 1), (1, 0), (2, 1), True),
    (1, 9, 9, 6, 4, 3, 2, 2, True),
    (2, 10, 10, 5, 2, 2, 0, 1, False),
    (1, 5, 5, 2, 3, 1, 1, 1, False),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_pooling_gradients_match_torch(case, dtype, layout, rng):
    n, h, w, c, k, s, p, d, ceil = case
    x = normal(rng, (n, h, w, c), dtype)
    x[:, ::2, ::3] = np.round(x[:, ::2, ::3])            # ties
    x[0, 0, 0] = x[0, 0, 1] = x[0, 1, 0] = 7.0            # a tie at the maximum
    xl = in_layout(x, layout)
    xt = t64(x)
    y = F.max_pool2d(xt.permute(0, 3, 1, 2), k, s, p, d, ceil).permute(0, 2, 3, 1)
    go = normal(rng, tuple(y.shape), dtype)
    torch_backward(y, go)
    for nt in (1, 2, 3):
        gx = grad.max_pool2d(in_layout(go, layout), xl, k, s, p, d, ceil, layout=layout, num_threads=nt)
        assert_grad(gx, in_layout(xt.grad.numpy(), layout), dtype)
    for include in (True, False):                       # (avg_pool2d has no dilation)
        xt = t64(x)
        y = F.avg_pool2d(xt.permute(0, 3, 1, 2), k, s, p, ceil, include).permute(0, 2, 3, 1)
        go = normal(rng, tuple(y.shape), dtype)
        torch_backward(y, go)
        gx = grad.avg_pool2d(in_layout(go, layout), xl, k, s, p, ceil, include, layout=layout)
        assert_grad(gx, in_layout(xt.grad.numpy(), layout), dtype)


def test_max_pool_ties_and_nan_go_where_torch_sends_them():
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 2, 1] = np.nan
    x[0, 3, 3, 1] = np.nan
    x[0, :, :, 0] = -np.inf
    xt = torch.tensor(nchw(x), requires_grad=True)
    y = F.max_pool2d(xt, 3, 1, 1)
    go = np.arange(y.numel(), dtype=np.float32).reshape(y.shape)
    y.backward(torch.tensor(go))
    gx = grad.max_pool2d(go, nchw(x), 3, 1, 1, layout="NCHW")
    assert np.array_equal(gx, xt.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_gradient_matches_torch(dtype, layout, affine, rng):
    x = (3 + 2 * normal(rng, (4, 5, 3, 6), dtype)).astype(dtype)
    weight = normal(rng, (6,), dtype) if affine else None
    bias = normal(rng, (6,), dtype) if affine else None
    xt = t64(x)
    wt = t64(weight) if affine else None
    bt = t64(bias) if affine else None
    y = F.batch_norm(xt.permute(0, 3, 1, 2), None, None, wt, bt, training=True, eps=1e-3).permute(0, 2, 3, 1)
    go = normal(rng, x.shape, dtype)
    torch_backward(y, go)
    for nt in (1, 3):
        gx, gw, gb = grad.batch_norm(in_layout(go, layout), in_layout(x, layout), weight, 1e-3,
                                     layout=layout, num_threads=nt)
        assert_grad(gx, in_layout(xt.grad.numpy(), layout), dtype)
        if affine:
            assert_grad(gw, wt.grad.numpy(), dtype)
            assert_grad(gb, bt.grad.numpy(), dtype)


ACTIVATIONS = [
    ("relu", (), F.relu), ("relu6", (), F.relu6), ("sigmoid", (), torch.sigmoid), ("tanh", (), torch.tanh),
    ("leaky_relu", (0.2,), lambda t: F.leaky_relu(t, 0.2)), ("elu", (1.5,), lambda t: F.elu(t, 1.5)),
]


@pytest.mark.parametrize("name, params, torch_fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_gradients_match_torch(name, params, torch_fn, dtype, rng):
    x = (4 * normal(rng, (3, 5, 7, 11), dtype)).astype(dtype)
    x.flat[:6] = [0, 6, -0.0, 30, -30, np.nan]             # kinks, saturation, NaN
    go = normal(rng, x.shape, dtype)
    xt = t64(x)
    torch_backward(torch_fn(xt), go)
    for nt in (1, 2):
        gx = getattr(grad, name)(go, x, *params, num_threads=nt)
        # PyTorch's own gradient at x = NaN differs between its scalar and vector loops: not compared.
        ok = ~np.isnan(x)
        assert_grad(gx[ok], xt.grad.numpy()[ok], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_gradient_matches_torch(dtype, rng):
    x = normal(rng, (3, 4, 7), dtype)
    weight = normal(rng, (5, 7), dtype)
    bias = normal(rng, (5,), dtype)
    xt, wt, bt = t64(x), t64(weight), t64(bias)
    y = F.linear(xt, wt, bt)
    go = normal(rng, tuple(y.shape), dtype)
    torch_backward(y, go)
    gx, gw, gb = grad.linear(go, x, weight)
    assert_grad(gx, xt.grad.numpy(), dtype)
    assert_grad(gw, wt.grad.numpy(), dtype)
    assert_grad(gb, bt.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_forward_and_gradients_match_torch(dtype, axis, rng):
    x = (5 * normal(rng, (4, 6, 3), dtype)).astype(dtype)
    x[0, 0, 0] = 80                                       # exp would overflow float32 unshifted
    go = normal(rng, x.shape, dtype)
    for name, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        xt = t64(x)
        yt = fn(xt, dim=axis)
        torch_backward(yt, go)
        y = getattr(convkit, name)(x, axis)
        assert_grad(y, yt.detach().numpy(), dtype)
        assert_grad(getattr(grad, name)(go, y, axis), xt.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_forward_and_gradient_match_torch(dtype, reduction, rng):
    logits = (3 * normal(rng, (7, 5), dtype)).astype(dtype)
    labels = rng.integers(0, 5, 7)
    xt = t64(logits)
    loss = F.cross_entropy(xt, torch.tensor(labels), reduction=reduction)
    go = normal(rng, (7,), dtype) if reduction == "none" else np.asarray(1.5, dtype)
    torch_backward(loss, go)
    assert_grad(convkit.cross_entropy(logits, labels, reduction), loss.detach().numpy(), dtype)
    assert_grad(grad.cross_entropy(logits, labels, reduction, grad_output=go), xt.grad.numpy(), dtype)
