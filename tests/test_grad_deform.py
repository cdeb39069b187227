"""convkit.grad.deform_conv2d against torchvision's autograd (float64), both layouts, 1-3 threads."""
import numpy as np
import pytest

import convkit
from convkit import grad
from helpers import nchw, oihw
from helpers_grad import DEFORM_CASES, DTYPES, LAYOUTS, assert_grad, deform_case

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def torchvision_grads(x, offset, weight, mask, go, s, p, d):
    t = [None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=True)
         for a in (nchw(x), nchw(offset), oihw(weight), None if mask is None else nchw(mask))]
    bias = torch.zeros(weight.shape[3], dtype=torch.float64, requires_grad=True)
    y = torchvision.ops.deform_conv2d(t[0], t[1], t[2], bias, stride=s, padding=p, dilation=d, mask=t[3])
    y.backward(torch.tensor(nchw(go).astype(np.float64)))
    return [None if a is None else a.grad.numpy() for a in t] + [bias.grad.numpy()]


@pytest.mark.parametrize("case", DEFORM_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("masked", [False, True])
def test_deform_conv2d_gradients_match_torchvision(case, dtype, layout, masked, rng):
    n, h, w, c, cout, k, s, p, d, g, og, scale = case
    x, offset, weight, mask = deform_case(case, dtype, masked, rng)
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
