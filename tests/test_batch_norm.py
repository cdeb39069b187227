"""batch_norm (inference and training) and fold_batch_norm against float64 references and PyTorch."""
import numpy as np
import pytest

import convkit
from helpers import assert_close, nchw, oihw
from reference_units import batch_norm_ref, batch_stats_ref

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]
SHAPES = [(1, 1, 1, 1), (2, 3, 5, 1), (3, 4, 5, 7), (2, 9, 11, 17), (4, 30, 30, 3)]


def _params(c, dtype, rng, affine=True):
    mean = rng.standard_normal(c).astype(dtype)
    var = (rng.random(c) + 0.2).astype(dtype)
    weight = rng.standard_normal(c).astype(dtype) if affine else None
    bias = rng.standard_normal(c).astype(dtype) if affine else None
    return mean, var, weight, bias


def _in_layout(x, layout):
    return x if layout == "NHWC" else nchw(x)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("affine", [True, False])
def test_inference_matches_reference(shape, dtype, layout, affine, rng):
    x = rng.standard_normal(shape).astype(dtype)
    mean, var, weight, bias = _params(shape[3], dtype, rng, affine)
    y = convkit.batch_norm(_in_layout(x, layout), mean, var, weight, bias, eps=1e-3, layout=layout)
    assert y.flags.c_contiguous
    assert_close(y, _in_layout(batch_norm_ref(x, mean, var, weight, bias, 1e-3), layout), dtype)


@pytest.mark.parametrize("shape", SHAPES[1:], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("momentum", [0.1, 0.0, 1.0])
def test_training_statistics_and_running_update(shape, dtype, layout, momentum, rng):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    mean0, var0, weight, bias = _params(shape[3], dtype, rng)
    running_mean, running_var = mean0.copy(), var0.copy()
    y = convkit.batch_norm(_in_layout(x, layout), running_mean, running_var, weight, bias,
                           training=True, momentum=momentum, layout=layout)
    mean, biased, unbiased = batch_stats_ref(x)
    assert_close(y, _in_layout(batch_norm_ref(x, mean, biased, weight, bias), layout), dtype)
    assert_close(running_mean, (1 - momentum) * mean0.astype(np.float64) + momentum * mean, dtype)
    assert_close(running_var, (1 - momentum) * var0.astype(np.float64) + momentum * unbiased, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_variance_of_offset_data_is_accurate(layout, rng):
    # float32 data with a large mean and a small spread: E[x^2] - E[x]^2 in float32 would lose it all.
    x = (1e4 + rng.standard_normal((4, 16, 16, 3))).astype(np.float32)
    mean, biased, _ = batch_stats_ref(x)
    y = convkit.batch_norm(_in_layout(x, layout), None, None, training=True, layout=layout)
    np.testing.assert_allclose(y, _in_layout(batch_norm_ref(x, mean, biased), layout), atol=2e-3)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_is_the_same_for_any_thread_count(layout, rng):
    x = rng.standard_normal((3, 40, 40, 5)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
        y = convkit.batch_norm(_in_layout(x, layout), rm, rv, training=True, layout=layout,
                               num_threads=threads)
        results.append((y, rm, rv))
    for y, rm, rv in results[1:]:
        for a, b in zip((y, rm, rv), results[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_contiguous_input(layout, rng):
    base = rng.standard_normal((2, 6, 8, 10))
    x = base[:, ::2, 1:, ::3] if layout == "NHWC" else base[:, ::3, ::2, 1:]
    c = x.shape[3] if layout == "NHWC" else x.shape[1]
    mean, var, weight, bias = _params(c, np.float64, rng)
    ref_in = x if layout == "NHWC" else x.transpose(0, 2, 3, 1)
    expected = batch_norm_ref(ref_in, mean, var, weight, bias)
    y = convkit.batch_norm(x, mean, var, weight, bias, layout=layout)
    assert_close(y, _in_layout(expected, layout), np.float64)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(0, 4, 4, 3), (2, 3, 3, 0), (1, 0, 2, 3)], ids=str)
def test_empty_input_in_inference(layout, shape, rng):
    mean, var, weight, bias = _params(shape[3], np.float32, rng)
    x = _in_layout(np.zeros(shape, np.float32), layout)
    y = convkit.batch_norm(x, mean, var, weight, bias, layout=layout)
    assert y.shape == x.shape


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_training_matches_torch(layout, momentum, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 7, 6, 5)).astype(np.float32) * 2 - 1
    mean, var, weight, bias = _params(5, np.float32, rng)
    rm, rv = mean.copy(), var.copy()
    trm, trv = torch.from_numpy(mean.copy()), torch.from_numpy(var.copy())
    y = convkit.batch_norm(_in_layout(x, layout), rm, rv, weight, bias, 1e-4, training=True,
                           momentum=momentum, layout=layout)
    expected = torch.nn.functional.batch_norm(
        torch.from_numpy(nchw(x)), trm, trv, torch.from_numpy(weight), torch.from_numpy(bias),
        training=True, momentum=momentum, eps=1e-4).numpy()
    if layout == "NHWC":
        expected = expected.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_inference_matches_torch(layout, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 5, 6, 8)).astype(np.float32)
    mean, var, weight, bias = _params(8, np.float32, rng)
    expected = torch.nn.functional.batch_norm(
        torch.from_numpy(nchw(x)), torch.from_numpy(mean), torch.from_numpy(var),
        torch.from_numpy(weight), torch.from_numpy(bias), training=False).numpy()
    y = convkit.batch_norm(_in_layout(x, layout), mean, var, weight, bias, layout=layout)
    np.testing.assert_allclose(y, expected if layout == "NCHW" else expected.transpose(0, 2, 3, 1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_arguments(layout, rng):
    x = _in_layout(rng.standard_normal((2, 4, 4, 3)).astype(np.float32), layout)
    mean, var, weight, bias = _params(3, np.float32, rng)
    wrong = np.zeros(4, np.float32)
    for name in ("running_mean", "running_var", "weight", "bias"):
        args = dict(running_mean=mean, running_var=var, weight=weight, bias=bias)
        args[name] = wrong
        with pytest.raises(ValueError, match=f"{name}.*shape \\(3,\\)"):
            convkit.batch_norm(x, layout=layout, **args)
        args[name] = np.zeros(3, np.float64)
        with pytest.raises(TypeError, match=name):
            convkit.batch_norm(x, layout=layout, **args)
    with pytest.raises(TypeError, match="x"):
        convkit.batch_norm(x.astype(np.int64), mean, var, layout=layout)
    with pytest.raises(ValueError, match="x.*4-D"):
        convkit.batch_norm(x[0], mean, var, layout=layout)
    with pytest.raises(ValueError, match="running_mean"):
        convkit.batch_norm(x, None, var, layout=layout)
    with pytest.raises(ValueError, match="more than 1 value"):
        convkit.batch_norm(x[:1, :1, :1] if layout == "NHWC" else x[:1, :, :1, :1], mean, var,
                           training=True, layout=layout)
    read_only = var.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="running_var.*writeable"):
        convkit.batch_norm(x, mean.copy(), read_only, training=True, layout=layout)
    with pytest.raises(ValueError, match="eps"):
        convkit.batch_norm(x, mean, var, eps=-1.0, layout=layout)
    with pytest.raises(ValueError, match="momentum"):
        convkit.batch_norm(x, mean.copy(), var.copy(), training=True, momentum="fast", layout=layout)
    with pytest.raises(ValueError, match="layout"):
        convkit.batch_norm(x, mean, var, layout="NCWH")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("groups,conv_bias,affine", [(1, True, True), (1, False, True), (4, True, False)])
def test_fold_batch_norm(dtype, layout, groups, conv_bias, affine, rng):
    x = rng.standard_normal((2, 7, 6, 4)).astype(dtype)
    w = rng.standard_normal((3, 3, 4 // groups, 8)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype) if conv_bias else None
    mean, var, weight, bias = _params(8, dtype, rng, affine)
    expected = batch_norm_ref(convkit.conv2d(x.astype(np.float64), w.astype(np.float64),
                                             None if b is None else b.astype(np.float64),
                                             padding=1, groups=groups), mean, var, weight, bias, 1e-3)
    conv_w = w if layout == "NHWC" else oihw(w)
    fw, fb = convkit.fold_batch_norm(conv_w, b, mean, var, weight, bias, 1e-3, layout=layout)
    assert fw.dtype == dtype and fb.dtype == dtype and fw.shape == conv_w.shape and fb.shape == (8,)
    y = convkit.conv2d(_in_layout(x, layout), fw, fb, padding=1, groups=groups, layout=layout)
    assert_close(y, _in_layout(expected, layout), dtype)


def test_fold_batch_norm_rejects_wrong_channels(rng):
    w = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    mean, var, weight, bias = _params(8, np.float32, rng)
    with pytest.raises(ValueError, match="running_var.*shape \\(8,\\)"):
        convkit.fold_batch_norm(w, None, mean, var[:5], weight, bias)
    with pytest.raises(ValueError, match="conv_bias.*shape \\(8,\\)"):
        convkit.fold_batch_norm(oihw(w), mean[:4], mean, var, None, None, layout="NCHW")
    with pytest.raises(TypeError, match="weight"):
        convkit.fold_batch_norm(w, None, mean, var, weight.astype(np.float64), bias)
    with pytest.raises(ValueError, match="conv_weight.*4-D"):
        convkit.fold_batch_norm(w[0], None, mean, var, weight, bias)
