"""The one place where a kernel's thread count is decided."""
from ._kernels import threads as _omp
from ._validation import int_arg

_default = None


def set_num_threads(n):
    """Threads for every later call that passes ``num_threads=None``; ``None`` restores OpenMP's default."""
    global _default
    _default = None if n is None else int_arg(n, "n", 1)


def get_num_threads():
    """Threads a call with ``num_threads=None`` uses now (OMP_NUM_THREADS and threadpoolctl apply)."""
    return _default if _default is not None else _omp.max_threads()


def resolve_num_threads(num_threads):
    """``num_threads`` argument -> positive int for the kernels."""
    if num_threads is None:
        return get_num_threads()
    return int_arg(num_threads, "num_threads", 1)
