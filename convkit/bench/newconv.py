"""Depthwise, grouped (few channels per group) and transposed convolution, beside PyTorch (channels_last).

Depthwise and grouped rows time ``conv2d`` (``algo="direct"`` runs the depthwise / groups-as-lanes
kernels of ``convkit.grouped``) against im2col + GEMM; the transposed rows time ``conv_transpose2d``'s
``direct`` (gather) and ``col2im`` (GEMM + col2im) algorithms.  ``flops`` is 2 x the MACs of
``convkit.counts`` (for the transposed convolution: counted on its input map, as PyTorch's FLOP counter).
"""
import numpy as np

import convkit
from convkit import conv_transpose as ct
from convkit.grouped import direct_workspace_bytes

from .conv import layer_case
from .core import Candidate, Case
from .peers import torch_call, torch_module, to_torch

SECTIONS = {"depthwise": "depthwise 3x3 (MobileNet) against im2col and PyTorch",
            "grouped": "grouped 3x3 with 4 channels per group (ResNeXt) against im2col and PyTorch",
            "transposed": "conv_transpose2d direct (gather) vs col2im, beside PyTorch"}
ORDER = 20

# (section, name, N, H, W, Cin, Cout, K, stride, padding, dilation, groups)
GROUPED_LAYERS = [
    ("depthwise", "dw 3x3 112x112x32 b1", 1, 112, 112, 32, 32, 3, 1, 1, 1, 32),
    ("depthwise", "dw 3x3/2 56x56x128 b1", 1, 56, 56, 128, 128, 3, 2, 1, 1, 128),
    ("grouped", "grouped 3x3 56x56x128 g32 b1", 1, 56, 56, 128, 128, 3, 1, 1, 1, 32),
]
# (name, N, H, W, Cin, Cout, K, stride, padding)
TRANSPOSED_LAYERS = [
    ("4x4/2 32x32x128->64 b1", 1, 32, 32, 128, 64, 4, 2, 1),
]
QUICK = {"dw 3x3 112x112x32 b1", "grouped 3x3 56x56x128 g32 b1", "4x4/2 32x32x128->64 b1"}


def grouped_case(section, name, n, h, w, cin, cout, k, stride, padding, dilation, groups):
    """conv2d's layer case, with the direct kernel's workspace (the grouped kernel's rings) filled in."""
    case = layer_case(name, n, h, w, cin, cout, k, stride, padding, dilation, groups, section=section)
    make_conv = case.make

    def make(config):
        cands = make_conv(config)
        for cand in cands:
            if cand.label in ("direct", "auto=direct"):
                cand.workspace_bytes = direct_workspace_bytes((n, h, w, cin), (k, k), (dilation, dilation),
                                                              groups, cout, config.threads, config.dtype)
        return cands

    case.make = make
    return case


def transposed_case(name, n, h, w, cin, cout, k, stride, padding):
    flops = 2.0 * n * convkit.conv_transpose_macs(cin, cout, k, (h, w))

    def make(config):
        rng = config.rng()
        x_nhwc = rng.standard_normal((n, h, w, cin)).astype(config.dtype)
        w_nhwc = (rng.standard_normal((k, k, cout, cin)) / np.sqrt(k * k * cin)).astype(config.dtype)
        w_nchw = np.ascontiguousarray(w_nhwc.transpose(3, 2, 0, 1))   # (Cin, Cout, KH, KW)
        if config.layout == "NHWC":
            x, wt = x_nhwc, w_nhwc
        else:
            x, wt = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)), w_nchw
        auto = ct.choose_algorithm(cout, config.dtype)
        workspace = {"direct": 0,
                     "col2im": ct.col2im_workspace_bytes(x_nhwc.shape, w_nhwc.shape, 1,
                                                         np.dtype(config.dtype).itemsize)}
        cands = [Candidate(f"auto={auto}" if a == "auto" else a,
                           _transposed_call(x, wt, stride, padding, config.layout, a),
                           workspace_bytes=workspace[auto if a == "auto" else a])
                 for a in ("direct", "col2im", "auto")]
        torch = torch_module()
        if torch is not None:
            xt = to_torch(x_nhwc, "NHWC")
            wtt = torch.from_numpy(w_nchw).contiguous(memory_format=torch.channels_last)
            cands.append(Candidate("torch", torch_call(lambda: torch.nn.functional.conv_transpose2d(
                xt, wtt, None, stride, padding)), ours=False))
        return cands

    return Case("transposed", name, make, flops=flops)


def _transposed_call(x, w, stride, padding, layout, algo):
    return lambda: convkit.conv_transpose2d(x, w, None, stride, padding, layout=layout, algo=algo)


def cases(config):
    grouped = [g for g in GROUPED_LAYERS if not config.quick or g[1] in QUICK]
    transposed = [t for t in TRANSPOSED_LAYERS if not config.quick or t[0] in QUICK]
    return [grouped_case(*g) for g in grouped] + [transposed_case(*t) for t in transposed]
