"""Whole networks: resnet18 and mobilenet_v2 forward passes at 224x224, beside PyTorch (channels_last)."""
import numpy as np

from convkit.models import mobilenet_v2, resnet18
from convkit.models.torch_reference import torch_mobilenet_v2, torch_resnet18

from .core import Candidate, Case
from .peers import to_torch, torch_call, torch_module

MODELS = {"resnet18": (resnet18, torch_resnet18), "mobilenet_v2": (mobilenet_v2, torch_mobilenet_v2)}
SIZE = 224
SECTIONS = {"models": "resnet18 and mobilenet_v2 forward passes at 224x224, beside PyTorch"}
ORDER = 50


def model_case(name, batch, macs_per_image):
    build, build_torch = MODELS[name]

    def make(config):
        model = build(config.layout, dtype=config.dtype, rng=config.rng())
        x_nhwc = config.rng().standard_normal((batch, SIZE, SIZE, 3)).astype(config.dtype)
        x = x_nhwc if config.layout == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
        cands = [Candidate("convkit", lambda: model(x))]
        if name == "resnet18":   # its 13 3x3 stride-1 layers with Winograd, the transforms kept per layer
            wino = build(config.layout, dtype=config.dtype, algo="winograd").load_state_dict(model.state_dict())
            cands.append(Candidate("winograd", lambda: wino(x)))
        torch = torch_module()
        if torch is not None:
            tmodel = build_torch().to(torch.float64 if config.dtype == np.float64 else torch.float32)
            tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
            tmodel = tmodel.eval().to(memory_format=torch.channels_last)
            xt = to_torch(x_nhwc, "NHWC")
            cands.append(Candidate("torch", torch_call(lambda: tmodel(xt)), ours=False))
        return cands

    return Case("models", f"{name} {SIZE}x{SIZE} b{batch}", make, flops=2.0 * batch * macs_per_image)


def cases(config):
    batches = (1,) if config.quick else (1, 8)
    out = []
    for name, (build, _) in MODELS.items():
        macs = build().macs((1, SIZE, SIZE, 3))
        out += [model_case(name, batch, macs) for batch in batches]
    return out
