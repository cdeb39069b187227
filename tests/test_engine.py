"""The networks' inference path (convkit.nn.conv._BoundConv2d): the prepared fast path after the first call
per input shape, the shortcut fused into the last convolution of a block, and the prepared state
(folded batch norm, packed weights) rebuilt when parameters are assigned."""
import numpy as np
import pytest

import convkit
import reference_nn as ref
from convkit import nn
from helpers import assert_close
from test_nn import randomize, run


def basic_block_ref(state, x, stride, downsample):
    out = ref.relu(ref.batch_norm(state, "bn1", ref.conv(state, "conv1", x, stride, 1)))
    out = ref.batch_norm(state, "bn2", ref.conv(state, "conv2", out, 1, 1))
    identity = ref.batch_norm(state, "downsample.1", ref.conv(state, "downsample.0", x, stride)) \
        if downsample else x
    return ref.relu(out + identity)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplanes, planes, stride", [(16, 16, 1), (8, 24, 2)])
def test_basic_block_fast_path_and_weight_updates(inplanes, planes, stride, dtype, layout, rng):
    block = randomize(nn.BasicBlock(inplanes, planes, stride, layout=layout, dtype=dtype, rng=rng))
    x = rng.standard_normal((2, 34, 33, inplanes)).astype(dtype)   # maps large enough for "direct"
    expected = basic_block_ref(block.state_dict(), x, stride, block.downsample is not None)
    for _ in range(3):      # the first call plans, the next ones run the prepared convolutions
        assert_close(run(block, x), expected, dtype)
    conv2 = block._cached("plan", lambda: None)[1]
    packed = conv2._prepared["direct"]
    assert packed is not None
    assert_close(run(block, x), expected, dtype)
    assert conv2._prepared["direct"] is packed       # packed once, kept
    block.conv2.weight = block.conv2.weight * -2      # assignment: the prepared weights are rebuilt
    block.bn2.running_mean = block.bn2.running_mean + 1
    expected = basic_block_ref(block.state_dict(), x, stride, block.downsample is not None)
    for _ in range(2):
        assert_close(run(block, x), expected, dtype)
    x2 = rng.standard_normal((1, 5, 6, inplanes)).astype(dtype)   # another input shape: its own plan
    assert_close(run(block, x2), basic_block_ref(block.state_dict(), x2, stride,
                                                 block.downsample is not None), dtype)


@pytest.mark.parametrize("inp, oup, stride, t", [(16, 16, 1, 6), (8, 8, 1, 1), (8, 16, 2, 6)])
def test_inverted_residual_fast_path(inp, oup, stride, t, rng):
    block = randomize(nn.InvertedResidual(inp, oup, stride, t, dtype=np.float64, rng=rng))
    x = rng.standard_normal((2, 7, 6, inp))
    first = run(block, x)
    for _ in range(2):
        np.testing.assert_allclose(run(block, x), first, rtol=1e-12, atol=1e-12)
    block.conv[-2].weight = block.conv[-2].weight * 0.5
    changed = run(block, x)
    assert not np.allclose(changed, first)
    fresh = nn.InvertedResidual(inp, oup, stride, t, dtype=np.float64).load_state_dict(block.state_dict())
    np.testing.assert_allclose(changed, run(fresh, x), rtol=1e-12, atol=1e-12)


def test_fused_conv_checks_inputs_it_has_not_seen(rng):
    """Inputs of another dtype, a strided view or a wrong channel count go through conv2d's checks."""
    seq = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, rng=rng), nn.BatchNorm2d(8), nn.ReLU())
    x = rng.standard_normal((1, 6, 6, 4)).astype(np.float32)
    y = seq(x)
    np.testing.assert_array_equal(seq(x), y)
    np.testing.assert_allclose(seq(np.asfortranarray(x)), y, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="dtype"):
        seq(x.astype(np.float64))
    with pytest.raises(ValueError, match="input channels"):
        seq(x[..., :3].copy())


def test_resnet_repeated_calls_and_threads(rng):
    model = convkit.models.resnet18(rng=1)
    x = rng.standard_normal((1, 64, 64, 3)).astype(np.float32)
    first = model(x)
    np.testing.assert_allclose(model(x), first, rtol=1e-5, atol=1e-5)
    convkit.set_num_threads(1)
    try:
        np.testing.assert_allclose(model(x), first, rtol=1e-4, atol=1e-5)
    finally:
        convkit.set_num_threads(None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cin, cout, stride", [(5, 70, 1), (3, 40, 2), (8, 8, 1)])
def test_pointwise_gemm_layer_keeps_its_weight_packed(cin, cout, stride, dtype, rng):
    """A widening 1x1 (algo "auto" -> "im2col") runs as one GEMM with its weight packed once as B; a
    stride-2 one (im2col's patches) and the reference agree, and assignment repacks."""
    seq = randomize(nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False, dtype=dtype, rng=rng),
                                  nn.BatchNorm2d(cout, dtype=dtype), nn.ReLU6()))
    x = rng.standard_normal((2, 9, 13, cin)).astype(dtype)

    def expected():
        return ref.relu6(ref.batch_norm(seq.state_dict(), "1", ref.conv(seq.state_dict(), "0", x, stride)))

    for _ in range(3):      # the first call plans, the next ones run the prepared convolution
        assert_close(run(seq, x), expected(), dtype)
    bound = seq._plan()[0]
    packed = bound._prepared["im2col"]
    assert isinstance(packed, convkit._kernels.gemm.PackedB) and packed.shape == (cin, cout)
    seq[0].weight = seq[0].weight * -2      # assignment: packed again
    for _ in range(2):
        assert_close(run(seq, x), expected(), dtype)
    assert seq._plan()[0]._prepared["im2col"] is not packed
