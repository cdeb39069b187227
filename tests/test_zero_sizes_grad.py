"""Zero-sized arguments in convkit.grad: every gradient follows its forward's row of tests/test_zero_sizes.py.

Where the forward returns an (empty) result, the gradients have the shapes of the forward's inputs and,
where PyTorch is installed, PyTorch autograd's values (zeros for a weight or bias seen through an empty
batch); where the forward raises ValueError naming an argument, so does each gradient.
"""
import numpy as np
import pytest

import convkit
from convkit import grad

from test_zero_sizes import CASES, _arrays, _call, _torch_call

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh")
# Functions that have a gradient; batch norm's is the training one.
GRAD_CASES = [c for c in CASES if c.function in ("conv2d", "conv_transpose2d", "deform_conv2d", "max_pool2d",
                                                 "avg_pool2d", "linear", "softmax", "log_softmax", "cross_entropy")
              + ACTIVATIONS or c.function == "batch_norm" and c.kwargs.get("training")]
GRAD_FUNCTIONS = {"conv2d_input", "conv2d_weight", "conv2d_bias", "conv_transpose2d_input", "conv_transpose2d_weight",
                  "deform_conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "linear", "softmax", "log_softmax",
                  "cross_entropy", *ACTIVATIONS}


def test_every_gradient_is_swept():
    # weight_workspace_bytes is a size estimate, not a gradient: any shape gives a byte count.
    assert GRAD_FUNCTIONS | {"weight_workspace_bytes"} == set(grad.__all__)


def _backward(case, a, go, y, layout):
    """{input name: its gradient} from convkit.grad for ``case``'s call (``y`` the forward's result)."""
    f, kw = case.function, dict(case.kwargs)
    geo = {k: kw[k] for k in ("padding", "groups") if k in kw}
    if f == "conv2d":
        return {"x": grad.conv2d_input(a["x"].shape, a["weight"], go, layout=layout, **geo),
                "weight": grad.conv2d_weight(a["x"], a["weight"].shape, go, layout=layout, **geo),
                "bias": grad.conv2d_bias(go, layout=layout)}
    if f == "conv_transpose2d":
        return {"x": grad.conv_transpose2d_input(a["x"].shape, a["weight"], go, layout=layout, **geo),
                "weight": grad.conv_transpose2d_weight(a["x"], a["weight"].shape, go, layout=layout, **geo),
                "bias": grad.conv2d_bias(go, layout=layout)}
    if f == "deform_conv2d":
        gx, goff, gw, gm, gb = grad.deform_conv2d(go, a["x"], a["offset"], a["weight"], a.get("mask"),
                                                  layout=layout, **geo)
        return {"x": gx, "offset": goff, "weight": gw, "mask": gm, "bias": gb}
    if f in ("max_pool2d", "avg_pool2d"):
        return {"x": getattr(grad, f)(go, a["x"], kw["kernel_size"], layout=layout)}
    if f == "batch_norm":
        gx, gw, gb = grad.batch_norm(go, a["x"], a.get("weight"), layout=layout)
        return {"x": gx, "weight": gw, "bias": gb}
    if f == "linear":
        gx, gw, gb = grad.linear(go, a["x"], a["weight"])
        return {"x": gx, "weight": gw, "bias": gb}
    if f in ("softmax", "log_softmax"):
        return {"x": getattr(grad, f)(go, y)}
    if f == "cross_entropy":
        return {"logits": grad.cross_entropy(a["logits"], a["labels"], kw["reduction"], grad_output=go)}
    return {"x": getattr(grad, f)(go, a["x"])}


def _nhwc_shape(shape, layout):
    return shape if layout == "NHWC" or len(shape) != 4 else (shape[0], shape[2], shape[3], shape[1])


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.id for c in GRAD_CASES])
def test_zero_sized_gradients(case):
    dtype = np.float64
    for layout in case.layouts:
        if case.expected == "bias":
            continue   # the gradients take no bias (conv2d_bias sums grad_output)
        if isinstance(case.expected, str):
            # No forward output: a grad_output of any shape; the argument's own check must come first.
            arrays = _arrays(case, layout, dtype)
            with pytest.raises(ValueError, match=case.expected):
                _backward(case, arrays, np.zeros((1,) * 4 if case.function not in ("linear",) else (1, 1)), None,
                          layout)
            continue
        arrays, y = _call(case, layout, dtype)
        go = np.random.default_rng(1).standard_normal(y.shape)
        grads = _backward(case, arrays, go, y, layout)
        channels = y.shape[-1] if layout == "NHWC" or y.ndim != 4 else y.shape[1]
        for name, g in grads.items():
            if name in ("bias", "weight") and arrays.get(name) is None:
                assert g.shape == (channels,)   # returned without the argument (batch norm: weight None is 1)
                continue
            if arrays.get(name) is None:
                assert g is None
                continue
            assert g.shape == arrays[name].shape, (name, layout)
            assert g.dtype == dtype


TORCH_GRAD_CASES = [c for c in GRAD_CASES if not isinstance(c.expected, str) and not c.differs
                    and c.label != "channels 0, affine"]


@pytest.mark.parametrize("case", TORCH_GRAD_CASES, ids=[c.id for c in TORCH_GRAD_CASES])
def test_zero_sized_gradients_are_pytorchs(case):
    torch = pytest.importorskip("torch")
    if case.function == "deform_conv2d":
        pytest.importorskip("torchvision")
    arrays, y = _call(case, "NCHW", np.float64)
    go = np.random.default_rng(1).standard_normal(y.shape)
    grads = _backward(case, arrays, go, y, "NCHW")
    tensors = {k: None if v is None else torch.from_numpy(v.copy()) for k, v in arrays.items()}
    leaves = {k: t.requires_grad_(True) for k, t in tensors.items()
              if t is not None and t.is_floating_point() and k not in ("running_mean", "running_var")}
    _torch_call(case, torch, tensors).backward(torch.from_numpy(go))
    for name, t in leaves.items():
        expected = torch.zeros_like(t) if t.grad is None else t.grad   # autograd leaves None for "no path"
        np.testing.assert_allclose(grads[name], expected.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
