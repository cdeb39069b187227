/* The register tile shared by the direct convolutions and the GEMM: acc[MR][NR] += a[MR][k] * b[k][NR].
 *
 * CK_MR rows (output pixels, rows of A) times two vectors of columns (output channels, columns of B), the
 * constants of simd.h: on AVX2 6 x 16 float32 / 6 x 8 float64, twelve vector accumulators, the two B
 * vectors and one broadcast A value in registers (15 of 16); on AVX-512 12 x 32 / 12 x 16 (27 of 32).
 * Written with GCC/Clang vector extensions rather than left to the auto-vectoriser: the same loop in
 * Cython was vectorised over the reduction (with shuffles) or spilled accumulators, depending on the
 * surrounding code, at a fraction of this speed.
 *
 * ck_tile_*: the direct kernels' form.  xp[r] points at the reduction values of row r (a row of zeros for
 *            padding), w at `cin` packed rows of NR values; acc (CK_ACC_LEN) is loaded and stored.
 * ck_gemm_*: the GEMM's form, on packed panels: a holds kc columns of CK_MR values, b kc rows of NR values;
 *            acc (CK_ACC_LEN, row r at r*NR) is overwritten with the product.  The destination rows
 *            (c, ldc apart) are prefetched first, as BLIS's kernels do: the tile's store then finds them
 *            in cache (without it a 1000^3 product spent a quarter of its time waiting on those stores).
 */
#ifndef CONVKIT_MICROKERNEL_H
#define CONVKIT_MICROKERNEL_H
#include <stddef.h>
#include "simd.h"

#define CK_DEFINE_TILE(NAME, T, VT, LANES)                                                  \
static inline void NAME(const T *const *xp, const T *w, ptrdiff_t cin, T *acc)              \
{                                                                                           \
    VT a[CK_MR][2];                                                                         \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < CK_MR; r++) {                                                       \
        a[r][0] = *(const VT *)(acc + 2 * LANES * r);                                       \
        a[r][1] = *(const VT *)(acc + 2 * LANES * r + LANES);                               \
    }                                                                                       \
    for (ptrdiff_t ci = 0; ci < cin; ci++, w += 2 * LANES) {                                \
        VT w0 = *(const VT *)w, w1 = *(const VT *)(w + LANES);                              \
        _Pragma("GCC unroll 16")                                                            \
        for (int r = 0; r < CK_MR; r++) {                                                   \
            T v = xp[r][ci];                                                                \
            a[r][0] += v * w0;                                                              \
            a[r][1] += v * w1;                                                              \
        }                                                                                   \
    }                                                                                       \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < CK_MR; r++) {                                                       \
        *(VT *)(acc + 2 * LANES * r) = a[r][0];                                             \
        *(VT *)(acc + 2 * LANES * r + LANES) = a[r][1];                                     \
    }                                                                                       \
}

#define CK_DEFINE_GEMM_TILE(NAME, T, VT, LANES)                                             \
static inline void NAME(ptrdiff_t kc, const T *a, const T *b, T *acc, const T *dst, ptrdiff_t ldd) \
{                                                                                           \
    VT c[CK_MR][2];                                                                         \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < CK_MR; r++) {                                                       \
        __builtin_prefetch(dst + r * ldd, 1);                                               \
        __builtin_prefetch(dst + r * ldd + 2 * LANES - 1, 1);                               \
        c[r][0] = c[r][1] = (VT){0};                                                        \
    }                                                                                       \
    _Pragma("GCC unroll 2")                                                                 \
    for (ptrdiff_t k = 0; k < kc; k++, a += CK_MR, b += 2 * LANES) {                        \
        VT b0 = *(const VT *)b, b1 = *(const VT *)(b + LANES);                              \
        _Pragma("GCC unroll 16")                                                            \
        for (int r = 0; r < CK_MR; r++) {                                                   \
            T v = a[r];                                                                     \
            c[r][0] += v * b0;                                                              \
            c[r][1] += v * b1;                                                              \
        }                                                                                   \
    }                                                                                       \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < CK_MR; r++) {                                                       \
        *(VT *)(acc + 2 * LANES * r) = c[r][0];                                             \
        *(VT *)(acc + 2 * LANES * r + LANES) = c[r][1];                                     \
    }                                                                                       \
}

CK_DEFINE_TILE(ck_tile_f32, float, ck_vf32, CK_LANES_F32)
CK_DEFINE_TILE(ck_tile_f64, double, ck_vf64, CK_LANES_F64)
CK_DEFINE_GEMM_TILE(ck_gemm_tile_f32, float, ck_vf32, CK_LANES_F32)
CK_DEFINE_GEMM_TILE(ck_gemm_tile_f64, double, ck_vf64, CK_LANES_F64)

#endif
