"""convkit.grad.deform_conv2d against torchvision's autograd (float64) and finite differences."""
import numpy as np
import pytest

import convkit
from convkit import grad
from helpers import nchw, oihw
from test_grad import assert_grad, directional_check

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]

# (N, H, W, C, Cout, kernel, stride, padding, dilation, weight groups, offset groups, offset scale)
CASES = [
    (2, 6, 5, 4, 6, 3, 1, 1, 1, 1, 1, 2.0),
    (1, 7, 6, 4, 4, (3, 2), (2, 1), (1, 0), 1, 2, 2, 1.5),
    (1, 6, 6, 6, 3, 3, 1, 2, 2, 1, 3, 3.0),
    (2, 8, 8, 16, 16, 3, 1, 1, 1, 1, 1, 2.0),    # channels filling the register tiles
    (1, 5, 5, 3, 2, 3, 1, 1, 1, 1, 1, 8.0),      # most samples outside the image
    (1, 4, 4, 2, 20, 1, 1, 0, 1, 2, 1, 1.0),     # 1x1, wide output
]


def make(case, dtype, masked, rng, on_grid=True):
    n, h, w, c, cout, k, s, p, d, g, og, scale = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    weight = rng.standard_normal((kh, kw, c // g, cout)).astype(dtype)
    y0 = convkit.conv2d(x, weight, None, s, p, d, g)
    hout, wout = y0.shape[1:3]
    offset = (scale * rng.standard_normal((n, hout, wout, 2 * og * kh * kw))).astype(dtype)
    if on_grid:                                             # samples on integer coordinates (kinks)
        offset.flat[::7] = np.round(offset.flat[::7])
    mask = rng.uniform(0, 1, (n, hout, wout, og * kh * kw)).astype(dtype) if masked else None
    return x, offset, weight, mask


def torchvision_grads(x, offset, weight, mask, go, s, p, d):
    t = [None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=True)
         for a in (nchw(x), nchw(offset), oihw(weight), None if mask is None else nchw(mask))]
    bias = torch.zeros(weight.shape[3], dtype=torch.float64, requires_grad=True)
    y = torchvision.ops.deform_conv2d(t[0], t[1], t[2], bias, stride=s, padding=p, dilation=d, mask=t[3])
    y.backward(torch.tensor(nchw(go).astype(np.float64)))
    return [None if a is None else a.grad.numpy() for a in t] + [bias.grad.numpy()]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("masked", [False, True])
def test_deform_conv2d_gradients_match_torchvision(case, dtype, layout, masked, rng):
    n, h, w, c, cout, k, s, p, d, g, og, scale = case
    x, offset, weight, mask = make(case, dtype, masked, rng)
    y = convkit.deform_conv2d(x, offset, weight, None, s, p, d, mask)
    go = rng.standard_normal(y.shape).astype(dtype)
    gx_t, goff_t, gw_t, gm_t, gb_t = torchvision_grads(x, offset, weight, mask, go, s, p, d)
    lay = (lambda a: a) if layout == "NHWC" else nchw
    for nt in (1, 2, 3):
        gx, goff, gw, gm, gb = grad.deform_conv2d(
            lay(go), lay(x), lay(offset), weight if layout == "NHWC" else oihw(weight),
            None if mask is None else lay(mask), s, p, d, layout=layout, num_threads=nt)
        back = (lambda a: a) if layout == "NHWC" else (lambda a: a.transpose(0, 2, 3, 1))
        assert_grad(back(gx), gx_t.transpose(0, 2, 3, 1), dtype)
        assert_grad(back(goff), goff_t.transpose(0, 2, 3, 1), dtype)
        assert_grad(gw if layout == "NCHW" else oihw(gw), gw_t, dtype)
        assert_grad(gb, gb_t, dtype)
        if masked:
            assert_grad(back(gm), gm_t.transpose(0, 2, 3, 1), dtype)
        else:
            assert gm is None


def test_deform_conv2d_gradients_are_bit_identical_for_a_thread_count(rng):
    case = (2, 12, 12, 16, 16, 3, 1, 1, 1, 1, 1, 2.0)
    x, offset, weight, mask = make(case, np.float32, True, rng)
    go = rng.standard_normal((2, 12, 12, 16)).astype(np.float32)
    for nt in (2, 3):
        first = grad.deform_conv2d(go, x, offset, weight, mask, 1, 1, num_threads=nt)
        again = grad.deform_conv2d(go, x, offset, weight, mask, 1, 1, num_threads=nt)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("masked", [False, True])
def test_deform_conv2d_gradients_match_finite_differences(masked, rng):
    case = (1, 5, 6, 4, 4, 3, 1, 1, 1, 2, 2, 1.5)
    x, offset, weight, mask = make(case, np.float64, masked, rng, on_grid=False)
    go = rng.standard_normal(convkit.deform_conv2d(x, offset, weight, None, 1, 1, 1, mask).shape)
    gx, goff, gw, gm, _ = grad.deform_conv2d(go, x, offset, weight, mask, 1, 1)
    if masked:
        f = lambda a, o, w, m: float((convkit.deform_conv2d(a, o, w, None, 1, 1, 1, m) * go).sum())
        directional_check(f, [gx, goff, gw, gm], [x, offset, weight, mask], rng)
    else:
        f = lambda a, o, w: float((convkit.deform_conv2d(a, o, w, None, 1, 1, 1) * go).sum())
        directional_check(f, [gx, goff, gw], [x, offset, weight], rng)


def test_deform_conv2d_grad_output_of_the_wrong_shape_names_both_shapes(rng):
    x, offset, weight, mask = make(CASES[0], np.float32, True, rng)
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 6, 5, 6\).*got \(2, 6, 6, 6\)"):
        grad.deform_conv2d(np.zeros((2, 6, 6, 6), np.float32), x, offset, weight, mask, 1, 1)
