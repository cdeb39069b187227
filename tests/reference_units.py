"""Plain float64 references for the non-convolution units, independent of convkit's kernels.

Everything is NHWC; tests transpose for NCHW.  Written with loops and whole-array NumPy for clarity.
"""
import numpy as np


def activation_ref(x, name, param=None):
    x = np.asarray(x, np.float64)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "relu6":
        return np.minimum(np.maximum(x, 0.0), 6.0)
    if name == "leaky_relu":
        return np.where(x >= 0, x, (0.01 if param is None else param) * x)
    if name == "elu":
        alpha = 1.0 if param is None else param
        return np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if name == "sigmoid":
        e = np.exp(-np.abs(x))  # <= 1: 1 / (1 + exp(-x)) and exp(x) / (1 + exp(x)) never overflow
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if name == "tanh":
        return np.tanh(x)
    raise ValueError(name)


def batch_norm_ref(x, mean, var, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (last axis)."""
    x = np.asarray(x, np.float64)
    y = (x - np.asarray(mean, np.float64)) / np.sqrt(np.asarray(var, np.float64) + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


def batch_stats_ref(x):
    """Per-channel mean, biased and unbiased variance of an NHWC batch."""
    flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    return flat.mean(axis=0), flat.var(axis=0), flat.var(axis=0, ddof=1)


def _windows(size, k, s, p, d, ceil_mode):
    """Per output position, the input index of each of the window's taps: -1 for a padding cell,
    None for a cell past the padded input (only ceil_mode windows reach there).

    Window i covers padded positions i*s + j*d.  Without ceil_mode a window must fit in the padded
    input; with it, a window is kept while the previous one has not reached the padded input's end,
    provided it starts inside the input or its left padding.
    """
    last = size + 2 * p - 1
    out = []
    i = 0
    while (((i - 1) * s + d * (k - 1) < last and i * s - p < size) if ceil_mode
           else i * s + d * (k - 1) <= last):
        taps = []
        for j in range(k):
            t = i * s - p + j * d
            taps.append(t if 0 <= t < size else (-1 if t < size + p else None))
        out.append(taps)
        i += 1
    return out


def max_pool_ref(x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    rows = _windows(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    cols = _windows(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = np.full((n, len(rows), len(cols), c), -np.inf)
    for i, rtaps in enumerate(rows):
        for j, ctaps in enumerate(cols):
            for r in rtaps:
                for q in ctaps:
                    if r is not None and q is not None and r >= 0 and q >= 0:
                        y[:, i, j] = np.maximum(y[:, i, j], x[:, r, q])
    return y


def avg_pool_ref(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    """Sum over the window's input pixels / (window cells inside the padded input if
    count_include_pad, else input pixels)."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    rows = _windows(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    cols = _windows(w, kernel[1], stride[1], padding[1], 1, ceil_mode)
    y = np.zeros((n, len(rows), len(cols), c))
    for i, rtaps in enumerate(rows):
        for j, ctaps in enumerate(cols):
            total, cells, pixels = 0.0, 0, 0
            for r in rtaps:
                for q in ctaps:
                    if r is None or q is None:
                        continue
                    cells += 1
                    if r >= 0 and q >= 0:
                        total = total + x[:, r, q]
                        pixels += 1
            y[:, i, j] = total / (cells if count_include_pad else pixels)
    return y


def linear_ref(x, weight, bias=None):
    y = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T
    return y if bias is None else y + np.asarray(bias, np.float64)
