"""A network layer running im2col keeps its weight packed as the GEMM's B (conv.prepare_weights): the
prepared path against the float64 reference, over strided 1x1 (resnet's downsample), pointwise, 3x3 and
non-square kernels, odd sizes, batch 0, 1 and 2, both dtypes and layouts, and non-contiguous inputs."""
import numpy as np
import pytest

from convkit import nn
from convkit._kernels import gemm, im2col
from convkit.activations import resolve_activation
from helpers import assert_close
from reference import conv2d_ref
from test_nn import run


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cin, cout, kernel, stride, padding, groups", [
    (24, 40, 1, 2, 0, 1),          # resnet's downsample: A packed from every other pixel
    (13, 70, 1, 1, 0, 1),          # pointwise: the plain GEMM
    (9, 33, 3, 1, 1, 1),
    (7, 5, (2, 3), (2, 1), (1, 0), 1),
    (8, 12, 3, 2, 1, 2),           # grouped: nothing packed, still im2col
])
@pytest.mark.parametrize("batch, size", [(1, (9, 11)), (2, (7, 6)), (0, (5, 5))])
def test_prepared_im2col_layer_matches_reference(cin, cout, kernel, stride, padding, groups, batch, size,
                                                 dtype, layout, rng):
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, layout=layout, dtype=dtype, rng=rng,
                     algo="im2col").eval()
    x = rng.standard_normal((batch, *size, cin)).astype(dtype)
    w, bias = conv.nhwc_weight(), conv.bias
    s, p = conv.stride, conv.padding
    expected = conv2d_ref(x, w, bias, s, (p[0], p[0], p[1], p[1]), groups=groups)
    for _ in range(3):        # the first call plans and packs, the next ones run the kept packing
        assert_close(run(conv, x), expected, dtype)
    bound = conv._cached("bound", lambda: None)
    packed = bound._prepared["im2col"]
    if groups == 1:
        assert isinstance(packed, gemm.PackedB) and packed.shape == (w[..., 0].size, cout)
    else:
        assert packed is None
    # a non-contiguous input (every other column of a wider one) goes through conv2d's checks
    wide = np.repeat(x, 2, axis=2)[:, :, ::2]
    assert_close(run(conv, wide), expected, dtype)
    conv.weight = conv.weight * -1     # assignment: the packed weight is rebuilt
    assert_close(run(conv, x), conv2d_ref(x, -w, bias, s, (p[0], p[0], p[1], p[1]), groups=groups), dtype)


def test_im2col_kernel_checks_the_packed_weight(rng):
    x = rng.standard_normal((1, 6, 6, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    out = np.empty((1, 4, 4, 8), np.float32)
    act = resolve_activation(None)
    args = (x, w, None, out, 1, 1, 1, 0, 0, 1, 1, *act, 1)
    im2col.conv2d_im2col_nhwc(*args, packed=gemm.pack_b(w.reshape(36, 8)))
    assert_close(out, conv2d_ref(x, w), np.float32)
    with pytest.raises(ValueError, match=r"expected packed to be the weight packed as a \(36, 8\) float32"):
        im2col.conv2d_im2col_nhwc(*args, packed=gemm.pack_b(w.reshape(36, 8)[:, :4]))
    with pytest.raises(ValueError, match="expected packed"):
        im2col.conv2d_im2col_nhwc(*args, packed=gemm.pack_b(w.reshape(36, 8).astype(np.float64)))
