"""What the build's OpenMP runtime reports."""
from omp cimport CONVKIT_HAVE_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(CONVKIT_HAVE_OPENMP)


def max_threads():
    """OpenMP's default team size for this thread (honours OMP_NUM_THREADS and threadpoolctl)."""
    return omp_get_max_threads()
