"""Every distinct convolution of resnet18 at batch 1, 224x224, in the order the network runs them (traced
from convkit's own resnet18), each with convkit's algorithms, NumPy's im2col approach and PyTorch: the "of
GEMM ceiling" column is each layer's best convkit algorithm against NumPy's sgemm on square matrices timed
in the same rounds (issue 9 asks for 70% on every layer but the 3-channel stem).

``network`` is the layer as resnet18 runs it in evaluation mode: the model's own Conv2d, prepared once
(``Conv2d.bind``: the algorithm and geometry resolved once per input shape, the weights kept prepared for
the algorithm: the direct kernel's packed blocks or im2col's packed GEMM panels), called on the same
input and weight as the other rows, without bias or activation (in the network BatchNorm is folded into a
bias, and the bias, ReLU and shortcut are added in the same epilogue).  ``network winograd`` is the same
with ``resnet18(algo="winograd")`` (Winograd's transformed weights kept) on the layers it applies to."""
import functools

from convkit import nn
from convkit.models import resnet18

from .conv import layer_case
from .core import Candidate

SECTIONS = {"resnet18_layers": "every distinct resnet18 convolution at batch 1: convkit's algorithms, "
                               "PyTorch, and the share of NumPy's sgemm rate"}
ORDER = 52
SIZE = 224


def resnet18_convolutions():
    """[(name, N, H, W, Cin, Cout, K, stride, padding, dilation, groups)] of resnet18's distinct
    convolutions at batch 1, in execution order (square kernels, strides and paddings, as ResNet's)."""
    return [layer for layer, _ in _traced(resnet18()).values()]


def _traced(model):
    """{name: ((name, N, H, W, Cin, Cout, K, stride, padding, dilation, groups), Conv2d)}: the first
    Conv2d of ``model`` (a resnet18 at batch 1) of each distinct convolution, in execution order."""
    layers = {}

    def visit(layer, in_shape, out_shape):
        if isinstance(layer, nn.Conv2d):
            n, h, w, cin = in_shape        # the trace's internal shapes are NHWC
            (k, _), (s, _), (p, _) = layer.kernel_size, layer.stride, layer.padding
            stride = f"/{s}" if s > 1 else ""
            name = f"{'stem ' if cin == 3 else ''}{k}x{k}{stride} {h}x{w}x{cin}->{out_shape[3]}"
            layers.setdefault(name, ((name, n, h, w, cin, out_shape[3], k, s, p, 1, layer.groups), layer))

    model._trace(model._shape_to_internal((1, SIZE, SIZE, 3)), visit)
    return layers


@functools.lru_cache(maxsize=4)
def _model_layers(dtype, algo):
    return _traced(resnet18(dtype=dtype, algo=algo))


def _network_candidates(name):
    def extra(config, x_nhwc, w_hwio):
        cands = []
        for label, algo in (("network", "auto"), ("network winograd", "winograd")):
            layer = _model_layers(config.dtype, algo)[name][1]
            if layer.algo == algo:    # (the auto model's own, or a layer Winograd applies to)
                bound = layer.eval().bind(w_hwio.astype(layer.dtype))
                cands.append(Candidate(label, lambda bound=bound: bound(x_nhwc)))
        return cands
    return extra


def cases(config):
    return [layer_case(*layer, section="resnet18_layers", extra=_network_candidates(layer[0]))
            for layer in resnet18_convolutions()]
