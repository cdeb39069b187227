"""Float64 references for deformable convolution, plain loops written from the formula, independent of
convkit's kernels: ``y(p0) = sum_n w(pn) * m_n * x(p0 + pn + dpn)`` with torchvision's bilinear rules.

Everything here is NHWC: x (N, H, W, C), offset (N, Hout, Wout, 2*G*KH*KW), mask (N, Hout, Wout, G*KH*KW),
weights HWIO (KH, KW, C/groups, Cout).
"""
import math

import numpy as np


def bilinear_ref(img, y, x):
    """The (C,) vector of ``img`` (H, W, C) at the fractional point (y, x).

    Zero unless -1 < y < H and -1 < x < W (non-finite points included); otherwise the four
    neighbouring pixels weighted by the distances, a neighbour outside the image counting as zero.
    """
    img = np.asarray(img, np.float64)
    h, w, c = img.shape
    out = np.zeros(c)
    if not (math.isfinite(y) and math.isfinite(x)) or y <= -1 or y >= h or x <= -1 or x >= w:
        return out
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    for yy, xx, weight in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                           (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < h and 0 <= xx < w:
            out += weight * img[yy, xx]
    return out


def bilinear_sample_ref(x, points):
    """(N, P, C): x (N, H, W, C) sampled at points (N, P, 2) = (y, x)."""
    n, p = points.shape[:2]
    out = np.zeros((n, p, x.shape[3]))
    for b in range(n):
        for q in range(p):
            out[b, q] = bilinear_ref(x[b], float(points[b, q, 0]), float(points[b, q, 1]))
    return out


def deform_conv2d_ref(x, offset, w, bias=None, stride=(1, 1), pads=(0, 0), dilation=(1, 1), mask=None):
    """Deformable convolution; ``pads`` = (top, left), the output size taken from ``offset``."""
    x = np.asarray(x, np.float64)
    offset = np.asarray(offset, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wid, c = x.shape
    kh, kw, cin_g, cout = w.shape
    _, hout, wout, oc = offset.shape
    taps = kh * kw
    n_off = oc // (2 * taps)       # offset groups
    c_off = c // n_off             # channels per offset group
    groups = c // cin_g            # weight groups
    cout_g = cout // groups
    y = np.zeros((n, hout, wout, cout))
    for b in range(n):
        for oy in range(hout):
            for ox in range(wout):
                for i in range(kh):
                    for j in range(kw):
                        t = i * kw + j
                        sample = np.zeros(c)  # m_n * x(p0 + pn + dpn), every input channel
                        for g in range(n_off):
                            dy = offset[b, oy, ox, 2 * (g * taps + t)]
                            dx = offset[b, oy, ox, 2 * (g * taps + t) + 1]
                            m = 1.0 if mask is None else float(mask[b, oy, ox, g * taps + t])
                            py = oy * stride[0] - pads[0] + i * dilation[0] + dy
                            px = ox * stride[1] - pads[1] + j * dilation[1] + dx
                            chans = slice(g * c_off, (g + 1) * c_off)
                            sample[chans] = m * bilinear_ref(x[b, :, :, chans], py, px)
                        for g in range(groups):
                            y[b, oy, ox, g * cout_g:(g + 1) * cout_g] += (
                                sample[g * cin_g:(g + 1) * cin_g] @ w[i, j, :, g * cout_g:(g + 1) * cout_g])
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return y
