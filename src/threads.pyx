"""What the build's OpenMP runtime reports."""
from libc.stdlib cimport getenv

from omp cimport CONVKIT_HAVE_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(CONVKIT_HAVE_OPENMP)


def max_threads():
    """OpenMP's default team size for this thread (honours OMP_NUM_THREADS and threadpoolctl)."""
    return omp_get_max_threads()


def omp_num_threads_set():
    """Whether OMP_NUM_THREADS is set to anything but blanks, read with C's getenv (os.environ's changes
    reach it through putenv) in a twentieth of the time of ``os.environ.get``: every call with
    ``num_threads=None`` asks."""
    cdef const char* value = getenv(b"OMP_NUM_THREADS")
    if value == NULL:
        return False
    while value[0] in b" \t\n\r\f\v":
        value += 1
    return value[0] != 0
