"""Winograd F(4x4,3x3) / F(2x2,3x3) on ResNet's 3x3 stride-1 layers, beside direct and PyTorch.

``winograd`` is ``conv2d(..., algo="winograd")`` as a user calls it (weights transformed in the call);
``winograd kept`` is what ``convkit.nn.Conv2d(..., algo="winograd")`` runs (weights transformed once).
The workspace column is the transformed tiles' and, per call, the chunks of transformed weights each
thread computes at a time (bounded by convkit.winograd.WORKSPACE_BYTES), not the kept weights'.
"""
import numpy as np

import convkit
from convkit import winograd

from convkit._layout import conv_weight_from_hwio, from_nhwc

from .core import Candidate, Case
from .peers import torch_call, torch_conv_weight, torch_module, to_torch

SECTIONS = {"winograd": "conv2d algo=\"winograd\" vs direct and PyTorch on ResNet's 3x3 stride-1 layers"}
ORDER = 15

# (name, N, H=W, C): 3x3, stride 1, padding 1, C -> C
LAYERS = [
    ("3x3 56x56x64 b1", 1, 56, 64),
    ("3x3 28x28x128 b8", 8, 28, 128),
    ("3x3 14x14x256 b1", 1, 14, 256),
    ("3x3 7x7x512 b1", 1, 7, 512),
    ("3x3 56x56x64 b8", 8, 56, 64),
    ("3x3 14x14x256 b8", 8, 14, 256),
    ("3x3 7x7x512 b8", 8, 7, 512),
]
QUICK_LAYERS = [0, 2]


def winograd_case(name, n, size, c):
    def make(config):
        rng = config.rng()
        x_nhwc = rng.standard_normal((n, size, size, c)).astype(config.dtype)
        w_hwio = (rng.standard_normal((3, 3, c, c)) * np.sqrt(2 / (9 * c))).astype(config.dtype)
        x, wt = from_nhwc(x_nhwc, config.layout), conv_weight_from_hwio(w_hwio, config.layout)
        kept = winograd.WinogradWeight(w_hwio)
        itemsize = np.dtype(config.dtype).itemsize
        workspace, kept_workspace = (winograd.workspace_bytes(n, (size, size), c, c, itemsize, config.threads,
                                                              keep) for keep in (False, True))
        cands = [Candidate("direct", lambda: convkit.conv2d(x, wt, padding=1, layout=config.layout,
                                                            algo="direct")),
                 Candidate("winograd", lambda: convkit.conv2d(x, wt, padding=1, layout=config.layout,
                                                              algo="winograd"), workspace_bytes=workspace),
                 Candidate("winograd kept", lambda: winograd.conv2d_transformed(x_nhwc, kept, padding=1),
                           workspace_bytes=kept_workspace)]
        torch = torch_module()
        if torch is not None:
            xt, wtt = to_torch(x_nhwc, "NHWC"), torch_conv_weight(w_hwio)
            cands.append(Candidate("torch", torch_call(lambda: torch.nn.functional.conv2d(xt, wtt, None, 1, 1)),
                                   ours=False))
        return cands

    return Case("winograd", name, make, flops=2.0 * n * size * size * c * c * 9)


def cases(config):
    layers = [LAYERS[i] for i in QUICK_LAYERS] if config.quick else LAYERS
    return [winograd_case(*layer) for layer in layers]
