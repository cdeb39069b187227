"""MobileNetV2's inverted residual blocks: the fused kernel (src/inverted_residual.pyx, what
``nn.InvertedResidual`` runs in evaluation mode) against the same three prepared layers run one after
the other (expansion, depthwise, projection with the residual in its epilogue), beside PyTorch's block
(channels_last).  The blocks are MobileNetV2's own (``features[i]``), with the same random weights in both
libraries."""
import numpy as np

from convkit.models import mobilenet_v2
from convkit.models.torch_reference import torch_mobilenet_v2
from convkit.nn.conv import _BoundConv2d

from .core import Candidate, Case
from .peers import to_torch, torch_call, torch_module

SECTIONS = {"blocks": "MobileNetV2's inverted residual blocks: fused kernel vs layer by layer, beside PyTorch"}
ORDER = 45

# (features index, input H = W, batch): 112x112 -> 56x56 at stride 2, then a stride-1 block of each map size.
BLOCKS = [(2, 112, 1), (3, 56, 1), (5, 28, 1), (8, 14, 1), (15, 7, 1), (3, 56, 8), (8, 14, 8)]
QUICK = {(3, 56, 1), (15, 7, 1)}


def layer_by_layer(block):
    """The block's prepared layers called one by one (its evaluation forward without the fused kernel)."""
    *steps, last = block.conv._plan()
    residual = block.use_res_connect

    def run(x):
        y = x
        for step in steps:
            y = step(y)
        return last(y, residual=x if residual else None) if isinstance(last, _BoundConv2d) else last(y)
    return run


def block_case(index, size, batch, models):
    def make(config):
        model, tmodel = models(config)
        block = model.features[index]
        channels = block.conv[0][0].in_channels
        x = config.rng().standard_normal((batch, size, size, channels)).astype(config.dtype)
        unfused = layer_by_layer(block)
        cands = [Candidate("fused", lambda: block(x)), Candidate("layers", lambda: unfused(x))]
        if tmodel is not None:
            tblock, xt = tmodel.features[index], to_torch(x, "NHWC")
            cands.append(Candidate("torch", torch_call(lambda: tblock(xt)), ours=False))
        return cands

    model = mobilenet_v2()
    block = model.features[index]
    shape = (batch, size, size, block.conv[0][0].in_channels)
    out = block.output_shape(shape)
    name = f"{size}x{size}x{shape[3]} -> {out[1]}x{out[2]}x{out[3]} b{batch}"
    return Case("blocks", name, make, flops=2.0 * block.macs(shape))


def cases(config):
    cache = {}

    def models(config):
        """Our MobileNetV2 and PyTorch's with its weights (channels_last), built once for every case."""
        if "models" not in cache:
            model = mobilenet_v2(dtype=config.dtype, rng=config.rng())
            torch, tmodel = torch_module(), None
            if torch is not None:
                tmodel = torch_mobilenet_v2().to(torch.float64 if config.dtype == np.float64 else torch.float32)
                tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
                tmodel = tmodel.eval().to(memory_format=torch.channels_last)
            cache["models"] = model, tmodel
        return cache["models"]
    return [block_case(i, size, batch, models) for i, size, batch in BLOCKS
            if not config.quick or (i, size, batch) in QUICK]
