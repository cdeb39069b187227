"""The GEMM's paths beside the plain one (test_matmul.py): A read in place for narrow products,
reduction blocks of equal size, B packed once (gemm.pack_b), and nn.Linear's packed weight kept per
parameter version."""
import numpy as np
import pytest

import convkit
from convkit import nn
from convkit._kernels import gemm
from helpers import assert_close
from reference_units import linear_ref

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 17), (64, 300, 100), (25, 600, 33), (3, 2, 4100),
                                   (7, 0, 9)], ids=str)
@pytest.mark.parametrize("num_threads", [1, 3])
def test_packed_b_matches_reference(dtype, m, k, n, num_threads, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T   # strided columns, as linear's weight.T
    bias = rng.standard_normal(n).astype(dtype)
    packed = gemm.pack_b(b, num_threads)
    assert packed.shape == (k, n) and packed.dtype == dtype
    c = np.full((m, n), np.nan, dtype)
    gemm.gemm_into(a, b, c, False, bias, None, 0, 0, num_threads, packed)
    assert_close(c, a.astype(np.float64) @ b + bias, dtype)
    c0 = c.copy()
    gemm.gemm_into(a, b, c, True, None, None, 0, 0, num_threads, packed)   # c += a @ b
    assert_close(c, c0 + a.astype(np.float64) @ b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(37, 576, 64), (37, 576, 65), (13, 513, 7), (50, 257, 1)], ids=str)
@pytest.mark.parametrize("a_layout", ["rows", "columns"])    # narrow + unit column stride: A in place
def test_narrow_products_and_reduction_blocks(dtype, m, k, n, a_layout, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    a = a if a_layout == "rows" else np.asfortranarray(a)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    bias, residual = rng.standard_normal(n).astype(dtype), rng.standard_normal((m, n)).astype(dtype)
    expected = np.maximum(c + a.astype(np.float64) @ b + bias + residual, 0)
    gemm.gemm_into(a, b, c, True, bias, residual, 1, 0.0, 2)    # 1: ReLU
    assert_close(c, expected, dtype)


def test_packed_b_is_a_copy(rng):
    b = rng.standard_normal((6, 5))
    packed = gemm.pack_b(b)
    a = rng.standard_normal((4, 6))
    expected = a @ b
    b[:] = 0
    c = np.empty((4, 5))
    gemm.gemm_into(a, b, c, packed=packed)
    assert_close(c, expected, np.float64)


def test_packed_b_must_match_b(rng):
    a, c = np.ones((4, 6), np.float32), np.empty((4, 5), np.float32)
    b = np.ones((6, 5), np.float32)
    with pytest.raises(ValueError, match="expected packed to be b \\(6, 5\\) float32"):
        gemm.gemm_into(a, b, c, packed=gemm.pack_b(np.ones((5, 6), np.float32)))
    with pytest.raises(ValueError, match="expected packed"):
        gemm.gemm_into(a, b, c, packed=gemm.pack_b(b.astype(np.float64)))


def layer_and_input(rng, dtype=np.float32):
    layer = nn.Linear(12, 7, dtype=dtype, rng=1)
    return layer, rng.standard_normal((5, 12)).astype(dtype)


def expected(layer, x):
    return linear_ref(x, np.asarray(layer.weight), np.asarray(layer.bias))


@pytest.mark.parametrize("change", ["assign", "setitem", "view_setitem", "in_place_op", "fill",
                                    "load_state_dict", "sgd_step"])
def test_linear_layer_repacks_after_a_weight_change(change, rng):
    layer, x = layer_and_input(rng)
    assert_close(layer(x), expected(layer, x), np.float32)   # packs and keeps the weight
    new_weight = rng.standard_normal(layer.weight.shape).astype(np.float32)
    if change == "assign":
        layer.weight = new_weight
    elif change == "setitem":
        layer.weight[...] = new_weight
    elif change == "view_setitem":
        layer.weight.T[2] = 5.0
    elif change == "in_place_op":
        layer.weight *= 3
    elif change == "fill":
        layer.weight.fill(0.25)
    elif change == "load_state_dict":
        layer.load_state_dict({"weight": new_weight, "bias": np.asarray(layer.bias)})
    else:
        layer.train()
        layer(x)
        layer.backward(np.ones((5, 7), np.float32))
        convkit.optim.SGD(layer.parameters(), lr=0.5).step()
        layer.eval()
    assert_close(layer(x), expected(layer, x), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_layer_eval_and_train_agree(dtype, rng):
    layer, x = layer_and_input(rng, dtype)
    y_eval = layer(x)
    layer.train()
    assert_close(layer(x), y_eval, dtype)
    assert_close(y_eval, expected(layer, x), dtype)


def test_packed_b_and_a_layer_keeping_one_pickle(rng):
    import pickle
    b = rng.standard_normal((9, 40))
    a, c = rng.standard_normal((3, 9)), np.empty((3, 40))
    gemm.gemm_into(a, b, c, packed=pickle.loads(pickle.dumps(gemm.pack_b(b))))
    assert_close(c, a @ b, np.float64)
    layer, x = layer_and_input(rng)
    y = layer(x)     # keeps a packed weight
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(layer))(x), y)


def activation_ref(v, code):
    """activation.pxd's codes 0-3 in float64: none, ReLU, ReLU6, LeakyReLU(0.1); NaN propagates."""
    return [v, np.maximum(v, 0), np.minimum(np.maximum(v, 0), 6), np.where(v < 0, 0.1 * v, v)][code]


def check_product_with_epilogue(dtype, m, k, n, act, accumulate, with_bias, with_residual, rng):
    """gemm_into with every part of the epilogue against the float64 reference, a NaN planted in A."""
    a = rng.standard_normal((m, k)).astype(dtype) * 3
    a[2, 5] = np.nan
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype) if with_bias else None
    residual = rng.standard_normal((m, n)).astype(dtype) if with_residual else None
    v = a.astype(np.float64) @ b + (c if accumulate else 0) + (0 if bias is None else bias) \
        + (0 if residual is None else residual)
    gemm.gemm_into(a, b, c, accumulate, bias, residual, act, 0.1, 2)
    expected = activation_ref(v, act)
    assert np.isnan(c[2]).all() and np.isnan(expected[2]).all()
    assert_close(np.nan_to_num(c), np.nan_to_num(expected), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(24, 16, 96), (41, 300, 100), (5, 24, 144)], ids=str)
@pytest.mark.parametrize("act", [0, 1, 2, 3])
@pytest.mark.parametrize("accumulate, with_bias, with_residual", [(False, True, False), (True, True, True),
                                                                   (False, False, True)])
def test_whole_tiles_store_their_epilogue_from_registers(dtype, m, k, n, act, accumulate, with_bias,
                                                         with_residual, rng):
    """Whole tiles of a packed-A product (N > 64) store with the vector epilogue (none, ReLU, ReLU6),
    edge tiles and LeakyReLU through the accumulator buffer; K = 300 makes two reduction blocks (C read
    back on the second).  A NaN in A passes through every activation, as in PyTorch."""
    check_product_with_epilogue(dtype, m, k, n, act, accumulate, with_bias, with_residual, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(61, 32, 16), (61, 300, 8), (29, 7, 4), (5, 16, 16)], ids=str)
@pytest.mark.parametrize("act", [0, 2, 3])
@pytest.mark.parametrize("accumulate, with_bias, with_residual", [(False, True, False), (True, True, True),
                                                                   (False, False, True)])
def test_products_one_vector_wide_store_half_tiles(dtype, m, k, n, act, accumulate, with_bias, with_residual,
                                                   rng):
    """A narrow product (A read in place) whose N is one vector (4, 8 or 16: float64 or float32 lanes
    with 256- or 512-bit vectors) runs in half tiles of twice the rows with the vector epilogue, the last
    rows and LeakyReLU through the accumulator buffer; K = 300 makes two reduction blocks."""
    check_product_with_epilogue(dtype, m, k, n, act, accumulate, with_bias, with_residual, rng)
