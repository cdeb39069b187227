"""Gradients: conv2d's input + weight gradients beside PyTorch's autograd kernel (channels_last), and
deform_conv2d's backward beside torchvision's.

* ``conv2d_grad``: ResNet's 3x3 layers (56x56x64 and 28x28x128, batch 8, stride 1, padding 1).  convkit
  runs ``grad.conv2d_input`` then ``grad.conv2d_weight``; the peer is ``aten::convolution_backward`` with
  ``output_mask=[True, True, False]``, what ``loss.backward()`` calls for a channels_last conv2d (oneDNN).
  Rows "input" and "weight" time the two halves alone.  ``flops`` counts both products (4 x MACs).
* ``deformable_grad``: the forward bench's layer (3x3 64x64x64 -> 64, padding 1, offsets normal with
  sigma 2, DCNv1 and DCNv2, batch 1 and 8).  convkit's ``grad.deform_conv2d`` (all five gradients) beside
  ``torchvision::_deform_conv2d_backward``, what autograd calls (NCHW, its CPU kernel).  ``flops`` counts
  the two GEMM-shaped products (input-column and weight gradients, 4 x MACs), not the sampling.
"""
import numpy as np

from convkit import grad
from convkit._layout import conv_weight_from_hwio

from .core import Candidate, Case
from .deform import _nchw, torchvision_module
from .peers import torch_call, torch_module

SECTIONS = {
    "conv2d_grad": "conv2d input + weight gradients against PyTorch autograd (channels_last)",
    "deformable_grad": "deform_conv2d backward (x, offset, weight, mask, bias) against torchvision",
}
ORDER = 70

# (N, H, W, C, Cout, K)
CONV_LAYERS = [(8, 56, 56, 64, 64, 3), (8, 28, 28, 128, 128, 3)]
DEFORM_LAYERS = [(1, 64, 64, 64, 64, 3), (8, 64, 64, 64, 64, 3)]


def conv_case(n, h, w, c, cout, k, part):
    macs = n * h * w * cout * k * k * c

    def make(config):
        rng = config.rng()
        x = rng.standard_normal((n, h, w, c)).astype(config.dtype)
        wt = (rng.standard_normal((k, k, c, cout)) / np.sqrt(k * k * c)).astype(config.dtype)
        go = rng.standard_normal((n, h, w, cout)).astype(config.dtype)
        if config.layout == "NCHW":
            x, go, wt = _nchw(x), _nchw(go), conv_weight_from_hwio(wt, "NCHW")
        kwargs = dict(padding=k // 2, layout=config.layout)
        calls = {"input": lambda: grad.conv2d_input(x.shape, wt, go, **kwargs),
                 "weight": lambda: grad.conv2d_weight(x, wt.shape, go, **kwargs)}
        calls["input+weight"] = lambda: (calls["input"](), calls["weight"]())
        workspace = grad.weight_workspace_bytes(x.shape, wt.shape, dtype=config.dtype,
                                                num_threads=config.threads, layout=config.layout)
        cands = [Candidate("convkit", calls[part], workspace_bytes=workspace if part != "input" else None)]
        torch = torch_module()
        if torch is not None:
            cl = torch.channels_last
            nchw = (lambda a: a) if config.layout == "NCHW" else _nchw
            w_oihw = wt if config.layout == "NCHW" else conv_weight_from_hwio(wt, "NCHW")
            xt, got = (torch.from_numpy(nchw(a)).contiguous(memory_format=cl) for a in (x, go))
            wtt = torch.from_numpy(w_oihw).contiguous(memory_format=cl)
            mask = [part != "weight", part != "input", False]
            cands.append(Candidate("torch", torch_call(lambda: torch.ops.aten.convolution_backward(
                got, xt, wtt, None, [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], 1, mask)), ours=False))
        return cands

    factor = 4 if part == "input+weight" else 2
    return Case("conv2d_grad", f"{k}x{k} {h}x{w}x{c}->{cout} b{n} {part}", make, flops=factor * macs)


def deform_case(n, h, w, c, cout, k, masked):
    macs = n * h * w * cout * k * k * c

    def make(config):
        rng = config.rng()
        x = rng.standard_normal((n, h, w, c)).astype(config.dtype)
        wt = (rng.standard_normal((k, k, c, cout)) / np.sqrt(k * k * c)).astype(config.dtype)
        offset = (2 * rng.standard_normal((n, h, w, 2 * k * k))).astype(config.dtype)
        mask = rng.uniform(0, 1, (n, h, w, k * k)).astype(config.dtype) if masked else None
        go = rng.standard_normal((n, h, w, cout)).astype(config.dtype)
        in_nchw = (_nchw(go), _nchw(x), _nchw(offset), conv_weight_from_hwio(wt, "NCHW"),
                   _nchw(mask))
        ours = (go, x, offset, wt, mask) if config.layout == "NHWC" else in_nchw
        cands = [Candidate("convkit", lambda: grad.deform_conv2d(*ours, 1, k // 2, layout=config.layout))]
        if torchvision_module() is not None:
            import torch
            got, xt, ot, wtt, mt = (None if a is None else torch.from_numpy(a) for a in in_nchw)
            mt = torch.zeros((n, 1), dtype=xt.dtype) if mt is None else mt   # (torchvision's own placeholder)
            bias = torch.zeros(cout, dtype=xt.dtype)
            cands.append(Candidate("torchvision", torch_call(
                lambda: torch.ops.torchvision._deform_conv2d_backward(
                    got, xt, wtt, ot, mt, bias, 1, 1, k // 2, k // 2, 1, 1, 1, 1, masked)), ours=False))
        return cands

    name = f"{k}x{k} {h}x{w}x{c}->{cout} b{n} {'DCNv2 mask' if masked else 'DCNv1'}"
    return Case("deformable_grad", name, make, flops=4 * macs)


def cases(config):
    conv_layers = CONV_LAYERS[:1] if config.quick else CONV_LAYERS
    deform_layers = DEFORM_LAYERS[:1] if config.quick else DEFORM_LAYERS
    return ([conv_case(*layer, part) for layer in conv_layers for part in ("input+weight", "input", "weight")]
            + [deform_case(*layer, masked) for layer in deform_layers for masked in (False, True)])
