/* The register tile of the grouped convolution with few channels per group, groups as vector lanes.
 *
 * Lane l of every vector is group gb*LANES + l.  The input is repacked per pixel as (group block, ci,
 * lane) and the weights as (group block, channel chunk, tap, ci, c, lane), so for each tap and input
 * channel ci of the group, one vector load gives that channel for LANES groups at once and each of the
 * CG_CHANNELS output channels of the chunk is one vector FMA: no shuffles, whatever the channels per
 * group.  The tile is CG_PIXELS output pixels x CG_CHANNELS output channels per group: twelve vector
 * accumulators, three input vectors and one weight vector in registers (16 of AVX2's 16).  Vector
 * extensions (GCC/Clang), as microkernel.h, so the accumulators stay in registers whatever the
 * surrounding code.
 *
 * xp[t*CG_PIXELS + r] points at the repacked input of pixel r for tap t (a row of zeros in the padding),
 * ``off`` selects the group block; w runs over (tap, ci, c, lane); acc receives [r][c][lane].
 */
#ifndef CONVKIT_GROUPED_TILE_H
#define CONVKIT_GROUPED_TILE_H
#include <stddef.h>

#define CG_PIXELS 3
#define CG_CHANNELS 4

typedef float cg_f32x8 __attribute__((vector_size(32), aligned(4)));
typedef double cg_f64x4 __attribute__((vector_size(32), aligned(8)));

#define CG_DEFINE_TILE(NAME, T, VT, LANES)                                                  \
static inline void NAME(const T *const *xp, ptrdiff_t off, const T *w, ptrdiff_t ntaps,     \
                        ptrdiff_t cin, T *acc)                                              \
{                                                                                           \
    VT a[CG_PIXELS][CG_CHANNELS];                                                           \
    for (int r = 0; r < CG_PIXELS; r++)                                                     \
        for (int c = 0; c < CG_CHANNELS; c++)                                               \
            a[r][c] = (VT){0};                                                              \
    for (ptrdiff_t t = 0; t < ntaps; t++) {                                                 \
        const T *xs[CG_PIXELS];                                                             \
        for (int r = 0; r < CG_PIXELS; r++) xs[r] = xp[CG_PIXELS * t + r] + off;            \
        for (ptrdiff_t ci = 0; ci < cin; ci++, w += CG_CHANNELS * LANES) {                  \
            VT v[CG_PIXELS];                                                                \
            for (int r = 0; r < CG_PIXELS; r++) v[r] = *(const VT *)(xs[r] + ci * LANES);   \
            for (int c = 0; c < CG_CHANNELS; c++) {                                         \
                VT wc = *(const VT *)(w + c * LANES);                                       \
                for (int r = 0; r < CG_PIXELS; r++) a[r][c] += v[r] * wc;                   \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    for (int r = 0; r < CG_PIXELS; r++)                                                     \
        for (int c = 0; c < CG_CHANNELS; c++)                                               \
            *(VT *)(acc + (r * CG_CHANNELS + c) * LANES) = a[r][c];                         \
}

CG_DEFINE_TILE(cg_tile_f32, float, cg_f32x8, 8)
CG_DEFINE_TILE(cg_tile_f64, double, cg_f64x4, 4)

#endif
