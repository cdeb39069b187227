"""linear against the float64 reference and PyTorch."""
import importlib

import numpy as np
import pytest

import convkit
from helpers import assert_close
from reference_units import activation_ref, linear_ref

linear_module = importlib.import_module("convkit.linear")   # (convkit.linear is the function)

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5,), (3, 5), (2, 4, 5), (0, 5), (3, 0)], ids=str)
@pytest.mark.parametrize("out_features", [1, 7])
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_reference(dtype, x_shape, out_features, with_bias, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_features, x_shape[-1])).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype) if with_bias else None
    y = convkit.linear(x, w, b)
    assert y.flags.c_contiguous
    assert_close(y, linear_ref(x, w, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation,name,param", [
    ("relu", "relu", None), (("leaky_relu", 0.2), "leaky_relu", 0.2), ("sigmoid", "sigmoid", None)])
def test_fused_activation(dtype, activation, name, param, rng):
    x = rng.standard_normal((6, 9)).astype(dtype)
    w = rng.standard_normal((4, 9)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    y = convkit.linear(x, w, b, activation=activation)
    assert_close(y, activation_ref(linear_ref(x, w, b), name, param), dtype)


def test_non_contiguous_arguments(rng):
    x = rng.standard_normal((8, 10))[::2, ::2]
    w = rng.standard_normal((5, 6)).T  # (6, 5) as a transposed view
    b = rng.standard_normal(12)[::2]
    assert_close(convkit.linear(x, w, b), linear_ref(x, w, b), np.float64)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(12, 5)
    x = rng.standard_normal((3, 12)).astype(np.float32)
    expected = layer(torch.from_numpy(x)).detach().numpy()
    y = convkit.linear(x, layer.weight.detach().numpy(), layer.bias.detach().numpy())
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((2, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="x.*4 features"):
        convkit.linear(x[:, :3], w)
    with pytest.raises(ValueError, match="weight.*2-D"):
        convkit.linear(x, w[0])
    with pytest.raises(ValueError, match="bias.*shape \\(2,\\)"):
        convkit.linear(x, w, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="weight"):
        convkit.linear(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="bias"):
        convkit.linear(x, w, np.zeros(2, np.float64))
    with pytest.raises(TypeError, match="x"):
        convkit.linear(x.astype(np.int16), w)
    with pytest.raises(ValueError, match="x.*at least 1-D"):
        convkit.linear(np.ones((), np.float32), w)
    with pytest.raises(ValueError, match="activation"):
        convkit.linear(x, w, activation="softmax")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("in_features, out_features", [(1, 1), (37, 13), (67, 9), (130, 35)])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_few_rows_by_dot_products(dtype, rows, in_features, out_features, num_threads, rng, monkeypatch):
    """Up to GEMV_MAX_ROWS rows run as dot products (gemv: vector steps and a K % lanes tail, runs of
    4 output features and a partial one, split between threads); from a strided view too."""
    calls = []
    gemv_into = linear_module._gemv.gemv_into
    monkeypatch.setattr(linear_module._gemv, "gemv_into", lambda *a: calls.append(1) or gemv_into(*a))
    x = rng.standard_normal((rows, 2 * in_features)).astype(dtype)[:, ::2]
    w = rng.standard_normal((out_features, in_features)).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype)
    y = convkit.linear(x, w, b, activation="relu6", num_threads=num_threads)
    assert_close(y, activation_ref(linear_ref(x, w, b), "relu6", None), dtype)
    assert len(calls) == (0 < rows <= linear_module.GEMV_MAX_ROWS)
    assert_close(convkit.linear(x[:, None], w, num_threads=num_threads)[:, 0], linear_ref(x, w, None), dtype)


@pytest.mark.parametrize("rows", [1, 3])
def test_layer_packs_its_weight_only_for_the_gemm(rows, rng):
    layer = convkit.nn.Linear(67, 9, rng=rng).eval()
    x = rng.standard_normal((rows, 67)).astype(np.float32)
    state = layer.state_dict()
    for _ in range(2):
        assert_close(layer(x), linear_ref(x, state["weight"], state["bias"]), np.float32)
    assert (layer._cached("packed", lambda: None) is not None) == (rows > 1)


def test_gemv_kernel_checks(rng):
    gemv = linear_module._gemv
    x, w, y = np.ones((2, 3)), np.ones((4, 3)), np.empty((2, 4))
    with pytest.raises(ValueError, match="expected x \\(M, K\\), w \\(N, K\\) and y \\(M, N\\)"):
        gemv.gemv_into(x, w[:, :2].copy(), y)
    with pytest.raises(ValueError, match="bias length to be 4, got 3"):
        gemv.gemv_into(x, w, y, np.ones(3))
    with pytest.raises(ValueError, match="K \\(in_features\\) to be at least 1"):
        gemv.gemv_into(np.ones((2, 0)), np.ones((4, 0)), y)
