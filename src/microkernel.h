/* The register tile of the direct convolution: acc[6][B] += x[6][cin] * w[cin][B].
 *
 * Six output pixels times one block of output channels (16 float32 or 8 float64: two 256-bit vectors),
 * so twelve vector accumulators, the two weight vectors and one broadcast input value live in registers
 * (15 of AVX2's 16).  Written with GCC/Clang vector extensions rather than left to the auto-vectoriser:
 * the same loop in Cython was vectorised over the input channels (with shuffles) or spilled accumulators,
 * depending on the surrounding code, at a fraction of this speed.  The vector types compile to AVX2,
 * AVX-512 (as 256-bit), SSE or NEON.
 *
 * xp[r] points at the input channels of pixel r (a row of zeros for padding); w at cin rows of B weights.
 */
#ifndef CONVKIT_MICROKERNEL_H
#define CONVKIT_MICROKERNEL_H
#include <stddef.h>

#define CK_TILE_PIXELS 6

typedef float ck_f32x8 __attribute__((vector_size(32), aligned(4)));
typedef double ck_f64x4 __attribute__((vector_size(32), aligned(8)));

#define CK_DEFINE_TILE(NAME, T, VT, LANES)                                                  \
static inline void NAME(const T *const *xp, const T *w, ptrdiff_t cin, T *acc)              \
{                                                                                           \
    VT a[CK_TILE_PIXELS][2];                                                                \
    for (int r = 0; r < CK_TILE_PIXELS; r++) {                                              \
        a[r][0] = *(const VT *)(acc + 2 * LANES * r);                                       \
        a[r][1] = *(const VT *)(acc + 2 * LANES * r + LANES);                               \
    }                                                                                       \
    for (ptrdiff_t ci = 0; ci < cin; ci++, w += 2 * LANES) {                                \
        VT w0 = *(const VT *)w, w1 = *(const VT *)(w + LANES);                              \
        for (int r = 0; r < CK_TILE_PIXELS; r++) {                                          \
            T v = xp[r][ci];                                                                \
            a[r][0] += v * w0;                                                              \
            a[r][1] += v * w1;                                                              \
        }                                                                                   \
    }                                                                                       \
    for (int r = 0; r < CK_TILE_PIXELS; r++) {                                              \
        *(VT *)(acc + 2 * LANES * r) = a[r][0];                                             \
        *(VT *)(acc + 2 * LANES * r + LANES) = a[r][1];                                     \
    }                                                                                       \
}

CK_DEFINE_TILE(ck_tile_f32, float, ck_f32x8, 8)
CK_DEFINE_TILE(ck_tile_f64, double, ck_f64x4, 4)

#endif
