"""resnet18 and mobilenet_v2: torchvision's keys, state-dict loading, and forward passes checked against
float64 NumPy references (always) and PyTorch (where importable)."""
import functools

import numpy as np
import pytest

import convkit
import reference_nn
from convkit.models import mobilenet_v2, resnet18

MODELS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}
REFERENCES = {"resnet18": reference_nn.resnet18, "mobilenet_v2": reference_nn.mobilenet_v2}
# torchvision's published counts: parameters, and multiply-accumulates at 224x224 (conv + linear).
PARAMS = {"resnet18": 11_689_512, "mobilenet_v2": 3_504_872}
MACS_224 = {"resnet18": 1_814_073_344, "mobilenet_v2": 300_774_272}


def assert_rel_close(actual, expected, rtol):
    """max |actual - expected| <= rtol * max |expected| (relative to the output's scale)."""
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = np.abs(actual.astype(np.float64) - expected).max()
    scale = np.abs(expected).max()
    assert scale > 0 and err <= rtol * scale, f"max abs error {err:.3g}, output scale {scale:.3g}"


def random_state(model, seed):
    """A state dict for ``model`` (PyTorch layouts) with well-scaled random weights and non-trivial
    batch-norm statistics, so every layer matters in the comparison."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(7, np.int64)
        elif value.ndim >= 2:  # conv (fan_in = Cin/groups*KH*KW) and linear (fan_in = in_features)
            std = np.sqrt((2.0 if value.ndim == 4 else 1.0) / value[0].size)
            state[key] = rng.standard_normal(value.shape, np.float32) * np.float32(std)
        elif key.endswith(("running_var", ".weight")):
            state[key] = rng.uniform(0.75, 1.25, value.shape).astype(np.float32)
        else:
            state[key] = rng.normal(0, 0.1, value.shape).astype(np.float32)
    return state


def to_layout(x_nhwc, layout):
    return x_nhwc if layout == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))


@functools.lru_cache(maxsize=None)
def reference_case(name):
    """(state dict, NHWC input, float64 reference logits) at 64x64, batch 2, computed once per model."""
    state = random_state(MODELS[name](), seed=1)
    x = np.random.default_rng(2).standard_normal((2, 64, 64, 3)).astype(np.float32)
    return state, x, REFERENCES[name](state, x)


@pytest.mark.parametrize("name", MODELS)
def test_counts_match_torchvision(name):
    model = MODELS[name]()
    assert model.num_params() == PARAMS[name]
    assert model.macs((1, 224, 224, 3)) == MACS_224[name]
    assert model.macs((4, 224, 224, 3)) == 4 * MACS_224[name]
    assert MODELS[name]("NCHW").macs((1, 3, 224, 224)) == MACS_224[name]
    assert model.output_shape((3, 224, 224, 3)) == (3, 1000)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-4), (np.float64, 1e-10)])
@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_float64_reference(name, dtype, rtol, layout):
    state, x, expected = reference_case(name)
    model = MODELS[name](layout, dtype=dtype).load_state_dict(state)
    logits = model(to_layout(x.astype(dtype), layout))
    assert logits.dtype == dtype
    assert_rel_close(logits, expected, rtol)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip_and_layouts(name):
    state = random_state(MODELS[name](), seed=3)
    nhwc = MODELS[name]().load_state_dict(state)
    nchw = MODELS[name]("NCHW").load_state_dict(state)
    for model in (nhwc, nchw):
        out = model.state_dict()
        assert list(out) == list(state)
        for key, value in state.items():
            np.testing.assert_array_equal(out[key], value, err_msg=key)
    conv = "conv1" if name == "resnet18" else "features.0.0"
    oihw = state[conv + ".weight"]
    np.testing.assert_array_equal(nchw.get_submodule(conv).weight, oihw)
    np.testing.assert_array_equal(nhwc.get_submodule(conv).weight, oihw.transpose(2, 3, 1, 0))  # HWIO
    x = np.random.default_rng(4).standard_normal((1, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(nchw(to_layout(x, "NCHW")), nhwc(x), rtol=0, atol=1e-5)


def test_same_seed_same_weights_in_both_layouts():
    a, b = resnet18(rng=5).state_dict(), resnet18("NCHW", rng=5).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], resnet18(rng=6).state_dict()["conv1.weight"])


@pytest.mark.parametrize("name", MODELS)
def test_load_state_dict_refolds(name):
    """The folded weights are cached; loading new weights (or assigning one) must refold them."""
    state = reference_case(name)[0]
    x = np.random.default_rng(2).standard_normal((1, 32, 32, 3)).astype(np.float32)
    model = MODELS[name]()
    model(x)  # folds the initial weights
    model.load_state_dict(state)
    assert_rel_close(model(x), REFERENCES[name](state, x), 1e-4)
    bn = "bn1" if name == "resnet18" else "features.0.1"
    changed = dict(state, **{f"{bn}.running_var": state[f"{bn}.running_var"] * 4})
    model.get_submodule(bn).running_var = changed[f"{bn}.running_var"]
    assert_rel_close(model(x), REFERENCES[name](changed, x), 1e-4)


def test_missing_key_raises_key_error_naming_it():
    state = resnet18().state_dict()
    del state["layer2.0.downsample.1.running_var"]
    with pytest.raises(KeyError, match=r"layer2\.0\.downsample\.1\.running_var"):
        resnet18().load_state_dict(state)


def test_unexpected_key_raises_key_error_naming_it():
    state = mobilenet_v2().state_dict()
    state["classifier.2.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(KeyError, match=r"unexpected.*classifier\.2\.weight"):
        mobilenet_v2().load_state_dict(state)


def test_wrong_shape_raises_value_error_with_both_shapes():
    model = resnet18()
    before = model.state_dict()
    state = dict(before, **{"fc.weight": np.zeros((10, 512), np.float32),
                            "conv1.weight": np.ones((64, 3, 7, 7), np.float32)})
    with pytest.raises(ValueError, match=r"fc\.weight.*\(1000, 512\).*\(10, 512\)"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.state_dict()["conv1.weight"], before["conv1.weight"])  # untouched


def test_summary_table_and_totals(capsys):
    rows = convkit.summary(resnet18("NCHW"), (1, 3, 224, 224))
    printed = capsys.readouterr().out
    assert "Total params: 11,689,512" in printed and "Total MACs:   1,814,073,344" in printed
    assert sum(r["params"] for r in rows) == PARAMS["resnet18"]
    assert sum(r["macs"] for r in rows) == MACS_224["resnet18"]
    first = rows[0]
    assert (first["name"], first["type"], first["output_shape"]) == ("conv1", "Conv2d", (1, 64, 112, 112))
    assert first["macs"] == 112 * 112 * 64 * 7 * 7 * 3 and first["params"] == 64 * 3 * 7 * 7
    assert rows[-1]["name"] == "fc" and rows[-1]["output_shape"] == (1, 1000)
    shapes = {r["name"]: r["output_shape"] for r in rows}
    assert shapes["layer4.1.conv2"] == (1, 512, 7, 7) and shapes["maxpool"] == (1, 64, 56, 56)


# --- PyTorch cross-check: torchvision's architectures rebuilt from torch.nn, eval mode, 224x224 ---------

@functools.lru_cache(maxsize=None)
def torch_model(name):
    """torchvision's architecture from torch.nn, eval mode, with random batch-norm statistics."""
    torch = pytest.importorskip("torch")
    from convkit.models import torch_reference
    build = {"resnet18": torch_reference.torch_resnet18, "mobilenet_v2": torch_reference.torch_mobilenet_v2}
    torch.manual_seed(0)
    model = torch_reference.randomize_batch_norm(build[name](), seed=1).eval()
    return model, {k: v.numpy() for k, v in model.state_dict().items()}


@functools.lru_cache(maxsize=None)
def torch_case(name, batch):
    """(NHWC input, PyTorch eval-mode logits) for one model and batch."""
    torch = pytest.importorskip("torch")
    model, _ = torch_model(name)
    x = np.random.default_rng(batch).standard_normal((batch, 224, 224, 3)).astype(np.float32)
    with torch.inference_mode():
        return x, model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()


@functools.lru_cache(maxsize=None)
def model_with_torch_weights(name, layout):
    return MODELS[name](layout).load_state_dict(torch_model(name)[1])


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_pytorch_224(name, batch, layout):
    x, expected = torch_case(name, batch)
    logits = model_with_torch_weights(name, layout)(to_layout(x, layout))
    assert logits.shape == (batch, 1000) and logits.dtype == np.float32
    assert_rel_close(logits, expected, 1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_keys_and_shapes_match_pytorch(name):
    state = torch_model(name)[1]
    ours = MODELS[name]().state_dict()
    assert list(ours) == list(state)
    assert all(ours[k].shape == state[k].shape and ours[k].dtype == state[k].dtype for k in state)
