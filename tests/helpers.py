"""Comparison helpers shared by the tests."""
import numpy as np

# Tolerances per dtype, relative to the largest magnitude of the reference output (at least 1):
# float32 kernels accumulate in float32 (relative rounding ~6e-8 per operation, over reductions of up
# to a few thousand terms); float64 kernels match the float64 reference to rounding.
TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-11}


def assert_close(actual, expected, dtype, tolerance=None):
    """``actual`` has dtype ``dtype``, the shape of ``expected`` and matches it to ``tolerance`` (relative
    to the reference's largest magnitude, at least 1; by default the dtype's TOLERANCE)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.dtype(dtype), actual.dtype
    scale = max(np.abs(expected).max(initial=0.0), 1.0)
    err = np.abs(actual.astype(np.float64) - expected).max(initial=0.0)
    tolerance = TOLERANCE[np.dtype(dtype)] if tolerance is None else tolerance
    assert err <= tolerance * scale, f"max abs error {err:.3g} (scale {scale:.3g})"


def nchw(a):
    """NHWC activation -> NCHW."""
    return np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2))


def oihw(w):
    """HWIO conv weight -> PyTorch's (Cout, Cin/groups, KH, KW)."""
    return np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1))
