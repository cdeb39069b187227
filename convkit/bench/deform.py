"""Deformable convolution: direct vs im2col (and auto) beside torchvision.ops.deform_conv2d and our conv2d.

The layer is the issue's: 3x3, 64x64x64 -> 64, padding 1, random offsets of ~2 pixels (normal, sigma 2),
DCNv1 (no mask) and DCNv2 (mask uniform in [0, 1]), batch 1 and 8.  ``flops`` counts the convolution's
multiply-accumulates only (2 x N*Hout*Wout*Cout*KH*KW*Cin, as conv2d), not the bilinear sampling (four
corner reads and four multiply-adds per sampled value, N*Hout*Wout*KH*KW*Cin values).

Peers: ``torchvision`` (NCHW, its CPU kernel) when importable, and ``conv2d``, convkit's own regular
convolution of the same shape with ``algo="auto"``: "Nx vs conv2d" is what deforming costs on top of it.

``auto`` is timed right after ``direct`` and before ``im2col``: when im2col multiplied with NumPy's BLAS,
a call that followed it ran while OpenBLAS's threads still spin-waited, which slowed the OpenMP kernels
behind it by up to 1.8x in the interleaved rounds on the 2-core machine (im2col now runs on convkit's own
GEMM and OpenMP team; the order is kept).
"""
import numpy as np

import convkit
from convkit._layout import conv_weight_from_hwio, from_nhwc
from convkit.deform import choose_algorithm, workspace_bytes

from .core import Candidate, Case
from .peers import torch_call

SECTION = "deformable"
SECTIONS = {SECTION: "deform_conv2d direct vs im2col beside torchvision and convkit's own conv2d"}
ORDER = 40
# (N, H, W, Cin, Cout, K)
LAYERS = [(1, 64, 64, 64, 64, 3), (8, 64, 64, 64, 64, 3)]


def torchvision_module():
    """torchvision if importable (it is never a dependency of convkit), else None."""
    try:
        import torchvision
    except ImportError:
        return None
    return torchvision


def deform_case(n, h, w, cin, cout, k, masked):
    flops = 2.0 * n * h * w * cout * k * k * cin   # stride 1, padding k//2: output size = input size

    def make(config):
        rng = config.rng()
        x = rng.standard_normal((n, h, w, cin)).astype(config.dtype)
        wt = (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(config.dtype)
        offset = (2 * rng.standard_normal((n, h, w, 2 * k * k))).astype(config.dtype)
        mask = rng.uniform(0, 1, (n, h, w, k * k)).astype(config.dtype) if masked else None
        in_nchw = (_nchw(x), _nchw(offset), conv_weight_from_hwio(wt, "NCHW"), _nchw(mask))
        ours = (x, offset, wt, mask) if config.layout == "NHWC" else in_nchw
        itemsize = np.dtype(config.dtype).itemsize
        auto = choose_algorithm((k, k), cin, cout, itemsize)
        cands = [Candidate(f"auto={auto}" if algo == "auto" else algo,
                           _deform_call(ours, k, config.layout, algo),
                           workspace_bytes=workspace_bytes(auto if algo == "auto" else algo, x.shape, wt.shape,
                                                           (h, w), itemsize, config.threads))
                 for algo in ("direct", "auto", "im2col")]
        cands.append(Candidate("conv2d", lambda: convkit.conv2d(ours[0], ours[2], None, 1, k // 2,
                                                                 layout=config.layout),
                               ours=False, reference=True))
        tv = torchvision_module()
        if tv is not None:
            import torch
            xt, ot, wtt, mt = (None if a is None else torch.from_numpy(a) for a in in_nchw)
            cands.append(Candidate("torchvision", torch_call(
                lambda: tv.ops.deform_conv2d(xt, ot, wtt, None, 1, k // 2, 1, mt)), ours=False))
        return cands

    name = f"{k}x{k} {h}x{w}x{cin}->{cout} b{n} {'DCNv2 mask' if masked else 'DCNv1'}"
    return Case(SECTION, name, make, flops=flops)


def _nchw(a):
    return None if a is None else from_nhwc(a, "NCHW")


def _deform_call(args, k, layout, algo):
    x, offset, weight, mask = args
    return lambda: convkit.deform_conv2d(x, offset, weight, None, 1, k // 2, 1, mask, layout=layout, algo=algo)


def cases(config):
    layers = LAYERS[:1] if config.quick else LAYERS
    return [deform_case(*layer, masked) for layer in layers for masked in (False, True)]
