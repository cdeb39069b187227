"""The fused inverted residual kernel (src/inverted_residual.pyx) against the float64 reference of its three
layers, and nn.InvertedResidual's evaluation forward, which runs it, against the layer-by-layer forward."""
import threading

import numpy as np
import pytest

from convkit import nn
from convkit._kernels import conv_direct as _direct
from convkit._kernels import depthwise as _depthwise
from convkit._kernels import gemm as _gemm
from convkit._kernels import inverted_residual as _ir
from convkit.activations import resolve_activation
from convkit.nn.blocks import fuse_into_block
from convkit.nn.conv import use_algorithm
from convkit.nn.fusion import FusedInvertedResidual

from helpers import assert_close
from reference import conv2d_ref, output_size
from reference_units import activation_ref

DTYPES = [np.float32, np.float64]


def act_ref(x, act):
    """activation_ref for an activation spec: None, a name, or (name, parameter)."""
    if act is None:
        return x
    return activation_ref(x, *act) if isinstance(act, tuple) else activation_ref(x, act)


def block_ref(x, we, be, act_e, wd, bd, act_d, wp, bp, act_p, stride, pads, dilation, residual):
    """act_p(proj(act_d(dw(act_e(x @ We + be)) + bd)) + bp + residual), float64; ``we`` None: no expansion."""
    h = x if we is None else act_ref(conv2d_ref(x, we, be), act_e)
    d = act_ref(conv2d_ref(h, wd, bd, stride, pads, dilation, groups=wd.shape[3]), act_d)
    y = conv2d_ref(d, wp, bp)
    if residual is not None:
        y = y + residual
    return act_ref(y, act_p)


def make_block(rng, n, h, w, cin, ch, cout, kernel, dtype, expand=True, biases=True):
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    we = (rng.standard_normal((1, 1, cin, ch)) / np.sqrt(cin)).astype(dtype) if expand else None
    be = rng.standard_normal(ch).astype(dtype) if expand and biases else None
    wd = (rng.standard_normal((*kernel, 1, ch)) / 3).astype(dtype)
    bd = rng.standard_normal(ch).astype(dtype) if biases else None
    wp = (rng.standard_normal((1, 1, ch, cout)) / np.sqrt(ch)).astype(dtype)
    bp = rng.standard_normal(cout).astype(dtype) if biases else None
    return x, we, be, wd, bd, wp, bp


def out_shape(x, wd, wp, stride, pads, dilation):
    (pt, pb, pl, pr), (kh, kw) = pads, wd.shape[:2]
    return (x.shape[0], output_size(x.shape[1], kh, stride[0], pt, pb, dilation[0]),
            output_size(x.shape[2], kw, stride[1], pl, pr, dilation[1]), wp.shape[3])


def run_kernel(x, we, be, act_e, wd, bd, act_d, wp, bp, act_p, stride, pads, dilation, threads, residual=None,
               out=None):
    """The kernel with the weights packed as nn's FusedInvertedResidual packs them."""
    dtype, ch = x.dtype, wd.shape[3]
    if out is None:
        out = np.full(out_shape(x, wd, wp, stride, pads, dilation), np.nan, dtype)
    _ir.inverted_residual_nhwc(
        x, None if we is None else _gemm.pack_b(we.reshape(-1, ch)), be, *resolve_activation(act_e),
        _depthwise.pack_weights(wd, ch), _depthwise.pack_bias(bd, ch, 1, dtype), *resolve_activation(act_d),
        _gemm.pack_b(wp.reshape(ch, -1)), bp, *resolve_activation(act_p), out, *stride, pads[0], pads[2],
        *dilation, threads, residual=residual)
    return out


# (batch, H, W, Cin, hidden, Cout, kernel, stride, pads (t, b, l, r), dilation): MobileNetV2's shapes at
# small sizes, odd and non-square ones, maps thinner than the window, odd sizes at stride 2, dilation,
# padding on one side only, a 1x1 "depthwise" layer.  Bands and groups of rows (the kernel's work split)
# follow from the output's height and width and the threads (see src/inverted_residual.pyx).
CASES = [
    (1, 16, 16, 16, 96, 24, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 14, 14, 24, 144, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 9, 7, 32, 192, 64, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (3, 7, 7, 160, 960, 320, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 11, 6, 5, 7, 3, (3, 5), (1, 2), (1, 1, 2, 2), (1, 1)),
    (2, 10, 9, 4, 12, 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    (1, 13, 5, 3, 17, 33, (5, 3), (2, 1), (0, 2, 1, 0), (1, 1)),
    (1, 2, 3, 6, 36, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 1, 1, 8, 48, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 40, 3, 2, 33, 17, (1, 1), (2, 1), (0, 0, 0, 0), (1, 1)),
    # Tall and narrow: several groups of rows per band, the ring of hidden rows wrapping around.
    (1, 61, 5, 6, 24, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 75, 4, 6, 12, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 50, 2, 3, 9, 5, (5, 1), (1, 1), (4, 4, 0, 0), (2, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_kernel_matches_reference(case, threads, dtype):
    n, h, w, cin, ch, cout, kernel, stride, pads, dilation = case
    rng = np.random.default_rng(sum(map(hash, map(str, case))) % 2**32)
    x, we, be, wd, bd, wp, bp = make_block(rng, n, h, w, cin, ch, cout, kernel, dtype)
    out = run_kernel(x, we, be, "relu6", wd, bd, "relu6", wp, bp, None, stride, pads, dilation, threads)
    expected = block_ref(x, we, be, "relu6", wd, bd, "relu6", wp, bp, None, stride, pads, dilation, None)
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("expand", [True, False])
@pytest.mark.parametrize("acts", [("relu6", "relu6", None), (None, ("leaky_relu", 0.2), "relu"),
                                  (("elu", 0.5), "sigmoid", ("leaky_relu", 0.1))], ids=str)
def test_residual_activations_and_no_expansion(acts, expand, threads, dtype):
    """Every activation (the GEMM's vector epilogue and the general one), the residual in the projection's
    epilogue, no biases, blocks without an expansion (the depthwise layer reads the input), and a map small
    enough for the threads to split channels instead of rows (src/inverted_residual.pyx)."""
    rng = np.random.default_rng(7)
    for biases, (n, h, w) in [(True, (2, 12, 10)), (False, (2, 12, 10)), (True, (1, 6, 5))]:  # rows, channels split
        x, we, be, wd, bd, wp, bp = make_block(rng, n, h, w, 8, 8 if not expand else 40, 8, (3, 3), dtype,
                                               expand, biases)
        out = run_kernel(x, we, be, acts[0], wd, bd, acts[1], wp, bp, acts[2], (1, 1), (1, 1, 1, 1), (1, 1),
                         threads, residual=x)
        expected = block_ref(x, we, be, acts[0], wd, bd, acts[1], wp, bp, acts[2], (1, 1), (1, 1, 1, 1),
                             (1, 1), x)
        assert_close(out, expected, dtype)


def test_thread_counts_agree_and_batch_zero():
    rng = np.random.default_rng(3)
    x, we, be, wd, bd, wp, bp = make_block(rng, 3, 29, 17, 24, 144, 32, (3, 3), np.float32)
    outs = [run_kernel(x, we, be, "relu6", wd, bd, "relu6", wp, bp, None, (2, 2), (1, 1, 1, 1), (1, 1), t)
            for t in (1, 2, 3, 4)]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=1e-5, atol=1e-5)
    empty = run_kernel(x[:0], we, be, "relu6", wd, bd, "relu6", wp, bp, None, (2, 2), (1, 1, 1, 1), (1, 1), 2)
    assert empty.shape == (0, 15, 9, 32)


def kernel_args(dtype=np.float32):
    rng = np.random.default_rng(5)
    x, we, be, wd, bd, wp, bp = make_block(rng, 1, 6, 6, 4, 12, 4, (3, 3), dtype)
    return dict(x=x, we=we, be=be, act_e="relu6", wd=wd, bd=bd, act_d="relu6", wp=wp, bp=bp, act_p=None,
                stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), threads=2, out=np.zeros((1, 6, 6, 4), dtype))


@pytest.mark.parametrize("change, message", [
    (dict(stride=(0, 1)), "stride"),
    (dict(dilation=(1, 0)), "dilation"),
    (dict(threads=0), "num_threads"),
    (dict(pads=(-1, 1, 1, 1)), "top padding"),
    (dict(residual=np.zeros((1, 6, 6, 5), np.float32)), "residual"),
    (dict(bp=np.zeros(5, np.float32)), "project_bias"),
    (dict(be=np.zeros(3, np.float32)), "expand_bias"),
    (dict(out=np.zeros((2, 6, 6, 4), np.float32)), "out's batch"),
])
def test_bad_arguments_raise(change, message):
    args = {**kernel_args(), **change}
    with pytest.raises(ValueError, match=message):
        run_kernel(**args)


def test_mismatched_packed_weights_raise():
    a = kernel_args()
    x, ch = a["x"], a["wd"].shape[3]
    packed = dict(expand=_gemm.pack_b(a["we"].reshape(4, ch)), dw=_depthwise.pack_weights(a["wd"], ch),
                  dw_bias=_depthwise.pack_bias(a["bd"], ch, 1, np.float32),
                  project=_gemm.pack_b(a["wp"].reshape(ch, 4)))
    out = np.zeros((1, 6, 6, 4), np.float32)

    def call(**change):
        p = {**packed, **change}
        _ir.inverted_residual_nhwc(x, p["expand"], None, 0, 0.0, p["dw"], p["dw_bias"], 0, 0.0, p["project"],
                                   None, 0, 0.0, out, 1, 1, 1, 1, 1, 1, 2)

    call()
    with pytest.raises(ValueError, match="expand packed"):
        call(expand=_gemm.pack_b(np.zeros((5, ch), np.float32)))
    with pytest.raises(ValueError, match="expand packed"):
        call(expand=_gemm.pack_b(np.zeros((4, ch), np.float64)))
    with pytest.raises(ValueError, match="project packed"):
        call(project=_gemm.pack_b(np.zeros((ch, 5), np.float32)))
    with pytest.raises(ValueError, match="channel multiplier"):
        call(dw=np.zeros((2, 3, 3, ch), np.float32))
    with pytest.raises(ValueError, match="depthwise bias"):
        call(dw_bias=np.zeros((1, ch + 1), np.float32))
    with pytest.raises(ValueError, match="without an expansion"):
        call(expand=None)


# --- nn.InvertedResidual in evaluation mode ------------------------------------------------------------

def trained_block(inp, oup, stride, t, dtype, layout="NHWC"):
    """A block whose batch norms have non-trivial statistics (one training-mode forward)."""
    block = nn.InvertedResidual(inp, oup, stride, t, layout=layout, dtype=dtype, rng=1)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            rng = np.random.default_rng(m.num_features)
            m.running_mean[...] = rng.standard_normal(m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias[...] = rng.standard_normal(m.num_features)
    return block.eval()


def layer_by_layer(block, x):
    """The block's evaluation forward through the separate layers (float64 reference of the same math)."""
    layers = list(block.conv)
    y = np.asarray(x, np.float64)
    i = 0
    while i < len(layers):
        conv, bn = layers[i], layers[i + 1]
        if isinstance(conv, nn.ConvBNAct):
            conv, bn, act = conv[0], conv[1], "relu6"
            i += 1
        else:
            act = None
            i += 2
        y = conv2d_ref(y, conv.nhwc_weight(), None, conv.stride, (conv.padding[0],) * 2 + (conv.padding[1],) * 2,
                       conv.dilation, conv.groups)
        y = (y - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        y = act_ref(y, act)
    return y + x if block.use_res_connect else y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inp, oup, stride, t", [(16, 16, 1, 6), (16, 24, 2, 6), (32, 16, 1, 1), (8, 8, 1, 1),
                                                 (12, 20, 2, 4)])
def test_block_runs_the_fused_kernel(inp, oup, stride, t, dtype):
    block = trained_block(inp, oup, stride, t, dtype)
    assert isinstance(block._fused_kernel(), FusedInvertedResidual)
    x = np.random.default_rng(2).standard_normal((2, 13, 10, inp)).astype(dtype)
    assert_close(block(x), layer_by_layer(block, x), dtype)


def test_block_falls_back_for_other_inputs_and_algorithms():
    block = trained_block(16, 16, 1, 6, np.float32)
    x = np.random.default_rng(4).standard_normal((2, 9, 11, 16)).astype(np.float32)
    expected = layer_by_layer(block, x)
    assert_close(block(np.asfortranarray(x)), expected, np.float32)          # not C-contiguous
    with pytest.raises(TypeError, match="dtype float64 like the input"):      # another dtype: as conv2d
        block(x.astype(np.float64))
    use_algorithm(block, "direct")
    assert block._fused_kernel() is None
    assert_close(block(x), expected, np.float32)


def test_block_nchw_layout():
    block = trained_block(16, 24, 2, 6, np.float32, layout="NCHW")
    x = np.random.default_rng(6).standard_normal((1, 16, 10, 12)).astype(np.float32)
    expected = layer_by_layer(block, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert_close(block(x), expected.transpose(0, 3, 1, 2), np.float32)


def test_concurrent_calls_agree():
    """The kernel's per-thread rows come from each call's own allocation: calls from Python threads on
    one block agree with a lone call."""
    block = trained_block(24, 24, 1, 6, np.float32)
    inputs = [np.random.default_rng(i).standard_normal((1, 28, 28, 24)).astype(np.float32) for i in range(4)]
    expected = [block(x) for x in inputs]
    results = [[None] * 20 for _ in inputs]

    def work(i):
        for r in range(20):
            results[i][r] = block(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, runs in enumerate(results):
        for y in runs:
            np.testing.assert_array_equal(y, expected[i])


# --- a KxK first layer (MobileNetV2's stem fused with its first block) -----------------------------------

# (batch, H0, W0, Cin, hidden, Cout, first kernel, first stride, first padding, threads)
FIRST_CONV_CASES = [
    (1, 35, 33, 3, 32, 16, 3, 2, 1, 2),
    (2, 17, 13, 3, 40, 7, 3, 2, 1, 3),
    (1, 9, 11, 5, 20, 9, 5, 1, 2, 1),
    (3, 8, 8, 4, 64, 16, 3, 1, 0, 2),
    (1, 6, 7, 2, 8, 3, (1, 3), (1, 2), (0, 1), 2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FIRST_CONV_CASES, ids=str)
def test_kernel_with_a_first_convolution(case, dtype):
    """The hidden rows from a KxK convolution (the direct kernel's tile on its packed weights), then the
    depthwise layer and the projection, against the float64 reference of the three layers."""
    n, h0, w0, cin, ch, cout, k, s, p, threads = case
    (kh, kw), (sh, sw), (ph, pw) = [v if isinstance(v, tuple) else (v, v) for v in (k, s, p)]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, h0, w0, cin)).astype(dtype)
    w1 = (rng.standard_normal((kh, kw, cin, ch)) / np.sqrt(kh * kw * cin)).astype(dtype)
    b1 = rng.standard_normal(ch).astype(dtype)
    _, _, be, wd, bd, wp, bp = make_block(rng, n, 1, 1, cin, ch, cout, (3, 3), dtype)
    hidden = act_ref(conv2d_ref(x, w1, b1, (sh, sw), (ph, ph, pw, pw)), "relu6")
    expected = block_ref(hidden, None, None, None, wd, bd, "relu6", wp, bp, None, (1, 1), (1, 1, 1, 1), (1, 1),
                         None)
    out = np.full(expected.shape, np.nan, dtype)
    _ir.inverted_residual_nhwc(
        x, _direct.pack_weights(w1, 1), b1, *resolve_activation("relu6"), _depthwise.pack_weights(wd, ch),
        _depthwise.pack_bias(bd, ch, 1, dtype), *resolve_activation("relu6"), _gemm.pack_b(wp.reshape(ch, cout)),
        bp, *resolve_activation(None), out, 1, 1, 1, 1, 1, 1, threads,
        expand_geometry=(sh, sw, ph, pw, 1, 1, *hidden.shape[1:3]))
    assert_close(out, expected, dtype)
    with pytest.raises(ValueError, match="conv_direct.pack_weights"):
        _ir.inverted_residual_nhwc(
            x, _direct.pack_weights(np.concatenate([w1, w1[:, :, :1]], axis=2), 1), b1, 0, 0.0,   # Cin + 1
            _depthwise.pack_weights(wd, ch), _depthwise.pack_bias(bd, ch, 1, dtype), 0, 0.0,
            _gemm.pack_b(wp.reshape(ch, cout)), bp, 0, 0.0, out, 1, 1, 1, 1, 1, 1, threads,
            expand_geometry=(sh, sw, ph, pw, 1, 1, *hidden.shape[1:3]))


def test_mobilenet_stem_and_first_block_run_as_one_kernel():
    """MobileNetV2 in evaluation mode fuses its stem into its first block (fuse_into_block); blocks with an
    expansion or a shortcut, or a first layer with groups, do not qualify."""
    from convkit.models import mobilenet_v2
    model = mobilenet_v2(rng=2)
    head = fuse_into_block(model.features[0], model.features[1])
    assert isinstance(head, FusedInvertedResidual) and head.first_conv is model.features[0][0]
    x = np.random.default_rng(3).standard_normal((2, 32, 30, 3)).astype(np.float32)
    separate = model.features[1](model.features[0](x))
    np.testing.assert_allclose(head(x), separate, rtol=1e-5, atol=1e-5)
    assert fuse_into_block(model.features[1], model.features[2]) is None      # first is not a ConvBNAct
    assert fuse_into_block(model.features[0], model.features[2]) is None      # the block expands
    grouped = nn.ConvBNAct(32, 32, 3, groups=4).eval()
    assert fuse_into_block(grouped, model.features[1]) is None
