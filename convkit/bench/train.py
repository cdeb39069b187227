"""One SGD training step of resnet18 and mobilenet_v2 (224x224, batch 8), beside PyTorch (channels_last).

A step is what a training loop repeats: forward in training mode, the cross-entropy loss's gradient,
backward (no gradient for the input images: PyTorch computes none either), and an SGD update with
momentum and weight decay.  Both libraries start from the same weights; ``flops`` counts the forward's
MACs three times (forward, input gradients, weight gradients), the usual estimate.
"""
import numpy as np

from convkit import grad
from convkit._layout import from_nhwc
from convkit.models import mobilenet_v2, resnet18
from convkit.models.torch_reference import torch_mobilenet_v2, torch_resnet18
from convkit.optim import SGD

from .core import Candidate, Case
from .peers import to_torch, torch_module

MODELS = {"resnet18": (resnet18, torch_resnet18), "mobilenet_v2": (mobilenet_v2, torch_mobilenet_v2)}
SIZE, CLASSES = 224, 1000
SGD_SETTINGS = dict(lr=0.01, momentum=0.9, weight_decay=1e-4)
SECTION = "train"
SECTIONS = {SECTION: "one SGD step (forward, backward, update) of resnet18 and mobilenet_v2, beside PyTorch"}
ORDER = 55


def convkit_step(model, x, labels):
    opt = SGD(model.parameters(), **SGD_SETTINGS)
    model.train()

    def step():
        opt.zero_grad()
        logits = model(x)
        model.backward(grad.cross_entropy(logits, labels), input_grad=False)
        opt.step()
    return step


def torch_step(tmodel, xt, labels):
    torch = torch_module()
    opt = torch.optim.SGD(tmodel.parameters(), **SGD_SETTINGS)
    tmodel.train()
    labels = torch.from_numpy(labels)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(xt), labels).backward()
        opt.step()
    return step


def step_case(name, batch, macs_per_image):
    build, build_torch = MODELS[name]

    def make(config):
        rng = config.rng()
        model = build(config.layout, dtype=config.dtype, rng=rng)
        x_nhwc = rng.standard_normal((batch, SIZE, SIZE, 3)).astype(config.dtype)
        x = from_nhwc(x_nhwc, config.layout)
        labels = rng.integers(0, CLASSES, batch)
        cands = [Candidate("convkit", convkit_step(model, x, labels))]
        torch = torch_module()
        if torch is not None:
            tmodel = build_torch().to(torch.float64 if config.dtype == np.float64 else torch.float32)
            tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
            tmodel = tmodel.to(memory_format=torch.channels_last)
            cands.append(Candidate("torch", torch_step(tmodel, to_torch(x_nhwc, "NHWC"), labels), ours=False))
        return cands

    return Case(SECTION, f"{name} SGD step {SIZE}x{SIZE} b{batch}", make, flops=3 * 2.0 * batch * macs_per_image)


def cases(config):
    names = ("resnet18",) if config.quick else tuple(MODELS)
    return [step_case(name, 8, MODELS[name][0]().macs((1, SIZE, SIZE, 3))) for name in names]
