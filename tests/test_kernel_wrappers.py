"""The compiled wrappers (convkit._kernels.*: forward kernels, the GEMM, Winograd, im2col/col2im and the
gradients) check every shape and length they rely on before they release the GIL: a wrong call from
convkit's own Python raises ValueError instead of reading or writing out of bounds (or dividing by zero).

Each wrapper is first called with consistent arguments (it must run), then with one argument replaced.
"""
import numpy as np
import pytest

from convkit._kernels import (batchnorm, batchnorm_grad, conv_direct, conv_grad, conv_grouped, conv_transpose,
                              deform, deform_direct, deform_grad, depthwise, elementwise, elementwise_grad, gemm,
                              im2col, pooling, pooling_grad, reductions, sgd, softmax, winograd)

F = np.float32


def z(*shape):
    return np.zeros(shape, F)


def _conv_direct(x=None, w=None, bias=None, out=None, groups=1, threads=1, stride=1):
    x = z(2, 5, 5, 4) if x is None else x
    w = z(3, 3, 4, 6) if w is None else w
    out = z(2, 3, 3, 6) if out is None else out
    conv_direct.conv2d_nhwc(x, w, z(6) if bias is None else bias, out, groups, stride, 1, 0, 0, 1, 1, 0, 0.0,
                            threads)


def _conv_transpose(x=None, packed=None, bias=None, out=None, cout_g=6, threads=1):
    x = z(2, 3, 3, 4) if x is None else x
    packed = conv_transpose.pack_weights(z(3, 3, 6, 4), 1) if packed is None else packed
    out = z(2, 5, 5, 6) if out is None else out
    conv_transpose.conv_transpose2d_nhwc(x, packed, z(6) if bias is None else bias, out, cout_g, 1, 1, 0, 0,
                                         1, 1, threads)


def _deform_direct(x=None, offset=None, mask=None, packed=None, bias=None, out=None, workspace=None, cpg=4,
                   cout_g=6, chunk=6, threads=1):
    x = z(2, 5, 5, 4) if x is None else x
    offset = z(2, 3, 3, 18) if offset is None else offset
    packed = conv_direct.pack_weights(z(3, 3, 4, 6), 1) if packed is None else packed
    out = z(2, 3, 3, 6) if out is None else out
    workspace = z(1, 6 * 9 * 4) if workspace is None else workspace
    deform_direct.deform_conv2d_nhwc(x, offset, mask, packed, z(6) if bias is None else bias, out, workspace,
                                     1, 1, 0, 0, 1, 1, cpg, cout_g, chunk, threads)


def _deform_im2col(x=None, offset=None, mask=None, cols=None, rows=(0, 6), c0=0, cg=4, cpg=4):
    x = z(2, 5, 5, 4) if x is None else x
    offset = z(2, 3, 3, 18) if offset is None else offset
    cols = z(18, 36) if cols is None else cols
    deform.deform_im2col_nhwc(x, offset, mask, cols, rows[0], rows[1], c0, cg, cpg, 3, 3, 1, 1, 0, 0, 1, 1, 1)


def _bilinear(x=None, points=None, out=None):
    x = z(2, 5, 5, 4) if x is None else x
    points = z(2, 7, 2) if points is None else points
    out = z(2, 7, 4) if out is None else out
    deform.bilinear_sample_nhwc(x, points, out, 1)


def _depthwise(x=None, packed=None, bias=None, out=None):
    x = z(2, 5, 5, 4) if x is None else x
    packed = depthwise.pack_weights(z(3, 3, 1, 8), 4) if packed is None else packed
    bias = depthwise.pack_bias(None, 4, 2, F) if bias is None else bias
    out = z(2, 3, 3, 8) if out is None else out
    depthwise.depthwise_nhwc(x, packed, bias, out, 1, 1, 0, 0, 1, 1, 0, 0.0, 1)


def _grouped(x=None, packed=None, bias=None, out=None, groups=4):
    x = z(2, 5, 5, 8) if x is None else x
    packed = conv_grouped.pack_weights(z(3, 3, 2, 12), 4) if packed is None else packed
    out = z(2, 3, 3, 12) if out is None else out
    conv_grouped.grouped_nhwc(x, packed, z(12) if bias is None else bias, out, groups, 1, 1, 0, 0, 1, 1, 0,
                              0.0, 1)


def _pool(kind, x=None, y=None, kernel=2):
    x = z(2, 4, 4, 3) if x is None else x
    y = z(2, 2, 2, 3) if y is None else y
    if kind == "max":
        pooling.max_pool_nhwc(x, y, kernel, kernel, 2, 2, 0, 0, 1, 1, 1)
    else:
        pooling.avg_pool_nhwc(x, y, kernel, kernel, 2, 2, 0, 0, True, 1)


def _affine(last, scale=None, y=None):
    x = z(6, 4) if last else z(2, 4, 3)
    scale = z(4) if scale is None else scale
    y = np.zeros_like(x) if y is None else y
    (batchnorm.affine_channels_last if last else batchnorm.affine_channels_first)(x, scale, z(4), y, 1)


def _sums(rows, center=None, out=None):
    x = np.zeros((1, 10, 4) if rows else (2, 4, 5), F)      # (groups, rows, C) or (N, C, plane)
    out = np.zeros((1 if rows else 2, 4)) if out is None else out
    (reductions.row_sums if rows else reductions.plane_sums)(x, center, out, 1)


def _im2col(x=None, cols=None, rows=(0, 6), c0=0, cg=4, threads=1):
    x = z(2, 5, 5, 4) if x is None else x
    cols = z(18, 36) if cols is None else cols
    im2col.im2col_nhwc(x, cols, rows[0], rows[1], c0, cg, 3, 3, 1, 1, 0, 0, 1, 1, 3, 3, threads)


def _col2im(cols=None, x=None, stride=1):
    cols = z(18, 36) if cols is None else cols
    x = z(2, 5, 5, 4) if x is None else x
    im2col.col2im_nhwc(cols, x, 3, 3, stride, 1, 0, 0, 1, 1, 3, 3, 1)


def _nchw(fold, cols=None, x=None, dilation=1):
    cols = z(2, 36, 9) if cols is None else cols
    x = z(2, 4, 5, 5) if x is None else x
    if fold:
        im2col.col2im_nchw(cols, x, 3, 3, 1, 1, 0, 0, dilation, 1, 3, 3, 1)
    else:
        im2col.im2col_nchw(x, cols, 3, 3, 1, 1, 0, 0, dilation, 1, 3, 3, 1)


def _conv_im2col(x=None, w=None, bias=None, out=None, residual=None, groups=1):
    x = z(2, 5, 5, 4) if x is None else x
    w = z(3, 3, 4, 6) if w is None else w
    out = z(2, 3, 3, 6) if out is None else out
    im2col.conv2d_im2col_nhwc(x, w, z(6) if bias is None else bias, out, groups, 1, 1, 0, 0, 1, 1, 0, 0.0, 1,
                              residual=residual)


def _gemm(a=None, b=None, c=None, bias=None, residual=None, threads=1):
    a = z(5, 3) if a is None else a
    b = z(3, 4) if b is None else b
    c = z(5, 4) if c is None else c
    gemm.gemm_into(a, b, c, False, bias, residual, num_threads=threads)


def _winograd(x=None, u=None, bias=None, out=None, residual=None, w=None, m=2, block=None, chunk=1):
    x = z(2, 5, 5, 4) if x is None else x
    u = winograd.transform_weights(z(3, 3, 4, 6), 2, 1) if u is None else u
    out = z(2, 5, 5, 6) if out is None else out
    block = winograd.tile_rows() if block is None else block
    winograd.conv2d_nhwc(x, u, z(6) if bias is None else bias, out, m, 1, 1, block, chunk, 0, 0.0, 1,
                         residual=residual, w=w)


def _weight_grad(x=None, go=None, gw=None, groups=1, pc=16, offset=None, mask=None, cpg=4):
    x = z(2, 5, 5, 4) if x is None else x
    go = z(2, 3, 3, 6) if go is None else go
    gw = z(3, 3, 4, 6) if gw is None else gw
    conv_grad.conv2d_weight_nhwc(x, go, gw, groups, 1, 1, 0, 0, 1, 1, pc, 1, offset, mask, cpg)


def _deform_grad(go=None, wt=None, gx=None, goff=None, mask=None, gmask=None, chunk=8):
    x, offset = z(2, 5, 5, 4), z(2, 3, 3, 18)
    go = z(2, 3, 3, 6) if go is None else go
    wt = deform_grad.pack_transposed_weights(z(3, 3, 4, 6), 1) if wt is None else wt
    gx = z(2, 5, 5, 4) if gx is None else gx
    goff = z(2, 3, 3, 18) if goff is None else goff
    deform_grad.deform_backward_nhwc(x, offset, mask, go, wt, gx, goff, gmask, 3, 3, 1, 1, 0, 0, 1, 1, 4, chunk, 1)


def _pool_grad(kind, go=None, gx=None, dilation=1):
    go = z(2, 2, 2, 3) if go is None else go
    gx = z(2, 4, 4, 3) if gx is None else gx
    if kind == "max":
        pooling_grad.max_pool_backward_nhwc(z(2, 4, 4, 3), go, gx, 2, 2, 2, 2, 0, 0, dilation, 1, 1)
    else:
        pooling_grad.avg_pool_backward_nhwc(go, gx, 2, 2, 2, 2, 0, 0, True, 1)


def _bn_grad(kind, g=None, mean=None, out=None, a=None):
    x = z(6, 4) if kind.endswith("last") else z(2, 4, 3)
    g = np.zeros_like(x) if g is None else g
    if kind.startswith("sums"):
        f = batchnorm_grad.grad_sums_channels_last if kind.endswith("last") else batchnorm_grad.grad_sums_channels_first
        f(g, x, np.zeros(4) if mean is None else mean, np.zeros((2, 4)) if out is None else out, 1)
    else:
        f = batchnorm_grad.affine2_channels_last if kind.endswith("last") else batchnorm_grad.affine2_channels_first
        f(g, x, z(4) if a is None else a, z(4), z(4), np.zeros_like(x), 1)


def _cross_entropy(backward, labels=None, scale=None, grad=None):
    logits = z(3, 5)
    labels = np.array([0, 4, 2], np.intp) if labels is None else labels
    if backward:
        softmax.cross_entropy_backward_rows(logits, labels, np.ones(3) if scale is None else scale,
                                            z(3, 5) if grad is None else grad, 1)
    else:
        softmax.cross_entropy_rows(logits, labels, np.zeros(3), 1)


GOOD = [
    _im2col, _col2im, lambda: _nchw(False), lambda: _nchw(True), _conv_im2col,
    lambda: _conv_im2col(residual=z(2, 3, 3, 6)), _gemm, lambda: _gemm(bias=z(4), residual=z(5, 4)),
    _winograd, lambda: _winograd(w=z(3, 3, 4, 6), residual=z(2, 5, 5, 6)), _weight_grad,
    lambda: _weight_grad(offset=z(2, 3, 3, 18), mask=z(2, 3, 3, 9)), _deform_grad,
    lambda: _deform_grad(mask=z(2, 3, 3, 9), gmask=z(2, 3, 3, 9)),
    lambda: _pool_grad("max"), lambda: _pool_grad("avg"),
    *[lambda kind=kind: _bn_grad(kind) for kind in ("sums_last", "sums_first", "affine_last", "affine_first")],
    lambda: elementwise_grad.activation_backward(z(8), z(8), z(8), 1, 0.0, 1),
    lambda: softmax.softmax_rows(z(3, 5), z(3, 5), False, 1),
    lambda: softmax.softmax_backward_rows(z(3, 5), z(3, 5), z(3, 5), True, 1),
    lambda: _cross_entropy(False), lambda: _cross_entropy(True),
    lambda: sgd.sgd_update(z(8), z(8), z(8), 0.1, 0.0, 0.9, 0.0, True, False, 1),
    _conv_direct, _conv_transpose, _deform_direct, _deform_im2col, _bilinear, _depthwise, _grouped,
    lambda: _pool("max"), lambda: _pool("avg"), lambda: _affine(True), lambda: _affine(False),
    lambda: _sums(True), lambda: _sums(False), lambda: elementwise.activation(z(8), z(8), 0, 0.0, 1),
    lambda: elementwise.bias_activation_inplace(z(3, 4), z(4), 0, 0.0, 1),
]

BAD = {
    "conv_direct bias length": lambda: _conv_direct(bias=z(5)),
    "conv_direct out channels": lambda: _conv_direct(out=z(2, 3, 3, 5)),
    "conv_direct out batch": lambda: _conv_direct(out=z(3, 3, 3, 6)),
    "conv_direct weight channels": lambda: _conv_direct(w=z(3, 3, 3, 6)),
    "conv_direct groups": lambda: _conv_direct(groups=4),
    "conv_direct groups 0": lambda: _conv_direct(groups=0),
    "conv_direct threads 0": lambda: _conv_direct(threads=0),
    "conv_direct stride 0": lambda: _conv_direct(stride=0),
    "conv_transpose bias": lambda: _conv_transpose(bias=z(7)),
    "conv_transpose out channels": lambda: _conv_transpose(out=z(2, 5, 5, 7)),
    "conv_transpose out batch": lambda: _conv_transpose(out=z(1, 5, 5, 6)),
    "conv_transpose cout_g": lambda: _conv_transpose(cout_g=40),
    "conv_transpose input channels": lambda: _conv_transpose(x=z(2, 3, 3, 5)),
    "deform_direct workspace rows": lambda: _deform_direct(threads=2),
    "deform_direct workspace length": lambda: _deform_direct(workspace=z(1, 100)),
    "deform_direct offset channels": lambda: _deform_direct(offset=z(2, 3, 3, 16)),
    "deform_direct offset size": lambda: _deform_direct(offset=z(2, 3, 2, 18)),
    "deform_direct mask": lambda: _deform_direct(mask=z(2, 3, 3, 8)),
    "deform_direct cpg": lambda: _deform_direct(cpg=3),
    "deform_direct bias": lambda: _deform_direct(bias=z(2)),
    "deform_direct out channels": lambda: _deform_direct(out=z(2, 3, 3, 8)),
    "deform_direct chunk 0": lambda: _deform_direct(chunk=0),
    "deform_im2col cols rows": lambda: _deform_im2col(cols=z(17, 36)),
    "deform_im2col cols width": lambda: _deform_im2col(cols=z(18, 35)),
    "deform_im2col rows past the end": lambda: _deform_im2col(rows=(0, 7), cols=z(21, 36)),
    "deform_im2col channels": lambda: _deform_im2col(c0=1),
    "deform_im2col offset": lambda: _deform_im2col(offset=z(2, 3, 3, 17)),
    "deform_im2col mask": lambda: _deform_im2col(mask=z(2, 3, 3, 18)),
    "bilinear out": lambda: _bilinear(out=z(2, 7, 3)),
    "bilinear points": lambda: _bilinear(points=z(1, 7, 2)),
    "depthwise packed channels": lambda: _depthwise(packed=depthwise.pack_weights(z(3, 3, 1, 6), 3)),
    "depthwise bias": lambda: _depthwise(bias=z(2, 3)),
    "depthwise out channels": lambda: _depthwise(out=z(2, 3, 3, 6)),
    "grouped groups": lambda: _grouped(groups=2),
    "grouped bias": lambda: _grouped(bias=z(11)),
    "grouped input channels": lambda: _grouped(x=z(2, 5, 5, 6)),
    "grouped out batch": lambda: _grouped(out=z(1, 3, 3, 12)),
    "max_pool y channels": lambda: _pool("max", y=z(2, 2, 2, 4)),
    "avg_pool y batch": lambda: _pool("avg", y=z(3, 2, 2, 3)),
    "max_pool kernel 0": lambda: _pool("max", kernel=0),
    "affine_last scale": lambda: _affine(True, scale=z(3)),
    "affine_first y": lambda: _affine(False, y=z(2, 4, 2)),
    "row_sums out": lambda: _sums(True, out=np.zeros((1, 3))),
    "plane_sums center": lambda: _sums(False, center=np.zeros(3)),
    "activation y": lambda: elementwise.activation(z(8), z(7), 0, 0.0, 1),
    "activation threads": lambda: elementwise.activation(z(8), z(8), 0, 0.0, 0),
    "bias_activation bias": lambda: elementwise.bias_activation_inplace(z(3, 4), z(5), 0, 0.0, 1),
    "bias_activation residual": lambda: elementwise.bias_activation_inplace(z(3, 4), None, 0, 0.0, 1,
                                                                            residual=z(3, 5)),
    "conv_direct residual": lambda: conv_direct.conv2d_nhwc(z(2, 5, 5, 4), z(3, 3, 4, 6), None, z(2, 3, 3, 6), 1,
                                                            1, 1, 0, 0, 1, 1, 0, 0.0, 1, residual=z(2, 3, 3, 5)),
    "im2col cols rows": lambda: _im2col(cols=z(17, 36)),
    "im2col cols width": lambda: _im2col(cols=z(18, 35)),
    "im2col rows past the end": lambda: _im2col(rows=(0, 7), cols=z(21, 36)),
    "im2col channels past the end": lambda: _im2col(c0=1),
    "im2col threads 0": lambda: _im2col(threads=0),
    "col2im cols rows": lambda: _col2im(cols=z(16, 36)),
    "col2im cols width": lambda: _col2im(x=z(2, 5, 5, 3)),
    "col2im stride 0": lambda: _col2im(stride=0),
    "im2col_nchw cols": lambda: _nchw(False, cols=z(2, 36, 8)),
    "im2col_nchw batch": lambda: _nchw(False, cols=z(1, 36, 9)),
    "im2col_nchw dilation 0": lambda: _nchw(False, dilation=0),
    "col2im_nchw cols rows": lambda: _nchw(True, cols=z(2, 35, 9)),
    "col2im_nchw x channels": lambda: _nchw(True, x=z(2, 3, 5, 5)),
    "conv_im2col bias": lambda: _conv_im2col(bias=z(5)),
    "conv_im2col residual": lambda: _conv_im2col(residual=z(2, 3, 3, 5)),
    "conv_im2col out channels": lambda: _conv_im2col(out=z(2, 3, 3, 7)),
    "conv_im2col out batch": lambda: _conv_im2col(out=z(1, 3, 3, 6)),
    "conv_im2col weight channels": lambda: _conv_im2col(w=z(3, 3, 3, 6)),
    "conv_im2col groups 0": lambda: _conv_im2col(groups=0),
    "conv_im2col groups": lambda: _conv_im2col(groups=4),
    "gemm a rows": lambda: _gemm(a=z(4, 3)),
    "gemm inner": lambda: _gemm(b=z(2, 4)),
    "gemm c columns": lambda: _gemm(c=z(5, 3)),
    "gemm c column stride": lambda: _gemm(c=z(5, 8)[:, ::2]),
    "gemm bias": lambda: _gemm(bias=z(3)),
    "gemm residual": lambda: _gemm(residual=z(4, 4)),
    "gemm threads 0": lambda: _gemm(threads=0),
    "winograd m": lambda: _winograd(m=3),
    "winograd u channels": lambda: _winograd(u=winograd.transform_weights(z(3, 3, 3, 6), 2, 1)),
    "winograd u positions": lambda: _winograd(u=winograd.transform_weights(z(3, 3, 4, 6), 4, 1)),
    "winograd u output channels": lambda: _winograd(out=z(2, 5, 5, 40)),
    "winograd out batch": lambda: _winograd(out=z(3, 5, 5, 6)),
    "winograd bias": lambda: _winograd(bias=z(5)),
    "winograd residual": lambda: _winograd(residual=z(2, 5, 5, 5)),
    "winograd weights": lambda: _winograd(w=z(3, 3, 4, 5)),
    "winograd tile block": lambda: _winograd(block=winograd.tile_rows() + 1),
    "winograd tile block 0": lambda: _winograd(block=0),
    "winograd chunk 0": lambda: _winograd(chunk=0),
    "winograd transform m": lambda: winograd.transform_weights(z(3, 3, 4, 6), 0, 1),
    "winograd transform kernel": lambda: winograd.transform_weights(z(5, 3, 4, 6), 2, 1),
    "weight_grad grad_output batch": lambda: _weight_grad(go=z(1, 3, 3, 6)),
    "weight_grad channels": lambda: _weight_grad(gw=z(3, 3, 4, 5)),
    "weight_grad input channels": lambda: _weight_grad(x=z(2, 5, 5, 3)),
    "weight_grad groups 0": lambda: _weight_grad(groups=0),
    "weight_grad chunk 0": lambda: _weight_grad(pc=0),
    "weight_grad offset": lambda: _weight_grad(offset=z(2, 3, 3, 17)),
    "weight_grad mask": lambda: _weight_grad(offset=z(2, 3, 3, 18), mask=z(2, 3, 3, 8)),
    "weight_grad mask without offset": lambda: _weight_grad(mask=z(2, 3, 3, 9)),
    "deform_grad grad_output channels": lambda: _deform_grad(go=z(2, 3, 3, 5)),
    "deform_grad packed weight": lambda: _deform_grad(wt=deform_grad.pack_transposed_weights(z(3, 3, 2, 6), 1)),
    "deform_grad grad_x": lambda: _deform_grad(gx=z(2, 5, 5, 3)),
    "deform_grad grad_offset": lambda: _deform_grad(goff=z(2, 3, 3, 16)),
    "deform_grad grad_mask": lambda: _deform_grad(mask=z(2, 3, 3, 9), gmask=z(2, 3, 3, 8)),
    "deform_grad grad_mask missing": lambda: _deform_grad(mask=z(2, 3, 3, 9)),
    "deform_grad chunk 0": lambda: _deform_grad(chunk=0),
    "max_pool_grad grad_x": lambda: _pool_grad("max", gx=z(2, 4, 4, 2)),
    "max_pool_grad grad_output": lambda: _pool_grad("max", go=z(1, 2, 2, 3)),
    "max_pool_grad dilation 0": lambda: _pool_grad("max", dilation=0),
    "avg_pool_grad grad_output": lambda: _pool_grad("avg", go=z(2, 2, 2, 4)),
    "bn_grad sums grad_y": lambda: _bn_grad("sums_last", g=z(5, 4)),
    "bn_grad sums mean": lambda: _bn_grad("sums_first", mean=np.zeros(3)),
    "bn_grad sums out": lambda: _bn_grad("sums_last", out=np.zeros((2, 3))),
    "bn_grad affine a": lambda: _bn_grad("affine_last", a=z(3)),
    "bn_grad affine g": lambda: _bn_grad("affine_first", g=z(2, 4, 2)),
    "activation_grad threads 0": lambda: elementwise_grad.activation_backward(z(8), z(8), z(8), 1, 0.0, 0),
    "softmax y": lambda: softmax.softmax_rows(z(3, 5), z(3, 4), False, 1),
    "softmax threads 0": lambda: softmax.softmax_rows(z(3, 5), z(3, 5), False, 0),
    "softmax_grad grad_x": lambda: softmax.softmax_backward_rows(z(3, 5), z(3, 5), z(2, 5), True, 1),
    "cross_entropy label range": lambda: _cross_entropy(False, labels=np.array([0, 5, 2], np.intp)),
    "cross_entropy negative label": lambda: _cross_entropy(True, labels=np.array([0, -1, 2], np.intp)),
    "cross_entropy labels": lambda: _cross_entropy(False, labels=np.array([0, 1], np.intp)),
    "cross_entropy_grad scale": lambda: _cross_entropy(True, scale=np.ones(2)),
    "cross_entropy_grad grad": lambda: _cross_entropy(True, grad=z(3, 4)),
    "sgd threads 0": lambda: sgd.sgd_update(z(8), z(8), None, 0.1, 0.0, 0.0, 0.0, True, False, 0),
    "sgd buffer": lambda: sgd.sgd_update(z(8), z(8), z(7), 0.1, 0.0, 0.9, 0.0, True, False, 1),
}


@pytest.mark.parametrize("call", GOOD)
def test_consistent_arguments_run(call):
    call()


@pytest.mark.parametrize("name", list(BAD))
def test_wrong_shapes_raise_value_error(name):
    with pytest.raises(ValueError, match="expected"):
        BAD[name]()
