"""convkit.nn layers and basic modules against float64 NumPy references, in both layouts."""
import numpy as np
import pytest

import convkit
import reference_nn as ref
from convkit import nn
from helpers import assert_close, nchw
from reference import conv2d_ref

LAYOUTS = ["NHWC", "NCHW"]
DTYPES = [np.float32, np.float64]


def to_layout(x_nhwc, layout):
    return x_nhwc if layout == "NHWC" else nchw(x_nhwc)


def from_layout(y, layout):
    return y if layout == "NHWC" or y.ndim != 4 else np.ascontiguousarray(y.transpose(0, 2, 3, 1))


def run(layer, x_nhwc):
    """Call ``layer`` in its layout on an NHWC input; return the output as NHWC."""
    return from_layout(layer(to_layout(x_nhwc, layer.layout or "NHWC")), layer.layout or "NHWC")


def randomize(module, seed=0):
    """Non-trivial batch-norm statistics and affine parameters for every BatchNorm2d in ``module``."""
    rng = np.random.default_rng(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c, dt = m.num_features, m.dtype
            m.running_mean = rng.normal(0, 0.5, c).astype(dt)
            m.running_var = rng.uniform(0.5, 2, c).astype(dt)
            m.weight = rng.uniform(0.5, 1.5, c).astype(dt)
            m.bias = rng.normal(0, 0.5, c).astype(dt)
    return module


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cin, cout, k, stride, padding, dilation, groups, bias", [
    (5, 6, 3, 2, 1, 1, 1, True),
    (4, 8, (3, 1), 1, (2, 0), 2, 2, False),
    (6, 6, 3, 1, "same", 1, 6, True),
])
def test_conv2d_layer(cin, cout, k, stride, padding, dilation, groups, bias, dtype, layout, rng):
    layer = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias, layout=layout, dtype=dtype,
                      rng=rng)
    state = layer.state_dict()
    assert set(state) == ({"weight", "bias"} if bias else {"weight"})
    oihw = state["weight"]
    kh, kw = oihw.shape[2:]
    assert oihw.shape == (cout, cin // groups, kh, kw) and oihw.dtype == dtype
    assert layer.weight.shape == ((kh, kw, cin // groups, cout) if layout == "NHWC" else oihw.shape)
    x = rng.standard_normal((2, 9, 11, cin)).astype(dtype)
    y = run(layer, x)
    _, _, pads, _ = convkit._validation.conv_geometry((9, 11), (kh, kw), layer.stride, layer.padding,
                                                      layer.dilation)
    expected = conv2d_ref(x, oihw.transpose(2, 3, 1, 0), state.get("bias"), layer.stride, pads,
                          layer.dilation, groups)
    assert_close(y, expected, dtype)
    in_shape = (2, 9, 11, cin) if layout == "NHWC" else (2, cin, 9, 11)
    assert layer.output_shape(in_shape) == layer(to_layout(x, layout)).shape
    assert layer.num_params() == oihw.size + (cout if bias else 0)
    _, hout, wout, _ = expected.shape
    assert layer.macs(in_shape) == 2 * hout * wout * cout * kh * kw * (cin // groups)


def test_conv2d_init_is_deterministic_and_pytorch_scaled():
    a = nn.Conv2d(16, 8, 3, rng=7)
    assert np.array_equal(a.weight, nn.Conv2d(16, 8, 3, rng=7).weight)
    assert np.array_equal(a.weight, nn.Conv2d(16, 8, 3, rng=np.random.default_rng(7)).weight)
    assert not np.array_equal(a.weight, nn.Conv2d(16, 8, 3, rng=8).weight)
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(a.weight).max() <= bound and np.abs(a.weight).max() > 0.9 * bound
    assert a.weight.dtype == np.float32 and nn.Conv2d(2, 2, 1, dtype=np.float64).weight.dtype == np.float64


@pytest.mark.parametrize("layout", LAYOUTS)
def test_batch_norm_layer_eval_and_train(layout, rng):
    bn = randomize(nn.BatchNorm2d(5, eps=1e-3, momentum=0.2, layout=layout))
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    x = rng.standard_normal((3, 4, 6, 5)).astype(np.float32) * 2 + 1
    expected = (x - state["running_mean"]) / np.sqrt(state["running_var"] + 1e-3) * state["weight"]
    assert_close(run(bn, x), expected + state["bias"], np.float32)
    bn.train()
    mean, var = x.mean(axis=(0, 1, 2), dtype=np.float64), x.var(axis=(0, 1, 2), dtype=np.float64)
    y = run(bn, x)
    assert_close(y, (x - mean) / np.sqrt(var + 1e-3) * state["weight"] + state["bias"], np.float32)
    count = x.size / 5
    assert_close(bn.running_mean, 0.8 * state["running_mean"] + 0.2 * mean, np.float32)
    assert_close(bn.running_var, 0.8 * state["running_var"] + 0.2 * var * count / (count - 1), np.float32)
    assert bn.num_batches_tracked == 1
    in_shape = (3, 4, 6, 5) if layout == "NHWC" else (3, 5, 4, 6)
    assert bn.num_params() == 10 and bn.macs(in_shape) == 0 and bn.output_shape(in_shape) == in_shape


def test_batch_norm_layer_rejects_wrong_channels():
    bn = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="running_mean"):
        bn(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="4 channels"):
        bn.output_shape((1, 2, 2, 3))


def max_pool_ref(x, k, s, p):
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-np.inf)
    hout, wout = (x.shape[1] + 2 * p - k) // s + 1, (x.shape[2] + 2 * p - k) // s + 1
    return np.max([xp[:, i:i + s * (hout - 1) + 1:s, j:j + s * (wout - 1) + 1:s]
                   for i in range(k) for j in range(k)], axis=0)


def avg_pool_ref(x, k, s, p):
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (p, p), (p, p), (0, 0)))
    hout, wout = (x.shape[1] + 2 * p - k) // s + 1, (x.shape[2] + 2 * p - k) // s + 1
    return np.mean([xp[:, i:i + s * (hout - 1) + 1:s, j:j + s * (wout - 1) + 1:s]
                    for i in range(k) for j in range(k)], axis=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pooling_layers(layout, rng):
    x = rng.standard_normal((2, 9, 8, 3))
    in_shape = (2, 9, 8, 3) if layout == "NHWC" else (2, 3, 9, 8)
    for layer, expected in [(nn.MaxPool2d(3, 2, 1, layout=layout), max_pool_ref(x, 3, 2, 1)),
                            (nn.AvgPool2d(2, layout=layout), avg_pool_ref(x, 2, 2, 0)),
                            (nn.GlobalAvgPool2d(layout=layout), x.mean(axis=(1, 2))),
                            (nn.GlobalAvgPool2d(True, layout=layout), x.mean(axis=(1, 2), keepdims=True))]:
        assert_close(run(layer, x), expected, np.float64)
        assert layer.output_shape(in_shape) == layer(to_layout(x, layout)).shape
        assert layer.num_params() == 0 and layer.macs(in_shape) == 0
    ceil = nn.MaxPool2d(2, 2, ceil_mode=True, layout=layout)
    assert ceil.output_shape(in_shape) == ceil(to_layout(x, layout)).shape


@pytest.mark.parametrize("layer, fn", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.ReLU6(), lambda x: np.clip(x, 0, 6)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x < 0, 0.2 * x, x)),
    (nn.ELU(0.5), lambda x: np.where(x < 0, 0.5 * np.expm1(x), x)),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
])
def test_activation_layers(layer, fn, rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 4
    assert_close(layer(x), fn(x), np.float64)
    assert layer.output_shape((7, 5)) == (7, 5) and layer.num_params() == 0
    assert type(nn.activation_layer(layer.spec)) is type(layer)


def test_activation_layer_rejects_unknown_spec():
    with pytest.raises(ValueError, match="activation"):
        nn.activation_layer("swish")


def test_linear_and_flatten(rng):
    fc = nn.Linear(12, 5, rng=rng, dtype=np.float64)
    assert fc.weight.shape == (5, 12) and fc.num_params() == 65
    x = rng.standard_normal((2, 1, 2, 6))  # NHWC
    flat_nhwc, flat_nchw = nn.Flatten(), nn.Flatten(layout="NCHW")
    assert np.array_equal(flat_nhwc(x), x.reshape(2, 12))
    assert np.array_equal(flat_nchw(nchw(x)), nchw(x).reshape(2, 12))  # torch.flatten(x, 1)
    model = nn.Sequential(flat_nchw, fc)
    assert_close(model(nchw(x)), nchw(x).reshape(2, 12) @ fc.weight.T + fc.bias, np.float64)
    assert model.output_shape((2, 6, 1, 2)) == (2, 5) and model.macs((2, 6, 1, 2)) == 2 * 12 * 5
    assert nn.Dropout(0.2)(x) is x


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sequential_fuses_conv_bn_activation(layout, rng):
    """Eval mode folds BN into the conv and fuses the activation; the result equals the layers in turn,
    and training mode (batch statistics, not fused) computes each layer in turn."""
    kw = dict(layout=layout, dtype=np.float64)
    seq = randomize(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng, **kw),
                                  nn.BatchNorm2d(4, eps=1e-3, **kw), nn.LeakyReLU(0.1),
                                  nn.Conv2d(4, 2, 1, bias=False, rng=rng, **kw), nn.Tanh()))
    x = rng.standard_normal((2, 5, 6, 3))
    state = seq.state_dict()
    bn = ref.batch_norm(state, "1", ref.conv(state, "0", x, padding=1), eps=1e-3)
    expected = np.tanh(ref.conv(state, "3", np.where(bn < 0, 0.1 * bn, bn)))
    assert_close(run(seq, x), expected, np.float64)
    assert [type(m).__name__ for m in seq] == ["Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d", "Tanh"]
    seq.train()
    stepwise = x
    for m in seq:
        stepwise = run(m, stepwise)
    seq.eval()
    assert not np.allclose(stepwise, expected)  # the BN saw batch statistics


def test_sequential_rejects_mixed_layouts_and_non_modules():
    with pytest.raises(ValueError, match="same layout"):
        nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1, layout="NCHW"))
    with pytest.raises(TypeError, match=r"modules\[1\]"):
        nn.Sequential(nn.ReLU(), np.zeros(3))


def test_parameter_assignment_is_checked():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="weight.*shape"):
        conv.weight = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(TypeError, match="weight.*dtype"):
        conv.weight = np.zeros(conv.weight.shape, np.float64)
    with pytest.raises(TypeError, match="dtype"):
        nn.Conv2d(3, 4, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv_bn_act_and_depthwise_separable(layout, rng):
    block = randomize(nn.ConvBNAct(4, 6, 3, stride=2, activation="relu6", layout=layout,
                                   dtype=np.float64, rng=rng))
    x = rng.standard_normal((2, 7, 8, 4))
    state = block.state_dict()
    assert list(state)[:2] == ["0.weight", "1.weight"]
    expected = ref.relu6(ref.batch_norm(state, "1", ref.conv(state, "0", x, 2, 1)))
    assert_close(run(block, x), expected, np.float64)
    shape = (1, 6, 5, 4) if layout == "NHWC" else (1, 4, 6, 5)
    assert nn.ConvBNAct(4, 4, (3, 1), layout=layout).output_shape(shape) == shape  # padding (1, 0)

    ds = randomize(nn.DepthwiseSeparable(4, 8, stride=1, layout=layout, dtype=np.float64, rng=rng))
    state = ds.state_dict()
    assert state["0.0.weight"].shape == (4, 1, 3, 3) and state["1.0.weight"].shape == (8, 4, 1, 1)
    y = ref.relu(ref.batch_norm(state, "0.1", ref.conv(state, "0.0", x, 1, 1, groups=4)))
    expected = ref.relu(ref.batch_norm(state, "1.1", ref.conv(state, "1.0", y)))
    assert_close(run(ds, x), expected, np.float64)
    in_shape = (2, 7, 8, 4) if layout == "NHWC" else (2, 4, 7, 8)
    assert ds.macs(in_shape) == 2 * 7 * 8 * (4 * 9 + 8 * 4)
    assert ds.num_params() == 4 * 9 + 8 + 8 * 4 + 16


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("inp, oup, stride, t", [(8, 8, 1, 6), (8, 12, 2, 6), (8, 8, 1, 1)])
def test_inverted_residual(inp, oup, stride, t, layout, rng):
    block = randomize(nn.InvertedResidual(inp, oup, stride, t, layout=layout, dtype=np.float64, rng=rng))
    assert block.use_res_connect == (stride == 1 and inp == oup)
    x = rng.standard_normal((2, 7, 6, inp))
    state = block.state_dict()
    y, j = x, 0
    if t != 1:
        y, j = ref.relu6(ref.batch_norm(state, "conv.0.1", ref.conv(state, "conv.0.0", y))), 1
    y = ref.relu6(ref.batch_norm(state, f"conv.{j}.1", ref.conv(state, f"conv.{j}.0", y, stride, 1,
                                                                   groups=y.shape[3])))
    y = ref.batch_norm(state, f"conv.{j + 2}", ref.conv(state, f"conv.{j + 1}", y))
    assert_close(run(block, x), x + y if block.use_res_connect else y, np.float64)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("inplanes, planes, stride", [(6, 6, 1), (6, 8, 2)])
def test_basic_block(inplanes, planes, stride, layout, rng):
    block = randomize(nn.BasicBlock(inplanes, planes, stride, layout=layout, dtype=np.float64, rng=rng))
    assert (block.downsample is None) == (stride == 1 and inplanes == planes)
    x = rng.standard_normal((2, 8, 7, inplanes))
    state = block.state_dict()
    out = ref.relu(ref.batch_norm(state, "bn1", ref.conv(state, "conv1", x, stride, 1)))
    out = ref.batch_norm(state, "bn2", ref.conv(state, "conv2", out, 1, 1))
    identity = x if block.downsample is None else ref.batch_norm(
        state, "downsample.1", ref.conv(state, "downsample.0", x, stride))
    assert_close(run(block, x), ref.relu(out + identity), np.float64)
    in_shape = (2, 8, 7, inplanes) if layout == "NHWC" else (2, inplanes, 8, 7)
    assert block.output_shape(in_shape) == block(to_layout(x, layout)).shape


def conv_transpose_ref(x, w_iohw, bias, stride, padding, output_padding, dilation):
    """y[n, i*s - p + k*d, c_out] += x[n, i, c_in] * w[c_in, c_out, k] (groups 1), cropped by padding."""
    n, h, wid, _ = x.shape
    _, cout, kh, kw = w_iohw.shape
    hfull, wfull = (h - 1) * stride + dilation * (kh - 1) + 1 + output_padding, \
        (wid - 1) * stride + dilation * (kw - 1) + 1 + output_padding
    y = np.zeros((n, hfull, wfull, cout))
    for i in range(kh):
        for j in range(kw):
            y[:, i * dilation:i * dilation + stride * (h - 1) + 1:stride,
              j * dilation:j * dilation + stride * (wid - 1) + 1:stride] += x @ w_iohw[:, :, i, j]
    y = y[:, padding:hfull - padding, padding:wfull - padding]
    return y + (0 if bias is None else bias)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv_transpose2d_layer(layout, rng):
    layer = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, layout=layout,
                               dtype=np.float64, rng=rng)
    state = layer.state_dict()
    assert state["weight"].shape == (4, 3, 3, 3)
    x = rng.standard_normal((2, 5, 6, 4))
    expected = conv_transpose_ref(x, state["weight"], state["bias"], 2, 1, 1, 1)
    assert_close(run(layer, x), expected, np.float64)
    in_shape = (2, 5, 6, 4) if layout == "NHWC" else (2, 4, 5, 6)
    assert layer.output_shape(in_shape) == layer(to_layout(x, layout)).shape
    assert layer.num_params() == 4 * 3 * 9 + 3
    assert layer.macs(in_shape) == 2 * 5 * 6 * 4 * 3 * 9  # every input pixel meets every tap


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deform_conv2d_layer(layout, rng):
    """With zero offsets a deformable convolution is the regular one; other offsets match the function."""
    layer = nn.DeformConv2d(4, 5, 3, padding=1, layout=layout, dtype=np.float64, rng=rng)
    state = layer.state_dict()
    x = rng.standard_normal((2, 6, 7, 4))
    offset = np.zeros((2, 6, 7, 18))
    expected = conv2d_ref(x, state["weight"].transpose(2, 3, 1, 0), state["bias"], (1, 1), (1, 1, 1, 1))
    y = from_layout(layer(to_layout(x, layout), to_layout(offset, layout)), layout)
    assert_close(y, expected, np.float64)
    offset = rng.uniform(-1.5, 1.5, offset.shape)
    mask = rng.uniform(0, 1, (2, 6, 7, 9))
    y = from_layout(layer(to_layout(x, layout), to_layout(offset, layout), to_layout(mask, layout)), layout)
    fn = convkit.deform_conv2d(x, offset, state["weight"].transpose(2, 3, 1, 0), state["bias"], padding=1,
                               mask=mask)
    assert_close(y, fn, np.float64)
    in_shape = (2, 6, 7, 4) if layout == "NHWC" else (2, 4, 6, 7)
    assert layer.output_shape(in_shape) == (2, 6, 7, 5) if layout == "NHWC" else (2, 5, 6, 7)
    assert layer.macs(in_shape) == 2 * 6 * 7 * 9 * (5 * 4 + 4 * 4)  # conv + 4-point bilinear samples


def test_summary_rows(capsys):
    model = nn.Sequential(nn.ConvBNAct(3, 8, 3, stride=2), nn.GlobalAvgPool2d(), nn.Flatten(),
                          nn.Linear(8, 4))
    rows = convkit.summary(model, (2, 16, 16, 3))
    printed = capsys.readouterr().out
    assert [r["name"] for r in rows] == ["0.0", "0.1", "0.2", "1", "2", "3"]
    assert [r["output_shape"] for r in rows] == [(2, 8, 8, 8)] * 3 + [(2, 8), (2, 8), (2, 4)]
    assert [r["params"] for r in rows] == [3 * 9 * 8, 16, 0, 0, 0, 36]
    assert rows[0]["macs"] == 2 * 8 * 8 * 8 * 27 and rows[-1]["macs"] == 2 * 8 * 4
    assert "0.1" in printed and "BatchNorm2d" in printed and f"Total params: {model.num_params():,}" in printed
