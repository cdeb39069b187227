/* OpenMP entry points that also exist in a build without OpenMP (serial kernels). */
#ifndef CONVKIT_OMP_COMPAT_H
#define CONVKIT_OMP_COMPAT_H
#ifdef _OPENMP
#include <omp.h>
#define CONVKIT_HAVE_OPENMP 1
#else
#define CONVKIT_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif
#endif
