"""Public matrix product on convkit's own GEMM (src/gemm.pyx): no BLAS, convkit's OpenMP threads."""
import numpy as np

from ._kernels import gemm as _gemm
from ._threads import resolve_num_threads
from ._validation import FLOAT_DTYPES, check_out


def matmul(a, b, *, out=None, num_threads=None):
    """``a @ b`` for 2-D float32 or float64 arrays, as :func:`numpy.matmul` computes it.

    Parameters
    ----------
    a : ndarray (M, K), float32 or float64, any strides (transposed and read-only views included)
    b : ndarray (K, N), a's dtype
    out : ndarray (M, N), optional
        C-contiguous, writeable, a's dtype, not overlapping ``a`` or ``b``; returned.
    num_threads : int, optional
        OpenMP threads; ``None`` uses :func:`convkit.get_num_threads`.

    Raises TypeError for non-arrays and for dtypes other than float32/float64 (or two different
    ones: convkit never mixes precisions silently), ValueError for operands that are not 2-D or whose
    inner sizes differ (NumPy's matmul raises ValueError there too), MemoryError when the result or the
    packing workspace cannot be allocated (before anything is computed).
    """
    for name, array in (("a", a), ("b", b)):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"expected {name} to be a numpy.ndarray, got {type(array).__name__}")
        if array.dtype not in FLOAT_DTYPES:
            raise TypeError(f"expected {name} to have dtype float32 or float64, got {array.dtype}")
        if array.ndim != 2:
            raise ValueError(f"expected {name} to be 2-D, got shape {array.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"expected b to have dtype {a.dtype} like a, got {b.dtype}")
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ValueError(f"matmul: mismatch in the inner dimension: a has shape {a.shape}, b has "
                         f"shape {b.shape} ({k} != {k2})")
    nt = resolve_num_threads(num_threads)
    if out is None:
        out = np.empty((m, n), dtype=a.dtype)   # MemoryError here for a result that cannot exist
    else:
        check_out(out, (m, n), a.dtype, (a, b))
    _gemm.gemm_into(_aligned(a), _aligned(b), out, num_threads=nt)
    return out


def _aligned(array):
    """``array``, or a C-contiguous copy where its data or a stride is not aligned to its elements (the
    kernel reads whole elements through typed pointers: a misaligned one is undefined behaviour)."""
    return array if array.flags.aligned else np.array(array, order="C")
