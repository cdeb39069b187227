"""convkit.grad without PyTorch: float64 NumPy references, central finite differences, determinism,
bounded workspace and bad input (these also run in the sanitizer suite, which has no torch)."""
import numpy as np
import pytest

import convkit
from convkit import grad
from convkit.grad.conv import WEIGHT_CHUNK_BYTES
from helpers_grad import (CONV_CASES, DEFORM_CASES, DTYPES, LAYOUTS, assert_grad, conv_case, deform_case,
                          directional_check, in_layout, normal, weight_in_layout)
from reference import pads_of
from reference_grad import avg_pool_grad_ref, conv2d_input_ref, conv2d_weight_ref, max_pool_grad_ref


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_gradients_match_reference(case, dtype, layout, rng):
    n, h, w, c, cout, k, s, p, d, g = case
    x, weight = conv_case(case, dtype, rng)
    y = convkit.conv2d(x, weight, None, s, p, d, g)
    go = normal(rng, y.shape, dtype)
    pads = pads_of(p, (h, w), weight.shape[:2], s, d)
    sp, dp = (s, s) if isinstance(s, int) else s, (d, d) if isinstance(d, int) else d
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, layout=layout)
    xl, wl, gol = in_layout(x, layout), weight_in_layout(weight, layout), in_layout(go, layout)
    for nt in (1, 2, 3):
        assert_grad(grad.conv2d_input(xl.shape, wl, gol, num_threads=nt, **kwargs),
                    in_layout(conv2d_input_ref(go, weight, x.shape, sp, pads, dp, g), layout), dtype)
        assert_grad(grad.conv2d_weight(xl, wl.shape, gol, num_threads=nt, **kwargs),
                    weight_in_layout(conv2d_weight_ref(x, go, weight.shape[:2], sp, pads, dp, g), layout), dtype)


# (N, H, W, C, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    (2, 7, 6, 3, (3, 3), (2, 2), (1, 1), (1, 1), False),
    (1, 8, 5, 70, (3, 2), (2, 1), (1, 0), (2, 1), True),
    (1, 9, 9, 6, (4, 4), (3, 3), (2, 2), (1, 1), True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_pooling_gradients_match_reference(case, dtype, layout, rng):
    n, h, w, c, k, s, p, d, ceil = case
    x = np.round(2 * normal(rng, (n, h, w, c), dtype))        # many ties
    x[0, 0, :2] = np.nan
    y = convkit.max_pool2d(x, k, s, p, d, ceil)
    go = normal(rng, y.shape, dtype)
    for nt in (1, 3):
        assert_grad(grad.max_pool2d(in_layout(go, layout), in_layout(x, layout), k, s, p, d, ceil,
                                    layout=layout, num_threads=nt),
                    in_layout(max_pool_grad_ref(go, x, k, s, p, d), layout), dtype)
    for include in (True, False):
        go = normal(rng, convkit.avg_pool2d(x, k, s, p, ceil, include).shape, dtype)
        assert_grad(grad.avg_pool2d(in_layout(go, layout), in_layout(x, layout), k, s, p, ceil, include,
                                    layout=layout), in_layout(avg_pool_grad_ref(go, x.shape, k, s, p, include),
                                                              layout), dtype)


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
    partial = 4 * (9 * 64) * 66          # one thread's partial sums: K x Cout, Cout rounded up to the tile
    # per thread: the chunk's columns and their packed copy (each at most WEIGHT_CHUNK_BYTES), the
    # transposed grad_output of the chunk (smaller than either here) and the partial sums
    assert big <= 2 * (3 * WEIGHT_CHUNK_BYTES + partial)


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
    directional_check(lambda a: float((convkit.softmax(a) * gl).sum()),
                      [grad.softmax(gl, convkit.softmax(logits))], [logits], rng)


@pytest.mark.parametrize("masked", [False, True])
def test_deform_conv2d_gradients_match_finite_differences(masked, rng):
    case = (1, 5, 6, 4, 4, 3, 1, 1, 1, 2, 2, 1.5)
    x, offset, weight, mask = deform_case(case, np.float64, masked, rng, on_grid=False)
    go = rng.standard_normal(convkit.deform_conv2d(x, offset, weight, None, 1, 1, 1, mask).shape)
    gx, goff, gw, gm, _ = grad.deform_conv2d(go, x, offset, weight, mask, 1, 1)
    if masked:
        f = lambda a, o, w, m: float((convkit.deform_conv2d(a, o, w, None, 1, 1, 1, m) * go).sum())
        directional_check(f, [gx, goff, gw, gm], [x, offset, weight, mask], rng)
    else:
        f = lambda a, o, w: float((convkit.deform_conv2d(a, o, w, None, 1, 1, 1) * go).sum())
        directional_check(f, [gx, goff, gw], [x, offset, weight], rng)


def test_deform_conv2d_gradients_are_bit_identical_for_a_thread_count(rng):
    case = (2, 12, 12, 16, 16, 3, 1, 1, 1, 1, 1, 2.0)
    x, offset, weight, mask = deform_case(case, np.float32, True, rng)
    go = rng.standard_normal((2, 12, 12, 16)).astype(np.float32)
    for nt in (2, 3):
        first = grad.deform_conv2d(go, x, offset, weight, mask, 1, 1, num_threads=nt)
        again = grad.deform_conv2d(go, x, offset, weight, mask, 1, 1, num_threads=nt)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)


def test_deform_conv2d_grad_output_of_the_wrong_shape_names_both_shapes(rng):
    x, offset, weight, mask = deform_case(DEFORM_CASES[0], np.float32, True, rng)
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 6, 5, 6\).*got \(2, 6, 6, 6\)"):
        grad.deform_conv2d(np.zeros((2, 6, 6, 6), np.float32), x, offset, weight, mask, 1, 1)


def test_gradients_of_an_empty_image_seen_through_padding_raise_as_the_forward():
    """conv2d rejects an empty image in a non-empty batch (as PyTorch does), so its gradients do too."""
    x = np.zeros((2, 0, 0, 3), np.float32)
    go = np.ones((2, 2, 2, 4), np.float32)              # a 1x1 kernel over padding 1 would give a 2x2 output
    with pytest.raises(ValueError, match="expected x to have a height and width of at least 1"):
        convkit.conv2d(x, np.ones((1, 1, 3, 4), np.float32), padding=1)
    with pytest.raises(ValueError, match="expected x to have a height and width of at least 1"):
        grad.conv2d_weight(x, (1, 1, 3, 4), go, padding=1)
    with pytest.raises(ValueError, match="expected x to have a height and width of at least 1"):
        grad.conv2d_input(x.shape, np.ones((1, 1, 3, 4), np.float32), go, padding=1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_batch_norm_gradient_with_forward_statistics(layout, rng):
    """The forward's (mean, var) passed as ``statistics`` give the gradient the recomputation gives,
    checked against a float64 reference of PyTorch's formula."""
    from convkit.normalization import batch_norm_with_statistics
    x = in_layout(3 + 2 * rng.standard_normal((3, 4, 5, 6)), layout)
    weight, go = rng.standard_normal(6), in_layout(rng.standard_normal((3, 4, 5, 6)), layout)
    y, mean, var = batch_norm_with_statistics(x, None, None, weight, None, 1e-3, training=True, layout=layout)
    axes = (0, 1, 2) if layout == "NHWC" else (0, 2, 3)
    assert np.allclose(mean, x.mean(axis=axes)) and np.allclose(var, x.var(axis=axes))
    shape = (1, 1, 1, 6) if layout == "NHWC" else (1, 6, 1, 1)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-3)
    gb, gw = go.sum(axis=axes), (go * xhat).sum(axis=axes)
    m = x.size // 6
    gx_ref = (weight / np.sqrt(var + 1e-3)).reshape(shape) * (go - gb.reshape(shape) / m
                                                             - xhat * gw.reshape(shape) / m)
    for statistics in (None, (mean, var)):
        gx, gw_k, gb_k = grad.batch_norm(go, x, weight, 1e-3, statistics=statistics, layout=layout)
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gw_k, gw, rtol=1e-10)
        np.testing.assert_allclose(gb_k, gb, rtol=1e-10)
    with pytest.raises(ValueError, match=r"statistics' var of shape \(6,\), got \(5,\)"):
        grad.batch_norm(go, x, weight, statistics=(mean, var[:5]), layout=layout)
