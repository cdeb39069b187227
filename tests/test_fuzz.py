"""Differential fuzzing: every public kernel against the float64 references of tests/, and the invariants
between kernels (direct == im2col == auto, adjoints, zero-offset deformable == conv2d, NHWC == NCHW,
thread-count independence).

Hypothesis profiles (tests/conftest.py): ``CONVKIT_FUZZ=ci`` (default; few examples per test, derandomised
so CI is reproducible) and ``CONVKIT_FUZZ=long`` (many random examples).  Add
``--hypothesis-show-statistics`` to see how many examples each test ran.

Values are standard normal times 2**e (e drawn per array, so magnitudes from 2**-30 to 2**30 in float32 and
2**-200 to 2**200 in float64), with -0.0 and elements 2**20 times larger and 2**-30 times smaller mixed in;
data-movement kernels (im2col, max pooling, bilinear offsets) also get NaN and infinities.

Tolerance (``assert_within``): a sum of ``k`` products rounded in a precision with unit roundoff ``eps`` is off
by at most about ``k * eps * sum |products|``, so each output element is compared with the reference within
``8 * eps * ((k + 1) * bound + |expected|)``, where ``bound`` is the same reference evaluated on absolute values.
That is elementwise and scale-free: a wrong tap or index in a region of tiny values is caught even next to
huge ones.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from helpers import nchw, oihw
from reference import conv2d_ref, im2col_ref, output_size, pads_of, pair
from reference_deform import bilinear_sample_ref, deform_conv2d_ref
from reference_grad import conv2d_input_ref, conv2d_weight_ref
from reference_transpose import conv_transpose2d_ref
from reference_units import (activation_ref, avg_pool_ref, batch_norm_ref, batch_stats_ref,
                             linear_ref, max_pool_ref)

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]
ALGOS = ["direct", "im2col", "auto"]
EXPONENT = {np.float32: 30, np.float64: 200}   # |e| of the 2**e scale of drawn arrays
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", ("leaky_relu", 0.3), "elu", ("elu", 0.7),
               "sigmoid", "tanh"]


def fraction(share):
    """Settings running ``share`` of the profile's examples (slow references get fewer)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * share)))


# --- strategies ----------------------------------------------------------------------------------

dtypes = st.sampled_from(DTYPES)
layouts = st.sampled_from(LAYOUTS)
small_pair = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
paddings = st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 2)),
                     st.sampled_from(["same", "valid"]))


@st.composite
def arrays(draw, shape, dtype, special=True, nonfinite=False, exponent=None):
    """Normal values times 2**e (|e| <= ``exponent``, default EXPONENT), with -0.0, much larger and much
    smaller elements (and NaN/inf) mixed in."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    e = draw(st.integers(-(exponent or EXPONENT[dtype]), exponent or EXPONENT[dtype]))
    a = rng.standard_normal(shape) * 2.0**e
    if special and a.size:
        kind = rng.integers(0, 10, shape)
        a[kind == 0] = -0.0
        a[kind == 1] *= 2.0**20
        a[kind == 2] *= 2.0**-30
        if nonfinite:
            a[kind == 3] = np.nan
            a[kind == 4] = np.inf
            a[kind == 5] = -np.inf
    return a.astype(dtype)


@st.composite
def geometries(draw, max_size=7, max_kernel=4):
    """Batch, image size, kernel, stride, padding, dilation; ``out`` is None when the kernel does not fit."""
    n = draw(st.integers(0, 2))
    size = (draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride, dilation, padding = draw(small_pair), draw(small_pair), draw(paddings)
    s, d = pair(stride), pair(dilation)
    pads = pads_of(padding, size, kernel, s, d)
    out = tuple(output_size(size[a], kernel[a], s[a], pads[2 * a], pads[2 * a + 1], d[a]) for a in range(2))
    return dict(n=n, size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                s=s, d=d, pads=pads, out=out if min(out) > 0 else None)


@st.composite
def channel_groups(draw):
    """(Cin, Cout, groups): dense, grouped (incl. more groups than a vector has lanes) or depthwise."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if kind == "dense":
        return draw(st.integers(1, 6)), draw(st.integers(1, 20)), 1
    if kind == "grouped":
        g = draw(st.integers(2, 10))
        return g * draw(st.integers(1, 3)), g * draw(st.integers(1, 18)), g
    c = draw(st.integers(1, 20))
    return c, c * draw(st.integers(1, 3)), c


# --- comparison ----------------------------------------------------------------------------------

def assert_within(actual, expected, bound, dtype, terms):
    """Elementwise |actual - expected| <= 8 eps ((terms + 1) bound + |expected|) (see the module doc)."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.dtype(dtype), actual.dtype
    eps = np.finfo(dtype).eps
    tol = 8 * eps * ((terms + 1) * np.asarray(bound, np.float64) + np.abs(expected))
    err = np.abs(actual.astype(np.float64) - expected)
    bad = ~(err <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} of {bad.size} elements off; first at {i}: got {actual[i]!r}, "
                             f"expected {expected[i]!r}, tolerance {tol[i]:.3g}")


def assert_same_values(actual, expected):
    """Exactly the expected values (NaN where NaN), with the sign of every zero."""
    expected = np.asarray(expected).astype(actual.dtype)
    np.testing.assert_array_equal(actual, expected)
    assert np.array_equal(np.signbit(actual), np.signbit(expected))


def in_layout(a, layout):
    return a if layout == "NHWC" else nchw(a)


def from_layout(a, layout):
    return a if layout == "NHWC" else np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def weight_in_layout(w, layout):
    return w if layout == "NHWC" else oihw(w)


def act_ref(y, activation):
    if activation is None:
        return y
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    return activation_ref(y, name, param)


# --- conv2d ----------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    geo = draw(geometries())
    cin, cout, groups = draw(channel_groups())
    dtype = draw(dtypes)
    kh, kw = geo["kernel"]
    x = draw(arrays((geo["n"], *geo["size"], cin), dtype))
    w = draw(arrays((kh, kw, cin // groups, cout), dtype))
    b = draw(st.one_of(st.none(), arrays((cout,), dtype)))
    return geo, groups, dtype, x, w, b


def conv_expected(geo, groups, x, w, b, activation=None):
    args = dict(stride=geo["s"], pads=geo["pads"], dilation=geo["d"], groups=groups)
    y = conv2d_ref(x, w, b, **args)
    bound = conv2d_ref(np.abs(x), np.abs(w), None if b is None else np.abs(b), **args)
    return act_ref(y, activation), bound, w.shape[0] * w.shape[1] * w.shape[2] + 1


def call_conv(geo, groups, x, w, b, layout="NHWC", **kwargs):
    y = convkit.conv2d(in_layout(x, layout), weight_in_layout(w, layout), b, geo["stride"], geo["padding"],
                       geo["dilation"], groups, layout=layout, **kwargs)
    return from_layout(y, layout)


@given(case=conv_cases(), layout=layouts, activation=st.sampled_from(ACTIVATIONS),
       threads=st.integers(1, 3))
def test_conv2d_every_algorithm_matches_reference(case, layout, activation, threads):
    geo, groups, dtype, x, w, b = case
    if geo["out"] is None:
        for algo in ALGOS:
            with pytest.raises(ValueError, match="non-empty output"):
                call_conv(geo, groups, x, w, b, layout, algo=algo)
        return
    expected, bound, terms = conv_expected(geo, groups, x, w, b, activation)
    results = {algo: call_conv(geo, groups, x, w, b, layout, algo=algo, activation=activation,
                               num_threads=threads) for algo in ALGOS}
    for algo, y in results.items():
        assert_within(y, expected, bound, dtype, terms)
    assert_within(results["direct"], results["im2col"].astype(np.float64), 2 * bound, dtype, terms)
    assert_within(results["auto"], results["direct"].astype(np.float64), 2 * bound, dtype, terms)


@given(case=conv_cases(), algo=st.sampled_from(ALGOS))
def test_conv2d_layouts_and_thread_counts_agree(case, algo):
    geo, groups, dtype, x, w, b = case
    if geo["out"] is None:
        return
    _, bound, terms = conv_expected(geo, groups, x, w, b)
    base = call_conv(geo, groups, x, w, b, "NHWC", algo=algo, num_threads=1)
    for layout, threads in (("NCHW", 1), ("NHWC", 2), ("NHWC", 3), ("NCHW", 2)):
        y = call_conv(geo, groups, x, w, b, layout, algo=algo, num_threads=threads)
        assert_within(y, base.astype(np.float64), 2 * bound, dtype, terms)


@st.composite
def winograd_cases(draw):
    """What ``algo="winograd"`` computes: 3x3, stride 1, dilation 1, groups 1, any padding; maps up to
    12 pixels a side, so F(2,3) and F(4,3) with partial tiles, and up to three channel blocks."""
    n = draw(st.integers(0, 2))
    size = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    padding = draw(paddings)
    pads = pads_of(padding, size, (3, 3), (1, 1), (1, 1))
    out = tuple(output_size(size[a], 3, 1, pads[2 * a], pads[2 * a + 1], 1) for a in range(2))
    geo = dict(n=n, size=size, kernel=(3, 3), stride=1, padding=padding, dilation=1, s=(1, 1), d=(1, 1),
               pads=pads, out=out if min(out) > 0 else None)
    cin, cout, dtype = draw(st.integers(1, 20)), draw(st.integers(1, 40)), draw(dtypes)
    x = draw(arrays((n, *size, cin), dtype))
    w = draw(arrays((3, 3, cin, cout), dtype))
    b = draw(st.one_of(st.none(), arrays((cout,), dtype)))
    return geo, 1, dtype, x, w, b


#: Winograd's error is not bounded per output by that output's own products: the transforms mix a tile's
#: 6x6 inputs with all 9 taps, by constants up to 8 (F(4,3)), and cancel exactly only in exact arithmetic.
#: The test bounds it by max |x| times the largest sum of |w| over one output channel instead, with this
#: growth factor for the transforms.
WINOGRAD_GROWTH = 512


@given(case=winograd_cases(), layout=layouts, activation=st.sampled_from(ACTIVATIONS),
       threads=st.integers(1, 3))
def test_conv2d_winograd_matches_reference(case, layout, activation, threads):
    geo, groups, dtype, x, w, b = case
    if geo["out"] is None:
        with pytest.raises(ValueError, match="non-empty output"):
            call_conv(geo, groups, x, w, b, layout, algo="winograd")
        return
    expected, bound, terms = conv_expected(geo, groups, x, w, b, activation)
    y = call_conv(geo, groups, x, w, b, layout, algo="winograd", activation=activation, num_threads=threads)
    scale = np.abs(x).max(initial=0.0) * np.abs(w).astype(np.float64).sum(axis=(0, 1, 2)).max()
    scale += 0.0 if b is None else np.abs(b).max()
    # every activation here changes values by at most the change of its input (Lipschitz 1)
    assert_within(y, expected, np.full(expected.shape, WINOGRAD_GROWTH * scale), dtype, terms)


# --- conv_transpose2d -------------------------------------------------------------------------------

@st.composite
def transpose_cases(draw):
    n, size = draw(st.integers(0, 2)), (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s, d, p = draw(small_pair), draw(small_pair), draw(st.one_of(st.integers(0, 3), st.tuples(
        st.integers(0, 3), st.integers(0, 3))))
    s, d, p = pair(s), pair(d), pair(p)
    op = tuple(draw(st.integers(0, max(sa, da))) for sa, da in zip(s, d))   # max(s, d) itself is invalid
    cin, cout, groups = draw(channel_groups())
    dtype = draw(dtypes)
    x = draw(arrays((n, *size, cin), dtype))
    w = draw(arrays((*kernel, cout // groups, cin), dtype))
    b = draw(st.one_of(st.none(), arrays((cout,), dtype)))
    return dict(s=s, d=d, p=p, op=op, groups=groups, dtype=dtype, x=x, w=w, b=b)


def transpose_weight_in_layout(w, layout):
    """(KH, KW, Cout/g, Cin) -> PyTorch's (Cin, Cout/g, KH, KW) for NCHW."""
    return w if layout == "NHWC" else np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def call_transpose(c, layout="NHWC", **kwargs):
    y = convkit.conv_transpose2d(in_layout(c["x"], layout), transpose_weight_in_layout(c["w"], layout), c["b"],
                                 c["s"], c["p"], c["op"], c["groups"], c["d"], layout=layout, **kwargs)
    return from_layout(y, layout)


@given(c=transpose_cases(), layout=layouts, threads=st.integers(1, 3))
def test_conv_transpose2d_every_algorithm_matches_reference(c, layout, threads):
    size, kernel = c["x"].shape[1:3], c["w"].shape[:2]
    out = [(size[a] - 1) * c["s"][a] - 2 * c["p"][a] + c["d"][a] * (kernel[a] - 1) + c["op"][a] + 1
           for a in range(2)]
    # (PyTorch: an empty batch may have an empty output, not a negative one)
    if any(op >= max(s, d) for op, s, d in zip(c["op"], c["s"], c["d"])) or min(out) < (c["x"].shape[0] > 0):
        for algo in ("col2im", "direct", "auto"):
            with pytest.raises(ValueError):
                call_transpose(c, layout, algo=algo)
        return
    args = (c["s"], c["p"], c["op"], c["d"], c["groups"])
    expected = conv_transpose2d_ref(c["x"], c["w"], c["b"], *args)
    bound = conv_transpose2d_ref(np.abs(c["x"]), np.abs(c["w"]), None if c["b"] is None else np.abs(c["b"]),
                                 *args)
    terms = kernel[0] * kernel[1] * c["x"].shape[3] // c["groups"] + 1
    results = {algo: call_transpose(c, layout, algo=algo, num_threads=threads)
               for algo in ("col2im", "direct", "auto")}
    for y in results.values():
        assert_within(y, expected, bound, c["dtype"], terms)
    assert_within(results["direct"], results["col2im"].astype(np.float64), 2 * bound, c["dtype"], terms)


@given(case=conv_cases(), layout=layouts, algo=st.sampled_from(["col2im", "direct", "auto"]), data=st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case, layout, algo, data):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)> with the same weight array, in both layouts."""
    geo, groups, dtype, x, w, _ = case
    if geo["out"] is None or isinstance(geo["padding"], str):
        return
    p = pair(geo["padding"])
    op = tuple((size + 2 * pa - d * (k - 1) - 1) % s
               for size, pa, d, k, s in zip(geo["size"], p, geo["d"], geo["kernel"], geo["s"]))
    y = data.draw(arrays((geo["n"], *geo["out"], w.shape[3]), dtype))
    wl = weight_in_layout(w, layout)   # conv2d's weight is also the transposed convolution's
    forward = from_layout(convkit.conv2d(in_layout(x, layout), wl, None, geo["s"], p, geo["d"], groups,
                                         layout=layout), layout)
    back = from_layout(convkit.conv_transpose2d(in_layout(y, layout), wl, None, geo["s"], p, op, groups,
                                                geo["d"], layout=layout, algo=algo), layout)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    lhs, rhs = np.vdot(forward.astype(np.float64), yd), np.vdot(xd, back.astype(np.float64))
    _, bound, terms = conv_expected(geo, groups, x, w, None)
    scale = np.vdot(bound, np.abs(yd))
    assert abs(lhs - rhs) <= 16 * np.finfo(dtype).eps * (terms + 1) * scale


# --- gradients -------------------------------------------------------------------------------------

@given(case=conv_cases(), layout=layouts, threads=st.integers(1, 3), data=st.data())
def test_conv2d_gradients_match_reference(case, layout, threads, data):
    """convkit.grad.conv2d_input / conv2d_weight against the float64 references, every geometry conv2d takes."""
    geo, groups, dtype, x, w, _ = case
    if geo["out"] is None:
        return
    go = data.draw(arrays((geo["n"], *geo["out"], w.shape[3]), dtype))
    args = (geo["s"], geo["pads"], geo["d"], groups)
    kwargs = dict(stride=geo["stride"], padding=geo["padding"], dilation=geo["dilation"], groups=groups,
                  layout=layout, num_threads=threads)
    xl, wl, gol = in_layout(x, layout), weight_in_layout(w, layout), in_layout(go, layout)
    gx = from_layout(convkit.grad.conv2d_input(xl.shape, wl, gol, **kwargs), layout)
    assert_within(gx, conv2d_input_ref(go, w, x.shape, *args),
                  conv2d_input_ref(np.abs(go), np.abs(w), x.shape, *args), dtype, w.size // max(x.shape[3], 1) + 1)
    gw = convkit.grad.conv2d_weight(xl, wl.shape, gol, **kwargs)
    gw = gw if layout == "NHWC" else gw.transpose(2, 3, 1, 0)
    assert_within(gw, conv2d_weight_ref(x, go, w.shape[:2], *args),
                  conv2d_weight_ref(np.abs(x), np.abs(go), w.shape[:2], *args), dtype, go[..., 0].size + 1)


# --- im2col / col2im -------------------------------------------------------------------------------

def im2col_layout(cols, n, out, kernel, c, layout):
    """The NHWC reference matrix in ``layout``'s form ((N, C*KH*KW, L) for NCHW, as torch's unfold)."""
    if layout == "NHWC":
        return cols
    length = out[0] * out[1]
    return cols.reshape(n, length, kernel[0], kernel[1], c).transpose(0, 4, 2, 3, 1).reshape(
        n, c * kernel[0] * kernel[1], length)


def col2im_ref(cols, n, size, c, geo):
    """The adjoint of im2col_ref, exactly: im2col_ref of an image of element numbers says which element
    each column entry copies (0 for padding), and col2im sums the entries per element."""
    numbers = np.arange(1, n * size[0] * size[1] * c + 1, dtype=np.float64).reshape(n, *size, c)
    source = im2col_ref(numbers, geo["kernel"], geo["s"], geo["pads"], geo["d"]).astype(np.int64)
    sums = np.bincount(source.ravel(), weights=cols.ravel(), minlength=numbers.size + 1)
    return sums[1:].reshape(numbers.shape)


@given(geo=geometries(), c=st.integers(1, 5), dtype=dtypes, layout=layouts, data=st.data())
def test_im2col_copies_exactly(geo, c, dtype, layout, data):
    x = data.draw(arrays((geo["n"], *geo["size"], c), dtype, nonfinite=True))
    args = (geo["kernel"], geo["stride"], geo["padding"], geo["dilation"])
    if geo["out"] is None:
        with pytest.raises(ValueError, match="non-empty output"):
            convkit.im2col(in_layout(x, layout), *args, layout=layout)
        return
    cols = convkit.im2col(in_layout(x, layout), *args, layout=layout,
                          num_threads=data.draw(st.integers(1, 3)))
    expected = im2col_ref(x, geo["kernel"], geo["s"], geo["pads"], geo["d"])
    assert_same_values(cols, im2col_layout(expected, geo["n"], geo["out"], geo["kernel"], c, layout))


@given(geo=geometries(), c=st.integers(1, 5), dtype=dtypes, layout=layouts, data=st.data())
def test_col2im_is_the_adjoint_of_im2col(geo, c, dtype, layout, data):
    if geo["out"] is None:
        return
    kh, kw = geo["kernel"]
    rows = geo["n"] * geo["out"][0] * geo["out"][1]
    cols = data.draw(arrays((rows, kh * kw * c), dtype))
    x = data.draw(arrays((geo["n"], *geo["size"], c), dtype))
    args = (geo["size"], geo["kernel"], geo["stride"], geo["padding"], geo["dilation"])
    image = from_layout(convkit.col2im(im2col_layout(cols, geo["n"], geo["out"], geo["kernel"], c, layout),
                                       *args, layout=layout, num_threads=data.draw(st.integers(1, 3))),
                        layout)
    expected = col2im_ref(cols.astype(np.float64), geo["n"], geo["size"], c, geo)
    bound = col2im_ref(np.abs(cols.astype(np.float64)), geo["n"], geo["size"], c, geo)
    assert_within(image, expected, bound, dtype, kh * kw)
    # <im2col(x), cols> == <x, col2im(cols)>, both sides from the kernels.
    forward = convkit.im2col(x, geo["kernel"], geo["stride"], geo["padding"], geo["dilation"])
    lhs = np.dot(forward.astype(np.float64).ravel(), cols.astype(np.float64).ravel())
    rhs = np.dot(x.astype(np.float64).ravel(), image.astype(np.float64).ravel())
    scale = np.dot(np.abs(x.astype(np.float64)).ravel(), bound.ravel())
    assert abs(lhs - rhs) <= 8 * np.finfo(dtype).eps * (kh * kw + 1) * scale


# --- deformable convolution and bilinear sampling ---------------------------------------------------

@st.composite
def offsets(draw, shape, dtype):
    """Offsets of about two pixels, some whole, some far outside the image, NaN or infinite."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    off = rng.uniform(-3, 3, shape)
    kind = rng.integers(0, 12, shape)
    off[kind == 0] = np.round(off[kind == 0])
    off[kind == 1] = rng.choice([-1e3, 1e3, -1e30, 1e30], size=int((kind == 1).sum()))
    off[kind == 2] = np.nan
    off[kind == 3] = rng.choice([-np.inf, np.inf], size=int((kind == 3).sum()))
    off[kind == 4] = 0.0
    return off.astype(dtype)


@st.composite
def deform_cases(draw):
    geo = draw(geometries(max_size=6, max_kernel=3))
    g_off, groups = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2]))
    cin = g_off * groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 10))
    dtype = draw(dtypes)
    kh, kw = geo["kernel"]
    out = geo["out"] or (1, 1)
    x = draw(arrays((geo["n"], *geo["size"], cin), dtype))
    w = draw(arrays((kh, kw, cin // groups, cout), dtype))
    b = draw(st.one_of(st.none(), arrays((cout,), dtype)))
    off = draw(offsets((geo["n"], *out, 2 * g_off * kh * kw), dtype))
    mask = draw(st.one_of(st.none(), arrays((geo["n"], *out, g_off * kh * kw), dtype, special=False, exponent=8)))
    return geo, dtype, x, off, w, b, mask


def call_deform(geo, x, off, w, b, mask, layout="NHWC", **kwargs):
    y = convkit.deform_conv2d(in_layout(x, layout), in_layout(off, layout), weight_in_layout(w, layout), b,
                              geo["stride"], geo["padding"], geo["dilation"],
                              None if mask is None else in_layout(mask, layout), layout=layout, **kwargs)
    return from_layout(y, layout)


@fraction(0.5)
@given(case=deform_cases(), layout=layouts, threads=st.integers(1, 3))
def test_deform_conv2d_every_algorithm_matches_reference(case, layout, threads):
    geo, dtype, x, off, w, b, mask = case
    if geo["out"] is None:
        for algo in ALGOS:
            with pytest.raises(ValueError):
                call_deform(geo, x, off, w, b, mask, layout, algo=algo)
        return
    args = dict(stride=geo["s"], pads=(geo["pads"][0], geo["pads"][2]), dilation=geo["d"])
    expected = deform_conv2d_ref(x, off, w, b, mask=mask, **args)
    bound = deform_conv2d_ref(np.abs(x), off, np.abs(w), None if b is None else np.abs(b),
                              mask=None if mask is None else np.abs(mask), **args)
    terms = 4 * w.shape[0] * w.shape[1] * w.shape[2] + 4
    results = {algo: call_deform(geo, x, off, w, b, mask, layout, algo=algo, num_threads=threads)
               for algo in ALGOS}
    for y in results.values():
        assert_within(y, expected, bound, dtype, terms)
    assert_within(results["direct"], results["im2col"].astype(np.float64), 2 * bound, dtype, terms)


@given(case=conv_cases(), layout=layouts, algo=st.sampled_from(ALGOS), ones=st.booleans())
def test_deform_conv2d_with_zero_offsets_is_conv2d(case, layout, algo, ones):
    geo, groups, dtype, x, w, b = case
    if geo["out"] is None:
        return
    kh, kw = geo["kernel"]
    off = np.zeros((geo["n"], *geo["out"], 2 * kh * kw), dtype)
    mask = np.ones((geo["n"], *geo["out"], kh * kw), dtype) if ones else None
    _, bound, terms = conv_expected(geo, groups, x, w, b)
    y = call_deform(geo, x, off, w, b, mask, layout, algo=algo)
    assert_within(y, call_conv(geo, groups, x, w, b, layout, algo="direct").astype(np.float64),
                  2 * bound, dtype, terms)


@st.composite
def points(draw, shape, size, dtype):
    """(y, x) points: inside, on and just past the edges, far away, NaN and infinite."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = size
    p = np.stack([rng.uniform(-2, h + 1, shape), rng.uniform(-2, w + 1, shape)], axis=-1)
    kind = rng.integers(0, 12, p.shape)
    edges = np.array([-1.0, -1.0 + 1e-6, -0.5, 0.0, h - 1.0, h - 1e-6, h, h + 0.5], np.float64)
    p[kind == 0] = rng.choice(edges, size=int((kind == 0).sum()))
    p[kind == 1] = rng.choice([-1e30, 1e30, -2.0**62, 2.0**62], size=int((kind == 1).sum()))
    p[kind == 2] = np.nan
    p[kind == 3] = rng.choice([-np.inf, np.inf], size=int((kind == 3).sum()))
    p[kind == 4] = np.round(p[kind == 4])
    return p.astype(dtype)


@given(n=st.integers(0, 2), size=st.tuples(st.integers(1, 6), st.integers(1, 6)), c=st.integers(1, 20),
       p=st.integers(0, 30), dtype=dtypes, layout=layouts, threads=st.integers(1, 3), data=st.data())
def test_bilinear_sample_matches_reference(n, size, c, p, dtype, layout, threads, data):
    x = data.draw(arrays((n, *size, c), dtype))
    pts = data.draw(points((n, p), size, dtype))
    y = convkit.bilinear_sample(in_layout(x, layout), pts, layout=layout, num_threads=threads)
    assert_within(y, bilinear_sample_ref(x, pts), bilinear_sample_ref(np.abs(x), pts), dtype, 4)


# --- elementwise activations -----------------------------------------------------------------------

def element_arrays(dtype):
    from hypothesis.extra.numpy import array_shapes, arrays as np_arrays
    return np_arrays(dtype, array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                     elements=st.floats(width=np.finfo(dtype).bits, allow_nan=True, allow_infinity=True,
                                        allow_subnormal=True))


@st.composite
def activation_inputs(draw):
    dtype = draw(dtypes)
    x = draw(element_arrays(dtype))
    view = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    if view == "transposed" and x.ndim > 1:
        x = x.transpose(*reversed(range(x.ndim)))
    elif view == "strided" and x.ndim > 0:
        x = x[..., ::2]
    return dtype, x


@given(inp=activation_inputs(), name=st.sampled_from(["relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh"]),
       param=st.floats(0.0, 1.0), where=st.sampled_from(["new", "out", "in_place"]), threads=st.integers(1, 3))
def test_activations_match_reference(inp, name, param, where, threads):
    dtype, x = inp
    takes_param = name in ("leaky_relu", "elu")
    with np.errstate(invalid="ignore"):   # the reference's 0 * inf (slope 0) is NaN, as the kernel's
        expected = activation_ref(x, name, param if takes_param else None)
    fn = getattr(convkit, name)
    args = (param,) if takes_param else ()
    if where == "new":
        y = fn(x, *args, num_threads=threads)
    elif where == "out":
        out = np.full(x.shape, 7.0, dtype)
        y = fn(x, *args, out=out, num_threads=threads)
        assert y is out
    else:
        x = x.copy(order="K")
        y = fn(x, *args, out=x, num_threads=threads)
        assert y is x
    assert y.shape == x.shape and y.dtype == dtype
    tiny = np.finfo(dtype).tiny
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(y.astype(np.float64), expected, rtol=4 * np.finfo(dtype).eps,
                                   atol=tiny, equal_nan=True)


# --- pooling -----------------------------------------------------------------------------------------

@st.composite
def pool_cases(draw, dilated):
    n, c = draw(st.integers(0, 2)), draw(st.integers(1, 20))
    size = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), small_pair))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = draw(small_pair) if dilated else 1
    return n, size, c, kernel, stride, padding, dilation, draw(st.booleans())


@given(case=pool_cases(dilated=True), dtype=dtypes, layout=layouts, threads=st.integers(1, 3), data=st.data())
def test_max_pool2d_matches_reference_exactly(case, dtype, layout, threads, data):
    n, size, c, kernel, stride, padding, dilation, ceil = case
    x = data.draw(arrays((n, *size, c), dtype, nonfinite=True))
    expected = max_pool_ref(x, kernel, pair(stride or kernel), padding, pair(dilation), ceil)
    call = lambda: convkit.max_pool2d(in_layout(x, layout), kernel, stride, padding, dilation, ceil,
                                      layout=layout, num_threads=threads)
    if 0 in expected.shape[1:3]:
        with pytest.raises(ValueError, match="non-empty output"):
            call()
        return
    y = from_layout(call(), layout)
    np.testing.assert_array_equal(y, expected.astype(dtype))


@given(case=pool_cases(dilated=False), include_pad=st.booleans(), dtype=dtypes, layout=layouts,
       threads=st.integers(1, 3), data=st.data())
def test_avg_pool2d_matches_reference(case, include_pad, dtype, layout, threads, data):
    n, size, c, kernel, stride, padding, _, ceil = case
    x = data.draw(arrays((n, *size, c), dtype))
    s = pair(stride or kernel)
    expected = avg_pool_ref(x, kernel, s, padding, ceil, include_pad)
    call = lambda: convkit.avg_pool2d(in_layout(x, layout), kernel, stride, padding, ceil, include_pad,
                                      layout=layout, num_threads=threads)
    if 0 in expected.shape[1:3]:
        with pytest.raises(ValueError, match="non-empty output"):
            call()
        return
    bound = avg_pool_ref(np.abs(x), kernel, s, padding, ceil, include_pad)
    assert_within(from_layout(call(), layout), expected, bound, dtype, kernel[0] * kernel[1] + 1)


@given(n=st.integers(0, 3), size=st.tuples(st.integers(1, 7), st.integers(1, 7)), c=st.integers(1, 20),
       dtype=dtypes, layout=layouts, keepdims=st.booleans(), data=st.data())
def test_global_avg_pool2d_matches_reference(n, size, c, dtype, layout, keepdims, data):
    x = data.draw(arrays((n, *size, c), dtype))
    y = convkit.global_avg_pool2d(in_layout(x, layout), layout=layout, keepdims=keepdims)
    if keepdims:
        y = from_layout(y, layout).reshape(n, c)
    xd = x.astype(np.float64)
    assert_within(y, xd.mean(axis=(1, 2)), np.abs(xd).mean(axis=(1, 2)), dtype, 2)


# --- batch norm, folding, linear ---------------------------------------------------------------------

@st.composite
def bn_cases(draw):
    dtype = draw(dtypes)
    n, size, c = draw(st.integers(0, 3)), (draw(st.integers(1, 5)), draw(st.integers(1, 5))), draw(st.integers(1, 20))
    x = draw(arrays((n, *size, c), dtype))
    mean = draw(arrays((c,), dtype))
    # Scale parameters of moderate size, so x * weight / sqrt(var) stays inside float32's range.
    var = np.abs(draw(arrays((c,), dtype, special=False, exponent=8)))
    weight = draw(st.one_of(st.none(), arrays((c,), dtype, exponent=8)))
    bias = draw(st.one_of(st.none(), arrays((c,), dtype)))
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.0]))
    return dtype, x, mean, var, weight, bias, eps


def bn_bound(x, mean, var, weight, eps):
    scale = 1 / np.sqrt(var.astype(np.float64) + eps)
    if weight is not None:
        scale = scale * np.abs(weight.astype(np.float64))
    return np.abs(x.astype(np.float64)) * scale + np.abs(mean.astype(np.float64)) * scale


@given(case=bn_cases(), layout=layouts, threads=st.integers(1, 3))
def test_batch_norm_inference_matches_reference(case, layout, threads):
    dtype, x, mean, var, weight, bias, eps = case
    y = from_layout(convkit.batch_norm(in_layout(x, layout), mean, var, weight, bias, eps, layout=layout,
                                       num_threads=threads), layout)
    expected = batch_norm_ref(x, mean, var, weight, bias, eps)
    bound = bn_bound(x, mean, var, weight, eps) + (0 if bias is None else np.abs(bias.astype(np.float64)))
    assert_within(y, expected, bound, dtype, 4)


@given(case=bn_cases(), layout=layouts, momentum=st.floats(0.0, 1.0), threads=st.integers(1, 3))
def test_batch_norm_training_matches_reference(case, layout, momentum, threads):
    dtype, x, mean0, var0, weight, bias, eps = case
    running_mean, running_var = mean0.copy(), var0.copy()
    count = x.size // x.shape[3]
    call = lambda: convkit.batch_norm(in_layout(x, layout), running_mean, running_var, weight, bias, 1e-5,
                                      training=True, momentum=momentum, layout=layout, num_threads=threads)
    if count == 0:   # nothing to normalise: nothing returned, the statistics kept (as PyTorch)
        assert call().shape == in_layout(x, layout).shape
        assert np.array_equal(running_mean, mean0) and np.array_equal(running_var, var0)
        return
    if count == 1:
        with pytest.raises(ValueError):
            call()
        return
    y = from_layout(call(), layout)
    mean, var, unbiased = batch_stats_ref(x)
    expected = batch_norm_ref(x, mean, var, weight, bias, 1e-5)
    # The batch mean is a float64 sum of ``count`` values: off by up to count * eps64 * mean|x|.
    mean_abs = np.abs(x.astype(np.float64)).reshape(-1, x.shape[3]).mean(axis=0)
    bound = bn_bound(x, np.abs(mean) + mean_abs, var, weight, 1e-5) + (
        0 if bias is None else np.abs(bias.astype(np.float64)))
    assert_within(y, expected, bound, dtype, count + 8)
    new_mean = (1 - momentum) * mean0.astype(np.float64) + momentum * mean
    new_var = (1 - momentum) * var0.astype(np.float64) + momentum * unbiased
    mean_bound = np.abs(mean0.astype(np.float64)) + np.abs(x.astype(np.float64)).reshape(-1, x.shape[3]).max(0)
    assert_within(running_mean, new_mean, mean_bound, dtype, 4)
    assert_within(running_var, new_var, np.abs(new_var), dtype, count + 4)


@given(case=conv_cases(), data=st.data())
def test_fold_batch_norm_matches_conv_then_batch_norm(case, data):
    geo, groups, dtype, x, w, b = case
    if geo["out"] is None:
        return
    cout = w.shape[3]
    mean = data.draw(arrays((cout,), dtype))
    var = np.abs(data.draw(arrays((cout,), dtype, special=False, exponent=8)))   # (see bn_cases)
    gamma, beta = data.draw(arrays((cout,), dtype, exponent=8)), data.draw(arrays((cout,), dtype))
    layout = data.draw(layouts)
    fw, fb = convkit.fold_batch_norm(weight_in_layout(w, layout), b, mean, var, gamma, beta, 1e-5, layout=layout)
    y = call_conv(geo, groups, x, fw if layout == "NHWC" else fw.transpose(2, 3, 1, 0), fb)
    conv, conv_bound, terms = conv_expected(geo, groups, x, w, b)
    expected = batch_norm_ref(conv, mean, var, gamma, beta, 1e-5)
    bound = bn_bound(conv_bound, mean, var, gamma, 1e-5) + np.abs(beta.astype(np.float64))
    assert_within(y, expected, bound, dtype, terms + 8)


@given(dtype=dtypes, lead=st.lists(st.integers(0, 4), max_size=2), features=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       activation=st.sampled_from(ACTIVATIONS), threads=st.integers(1, 3), data=st.data())
def test_linear_matches_reference(dtype, lead, features, activation, threads, data):
    fin, fout = features
    x = data.draw(arrays((*lead, fin), dtype))
    w = data.draw(arrays((fout, fin), dtype))
    b = data.draw(st.one_of(st.none(), arrays((fout,), dtype)))
    y = convkit.linear(x, w, b, activation=activation, num_threads=threads)
    expected = act_ref(linear_ref(x, w, b), activation)
    bound = linear_ref(np.abs(x), np.abs(w), None if b is None else np.abs(b))
    assert_within(y, expected, bound, dtype, fin + 1)


# --- parameter and operation counts ------------------------------------------------------------------

@given(case=conv_cases(), bias=st.booleans())
def test_counts_match_the_shapes_of_real_convolutions(case, bias):
    """Parameters = the weight's (and bias's) elements; MACs = output values x the reduction length, for
    the convolution conv2d actually computes; the depthwise, transposed and deformable forms likewise."""
    geo, groups, dtype, x, w, _ = case
    if geo["out"] is None:
        return
    kh, kw, cin_g, cout = w.shape
    cin = x.shape[3]
    y = convkit.conv2d(x[:1] if len(x) else np.zeros((1, *x.shape[1:]), dtype), w, None, geo["stride"],
                       geo["padding"], geo["dilation"], groups)
    assert convkit.conv_params(cin, cout, (kh, kw), groups, bias) == w.size + bias * cout
    assert convkit.conv_macs(cin, cout, (kh, kw), y.shape[1:3], groups) == y.size * kh * kw * cin_g
    if groups == cin:
        m = cout // cin
        assert convkit.depthwise_conv_params(cin, (kh, kw), m, bias) == w.size + bias * cout
        assert convkit.depthwise_conv_macs(cin, (kh, kw), y.shape[1:3], m) == y.size * kh * kw
    # Transposed from cout back to cin channels with the same weight: every input value of y meets
    # every tap of its group.
    assert convkit.conv_transpose_params(cout, cin, (kh, kw), groups, bias) == w.size + bias * cin
    assert convkit.conv_transpose_macs(cout, cin, (kh, kw), y.shape[1:3], groups) == y.size * kh * kw * cin_g
    assert convkit.deform_conv_params(cin, cout, (kh, kw), groups, bias) == w.size + bias * cout
    for mask in (False, True):
        sampling = y.shape[1] * y.shape[2] * kh * kw * cin * (4 + mask)
        assert convkit.deform_sampling_macs(cin, (kh, kw), y.shape[1:3], mask) == sampling
        assert convkit.deform_conv_macs(cin, cout, (kh, kw), y.shape[1:3], groups, mask) == (
            y.size * kh * kw * cin_g + sampling)


# --- zero sizes ------------------------------------------------------------------------------------

@st.composite
def zero_sized_cases(draw):
    """Every size (batch, image, channels, output channels, kernel) 0 about half the time, else 1-3."""
    size = st.one_of(st.just(0), st.integers(1, 3))
    n, h, w, c, cout, kh, kw = (draw(size) for _ in range(7))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    return dict(n=n, size=(h, w), c=c, cout=cout, kernel=(kh, kw), pad=draw(st.integers(0, 1)), dtype=dtype,
                x=x, rng=rng, layout=draw(layouts))


def _zero_sized_call(function, z, algo):
    """(convkit's result in NHWC, the float64 reference, its bound on absolute values, terms per output)."""
    x, rng, dtype, layout, p = z["x"], z["rng"], z["dtype"], z["layout"], z["pad"]
    (kh, kw), c, cout = z["kernel"], z["c"], z["cout"]
    xl = in_layout(x, layout)
    if function == "conv2d":
        w = rng.standard_normal((kh, kw, c, cout)).astype(dtype)
        y = convkit.conv2d(xl, weight_in_layout(w, layout), None, 1, p, layout=layout, algo=algo)
        return y, conv2d_ref(x, w, pads=(p,) * 4), conv2d_ref(np.abs(x), np.abs(w), pads=(p,) * 4), kh * kw * c
    if function == "conv_transpose2d":
        w = rng.standard_normal((kh, kw, cout, c)).astype(dtype)
        y = convkit.conv_transpose2d(xl, transpose_weight_in_layout(w, layout), None, 1, p, layout=layout,
                                     algo=("col2im", "direct", "auto")[ALGOS.index(algo)])
        return y, conv_transpose2d_ref(x, w, padding=(p, p)), conv_transpose2d_ref(np.abs(x), np.abs(w),
                                                                                    padding=(p, p)), kh * kw * c
    if function == "deform_conv2d":
        w = rng.standard_normal((kh, kw, c, cout)).astype(dtype)
        out = [max(s + 2 * p - k + 1, 0) for s, k in zip(z["size"], z["kernel"])]
        off = rng.uniform(-2, 2, (z["n"], *out, 2 * kh * kw)).astype(dtype)
        y = convkit.deform_conv2d(xl, in_layout(off, layout), weight_in_layout(w, layout), None, 1, p,
                                  layout=layout, algo=algo)
        args = dict(pads=(p, p))
        return (y, deform_conv2d_ref(x, off, w, **args), deform_conv2d_ref(np.abs(x), off, np.abs(w), **args),
                4 * kh * kw * c)
    if function in ("max_pool2d", "avg_pool2d"):
        k = max(kh, 1)
        y = getattr(convkit, function)(xl, k, 1, min(p, k // 2), layout=layout)
        ref = (max_pool_ref if function == "max_pool2d" else avg_pool_ref)(x, (k, k), (1, 1), (min(p, k // 2),) * 2)
        return y, ref, np.abs(ref), k * k
    if function == "im2col":
        y = convkit.im2col(x, z["kernel"], 1, p)
        return y, im2col_ref(x, z["kernel"], pads=(p,) * 4), 0, 0
    mean, var = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    y = convkit.batch_norm(xl, mean, var, layout=layout)
    ref = batch_norm_ref(x, mean, var)
    return y, ref, np.abs(ref), 1


ZERO_SIZED = ["conv2d", "conv_transpose2d", "deform_conv2d", "max_pool2d", "avg_pool2d", "im2col", "batch_norm"]


@fraction(4)
@given(function=st.sampled_from(ZERO_SIZED), z=zero_sized_cases(), algo=st.sampled_from(ALGOS))
def test_zero_sizes_raise_a_value_error_or_match_the_reference(function, z, algo):
    """No crash and no other exception: a ValueError that says what it expected, or the reference's result
    (tests/test_zero_sizes.py pins which, case by case, to PyTorch's behaviour)."""
    try:
        y, expected, bound, terms = _zero_sized_call(function, z, algo)
    except ValueError as e:
        assert str(e).startswith("expected"), str(e)
        return
    if y.ndim == 4:
        y = from_layout(y, z["layout"]) if function != "im2col" else y
    assert_within(y, expected, bound, z["dtype"], terms)
