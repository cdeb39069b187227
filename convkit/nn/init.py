"""Deterministic weight initialisation: PyTorch's defaults, drawn from a NumPy Generator."""
import math

import numpy as np

from .._validation import FLOAT_DTYPES


def generator(rng):
    """``rng`` (a ``numpy.random.Generator`` or an int seed) as a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"expected dtype to be float32 or float64, got {dt}")
    return dt


def kaiming_uniform(rng, shape, fan_in, dtype):
    """PyTorch's default for conv and linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (``kaiming_uniform_(a=sqrt(5))`` for the weight reduces to this bound, as does the bias's.)
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    w = rng.random(shape, dtype=dtype)  # drawn in the target dtype: float32 draws are twice as fast
    w *= 2 * bound
    w -= bound
    return w


def normal(rng, shape, std, dtype):
    """N(0, std^2) drawn in ``dtype``."""
    w = rng.standard_normal(shape, dtype=dtype)
    w *= std
    return w
