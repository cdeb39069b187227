"""The peers convkit is measured against, each optional: PyTorch (oneDNN, channels_last) and plain NumPy."""
import numpy as np

from convkit._layout import conv_weight_from_hwio


def torch_module():
    """PyTorch if importable, else None (it is never a dependency of convkit)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def to_torch(array, layout, channels_last=True):
    """An NHWC/NCHW NumPy activation as an NCHW torch tensor, channels_last in memory when asked."""
    torch = torch_module()
    t = torch.from_numpy(np.ascontiguousarray(array))
    if layout == "NHWC":
        t = t.permute(0, 3, 1, 2)
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def torch_conv_weight(w_hwio):
    """HWIO -> PyTorch's (Cout, Cin/groups, KH, KW), channels_last like the activations."""
    torch = torch_module()
    return torch.from_numpy(conv_weight_from_hwio(w_hwio, "NCHW")).contiguous(
        memory_format=torch.channels_last)


def torch_call(fn):
    """Wrap a PyTorch call so it runs without autograd bookkeeping."""
    torch = torch_module()

    def run():
        with torch.inference_mode():
            return fn()
    return run


def numpy_conv2d_nhwc(x, w, stride, pads, dilation, groups):
    """The plain NumPy approach: sliding_window_view over a padded input, then tensordot per group."""
    kh, kw, cin_g, cout = w.shape
    xp = np.pad(x, ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(1, 2))
    win = win[:, ::stride[0], ::stride[1], :, ::dilation[0], ::dilation[1]]  # (N, Ho, Wo, C, KH, KW)
    cout_g = cout // groups
    parts = [np.tensordot(win[:, :, :, g * cin_g:(g + 1) * cin_g], w[..., g * cout_g:(g + 1) * cout_g],
                          axes=([3, 4, 5], [2, 0, 1])) for g in range(groups)]
    return parts[0] if groups == 1 else np.concatenate(parts, axis=3)
