"""Geometry near the limit of 64-bit index arithmetic (scripts/sanitize.sh runs these under UBSan).

Strides, paddings and dilations up to 2**62 and padded extents up to 3*2**61 (convkit._validation) are
computed exactly; larger ones raise ValueError, never OverflowError or an overflowing index.
"""
import numpy as np
import pytest

import convkit

P = 3 * 2**60 - 2        # padding on each side: the padded height 3 + 2P is just under 3*2**61
FAR = 2**62              # the largest dilation / stride accepted


def _arrays():
    rng = np.random.default_rng(7)
    return rng.standard_normal((1, 3, 3, 2)), rng.standard_normal((2, 2, 2, 3)), rng.standard_normal(3)


@pytest.mark.parametrize("algo", ["direct", "im2col", "auto"])
def test_far_tap_lands_inside_the_image(algo):
    """Dilation P + 1 (about 0.75 * 2**62): from the top padding, the second kernel row reads input row 1."""
    x, w, b = _arrays()
    y = convkit.conv2d(x, w, b, stride=(FAR, 1), padding=(P, 0), dilation=(P + 1, 1), algo=algo)
    expected = np.stack([x[0, 1, ow] @ w[1, 0] + x[0, 1, ow + 1] @ w[1, 1] for ow in range(2)]) + b
    np.testing.assert_allclose(y, expected[None, None], rtol=1e-12)


@pytest.mark.parametrize("algo", ["direct", "im2col", "auto"])
def test_dilation_2_62_reads_only_padding(algo):
    """Dilation 2**62 with 2**62-scale padding: every tap in the padding, the result is the bias (the
    kernels once marked idle tile pixels with -H - KH*dilation, which overflowed here)."""
    x, w, b = _arrays()
    y = convkit.conv2d(x, w, b, stride=(FAR, 1), padding=(P, 0), dilation=(FAR, 1), algo=algo)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (1, 1, 2, 3)))


@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_deform_conv2d_near_the_limit(algo):
    """Sampling positions are floating point (as torchvision's), so only the all-padding geometry is exact."""
    x, w, b = _arrays()
    offset = np.zeros((1, 1, 2, 8))
    y = convkit.deform_conv2d(x, offset, w, b, stride=(FAR, 1), padding=(P, 0), dilation=(FAR, 1), algo=algo)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (1, 1, 2, 3)))


def test_im2col_near_the_limit():
    x, _, _ = _arrays()
    cols = convkit.im2col(x, 2, (FAR, 1), (P, 0), (P + 1, 1))
    np.testing.assert_array_equal(cols[:, 4:], np.concatenate([x[0, 1, 0:2].ravel()[None],
                                                               x[0, 1, 1:3].ravel()[None]]))
    assert not cols[:, :4].any()


@pytest.mark.parametrize("algo", ["direct", "col2im"])
def test_conv_transpose2d_near_the_limit(algo):
    """Dilation 3*2**60 and padding 3*2**59: every product is cropped away, the output is the bias."""
    x, _, b = _arrays()
    w = np.ones((2, 2, 3, 2))
    y = convkit.conv_transpose2d(x, w, b, padding=(3 * 2**59, 0), dilation=(3 * 2**60, 1), algo=algo)
    assert y.shape == (1, 3, 4, 3)
    np.testing.assert_array_equal(y, np.broadcast_to(b, y.shape))


@pytest.mark.parametrize("call, name", [
    (lambda x, w: convkit.conv2d(x, w, padding=2**62 + 1), "padding"),
    (lambda x, w: convkit.conv2d(x, w, stride=2**63), "stride"),
    (lambda x, w: convkit.conv2d(x, w, dilation=(2**64, 1)), "dilation"),
    (lambda x, w: convkit.conv2d(x, w, padding=(2**62, 0), dilation=(2**62, 1)), "padded input height"),
    (lambda x, w: convkit.conv_transpose2d(x, w.transpose(0, 1, 3, 2), stride=(2**61, 1), padding=(2**61, 0),
                                           dilation=(2**62, 1)), "uncropped output height"),
    (lambda x, w: convkit.deform_conv2d(x, np.zeros((1, 1, 2, 8)), w, padding=(2**62, 0), dilation=(2**62, 1)),
     "padded input height"),
    (lambda x, w: convkit.max_pool2d(x, 2, stride=2**70), "stride"),
    (lambda x, w: convkit.im2col(x, 2, dilation=2**63), "dilation"),
])
def test_past_the_limit_raises_value_error(call, name):
    x, w, _ = _arrays()
    with pytest.raises(ValueError, match=name):
        call(x, w)
