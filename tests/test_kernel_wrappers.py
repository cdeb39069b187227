"""The compiled wrappers (convkit._kernels.*) check every shape and length they rely on before they release
the GIL: a wrong call from convkit's own Python raises ValueError instead of reading or writing out of bounds.

Each wrapper is first called with consistent arguments (it must run), then with one argument replaced.
"""
import numpy as np
import pytest

from convkit._kernels import (batchnorm, conv_direct, conv_grouped, conv_transpose, deform, deform_direct,
                              depthwise, elementwise, pooling, reductions)

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


GOOD = [
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
}


@pytest.mark.parametrize("call", GOOD)
def test_consistent_arguments_run(call):
    call()


@pytest.mark.parametrize("name", list(BAD))
def test_wrong_shapes_raise_value_error(name):
    with pytest.raises(ValueError, match="expected"):
        BAD[name]()
