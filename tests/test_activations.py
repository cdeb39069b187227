"""Activations and the bias + activation epilogue against float64 references (and PyTorch)."""
import numpy as np
import pytest

import convkit
from convkit._kernels import elementwise
from convkit.activations import resolve_activation
from helpers import assert_close
from reference_units import activation_ref

DTYPES = [np.float32, np.float64]
# (function name, parameter or None)
ACTS = [("relu", None), ("relu6", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("elu", None),
        ("elu", 0.5), ("sigmoid", None), ("tanh", None)]
SHAPES = [(), (0,), (7,), (3, 4, 5, 6), (40_003,)]  # 40,003: several 16,384-element chunks and a tail


def _call(name, param, x, **kwargs):
    fn = getattr(convkit, name)
    return fn(x, **kwargs) if param is None else fn(x, param, **kwargs)


def _data(shape, dtype, rng):
    return np.asarray(rng.standard_normal(shape) * 4, dtype)


@pytest.mark.parametrize("name,param", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(name, param, dtype, shape, rng):
    x = _data(shape, dtype, rng)
    y = _call(name, param, x)
    assert y is not x
    assert_close(y, activation_ref(x, name, param), dtype)


@pytest.mark.parametrize("name,param", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_given_out(name, param, dtype, rng):
    x = _data((5, 6, 7), dtype, rng)
    expected = activation_ref(x, name, param)
    out = np.empty_like(x)
    assert _call(name, param, x, out=out) is out
    assert_close(out, expected, dtype)
    assert _call(name, param, x, out=x) is x
    assert_close(x, expected, dtype)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name,param", [("sigmoid", None), ("elu", None), ("elu", 2.0), ("tanh", None)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_magnitudes_do_not_overflow(name, param, dtype):
    big = np.finfo(dtype).max
    x = np.array([-big, -1e4, -800.0, -100.0, -1e-30, 0.0, 1e-30, 100.0, 800.0, 1e4, big], dtype)
    with np.errstate(all="raise"):
        y = _call(name, param, x)
    expected = activation_ref(x.astype(np.float64), name, param)
    assert np.all(np.isfinite(y))
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("name,param", [("sigmoid", None), ("tanh", None), ("elu", None)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_relative_accuracy_over_the_range(name, param, dtype):
    # The kernels' own exp/expm1: within a few units in the last place wherever the result is normal.
    tiny = np.geomspace(1e-30, 1.0, 2001)
    x = np.concatenate([np.linspace(-100, 100, 40001), tiny, -tiny]).astype(dtype)
    expected = activation_ref(x, name, param)
    y = _call(name, param, x).astype(np.float64)
    normal = np.abs(expected) > np.finfo(dtype).tiny
    rel = np.abs(y - expected)[normal] / np.abs(expected)[normal]
    assert rel.max() <= 4 * np.finfo(dtype).eps, rel.max()


@pytest.mark.parametrize("name,param", ACTS)
def test_nan_propagates(name, param):
    x = np.array([np.nan, -1.0, np.nan, 2.0], np.float32)
    y = _call(name, param, x)
    assert np.isnan(y[[0, 2]]).all() and not np.isnan(y[[1, 3]]).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_permuted_input_keeps_its_memory_order(dtype, rng):
    nhwc = _data((2, 5, 6, 3), dtype, rng)
    x = nhwc.transpose(0, 3, 1, 2)  # an NCHW view of NHWC memory
    y = convkit.elu(x)
    assert y.strides == x.strides
    assert_close(y, activation_ref(x, "elu"), dtype)
    fortran = np.asfortranarray(nhwc)
    assert_close(convkit.relu(fortran, out=fortran), activation_ref(nhwc, "relu"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_input_and_out(dtype, rng):
    base = _data((6, 8, 5), dtype, rng)
    x = base[:, ::2, 1:]
    expected = activation_ref(x, "sigmoid")
    assert_close(convkit.sigmoid(x), expected, dtype)
    out = np.zeros((6, 8, 5), dtype)
    convkit.sigmoid(x, out=out[::-1, 1::2, :4])
    assert_close(out[::-1, 1::2, :4], expected, dtype)
    assert not out[:, ::2].any()
    assert convkit.sigmoid(x, out=x) is x  # in place on a strided view
    assert_close(x, expected, dtype)


def test_out_partly_overlapping_the_input(rng):
    a = _data(50_001, np.float64, rng)
    x, out = a[:-1], a[1:]
    expected = activation_ref(x, "tanh")
    convkit.tanh(x, out=out)
    assert_close(a[1:], expected, np.float64)


def test_read_only_input(rng):
    x = _data((4, 5), np.float32, rng)
    x.flags.writeable = False
    assert_close(convkit.relu6(x), activation_ref(x, "relu6"), np.float32)


def test_thread_counts_agree(rng):
    x = _data((3, 70_000), np.float32, rng)
    one = convkit.sigmoid(x, num_threads=1)
    np.testing.assert_array_equal(convkit.sigmoid(x, num_threads=2), one)
    np.testing.assert_array_equal(convkit.sigmoid(x, num_threads=3), one)


def test_bad_arguments(rng):
    x = _data((3, 4), np.float32, rng)
    with pytest.raises(TypeError, match="x"):
        convkit.relu([1.0, 2.0])
    for bad in (np.float16, np.int32):
        with pytest.raises(TypeError, match="x"):
            convkit.relu(x.astype(bad))
    with pytest.raises(ValueError, match="out.*shape"):
        convkit.relu(x, out=np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="out.*dtype"):
        convkit.relu(x, out=np.empty((3, 4), np.float64))
    with pytest.raises(TypeError, match="out"):
        convkit.relu(x, out=[0.0] * 12)
    read_only = np.empty_like(x)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out.*writeable"):
        convkit.relu(x, out=read_only)
    with pytest.raises(ValueError, match="negative_slope"):
        convkit.leaky_relu(x, "0.1")
    with pytest.raises(ValueError, match="alpha"):
        convkit.elu(x, None)
    with pytest.raises(ValueError, match="num_threads"):
        convkit.relu(x, num_threads=0)


@pytest.mark.parametrize("spec,expected", [
    (None, (elementwise.CODES["none"], 0.0)),
    ("relu", (elementwise.CODES["relu"], 0.0)),
    ("relu6", (elementwise.CODES["relu6"], 0.0)),
    ("leaky_relu", (elementwise.CODES["leaky_relu"], 0.01)),
    (("leaky_relu", 0.2), (elementwise.CODES["leaky_relu"], 0.2)),
    ("elu", (elementwise.CODES["elu"], 1.0)),
    (("elu", 2), (elementwise.CODES["elu"], 2.0)),
    ("sigmoid", (elementwise.CODES["sigmoid"], 0.0)),
    ("tanh", (elementwise.CODES["tanh"], 0.0)),
])
def test_resolve_activation(spec, expected):
    assert resolve_activation(spec) == expected


@pytest.mark.parametrize("spec", ["gelu", "ReLU", 3, ("relu", 0.1), ("leaky_relu", "a"), ("elu",),
                                  ("elu", 1.0, 2.0), ["elu", 1.0], ("leaky_relu", True)])
def test_resolve_activation_rejects(spec):
    with pytest.raises(ValueError, match="activation"):
        resolve_activation(spec)


@pytest.mark.parametrize("spec", [None, "relu", "relu6", ("leaky_relu", 0.3), ("elu", 0.7), "sigmoid", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,channels", [(1, 1), (5, 7), (3000, 33)])
def test_bias_activation_inplace(spec, with_bias, dtype, rows, channels, rng):
    y = _data((rows, channels), dtype, rng)
    bias = _data(channels, dtype, rng) if with_bias else None
    pre = y.astype(np.float64) + (0 if bias is None else bias)
    if spec is None:
        expected = pre
    else:
        name, param = spec if isinstance(spec, tuple) else (spec, None)
        expected = activation_ref(pre, name, param)
    code, alpha = resolve_activation(spec)
    elementwise.bias_activation_inplace(y, bias, code, alpha, 2)
    assert_close(y, expected, dtype)


def test_bias_activation_rejects_wrong_bias_length():
    with pytest.raises(ValueError, match="bias"):
        elementwise.bias_activation_inplace(np.zeros((2, 3)), np.zeros(4), 1, 0.0, 1)


@pytest.mark.parametrize("name,param", ACTS)
def test_matches_torch(name, param, rng):
    torch = pytest.importorskip("torch")
    x = _data((2, 3, 9, 11), np.float32, rng)
    fn = {"relu": torch.relu, "relu6": torch.nn.functional.relu6, "sigmoid": torch.sigmoid,
          "tanh": torch.tanh}.get(name)
    if name == "leaky_relu":
        expected = torch.nn.functional.leaky_relu(torch.from_numpy(x), 0.01 if param is None else param)
    elif name == "elu":
        expected = torch.nn.functional.elu(torch.from_numpy(x), 1.0 if param is None else param)
    else:
        expected = fn(torch.from_numpy(x))
    np.testing.assert_allclose(_call(name, param, x), expected.numpy(), rtol=2e-6, atol=2e-7)
