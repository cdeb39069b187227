"""Plain float64 NumPy references for the gradients (NHWC, HWIO), independent of convkit's kernels."""
import numpy as np


def conv2d_input_ref(go, w, x_shape, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """dx[n, ih, iw, g*cin_g + ci] = sum over taps and outputs reading it of go * w (the chain rule, tap by tap)."""
    go, w = np.asarray(go, np.float64), np.asarray(w, np.float64)
    n, h, wid, c = x_shape
    kh, kw, cin_g, cout = w.shape
    sh, sw = stride
    dh, dw = dilation
    hout, wout = go.shape[1:3]
    cout_g = cout // groups
    dxp = np.zeros((n, h + pads[0] + pads[1] + sh * kh * dh, wid + pads[2] + pads[3] + sw * kw * dw, c))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                contrib = go[..., g * cout_g:(g + 1) * cout_g] @ w[i, j, :, g * cout_g:(g + 1) * cout_g].T
                dxp[:, i * dh:i * dh + sh * (hout - 1) + 1:sh, j * dw:j * dw + sw * (wout - 1) + 1:sw,
                    g * cin_g:(g + 1) * cin_g] += contrib
    return dxp[:, pads[0]:pads[0] + h, pads[2]:pads[2] + wid]


def conv2d_weight_ref(x, go, kernel, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """dw[i, j, ci, g*cout_g + co] = sum over (n, oh, ow) of x_pad[n, oh*sh + i*dh, ow*sw + j*dw, g*cin_g + ci] * go."""
    x, go = np.asarray(x, np.float64), np.asarray(go, np.float64)
    n, h, wid, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    hout, wout, cout = go.shape[1:]
    cin_g, cout_g = c // groups, cout // groups
    xp = np.pad(x, ((0, 0), (pads[0], pads[1] + sh * kh * dh), (pads[2], pads[3] + sw * kw * dw), (0, 0)))
    dw_ = np.zeros((kh, kw, cin_g, cout))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, i * dh:i * dh + sh * (hout - 1) + 1:sh, j * dw:j * dw + sw * (wout - 1) + 1:sw,
                           g * cin_g:(g + 1) * cin_g]
                dw_[i, j, :, g * cout_g:(g + 1) * cout_g] = np.einsum(
                    "nhwc,nhwo->co", patch, go[..., g * cout_g:(g + 1) * cout_g])
    return dw_


def max_pool_grad_ref(go, x, kernel, stride, pads, dilation):
    """Each output's gradient to the first maximal tap of its window in (kh, kw) order (the last NaN)."""
    go, x = np.asarray(go, np.float64), np.asarray(x)
    dx = np.zeros(x.shape)
    n, h, w, c = x.shape
    for b in range(n):
        for oh in range(go.shape[1]):
            for ow in range(go.shape[2]):
                for ch in range(c):
                    best, where = -np.inf, None
                    for i in range(kernel[0]):
                        for j in range(kernel[1]):
                            ih, iw = oh * stride[0] - pads[0] + i * dilation[0], ow * stride[1] - pads[1] + j * dilation[1]
                            if 0 <= ih < h and 0 <= iw < w:
                                v = x[b, ih, iw, ch]
                                if where is None or v > best or np.isnan(v):
                                    best, where = v, (ih, iw)
                    dx[b, where[0], where[1], ch] += go[b, oh, ow, ch]
    return dx


def avg_pool_grad_ref(go, x_shape, kernel, stride, pads, count_include_pad):
    """Each output's gradient spread evenly over its window (PyTorch's divisor, as reference_units.avg_pool_ref)."""
    go = np.asarray(go, np.float64)
    dx = np.zeros(x_shape)
    n, h, w, c = x_shape
    for oh in range(go.shape[1]):
        for ow in range(go.shape[2]):
            h0, w0 = oh * stride[0] - pads[0], ow * stride[1] - pads[1]
            h1, w1 = min(h0 + kernel[0], h + pads[0]), min(w0 + kernel[1], w + pads[1])
            divisor = (h1 - h0) * (w1 - w0) if count_include_pad else (
                (min(h1, h) - max(h0, 0)) * (min(w1, w) - max(w0, 0)))
            dx[:, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)] += go[:, oh:oh + 1, ow:ow + 1] / divisor
    return dx
