"""The memory-bound units (activation, batch norm, pooling) on 56x56x256, batch 8, against PyTorch and
against memory copies.

Each unit's ``bytes`` is its minimum traffic: the input read once plus the output written once, so the
GB/s column is its effective bandwidth.  Two references measure what the memory system allows: ``copy`` is
``np.copyto`` moving exactly the unit's bytes (so its "x best" ratio is the fraction of copy bandwidth
the unit reaches at that working-set size), and the ``memory copy`` row is ``np.copyto`` of a 256 MiB array
(64 MiB with --quick), the machine's copy bandwidth beyond the caches.
"""
import dataclasses

import numpy as np

import convkit
from convkit._layout import from_nhwc

from .core import Candidate, Case
from .peers import to_torch, torch_call, torch_module

N, H, W, C = 8, 56, 56, 256
SECTION = "units"
SECTIONS = {SECTION: "activations, batch norm and pooling on 8x56x56x256 against PyTorch and memory copies"}
ORDER = 30


@dataclasses.dataclass
class Inputs:
    x: np.ndarray          # the activation in the configured layout
    layout: str
    bn: tuple              # (running_mean, running_var, weight, bias)
    xt: object = None      # the same activation as a torch tensor (channels_last for NHWC)
    bn_t: tuple = ()
    F: object = None       # torch.nn.functional


# (name, convkit call, torch call, output size / input size); the calls take an Inputs.
def _units(quick):
    units = [
        ("relu", lambda i: convkit.relu(i.x), lambda i: i.F.relu(i.xt), 1.0),
        ("relu in place (out=x)", lambda i: convkit.relu(i.x, out=i.x), lambda i: i.F.relu_(i.xt), 1.0),
        ("batch_norm inference", lambda i: convkit.batch_norm(i.x, *i.bn, layout=i.layout),
         lambda i: i.F.batch_norm(i.xt, *i.bn_t), 1.0),
        ("max_pool2d 3x3/2 pad 1", lambda i: convkit.max_pool2d(i.x, 3, 2, 1, layout=i.layout),
         lambda i: i.F.max_pool2d(i.xt, 3, 2, 1), _pool_out(3, 2, 1)),
    ]
    if not quick:
        units += [
            ("batch_norm training", lambda i: convkit.batch_norm(i.x, *i.bn, training=True, layout=i.layout),
             lambda i: i.F.batch_norm(i.xt, *i.bn_t, training=True), 1.0),
            ("avg_pool2d 3x3/1 pad 1", lambda i: convkit.avg_pool2d(i.x, 3, 1, 1, layout=i.layout),
             lambda i: i.F.avg_pool2d(i.xt, 3, 1, 1), _pool_out(3, 1, 1)),
            ("avg_pool2d 2x2/2", lambda i: convkit.avg_pool2d(i.x, 2, layout=i.layout),
             lambda i: i.F.avg_pool2d(i.xt, 2), _pool_out(2, 2, 0)),
            ("global_avg_pool2d", lambda i: convkit.global_avg_pool2d(i.x, layout=i.layout),
             lambda i: i.F.adaptive_avg_pool2d(i.xt, 1), 1.0 / (H * W)),
        ]
    return units


def _pool_out(k, s, p):
    """Output pixels over input pixels of a pooling on the H x W image."""
    return ((H + 2 * p - k) // s + 1) * ((W + 2 * p - k) // s + 1) / (H * W)


def _unit_case(name, ours, theirs, out_ratio, itemsize):
    traffic = N * H * W * C * itemsize * (1 + out_ratio)

    def make(config):
        rng = config.rng()
        x_nhwc = rng.standard_normal((N, H, W, C)).astype(config.dtype)
        x = from_nhwc(x_nhwc, config.layout)
        bn = (rng.standard_normal(C).astype(config.dtype), (rng.random(C) + 0.5).astype(config.dtype),
              rng.standard_normal(C).astype(config.dtype), rng.standard_normal(C).astype(config.dtype))
        inputs = Inputs(x, config.layout, bn)
        cands = [Candidate("convkit", lambda: ours(inputs))]
        torch = torch_module()
        if torch is not None:
            inputs.xt = to_torch(x_nhwc, "NHWC", channels_last=config.layout == "NHWC")
            inputs.bn_t = tuple(torch.from_numpy(a.copy()) for a in bn)
            inputs.F = torch.nn.functional
            cands.append(Candidate("torch", torch_call(lambda: theirs(inputs)), ours=False))
        src = np.ones(int(traffic // 2) // 4, np.float32)
        dst = np.empty_like(src)
        cands.append(Candidate("copy", lambda: np.copyto(dst, src), ours=False, reference=True))
        return cands

    return Case(SECTION, f"{name} {N}x{H}x{W}x{C}", make, bytes=traffic)


def _copy_case(quick):
    size = (64 if quick else 256) << 20

    def make(config):
        src = np.ones(size // 4, np.float32)
        dst = np.empty_like(src)
        return [Candidate("np.copyto", lambda: np.copyto(dst, src), ours=False, reference=True)]

    return Case(SECTION, f"memory copy {size >> 20} MiB", make, bytes=2 * size)


def cases(config):
    itemsize = np.dtype(config.dtype).itemsize
    return [_copy_case(config.quick)] + [_unit_case(*u, itemsize) for u in _units(config.quick)]
