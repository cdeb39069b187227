"""The main job: conv2d direct vs im2col (and auto) on real layer shapes, beside PyTorch and NumPy."""
import numpy as np

import convkit
from convkit.conv import choose_algorithm, im2col_workspace_bytes
from convkit.grouped import direct_workspace_bytes
from convkit.winograd import workspace_bytes as winograd_workspace_bytes
from convkit._validation import conv_geometry

from convkit._layout import conv_weight_from_hwio, from_nhwc

from .core import Candidate, Case
from .peers import numpy_conv2d_nhwc, torch_call, torch_conv_weight, torch_module, to_torch

SECTIONS = {"conv2d": "the main job: conv2d direct vs im2col vs auto on ResNet layers, beside PyTorch and NumPy"}
ORDER = 10

# (name, N, H, W, Cin, Cout, K, stride, padding, dilation, groups)
LAYERS = [
    ("resnet 3x3 56x56x64->64 b1", 1, 56, 56, 64, 64, 3, 1, 1, 1, 1),
    ("resnet 3x3 28x28x128->128 b8", 8, 28, 28, 128, 128, 3, 1, 1, 1, 1),
    ("resnet 1x1 56x56x256->64 b1", 1, 56, 56, 256, 64, 1, 1, 0, 1, 1),
    ("stem 7x7/2 224x224x3->64 b1", 1, 224, 224, 3, 64, 7, 2, 3, 1, 1),
    ("grouped 3x3 56x56x128 g32 b1", 1, 56, 56, 128, 128, 3, 1, 1, 1, 32),
    ("dilated 3x3 d2 64x64x64->64 b1", 1, 64, 64, 64, 64, 3, 1, 2, 2, 1),
    ("resnet 3x3 14x14x256->256 b1", 1, 14, 14, 256, 256, 3, 1, 1, 1, 1),
    ("resnet 3x3 14x14x256->256 b8", 8, 14, 14, 256, 256, 3, 1, 1, 1, 1),
    ("resnet 3x3 7x7x512->512 b1", 1, 7, 7, 512, 512, 3, 1, 1, 1, 1),
    ("resnet 3x3 7x7x512->512 b8", 8, 7, 7, 512, 512, 3, 1, 1, 1, 1),
]
QUICK_LAYERS = [0, 2, 3]


def layer_case(name, n, h, w, cin, cout, k, stride, padding, dilation, groups, section="conv2d",
               algos=("direct", "im2col", "auto"), extra=None):
    """A Case timing convkit.conv2d's algorithms and the peers on one layer shape (also used by other suites);
    layers Winograd can compute get a ``winograd`` candidate too.  ``extra(config, x_nhwc, w_hwio)``, if
    given, returns more of convkit's Candidates on the same input and weight."""
    (sh, sw), (dh, dw), pads, (hout, wout) = conv_geometry((h, w), (k, k), stride, padding, dilation)
    if (k, sh, sw, dh, dw, groups) == (3, 1, 1, 1, 1, 1):
        algos = (*algos, "winograd")
    flops = 2.0 * n * hout * wout * cout * k * k * (cin // groups)

    def make(config):
        rng = config.rng()
        x_nhwc = rng.standard_normal((n, h, w, cin)).astype(config.dtype)
        w_hwio = (rng.standard_normal((k, k, cin // groups, cout)) / np.sqrt(k * k * cin)).astype(config.dtype)
        x, wt = from_nhwc(x_nhwc, config.layout), conv_weight_from_hwio(w_hwio, config.layout)
        itemsize = np.dtype(config.dtype).itemsize
        auto = choose_algorithm((k, k), (sh, sw), pads, groups, (hout, wout), in_channels=cin,
                                out_channels=cout, batch=n, num_threads=config.threads, dilation=(dh, dw),
                                dtype=config.dtype)
        workspace = {
            "direct": direct_workspace_bytes((n, h, w, cin), (k, k), (dh, dw), groups, cout,
                                             config.threads, config.dtype),
            "im2col": im2col_workspace_bytes((n, h, w, cin), w_hwio.shape, (sh, sw), pads, (dh, dw),
                                             groups, (hout, wout), itemsize, config.threads),
        }
        workspace["winograd"] = winograd_workspace_bytes(n, (hout, wout), cin, cout, itemsize, config.threads)
        workspace["auto"] = workspace.get(auto, 0)
        cands = [Candidate(f"auto={auto}" if a == "auto" else a,
                           _conv_call(x, wt, stride, padding, dilation, groups, config.layout, a),
                           workspace_bytes=workspace.get(a))
                 for a in algos]
        if extra is not None:
            cands.extend(extra(config, x_nhwc, w_hwio))
        cands.append(Candidate("numpy", lambda: numpy_conv2d_nhwc(x_nhwc, w_hwio, (sh, sw), pads, (dh, dw),
                                                                  groups), ours=False))
        torch = torch_module()
        if torch is not None:
            xt, wtt = to_torch(x_nhwc, "NHWC"), torch_conv_weight(w_hwio)
            cands.append(Candidate("torch", torch_call(lambda: torch.nn.functional.conv2d(
                xt, wtt, None, (sh, sw), (pads[0], pads[2]), (dh, dw), groups)), ours=False))
        return cands

    return Case(section, name, make, flops=flops)


def _conv_call(x, w, stride, padding, dilation, groups, layout, algo):
    return lambda: convkit.conv2d(x, w, None, stride, padding, dilation, groups, layout=layout, algo=algo)


def cases(config):
    layers = [LAYERS[i] for i in QUICK_LAYERS] if config.quick else LAYERS
    return [layer_case(*layer) for layer in layers]
