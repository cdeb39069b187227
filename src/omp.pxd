# OpenMP queries that compile with or without OpenMP (see omp_compat.h).
cdef extern from "omp_compat.h" nogil:
    int CONVKIT_HAVE_OPENMP
    int omp_get_max_threads()
    int omp_get_thread_num()
