"""Shared by the gradient tests: tolerances, finite differences, the geometry grid."""
import numpy as np

import convkit
from helpers import assert_close, nchw, oihw

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]
# Relative to the largest magnitude of the reference (at least 1): the bounds.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_grad(actual, expected, dtype):
    assert_close(actual, expected, dtype, RTOL[np.dtype(dtype)])


def directional_check(f, grads, inputs, rng, h=1e-6):
    """Central finite difference of the scalar f along a random direction vs the analytic gradients."""
    dirs = [rng.standard_normal(a.shape) for a in inputs]
    plus = f(*[a + h * v for a, v in zip(inputs, dirs)])
    minus = f(*[a - h * v for a, v in zip(inputs, dirs)])
    numeric = (plus - minus) / (2 * h)
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, dirs))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


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


def conv_case(case, dtype, rng):
    n, h, w, c, cout, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = normal(rng, (n, h, w, c), dtype)
    weight = normal(rng, (kh, kw, c // g, cout), dtype)
    return x, weight


# (N, H, W, C, Cout, kernel, stride, padding, dilation, weight groups, offset groups, offset scale)
DEFORM_CASES = [
    (2, 6, 5, 4, 6, 3, 1, 1, 1, 1, 1, 2.0),
    (1, 7, 6, 4, 4, (3, 2), (2, 1), (1, 0), 1, 2, 2, 1.5),
    (1, 6, 6, 6, 3, 3, 1, 2, 2, 1, 3, 3.0),
    (2, 8, 8, 16, 16, 3, 1, 1, 1, 1, 1, 2.0),    # channels filling the register tiles
    (1, 5, 5, 3, 2, 3, 1, 1, 1, 1, 1, 8.0),      # most samples outside the image
    (1, 4, 4, 2, 20, 1, 1, 0, 1, 2, 1, 1.0),     # 1x1, wide output
]


def deform_case(case, dtype, masked, rng, on_grid=True):
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
