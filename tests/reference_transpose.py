"""Float64 NumPy reference for the transposed convolution: the scatter form, written for clarity."""
import numpy as np


def conv_transpose2d_ref(x, w, bias=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                         dilation=(1, 1), groups=1):
    """NHWC x (N, H, W, Cin), weights (KH, KW, Cout/groups, Cin).

    Every input pixel (ih, iw) adds x[n, ih, iw, ci] * w[kh, kw, co, ci] to the uncropped output at
    (ih*sh + kh*dh, iw*sw + kw*dw); the result is that canvas with ``padding`` cropped from each side
    and ``output_padding`` extra rows/columns kept at the bottom/right.
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wid, cin = x.shape
    kh, kw, cout_g, _ = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    cin_g = cin // groups
    hout = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wout = (wid - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    canvas_h = max((h - 1) * sh + dh * (kh - 1) + 1, ph + hout)
    canvas_w = max((wid - 1) * sw + dw * (kw - 1) + 1, pw + wout)
    canvas = np.zeros((n, canvas_h, canvas_w, cout_g * groups))
    for g in range(groups):
        xg = x[..., g * cin_g:(g + 1) * cin_g]
        for i in range(kh):
            for j in range(kw):
                contrib = xg @ w[i, j, :, g * cin_g:(g + 1) * cin_g].T      # (N, H, W, cout_g)
                canvas[:, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (wid - 1) + 1:sw,
                       g * cout_g:(g + 1) * cout_g] += contrib
    y = canvas[:, ph:ph + hout, pw:pw + wout]
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y
