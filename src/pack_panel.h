/* The transposing copy at the heart of packing A (gemm.pxd's pack_a_rows, im2col.pyx's pack_im2col):
 *
 *     d[j * CK_MR + r] = rows[r][j]      for r < CK_MR, j < n
 *
 * CK_MR row streams become one panel of n columns of CK_MR values.  Element by element that is 2 * CK_MR
 * scalar loads and stores per column; here each group of 4 rows x 4 columns is loaded as 4 vectors of 4,
 * transposed in registers with 8 shuffles and stored as 4 vectors (the 4 x 4 transpose of SSE's
 * _MM_TRANSPOSE4_PS), in GCC/Clang vector extensions so that it builds for every target.  Rows past the
 * last group of 4 (CK_MR = 6 on AVX2) and the last n % 4 columns are copied one by one.
 * Measured on the 12-row tile (AMD EPYC Zen 4, 1 thread): see gemm.pyx's notes.
 */
#ifndef CONVKIT_PACK_PANEL_H
#define CONVKIT_PACK_PANEL_H
#include <stddef.h>
#include "simd.h"

#define CK_DEFINE_PACK_PANEL(NAME, T, IT)                                                   \
static inline void NAME(const T *const *rows, ptrdiff_t n, T *d)                            \
{                                                                                           \
    typedef T V4 __attribute__((vector_size(4 * sizeof(T)), aligned(sizeof(T))));            \
    typedef IT I4 __attribute__((vector_size(4 * sizeof(IT))));     /* shuffle masks */    \
    ptrdiff_t j = 0;                                                                        \
    for (; j + 4 <= n; j += 4) {                                                            \
        T *dj = d + j * CK_MR;                                                              \
        _Pragma("GCC unroll 4")                                                             \
        for (int r = 0; r + 4 <= CK_MR; r += 4) {                                           \
            V4 a = *(const V4 *)(rows[r] + j), b = *(const V4 *)(rows[r + 1] + j);          \
            V4 c = *(const V4 *)(rows[r + 2] + j), e = *(const V4 *)(rows[r + 3] + j);      \
            V4 ab_lo = __builtin_shuffle(a, b, (I4){0, 4, 1, 5});  /* a0 b0 a1 b1 */         \
            V4 ab_hi = __builtin_shuffle(a, b, (I4){2, 6, 3, 7});  /* a2 b2 a3 b3 */         \
            V4 ce_lo = __builtin_shuffle(c, e, (I4){0, 4, 1, 5});                           \
            V4 ce_hi = __builtin_shuffle(c, e, (I4){2, 6, 3, 7});                           \
            *(V4 *)(dj + r) = __builtin_shuffle(ab_lo, ce_lo, (I4){0, 1, 4, 5});            \
            *(V4 *)(dj + CK_MR + r) = __builtin_shuffle(ab_lo, ce_lo, (I4){2, 3, 6, 7});    \
            *(V4 *)(dj + 2 * CK_MR + r) = __builtin_shuffle(ab_hi, ce_hi, (I4){0, 1, 4, 5}); \
            *(V4 *)(dj + 3 * CK_MR + r) = __builtin_shuffle(ab_hi, ce_hi, (I4){2, 3, 6, 7}); \
        }                                                                                   \
        for (int r = CK_MR / 4 * 4; r < CK_MR; r++)                                         \
            for (int i = 0; i < 4; i++)                                                     \
                dj[i * CK_MR + r] = rows[r][j + i];                                         \
    }                                                                                       \
    for (; j < n; j++)                                                                      \
        for (int r = 0; r < CK_MR; r++)                                                     \
            d[j * CK_MR + r] = rows[r][j];                                                  \
}

CK_DEFINE_PACK_PANEL(ck_pack_panel_f32, float, int)
CK_DEFINE_PACK_PANEL(ck_pack_panel_f64, double, long long)

#endif
