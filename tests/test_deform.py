"""deform_conv2d and bilinear_sample: against the float64 references, properties, errors, torchvision."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from helpers import assert_close, nchw, oihw
from reference import pads_of, pair
from reference_deform import bilinear_sample_ref, deform_conv2d_ref

ALGOS = ["direct", "im2col", "auto"]
DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]

# (N, H, W, Cin, Cout, (KH, KW), stride, padding, dilation, offset groups, weight groups)
CASES = [
    (1, 5, 5, 1, 1, (3, 3), 1, 0, 1, 1, 1),                 # one channel
    (1, 7, 6, 3, 5, (3, 2), 1, 1, 1, 1, 1),                 # non-square input and kernel, odd channels
    (3, 6, 7, 4, 6, (3, 3), 2, 1, 1, 2, 1),                 # batch 3, stride 2, offset groups 2
    (1, 8, 9, 4, 6, (3, 3), 1, 2, 2, 1, 2),                 # dilation 2, weight groups 2
    (2, 7, 8, 6, 3, (2, 3), (2, 1), (1, 2), (1, 2), 2, 3),  # offset groups cut across weight groups
    (1, 6, 6, 4, 20, (3, 3), 1, 1, 1, 4, 1),                # > one output-channel block, 4 offset groups
    (1, 6, 7, 4, 4, (3, 3), 1, "same", 1, 2, 2),
    (1, 5, 6, 3, 4, (4, 4), 2, "same", 1, 1, 1),            # SAME, stride 2: asymmetric padding
    (0, 5, 5, 2, 3, (3, 3), 1, 1, 1, 1, 1),                 # empty batch
    (1, 3, 20, 3, 5, (1, 1), 1, 0, 1, 3, 1),                # 1x1, a row of several pixel tiles
    (1, 6, 6, 8, 40, (3, 3), 1, 1, 1, 2, 1),                # three output-channel blocks, one partial
]


def _geometry(case):
    """(stride, dilation, pads (top, bottom, left, right), (Hout, Wout)) of a case, from the formulas."""
    n, h, w, cin, cout, k, stride, padding, dilation, g_off, groups = case
    s, d = pair(stride), pair(dilation)
    pads = pads_of(padding, (h, w), k, stride, dilation)
    out = tuple((size + pads[2 * a] + pads[2 * a + 1] - d[a] * (k[a] - 1) - 1) // s[a] + 1
                for a, size in enumerate((h, w)))
    return s, d, tuple(pads), out


def _inputs(case, dtype, masked, seed=0):
    """NHWC inputs: offsets of ~2 pixels, some of them whole numbers, and a mask in [0, 1]."""
    n, h, w, cin, cout, k, stride, padding, dilation, g_off, groups = case
    rng = np.random.default_rng(seed)
    _, _, _, (hout, wout) = _geometry(case)
    taps = k[0] * k[1]
    offset = rng.uniform(-3, 3, (n, hout, wout, 2 * g_off * taps))
    whole = rng.random(offset.shape) < 0.2
    offset[whole] = np.round(offset[whole])
    return dict(
        x=rng.standard_normal((n, h, w, cin)).astype(dtype),
        offset=offset.astype(dtype),
        weight=rng.standard_normal((k[0], k[1], cin // groups, cout)).astype(dtype),
        bias=rng.standard_normal(cout).astype(dtype),
        mask=rng.uniform(0, 1, (n, hout, wout, g_off * taps)).astype(dtype) if masked else None,
    )


def _reference(case, inp):
    s, d, pads, _ = _geometry(case)
    return deform_conv2d_ref(inp["x"], inp["offset"], inp["weight"], inp["bias"], s, (pads[0], pads[2]), d,
                             inp["mask"])


@functools.lru_cache(maxsize=None)
def _expected(index, dtype, masked):
    case = CASES[index]
    return _reference(case, _inputs(case, dtype, masked))


def _call(case, inp, layout="NHWC", **kwargs):
    """convkit.deform_conv2d on NHWC inputs given in ``layout``; the result back in NHWC."""
    _, _, _, _, _, _, stride, padding, dilation, _, _ = case
    if layout == "NHWC":
        return convkit.deform_conv2d(inp["x"], inp["offset"], inp["weight"], inp["bias"], stride, padding,
                                     dilation, inp["mask"], **kwargs)
    mask = None if inp["mask"] is None else nchw(inp["mask"])
    y = convkit.deform_conv2d(nchw(inp["x"]), nchw(inp["offset"]), oihw(inp["weight"]), inp["bias"],
                              stride, padding, dilation, mask, layout="NCHW", **kwargs)
    assert y.flags.c_contiguous
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[str(c) for c in CASES])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("masked", [False, True], ids=["dcnv1", "dcnv2"])
def test_deform_conv2d_matches_reference(index, algo, dtype, layout, masked):
    case = CASES[index]
    y = _call(case, _inputs(case, dtype, masked), layout, algo=algo)
    assert y.flags.c_contiguous or y.size == 0
    assert_close(y, _expected(index, dtype, masked), dtype)


@pytest.mark.parametrize("index", [1, 2, 4, 7], ids=lambda i: str(CASES[i]))
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mask_one", [False, True], ids=["no-mask", "mask-1"])
def test_zero_offsets_equal_conv2d(index, algo, dtype, layout, mask_one):
    case = CASES[index]
    _, _, _, _, _, _, stride, padding, dilation, _, groups = case
    inp = _inputs(case, dtype, mask_one)
    inp["offset"][...] = 0
    if mask_one:
        inp["mask"][...] = 1
    expected = convkit.conv2d(inp["x"], inp["weight"], inp["bias"], stride, padding, dilation, groups)
    assert_close(_call(case, inp, layout, algo=algo), expected, dtype)


def _shift(x, dy, dx):
    """x[:, h + dy, w + dx] with zeros where that falls outside the image."""
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    out[:, max(-dy, 0):min(h - dy, h), max(-dx, 0):min(w - dx, w)] = \
        x[:, max(dy, 0):min(h + dy, h), max(dx, 0):min(w + dx, w)]
    return out


@pytest.mark.parametrize("shift", [(0, 1), (-2, 1), (3, -4), (1, 7)])
@pytest.mark.parametrize("index", [2, 3, 5], ids=lambda i: str(CASES[i]))
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_offsets_equal_shifted_conv2d(shift, index, algo, dtype):
    """Every tap moved by the same whole (dy, dx): a convolution of the zero-padded input shifted by it."""
    case = CASES[index]
    _, _, _, _, _, _, stride, _, dilation, _, groups = case
    _, _, pads, _ = _geometry(case)
    inp = _inputs(case, dtype, False)
    inp["offset"][..., 0::2] = shift[0]
    inp["offset"][..., 1::2] = shift[1]
    padded = np.pad(inp["x"], ((0, 0), pads[:2], pads[2:], (0, 0)))
    expected = convkit.conv2d(_shift(padded, *shift), inp["weight"], inp["bias"], stride, 0, dilation, groups)
    assert_close(_call(case, inp, algo=algo), expected, dtype)


NON_FINITE = [np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38, -3e38, 1e15]


@pytest.mark.parametrize("index", [2, 4], ids=lambda i: str(CASES[i]))
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True], ids=["dcnv1", "dcnv2"])
def test_non_finite_and_huge_offsets_sample_zero(index, algo, dtype, masked):
    """Such a sample contributes exactly what a zero mask at that tap would: nothing."""
    case = CASES[index]
    inp = _inputs(case, dtype, masked)
    rng = np.random.default_rng(1)
    n, hout, wout, oc = inp["offset"].shape
    bad = rng.random((n, hout, wout, oc // 2)) < 0.4   # per (pixel, offset group, tap)
    coord = rng.integers(0, 2, bad.shape)               # dy or dx
    values = rng.choice(NON_FINITE, bad.shape)
    pairs = inp["offset"].reshape(n, hout, wout, oc // 2, 2)
    for which in (0, 1):
        sel = bad & (coord == which)
        pairs[..., which][sel] = values[sel].astype(dtype)
    y = _call(case, inp, algo=algo)
    assert np.isfinite(y).all()
    assert_close(y, _reference(case, inp), dtype)
    # The same as finite offsets with the mask zeroed at those taps.
    zeroed = dict(inp, offset=np.where(np.isfinite(inp["offset"]) & (np.abs(inp["offset"]) < 1e6),
                                       inp["offset"], 0).astype(dtype))
    mask = np.ones(bad.shape, dtype) if inp["mask"] is None else inp["mask"].copy()
    mask[bad] = 0
    zeroed["mask"] = mask
    assert_close(y, _call(case, zeroed, algo=algo), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bilinear_sample_matches_reference(dtype, layout):
    rng = np.random.default_rng(2)
    n, h, w, c = 2, 5, 7, 3
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    special = [(-1, 2), (-0.999, 2), (2, -1), (2, -0.5), (h - 1, w - 1), (h - 0.5, 3), (h - 0.001, 3),
               (h, 3), (3, w), (3, w - 1e-3), (0, 0), (np.nan, 1), (1, np.inf), (-np.inf, 1), (1e30, -1e30),
               (3e38, 2), (2.5, 3.25)]
    points = np.concatenate([rng.uniform(-2, max(h, w) + 1, (n, 40, 2)),
                             np.broadcast_to(np.array(special, float), (n, len(special), 2))], axis=1)
    points = points.astype(dtype)
    got = convkit.bilinear_sample(x if layout == "NHWC" else nchw(x), points, layout=layout)
    assert got.shape == (n, points.shape[1], c)
    assert_close(got, bilinear_sample_ref(x, points), dtype)


def test_bilinear_sample_at_pixel_centres_reads_pixels():
    x = np.random.default_rng(3).standard_normal((1, 4, 6, 5))
    hh, ww = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    points = np.stack([hh.ravel(), ww.ravel()], axis=1)[None].astype(float)
    np.testing.assert_array_equal(convkit.bilinear_sample(x, points), x.reshape(1, 24, 5))


@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_small_tiles(monkeypatch, algo):
    """Several im2col tiles and several direct chunks per row give the same result."""
    monkeypatch.setattr(convkit.deform, "IM2COL_WORKSPACE_BYTES", 1000)
    monkeypatch.setattr(convkit.deform, "DIRECT_TILE_BYTES", 1000)
    index = 9  # 1x1 over 3 x 20 pixels, 3 offset groups
    assert_close(_call(CASES[index], _inputs(CASES[index], np.float64, True), algo=algo),
                 _expected(index, np.float64, True), np.float64)


def test_auto_rule():
    assert convkit.deform.choose_algorithm((3, 3), 256, 256, 4) == "direct"      # 2.25 MiB of weights
    assert convkit.deform.choose_algorithm((3, 3), 512, 512, 4) == "im2col"      # 9 MiB
    assert convkit.deform.choose_algorithm((3, 3), 256, 256, 8) == "direct"      # 4.5 MiB
    assert convkit.deform.choose_algorithm((3, 3), 512, 512, 8) == "im2col"


@pytest.mark.parametrize("threshold, used", [(0, "im2col"), (1 << 30, "direct")])
def test_auto_runs_the_chosen_algorithm(monkeypatch, threshold, used):
    monkeypatch.setattr(convkit.deform, "AUTO_IM2COL_WEIGHT_BYTES", threshold)
    calls = []
    for name in ("direct", "im2col"):
        real = getattr(convkit.deform, f"_deform_conv_{name}")
        monkeypatch.setattr(convkit.deform, f"_deform_conv_{name}",
                            lambda *a, _real=real, _name=name: (calls.append(_name), _real(*a)))
    y = _call(CASES[2], _inputs(CASES[2], np.float64, True), algo="auto")
    assert calls == [used]
    assert_close(y, _expected(2, np.float64, True), np.float64)


@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_thread_counts_agree(algo):
    case = CASES[2]
    inp = _inputs(case, np.float32, True)
    one = _call(case, inp, algo=algo, num_threads=1)
    np.testing.assert_array_equal(_call(case, inp, algo=algo, num_threads=3), one)


def test_non_contiguous_and_read_only_inputs():
    case = CASES[2]
    inp = _inputs(case, np.float64, True)
    views = {k: np.asfortranarray(v) for k, v in inp.items()}
    for v in views.values():
        v.flags.writeable = False
    assert_close(_call(case, views), _expected(2, np.float64, True), np.float64)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_batch_shape(layout):
    inp = _inputs(CASES[8], np.float32, True)
    y = _call(CASES[8], inp, layout)
    assert y.shape == (0, 5, 5, 3)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_geometry_matches_reference(data):
    draw = data.draw
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, dilation, padding = (tuple(draw(st.integers(lo, hi)) for _ in range(2))
                                 for lo, hi in ((1, 2), (1, 2), (0, 2)))
    g_off, groups = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2]))
    cin = g_off * groups * draw(st.integers(1, 2))
    size = [draw(st.integers(max(1, d * (kk - 1) + 1 - 2 * p), 8)) for d, kk, p in zip(dilation, k, padding)]
    case = (draw(st.integers(1, 2)), size[0], size[1], cin, groups * draw(st.integers(1, 3)), k, stride,
            padding, dilation, g_off, groups)
    inp = _inputs(case, np.float64, draw(st.booleans()), seed=draw(st.integers(0, 99)))
    y = _call(case, inp, draw(st.sampled_from(LAYOUTS)), algo=draw(st.sampled_from(ALGOS)))
    assert_close(y, _reference(case, inp), np.float64)


# --- bad inputs ---------------------------------------------------------------------------------

def _good():
    x = np.zeros((2, 6, 6, 4))
    return dict(x=x, offset=np.zeros((2, 6, 6, 36)), weight=np.zeros((3, 3, 2, 6)), bias=np.zeros(6),
                padding=1, mask=np.zeros((2, 6, 6, 18)))


BAD = [
    ("offset spatial", dict(offset=np.zeros((2, 5, 6, 36))), ValueError, "offset", "(2, 6, 6, 18*G)"),
    ("offset batch", dict(offset=np.zeros((1, 6, 6, 36))), ValueError, "offset", "got (1, 6, 6, 36)"),
    ("offset channels", dict(offset=np.zeros((2, 6, 6, 20))), ValueError, "offset", "18*G"),
    ("offset no channels", dict(offset=np.zeros((2, 6, 6, 0))), ValueError, "offset", "18*G"),
    ("offset ndim", dict(offset=np.zeros((2, 6, 6))), ValueError, "offset", "4-D"),
    ("offset groups", dict(offset=np.zeros((2, 6, 6, 54)), mask=np.zeros((2, 6, 6, 27))), ValueError,
     "offset", "divide the input channels 4, got G=3"),
    ("mask channels", dict(mask=np.zeros((2, 6, 6, 9))), ValueError, "mask", "(2, 6, 6, 18)"),
    ("mask spatial", dict(mask=np.zeros((2, 6, 5, 18))), ValueError, "mask", "got (2, 6, 5, 18)"),
    ("weight groups", dict(weight=np.zeros((3, 3, 3, 6))), ValueError, "weight", "input channels 4"),
    ("weight no channels", dict(weight=np.zeros((3, 3, 0, 6))), ValueError, "weight", "got 0"),
    ("cout vs groups", dict(weight=np.zeros((3, 3, 1, 6))), ValueError, "weight", "output channels 6"),
    ("bias shape", dict(bias=np.zeros(5)), ValueError, "bias", "(6,)"),
    ("offset dtype", dict(offset=np.zeros((2, 6, 6, 36), np.float32)), TypeError, "offset", "float64"),
    ("mask dtype", dict(mask=np.zeros((2, 6, 6, 18), np.float32)), TypeError, "mask", "float64"),
    ("weight dtype", dict(weight=np.zeros((3, 3, 2, 6), np.float32)), TypeError, "weight", "float64"),
    ("bias dtype", dict(bias=np.zeros(6, np.float32)), TypeError, "bias", "float64"),
    ("x int", dict(x=np.zeros((2, 6, 6, 4), np.int32)), TypeError, "x", "int32"),
    ("offset list", dict(offset=[[0.0]]), TypeError, "offset", "list"),
    ("output empty", dict(padding=-1), ValueError, "padding", "-1"),
]


@pytest.mark.parametrize("what, change, exc, name, detail", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs(what, change, exc, name, detail):
    args = dict(_good(), **change)
    with pytest.raises(exc) as info:
        convkit.deform_conv2d(args["x"], args["offset"], args["weight"], args["bias"], padding=args["padding"],
                              mask=args["mask"])
    assert name in str(info.value) and detail in str(info.value), str(info.value)


def test_bad_offset_shape_named_in_nchw_order():
    args = _good()
    with pytest.raises(ValueError, match=r"expected offset to have shape \(2, 18\*G, 6, 6\)"):
        convkit.deform_conv2d(nchw(args["x"]), np.zeros((2, 36, 6, 5)), oihw(args["weight"]), padding=1,
                              layout="NCHW")


@pytest.mark.parametrize("kwargs, name", [(dict(algo="fast"), "algo"), (dict(layout="HWC"), "layout"),
                                          (dict(num_threads=0), "num_threads"), (dict(stride=0), "stride")])
def test_bad_options(kwargs, name):
    args = _good()
    with pytest.raises(ValueError, match=name):
        convkit.deform_conv2d(args["x"], args["offset"], args["weight"], padding=1, **kwargs)


@pytest.mark.parametrize("points, exc, detail", [
    (np.zeros((2, 3, 3)), ValueError, "(2, P, 2)"),
    (np.zeros((1, 3, 2)), ValueError, "(2, P, 2)"),
    (np.zeros((2, 3)), ValueError, "3-D"),
    (np.zeros((2, 3, 2), np.float32), TypeError, "float64"),
])
def test_bilinear_sample_bad_points(points, exc, detail):
    with pytest.raises(exc, match="points") as info:
        convkit.bilinear_sample(np.zeros((2, 4, 4, 3)), points)
    assert detail in str(info.value)


# --- torchvision ----------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [1, 2, 3, 4, 5, 6], ids=lambda i: str(CASES[i]))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True], ids=["dcnv1", "dcnv2"])
@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_matches_torchvision(index, dtype, masked, algo):
    tv = pytest.importorskip("torchvision")
    import torch
    case = CASES[index]
    _, _, _, _, _, _, stride, padding, dilation, _, _ = case
    s, d, pads, _ = _geometry(case)
    if pads[0] != pads[1] or pads[2] != pads[3]:
        pytest.skip("torchvision pads symmetrically")
    inp = _inputs(case, dtype, masked)
    t = {k: None if v is None else torch.from_numpy(nchw(v) if v.ndim == 4 else v) for k, v in inp.items()}
    t["weight"] = torch.from_numpy(oihw(inp["weight"]))
    expected = tv.ops.deform_conv2d(t["x"], t["offset"], t["weight"], t["bias"], s, (pads[0], pads[2]), d,
                                    t["mask"]).numpy()
    assert_close(_call(case, inp, "NCHW", algo=algo), expected.transpose(0, 2, 3, 1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bilinear_sample_matches_torchvision(dtype):
    """A 1x1 deformable convolution with identity weights is bilinear sampling at (oy + dy, ox + dx)."""
    tv = pytest.importorskip("torchvision")
    import torch
    rng = np.random.default_rng(4)
    n, h, w, c = 2, 5, 6, 3
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    offset = rng.uniform(-3, 3, (n, 2, h, w))
    offset[:, :, 0, :3] = [[-1, -0.999, 5 - 1e-3], [0, 0, 0]]                # y on and near the edges
    offset[:, :, 1, :3] = [[0, 0, 0], [-1, 6, 5 - 1e-3]]                     # x on and past the edges
    offset = offset.astype(dtype)
    eye = torch.eye(c, dtype=torch.float32 if dtype == np.float32 else torch.float64)[:, :, None, None]
    expected = tv.ops.deform_conv2d(torch.from_numpy(nchw(x)), torch.from_numpy(offset), eye).numpy()
    oy, ox = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    points = np.stack([oy + offset[:, 0], ox + offset[:, 1]], axis=-1).reshape(n, h * w, 2).astype(dtype)
    got = convkit.bilinear_sample(x, points)
    assert_close(got, expected.transpose(0, 2, 3, 1).reshape(n, h * w, c), dtype)


@pytest.mark.parametrize("algo", ALGOS)
def test_empty_image_with_padding_samples_zero(algo):
    """H = 0 with padding still has outputs; every sample is outside the image, so y = bias."""
    x = np.zeros((1, 0, 3, 2))
    y = convkit.deform_conv2d(x, np.full((1, 2, 5, 2), 0.5), np.ones((1, 1, 2, 3)), np.arange(3.0), padding=1,
                              algo=algo)
    np.testing.assert_array_equal(y, np.broadcast_to(np.arange(3.0), (1, 2, 5, 3)))
