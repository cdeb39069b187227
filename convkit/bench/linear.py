"""convkit.linear (x @ W.T + bias on convkit's GEMM, W in PyTorch's (out, in) layout) against PyTorch's
torch.nn.functional.linear and NumPy's BLAS, on ResNet's classifier: 512 -> 1000 features at batch 64.
``nn.Linear`` is convkit's layer in evaluation mode, which keeps its weight packed for the GEMM (packed on
the first call and again whenever the weight changes); ``convkit`` packs it in every call."""
import numpy as np

import convkit

from .core import Candidate, Case
from .peers import torch_call, torch_module

SECTIONS = {"linear": "linear: convkit vs PyTorch and NumPy, ResNet's 512 -> 1000 classifier at batch 64"}
ORDER = 6


def linear_case(batch, in_features, out_features):
    def make(config):
        rng = config.rng()
        x = rng.standard_normal((batch, in_features)).astype(config.dtype)
        w = (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)).astype(config.dtype)
        b = rng.standard_normal(out_features).astype(config.dtype)
        theirs = np.empty((batch, out_features), config.dtype)
        layer = convkit.nn.Linear(in_features, out_features, dtype=config.dtype)
        layer.weight, layer.bias = w, b
        cands = [Candidate("convkit", lambda: convkit.linear(x, w, b, num_threads=config.threads)),
                 Candidate("nn.Linear", lambda: layer(x)),
                 Candidate("numpy", lambda: np.add(np.matmul(x, w.T, out=theirs), b, out=theirs),
                           ours=False)]
        torch = torch_module()
        if torch is not None:
            xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            cands.append(Candidate("torch", torch_call(lambda: torch.nn.functional.linear(xt, wt, bt)),
                                   ours=False))
        return cands

    return Case("linear", f"{in_features}->{out_features} b{batch}", make,
                flops=2.0 * batch * in_features * out_features)


def cases(config):
    return [linear_case(64, 512, 1000)]
