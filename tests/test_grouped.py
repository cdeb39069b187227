"""Grouped conv2d with few channels per group (groups as vector lanes), against the float64 reference."""
import numpy as np
import pytest

import convkit
from convkit import grouped
from helpers import assert_close, nchw, oihw
from reference import conv2d_ref, pads_of, pair
from reference_units import activation_ref

ALGOS = ["direct", "auto", "im2col"]
DTYPES = [np.float32, np.float64]

# (N, H, W, Cin, Cout, groups, (KH, KW), stride, padding, dilation)
CASES = [
    (1, 7, 9, 128, 128, 32, (3, 3), 1, 1, 1),       # ResNeXt: 4 in / 4 out per group, 4 group blocks
    (2, 6, 5, 8, 8, 2, (3, 3), 1, 1, 1),            # 2 groups: one partly filled group block
    (1, 8, 7, 20, 30, 10, (3, 2), 2, (0, 1), 2),    # 10 groups (a ragged block), 2 in / 3 out
    (3, 5, 6, 27, 9, 9, (2, 3), (1, 2), 1, (2, 1)), # 3 in / 1 out per group, mixed stride/dilation
    (1, 9, 8, 24, 48, 12, (3, 3), 2, 1, 1),         # 2 in / 4 out, stride 2
    (1, 6, 6, 16, 64, 8, (1, 1), 1, 0, 1),          # grouped pointwise, 8 out per group (two chunks)
    (1, 7, 10, 36, 60, 6, (5, 5), 1, 2, 1),         # 6 in / 10 out: a partial output-channel chunk
    (1, 4, 5, 12, 12, 3, (5, 5), 1, 2, 1),          # kernel larger than the image
    (1, 11, 12, 64, 64, 16, (3, 3), 3, 3, 3),       # stride 3, dilation 3
    (1, 5, 5, 6, 6, 3, (3, 3), 1, "same", 1),
    (1, 6, 7, 8, 12, 4, (4, 3), 2, "same", 1),      # SAME, stride 2: asymmetric padding
    (1, 3, 29, 64, 64, 16, (3, 3), 1, 1, 1),        # 29 columns: several whole pixel tiles and a partial one
]


def _pads(case):
    n, h, w, cin, cout, groups, k, stride, padding, dilation = case
    return pads_of(padding, (h, w), k, stride, dilation)


def _make(case, dtype, rng, bias=True):
    n, h, w, cin, cout, groups, k, stride, padding, dilation = case
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((k[0], k[1], cin // groups, cout)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    expected = conv2d_ref(x, wt, b, pair(stride), _pads(case), pair(dilation), groups)
    return x, wt, b, expected


def _conv(x, w, b, case, **kw):
    n, h, wid, cin, cout, groups, k, stride, padding, dilation = case
    return convkit.conv2d(x, w, b, stride, padding, dilation, groups, **kw)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_grouped_matches_reference(case, algo, dtype, layout, rng):
    x, w, b, expected = _make(case, dtype, rng)
    if layout == "NHWC":
        y = _conv(x, w, b, case, algo=algo)
    else:
        y = _conv(nchw(x), oihw(w), b, case, algo=algo, layout="NCHW")
        expected = nchw(expected)
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 2, 3, 4, 8, 11)], ids=str)
def test_cases_use_the_grouped_kernel(case):
    n, h, w, cin, cout, groups = case[:6]
    for dtype in DTYPES:
        assert grouped.grouped_direct_kernel(cin, cout, groups, dtype) is grouped.grouped_direct


def test_dispatch_rule():
    assert grouped.grouped_direct_kernel(128, 128, 32, np.float32) is grouped.grouped_direct
    assert grouped.grouped_direct_kernel(64, 64, 1, np.float32) is None          # not grouped
    assert grouped.grouped_direct_kernel(64, 64, 4, np.float32) is None          # 16 per group
    assert grouped.grouped_direct_kernel(64, 64, 8, np.float32) is grouped.grouped_direct
    assert grouped.grouped_direct_kernel(64, 32, 4, np.float32) is None          # 4 groups < 8 lanes
    assert grouped.grouped_direct_kernel(64, 16, 4, np.float64) is grouped.grouped_direct
    assert grouped.grouped_direct_kernel(64, 64, 4, np.float64) is None          # 16 >= 8
    assert grouped.grouped_direct_kernel(32, 32, 32, np.float32) is grouped.depthwise_direct


@pytest.mark.parametrize("case", [CASES[1], (1, 5, 7, 9, 6, 3, (3, 3), 2, 1, 1)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_with_fewer_groups_than_lanes(case, dtype, rng):
    """The groups-as-lanes kernel itself stays correct with a single, mostly empty group block."""
    x, w, b, expected = _make(case, dtype, rng)
    y = np.full(expected.shape, np.nan, dtype)
    grouped.grouped_direct(x, w, b, (0, 0.0), pair(case[7]), _pads(case), pair(case[9]), case[5],
                           y, 2)
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_batch_sizes(batch, rng):
    case = (batch, 6, 5, 16, 16, 8, (3, 3), 1, 1, 1)
    x, w, b, expected = _make(case, np.float32, rng)
    y = _conv(x, w, b, case, algo="direct")
    assert y.shape == (batch, 6, 5, 16)
    assert_close(y, expected, np.float32)


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=["whole-chunks", "partial-chunks"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_without_bias(case, dtype, rng):
    x, w, _, expected = _make(case, dtype, rng, bias=False)
    assert_close(_conv(x, w, None, case, algo="direct"), expected, dtype)


@pytest.mark.parametrize("dtype, expected", [(np.float32, 7680), (np.float64, 11520)])
def test_workspace_is_one_ring_of_rows_per_thread(dtype, expected):
    """2 threads x (3-1)*2 + 1 = 5 rows x 4 pixels x 10 groups padded to 16 (float32, 8 lanes) or 12
    (float64, 4 lanes) x 3 channels per group."""
    assert grouped.direct_workspace_bytes((2, 3, 4, 30), (3, 3), (2, 2), 10, 20, 2, dtype) == expected
    assert grouped.direct_workspace_bytes((2, 3, 4, 30), (3, 3), (2, 2), 30, 30, 2, dtype) == 0


@pytest.mark.parametrize("activation", ["relu", ("elu", 0.5), "tanh"])
def test_fused_activation(activation, rng):
    x, w, b, expected = _make(CASES[0], np.float64, rng)
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    y = _conv(x, w, b, CASES[0], algo="direct", activation=activation)
    assert_close(y, activation_ref(expected, name, param), np.float64)


@pytest.mark.parametrize("num_threads", [1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2])
def test_thread_counts_agree(num_threads, stride, rng):
    """Threads' runs of rows start mid-image and cross images: each thread's ring must follow."""
    case = (3, 7, 6, 24, 48, 12, (3, 3), stride, 1, 1)
    x, w, b, expected = _make(case, np.float64, rng)
    assert_close(_conv(x, w, b, case, algo="direct", num_threads=num_threads), expected, np.float64)


def test_groups_not_dividing_rejected():
    x = np.zeros((1, 5, 5, 12), np.float32)
    with pytest.raises(ValueError, match="groups"):
        convkit.conv2d(x, np.zeros((3, 3, 2, 10), np.float32), groups=6)    # 10 outputs, 6 groups
    with pytest.raises(ValueError, match="groups"):
        convkit.conv2d(x, np.zeros((3, 3, 2, 10), np.float32), groups=5)    # 12 inputs, 5 groups


@pytest.mark.parametrize("stride", [1, 2])
def test_matches_torch(stride, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 10, 9, 64)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    expected = torch.nn.functional.conv2d(torch.from_numpy(nchw(x)), torch.from_numpy(oihw(w)),
                                          torch.from_numpy(b), stride, 1, 1, 16).numpy()
    y = convkit.conv2d(nchw(x), oihw(w), b, stride, 1, groups=16, layout="NCHW", algo="direct")
    assert_close(y, expected, np.float32)
