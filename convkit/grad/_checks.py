"""Checks shared by the gradient functions."""
from .._validation import as_float_array


def as_grad_output(grad_output, expected_shape, dtype):
    """``grad_output`` as a C-contiguous array of ``dtype`` whose shape is the forward output's."""
    grad_output = as_float_array(grad_output, "grad_output", dtype)
    if grad_output.shape != tuple(expected_shape):
        raise ValueError(f"expected grad_output to have the forward output's shape {tuple(expected_shape)}, "
                         f"got {grad_output.shape}")
    return grad_output


def as_shape(shape, name, ndim):
    """A shape argument (``input_shape``, ``weight_shape``) as a tuple of ``ndim`` non-negative ints."""
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"expected {name} to be a tuple of {ndim} ints, got {shape!r}") from None
    if len(shape) != ndim or min(shape) < 0:
        raise ValueError(f"expected {name} to be a tuple of {ndim} non-negative ints, got {shape!r}")
    return shape
