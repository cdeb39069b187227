"""The one place where a kernel's thread count is decided."""
from ._kernels import threads as _omp
from ._validation import int_arg

_default = None

#: Largest explicit thread count: far above any CPU's core count, far below the process's thread limit
#: (a team of 100,000 threads crashes libgomp when thread creation fails).
MAX_THREADS = 1024


def set_num_threads(n):
    """Threads for every later call that passes ``num_threads=None``; ``None`` restores OpenMP's default."""
    global _default
    _default = None if n is None else _thread_count(n, "n")


def get_num_threads():
    """Threads a call with ``num_threads=None`` uses now (OMP_NUM_THREADS and threadpoolctl apply)."""
    return _default if _default is not None else _omp.max_threads()


def resolve_num_threads(num_threads):
    """``num_threads`` argument -> positive int for the kernels."""
    if num_threads is None:
        return get_num_threads()
    return _thread_count(num_threads, "num_threads")


def _thread_count(value, name):
    n = int_arg(value, name, 1)
    if n > MAX_THREADS:
        raise ValueError(f"expected {name} to be an int from 1 to {MAX_THREADS}, got {value!r}")
    return n
