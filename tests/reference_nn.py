"""float64 NumPy references for whole networks, written from torchvision's definitions over a state dict
keyed and laid out as PyTorch's (OIHW conv weights), independent of convkit.nn.  Activations are NHWC."""
import numpy as np

from reference import conv2d_ref


def conv(state, key, x, stride=1, padding=0, groups=1):
    w = np.asarray(state[key + ".weight"], np.float64).transpose(2, 3, 1, 0)   # OIHW -> HWIO
    bias = state.get(key + ".bias")
    return conv2d_ref(x, w, bias, (stride, stride), (padding,) * 4, (1, 1), groups)


def batch_norm(state, key, x, eps=1e-5):
    mean, var = (np.asarray(state[f"{key}.running_{s}"], np.float64) for s in ("mean", "var"))
    w, b = (np.asarray(state[f"{key}.{s}"], np.float64) for s in ("weight", "bias"))
    return (x - mean) / np.sqrt(var + eps) * w + b


def relu(x):
    return np.maximum(x, 0)


def relu6(x):
    return np.clip(x, 0, 6)


def max_pool_3x3_s2_p1(x):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    hout, wout = (x.shape[1] - 1) // 2 + 1, (x.shape[2] - 1) // 2 + 1
    windows = [xp[:, i:i + 2 * hout - 1:2, j:j + 2 * wout - 1:2] for i in range(3) for j in range(3)]
    return np.max(windows, axis=0)


def linear(state, key, x):
    return x @ np.asarray(state[key + ".weight"], np.float64).T + np.asarray(state[key + ".bias"], np.float64)


def resnet18(state, x):
    x = np.asarray(x, np.float64)
    x = max_pool_3x3_s2_p1(relu(batch_norm(state, "bn1", conv(state, "conv1", x, 2, 3))))
    for stage in range(1, 5):
        for block in range(2):
            key = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            out = relu(batch_norm(state, key + ".bn1", conv(state, key + ".conv1", x, stride, 1)))
            out = batch_norm(state, key + ".bn2", conv(state, key + ".conv2", out, 1, 1))
            if key + ".downsample.0.weight" in state:
                x = batch_norm(state, key + ".downsample.1", conv(state, key + ".downsample.0", x, stride))
            x = relu(out + x)
    return linear(state, "fc", x.mean(axis=(1, 2)))


MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu6(state, key, x, stride=1, groups=1):
    k = state[key + ".0.weight"].shape[2]
    return relu6(batch_norm(state, key + ".1", conv(state, key + ".0", x, stride, (k - 1) // 2, groups)))


def mobilenet_v2(state, x):
    x = _conv_bn_relu6(state, "features.0", np.asarray(x, np.float64), 2)
    index, inp = 1, 32
    for t, c, n, s in MOBILENET_V2_SETTING:
        for i in range(n):
            key, stride = f"features.{index}.conv", s if i == 0 else 1
            y, j = x, 0
            if t != 1:
                y, j = _conv_bn_relu6(state, f"{key}.0", y), 1
            y = _conv_bn_relu6(state, f"{key}.{j}", y, stride, groups=y.shape[3])
            y = batch_norm(state, f"{key}.{j + 2}", conv(state, f"{key}.{j + 1}", y))
            x = x + y if stride == 1 and inp == c else y
            index, inp = index + 1, c
    x = _conv_bn_relu6(state, f"features.{index}", x)
    return linear(state, "classifier.1", x.mean(axis=(1, 2)))
