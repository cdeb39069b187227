"""Plain float64 NumPy references, written for clarity, independent of convkit's kernels.

Everything here works in NHWC with HWIO weights; tests transpose for NCHW.
"""
import numpy as np


def pair(v):
    """An int or an (h, w) pair as a tuple."""
    return (v, v) if isinstance(v, int) else tuple(v)


def pads_of(padding, size, kernel, stride, dilation):
    """(top, bottom, left, right) from the spec: "same" = TensorFlow's SAME (odd pixel bottom/right)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for n, k, s, d in zip(size, pair(kernel), pair(stride), pair(dilation)):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    p = pair(padding)
    return (p[0], p[0], p[1], p[1])


def pad_nhwc(x, top, bottom, left, right):
    return np.pad(np.asarray(x, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))


def output_size(size, k, s, before, after, d):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def conv2d_ref(x, w, bias=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """y[n, oh, ow, co] = sum_{kh, kw, ci} xpad[n, oh*sh + kh*dh, ow*sw + kw*dw, g*cin_g + ci] * w[kh, kw, ci, co]."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wid, c = x.shape
    kh, kw, cin_g, cout = w.shape
    sh, sw = stride
    dh, dw = dilation
    xp = pad_nhwc(x, *pads)
    hout = output_size(h, kh, sh, pads[0], pads[1], dh)
    wout = output_size(wid, kw, sw, pads[2], pads[3], dw)
    cout_g = cout // groups
    y = np.zeros((n, hout, wout, cout))
    for g in range(groups):
        xg = xp[..., g * cin_g:(g + 1) * cin_g]
        wg = w[..., g * cout_g:(g + 1) * cout_g]
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, i * dh:i * dh + sh * (hout - 1) + 1:sh, j * dw:j * dw + sw * (wout - 1) + 1:sw, :]
                y[..., g * cout_g:(g + 1) * cout_g] += patch @ wg[i, j]
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return y


def im2col_ref(x, kernel, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    """(N*Hout*Wout, KH*KW*C): row per output pixel, columns (kh, kw, c) with c fastest."""
    x = np.asarray(x, np.float64)
    n, h, wid, c = x.shape
    kh, kw = kernel
    xp = pad_nhwc(x, *pads)
    hout = output_size(h, kh, stride[0], pads[0], pads[1], dilation[0])
    wout = output_size(wid, kw, stride[1], pads[2], pads[3], dilation[1])
    rows = []
    for b in range(n):
        for oh in range(hout):
            for ow in range(wout):
                row = []
                for i in range(kh):
                    for j in range(kw):
                        row.extend(xp[b, oh * stride[0] + i * dilation[0], ow * stride[1] + j * dilation[1], :])
                rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(n * hout * wout, kh * kw * c)
