"""Every distinct convolution of resnet18 at batch 1, 224x224, each with convkit's algorithms, NumPy's
im2col approach and PyTorch: the "of GEMM ceiling" column is each layer's best convkit algorithm against
NumPy's sgemm on square matrices timed in the same rounds (issue 9 asks for 70% on every layer but the
3-channel stem)."""
from .conv import layer_case

SECTIONS = {"resnet18_layers": "every distinct resnet18 convolution at batch 1: convkit's algorithms, "
                               "PyTorch, and the share of NumPy's sgemm rate"}
ORDER = 52

# (name, N, H, W, Cin, Cout, K, stride, padding, dilation, groups), in the order the network runs them
LAYERS = [
    ("stem 7x7/2 224x224x3->64", 1, 224, 224, 3, 64, 7, 2, 3, 1, 1),
    ("3x3 56x56x64->64", 1, 56, 56, 64, 64, 3, 1, 1, 1, 1),
    ("3x3/2 56x56x64->128", 1, 56, 56, 64, 128, 3, 2, 1, 1, 1),
    ("1x1/2 56x56x64->128", 1, 56, 56, 64, 128, 1, 2, 0, 1, 1),
    ("3x3 28x28x128->128", 1, 28, 28, 128, 128, 3, 1, 1, 1, 1),
    ("3x3/2 28x28x128->256", 1, 28, 28, 128, 256, 3, 2, 1, 1, 1),
    ("1x1/2 28x28x128->256", 1, 28, 28, 128, 256, 1, 2, 0, 1, 1),
    ("3x3 14x14x256->256", 1, 14, 14, 256, 256, 3, 1, 1, 1, 1),
    ("3x3/2 14x14x256->512", 1, 14, 14, 256, 512, 3, 2, 1, 1, 1),
    ("1x1/2 14x14x256->512", 1, 14, 14, 256, 512, 1, 2, 0, 1, 1),
    ("3x3 7x7x512->512", 1, 7, 7, 512, 512, 3, 1, 1, 1, 1),
]


def cases(config):
    return [layer_case(*layer, section="resnet18_layers") for layer in LAYERS]
