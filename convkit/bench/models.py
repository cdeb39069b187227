"""Whole networks: resnet18 and mobilenet_v2 forward passes at 224x224, beside PyTorch (channels_last) and
ONNX Runtime (the same weights exported to ONNX, its default CPU provider and MLAS kernels)."""
import io

import numpy as np

from convkit.models import mobilenet_v2, resnet18
from convkit.models.torch_reference import torch_mobilenet_v2, torch_resnet18

from .core import Candidate, Case
from .peers import to_torch, torch_call, torch_module

MODELS = {"resnet18": (resnet18, torch_resnet18), "mobilenet_v2": (mobilenet_v2, torch_mobilenet_v2)}
SIZE = 224
SECTIONS = {"models": "resnet18 and mobilenet_v2 forward passes at 224x224, beside PyTorch and ONNX Runtime"}
ORDER = 50


def onnxruntime_module():
    """ONNX Runtime if importable, else None (a peer only, never a dependency)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def onnxruntime_session(torch_model, threads):
    """An ONNX Runtime session running ``torch_model`` (float32, NCHW input ``x``, any batch), exported with
    PyTorch's TorchScript-based exporter; ``threads`` intra-op threads, everything else ORT's defaults
    (all graph optimisations: Conv+BN folding, Conv+Add+Relu fusion, its NCHWc layout on AVX2/AVX-512)."""
    ort, torch = onnxruntime_module(), torch_module()
    f = io.BytesIO()
    torch.onnx.export(torch_model, torch.zeros(1, 3, SIZE, SIZE), f, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(f.getvalue(), options, providers=["CPUExecutionProvider"])


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
        if torch is None:
            return cands
        tmodel = build_torch().to(torch.float64 if config.dtype == np.float64 else torch.float32)
        tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
        tmodel = tmodel.eval()
        if onnxruntime_module() is not None and config.dtype == np.float32:   # ORT's CPU Conv: float only
            session = onnxruntime_session(tmodel, config.threads)
            x_nchw = {"x": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))}
            cands.append(Candidate("ort", lambda: session.run(None, x_nchw), ours=False))
        tmodel = tmodel.to(memory_format=torch.channels_last)
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
