"""Bad arguments raise clear exceptions that name the argument (never a crash or a wrong answer)."""
import numpy as np
import pytest

import convkit

X = np.zeros((1, 8, 8, 4), np.float32)
W = np.zeros((3, 3, 4, 6), np.float32)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=(1, -2)), ValueError, "stride"),
    (dict(stride=1.5), ValueError, "stride"),
    (dict(stride=True), ValueError, "stride"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding=(1, 2, 3)), ValueError, "padding"),
    (dict(groups=0), ValueError, "groups"),
    (dict(groups=3), ValueError, "groups"),
    (dict(algo="fft"), ValueError, "algo"),
    (dict(layout="NWHC"), ValueError, "layout"),
    (dict(num_threads=0), ValueError, "num_threads"),
    (dict(num_threads=-1), ValueError, "num_threads"),
    (dict(bias=np.zeros(5, np.float32)), ValueError, "bias"),
    (dict(bias=np.zeros(6, np.float64)), TypeError, "bias"),
    (dict(out=np.zeros((1, 6, 6, 5), np.float32)), ValueError, "out"),
    (dict(out=np.zeros((1, 6, 6, 6), np.float64)), ValueError, "out"),
    (dict(out=np.zeros((1, 6, 6, 6), np.float32, order="F")), ValueError, "out"),
])
def test_conv2d_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        convkit.conv2d(X, W, **kwargs)


def test_wrong_ndim():
    with pytest.raises(ValueError, match="x"):
        convkit.conv2d(X[0], W)
    with pytest.raises(ValueError, match="weight"):
        convkit.conv2d(X, W[0])


def test_channel_mismatch_names_weight():
    with pytest.raises(ValueError, match="weight"):
        convkit.conv2d(X, np.zeros((3, 3, 5, 6), np.float32))


def test_groups_must_divide_output_channels():
    with pytest.raises(ValueError, match="groups"):
        convkit.conv2d(X, np.zeros((3, 3, 2, 5), np.float32), groups=2)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex64, bool])
def test_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="x"):
        convkit.conv2d(X.astype(dtype), W)


def test_mixed_dtypes():
    with pytest.raises(TypeError, match="weight"):
        convkit.conv2d(X, W.astype(np.float64))


def test_not_an_array():
    with pytest.raises(TypeError, match="x"):
        convkit.conv2d(X.tolist(), W)


def test_empty_output_reports_the_numbers():
    with pytest.raises(ValueError, match=r"output height 0 .* input height 2"):
        convkit.conv2d(np.zeros((1, 2, 8, 4), np.float32), W)
    with pytest.raises(ValueError, match="output width"):
        convkit.conv2d(X, W, dilation=(1, 4))


def test_out_must_not_overlap_inputs():
    x = np.zeros((1, 8, 8, 6), np.float32)
    w = np.zeros((1, 1, 6, 6), np.float32)
    with pytest.raises(ValueError, match="out"):
        convkit.conv2d(x, w, out=x)


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n"):
        convkit.set_num_threads(0)


@pytest.mark.parametrize("call", [
    lambda: convkit.im2col(X, 0),
    lambda: convkit.im2col(X, 3, stride=0),
    lambda: convkit.im2col(X, 9),
    lambda: convkit.im2col(X[0], 3),
    lambda: convkit.col2im(np.zeros((36, 36)), (8, 8), 3, padding=-1),
])
def test_im2col_bad_arguments(call):
    with pytest.raises(ValueError):
        call()
