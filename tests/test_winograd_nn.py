"""Layers and models with algo="winograd": transforms kept per layer, rebuilt on new weights; logits."""
import numpy as np
import pytest

import convkit
from convkit import nn, winograd
from convkit.models import resnet18
from helpers import nchw, oihw
from reference import conv2d_ref
from test_models import assert_rel_close, reference_case, torch_case, torch_model


def _count_transforms(monkeypatch):
    """Tile sizes of the weight transforms computed from now on (by either path of WinogradWeight)."""
    calls = []
    original_transform, original_keep = winograd._transform, winograd.WinogradWeight.keep

    def transform(w, m):
        calls.append(m)
        return original_transform(w, m)

    def keep(self, m, u):
        calls.append(m)
        return original_keep(self, m, u)

    monkeypatch.setattr(winograd, "_transform", transform)
    monkeypatch.setattr(winograd.WinogradWeight, "keep", keep)
    return calls


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_conv2d_layer_keeps_transforms_until_weights_change(layout, monkeypatch, rng):
    calls = _count_transforms(monkeypatch)
    layer = nn.Conv2d(5, 7, 3, padding=1, layout=layout, dtype=np.float64, algo="winograd")
    x = rng.standard_normal((2, 9, 10, 5))
    xin = x if layout == "NHWC" else nchw(x)
    for _ in range(3):
        y = layer(xin)
    assert calls == [4]
    w_hwio = layer.weight if layout == "NHWC" else layer.weight.transpose(2, 3, 1, 0)
    expected = conv2d_ref(x, w_hwio, layer.bias, (1, 1), (1, 1, 1, 1))
    assert_rel_close(y if layout == "NHWC" else y.transpose(0, 2, 3, 1), expected, 1e-10)

    layer.weight = layer.weight * 2      # assigning parameters rebuilds the transforms
    y2 = layer(xin)
    assert calls == [4, 4]
    expected2 = conv2d_ref(x, 2 * w_hwio, layer.bias, (1, 1), (1, 1, 1, 1))
    assert_rel_close(y2 if layout == "NHWC" else y2.transpose(0, 2, 3, 1), expected2, 1e-10)


def test_layer_algo_is_checked():
    with pytest.raises(ValueError, match='algo="winograd" needs a 3x3 kernel, stride 1 and dilation 1'):
        nn.Conv2d(4, 4, 3, stride=2, algo="winograd")
    with pytest.raises(ValueError, match="expected algo to be one of"):
        nn.Conv2d(4, 4, 3, algo="fft")
    layer = nn.Conv2d(4, 4, 3, padding=1)
    assert layer.algo == "auto"
    layer.algo = "winograd"
    assert "algo='winograd'" in repr(layer)


def test_resnet18_applies_winograd_to_eligible_layers_only():
    model = resnet18(algo="winograd")
    algos = {name: m.algo for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert sum(a == "winograd" for a in algos.values()) == 13      # the 3x3 stride-1 layers
    assert algos["conv1"] == "auto" and algos["layer2.0.conv1"] == "auto"
    assert algos["layer2.0.downsample.0"] == "auto" and algos["layer2.0.conv2"] == "winograd"


def test_resnet18_winograd_float64_matches_reference(monkeypatch):
    calls = _count_transforms(monkeypatch)
    state, x, expected = reference_case("resnet18")
    model = resnet18(dtype=np.float64, algo="winograd").load_state_dict(state)
    for _ in range(2):
        logits = model(x.astype(np.float64))
    assert len(calls) == 13                        # once per layer, not per call
    assert_rel_close(logits, expected, 1e-9)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_resnet18_winograd_matches_pytorch_logits(layout):
    x, expected = torch_case("resnet18", 1)
    model = resnet18(layout, algo="winograd").load_state_dict(torch_model("resnet18")[1])
    logits = model(x if layout == "NHWC" else nchw(x))
    assert_rel_close(logits, expected, 5e-4)
