"""convkit.grad against PyTorch autograd (float64 reference), and against central finite differences."""
import numpy as np
import pytest

import convkit
from convkit import grad
from helpers import nchw, oihw

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]
# Relative to the largest magnitude of the reference (at least 1): the bounds.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_grad(actual, expected, dtype):
    actual = np.asarray(actual)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.dtype(dtype), actual.dtype
    scale = max(np.abs(expected).max(initial=0.0), 1.0)
    err = np.abs(actual.astype(np.float64) - expected).max(initial=0.0)
    assert err <= RTOL[np.dtype(dtype)] * scale, f"max abs error {err:.3g} (scale {scale:.3g})"


def t64(a, requires_grad=True):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=requires_grad)


def torch_backward(y, g):
    y.backward(torch.tensor(np.asarray(g, np.float64)))


def in_layout(a, layout):
    return a if layout == "NHWC" else nchw(a)


def weight_in_layout(w, layout):
    return w if layout == "NHWC" else oihw(w)


def normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# (N, H, W, C, Cout, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 7, 6, 3, 5, 3, 1, 1, 1, 1),
    (1, 9, 8, 4, 6, (3, 2), (2, 1), (1, 0), 1, 1),
    (2, 8, 8, 16, 16, 3, 2, 1, 1, 1),           # stride 2, channels filling the register blocks
    (1, 10, 9, 6, 4, 3, 1, 2, 2, 2),            # dilation, groups
    (2, 6, 7, 8, 8, 3, 1, 1, 1, 8),             # depthwise
    (1, 6, 6, 4, 8, 3, 2, 1, 1, 4),             # depthwise with channel multiplier 2, stride 2
    (1, 7, 7, 5, 3, 2, 1, "same", 1, 1),        # "same" with an even kernel: asymmetric padding
    (1, 9, 7, 4, 4, 3, 2, "same", 1, 1),
    (2, 5, 5, 3, 4, 1, 1, 0, 1, 1),             # 1x1
    (1, 5, 6, 2, 3, 5, 1, 4, 1, 1),             # padding beyond the kernel's reach
    (0, 5, 5, 3, 4, 3, 1, 1, 1, 1),             # batch 0
    (1, 12, 11, 32, 16, 3, 1, 1, 1, 2),         # grouped, 16 channels per group
]


def torch_conv_pads(padding, h, w, k, s, d):
    from reference import pads_of
    return pads_of(padding, (h, w), k, s, d)


def conv_case(case, dtype, rng):
    n, h, w, c, cout, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = normal(rng, (n, h, w, c), dtype)
    weight = normal(rng, (kh, kw, c // g, cout), dtype)
    return x, weight


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


def test_conv2d_weight_gradient_bits_depend_only_on_thread_count(rng):
    x = normal(rng, (4, 20, 20, 24), np.float32)
    go = normal(rng, (4, 20, 20, 32), np.float32)
    for nt in (1, 2, 3):
        first = grad.conv2d_weight(x, (3, 3, 24, 32), go, padding=1, num_threads=nt)
        for _ in range(3):
            again = grad.conv2d_weight(x, (3, 3, 24, 32), go, padding=1, num_threads=nt)
            assert np.array_equal(first, again)


def test_conv2d_weight_workspace_is_bounded_and_reported():
    small = grad.weight_workspace_bytes((1, 56, 56, 64), (3, 3, 64, 64), num_threads=2)
    big = grad.weight_workspace_bytes((64, 224, 224, 64), (3, 3, 64, 64), num_threads=2)
    assert small == big                  # independent of batch and image size
    assert big < 2 * (96 << 10) * 2 + 2 * 4 * 9 * 64 * 66 * 2


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


def test_cross_entropy_labels_out_of_range_raise():
    logits = np.zeros((3, 4), np.float32)
    for bad in ([0, 4, 1], [-1, 0, 0]):
        with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
            convkit.cross_entropy(logits, np.array(bad))
        with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
            grad.cross_entropy(logits, np.array(bad))


def test_grad_output_of_the_wrong_shape_names_both_shapes(rng):
    x = normal(rng, (1, 6, 6, 3), np.float32)
    w = normal(rng, (3, 3, 3, 4), np.float32)
    bad = np.zeros((1, 6, 6, 4), np.float32)                # the output is 4x4
    calls = [
        lambda: grad.conv2d_input(x.shape, w, bad),
        lambda: grad.conv2d_weight(x, w.shape, bad),
        lambda: grad.max_pool2d(bad, x, 2),
        lambda: grad.avg_pool2d(bad, x, 2),
        lambda: grad.relu(bad, x),
        lambda: grad.batch_norm(bad, x),
        lambda: grad.softmax(bad, x),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"grad_output.*\(1, \d, \d, \d\).*got \(1, 6, 6, 4\)"):
            call()


def directional_check(f, grads, inputs, rng, h=1e-6):
    """Central finite difference of the scalar f along a random direction vs the analytic gradients."""
    dirs = [rng.standard_normal(a.shape) for a in inputs]
    plus = f(*[a + h * v for a, v in zip(inputs, dirs)])
    minus = f(*[a - h * v for a, v in zip(inputs, dirs)])
    numeric = (plus - minus) / (2 * h)
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, dirs))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


@pytest.mark.parametrize("case", CONV_CASES[:8], ids=str)
def test_conv2d_gradients_match_finite_differences(case, rng):
    n, h, w, c, cout, k, s, p, d, g = case
    x, weight = conv_case(case, np.float64, rng)
    y = convkit.conv2d(x, weight, None, s, p, d, g)
    go = rng.standard_normal(y.shape)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g)
    grads = [grad.conv2d_input(x.shape, weight, go, **kwargs), grad.conv2d_weight(x, weight.shape, go, **kwargs)]
    directional_check(lambda a, b: float((convkit.conv2d(a, b, None, s, p, d, g) * go).sum()),
                      grads, [x, weight], rng)


def test_unit_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 7, 6, 3))
    go_pool = rng.standard_normal((2, 4, 3, 3))
    directional_check(lambda a: float((convkit.max_pool2d(a, 3, 2, 1) * go_pool).sum()),
                      [grad.max_pool2d(go_pool, x, 3, 2, 1)], [x], rng)
    go_pool = rng.standard_normal((2, 4, 4, 3))
    directional_check(lambda a: float((convkit.avg_pool2d(a, 3, 2, 1, True, False) * go_pool).sum()),
                      [grad.avg_pool2d(go_pool, x, 3, 2, 1, True, False)], [x], rng)
    go = rng.standard_normal(x.shape)
    wb = rng.standard_normal(3)
    gx, gw, _ = grad.batch_norm(go, x, wb)
    directional_check(lambda a, b: float((convkit.batch_norm(a, None, None, b, training=True) * go).sum()),
                      [gx, gw], [x, wb], rng)
    for name in ("relu6", "elu", "sigmoid", "tanh", "leaky_relu"):
        directional_check(lambda a: float((getattr(convkit, name)(a) * go).sum()),
                          [getattr(grad, name)(go, x)], [x], rng)
    logits, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    directional_check(lambda a: float(convkit.cross_entropy(a, labels)),
                      [grad.cross_entropy(logits, labels)], [logits], rng)
    y = convkit.log_softmax(logits)
    gl = rng.standard_normal(logits.shape)
    directional_check(lambda a: float((convkit.log_softmax(a) * gl).sum()),
                      [grad.log_softmax(gl, y)], [logits], rng)
