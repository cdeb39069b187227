/* The depthwise convolution's register tile: CK_DW_PIXELS (or 4) output pixels x one block of channels (two
 * vectors: CK_NR_F32 / CK_NR_F64 of simd.h; or one, the half tile) for a contiguous-output (multiplier 1),
 * interior tile.
 *
 * Tap row i of the window reads input row rows[i] (its pixel 0, channel 0; the rows need not be evenly
 * spaced: a fused block keeps them in a ring): pixel r's tap (i, j) is at rows[i] + off + r*step + j*col,
 * off locating pixel 0's first tap at the block's first channel; w points at the first tap row's weights,
 * tap (i, j) at w + (i*KW + j)*C; the accumulators start from the bias and go to out + r*ostep.  Vector extensions
 * (GCC/Clang), as microkernel.h: the accumulators and the weight vectors stay in registers and each
 * input vector is a memory operand of its FMA, whatever the surrounding code (the same loop left to the
 * auto-vectoriser ran about 20% slower).
 */
#ifndef CONVKIT_DEPTHWISE_TILE_H
#define CONVKIT_DEPTHWISE_TILE_H
#include <stddef.h>
#include "simd.h"
/* PX pixels x NV vectors of channels per pixel: NV is 2 for a whole block, 1 for the half block a channel
 * count leaves when it is an odd multiple of a vector (e.g. MobileNet's 144 = 4 x 32 + 16 with 512-bit
 * vectors). */
#define DW_DEFINE_TAPS(NAME, T, VT, LANES, NV, PX)                                           \
static inline __attribute__((always_inline)) void NAME(                                     \
    const T *const *rows, ptrdiff_t off, ptrdiff_t step, ptrdiff_t col, ptrdiff_t nkh,        \
    ptrdiff_t KW, const T *w, ptrdiff_t C, const T *bias, T *out, ptrdiff_t ostep)           \
{                                                                                            \
    VT a[PX][NV], wv[NV];                                                                    \
    for (int v = 0; v < NV; v++) {                                                           \
        wv[v] = *(const VT *)(bias + v * LANES);                                             \
        for (int r = 0; r < PX; r++) a[r][v] = wv[v];                                        \
    }                                                                                        \
    for (ptrdiff_t i = 0; i < nkh; i++) {                                                    \
        const T *xr = rows[i] + off;                                                         \
        const T *wr = w + i * KW * C;                                                        \
        for (ptrdiff_t j = 0; j < KW; j++) {                                                 \
            const T *xp = xr + j * col;                                                      \
            for (int v = 0; v < NV; v++) wv[v] = *(const VT *)(wr + j * C + v * LANES);      \
            for (int r = 0; r < PX; r++)                                                     \
                for (int v = 0; v < NV; v++)                                                 \
                    a[r][v] += *(const VT *)(xp + r * step + v * LANES) * wv[v];             \
        }                                                                                    \
    }                                                                                        \
    for (int r = 0; r < PX; r++)                                                             \
        for (int v = 0; v < NV; v++)                                                         \
            *(VT *)(out + r * ostep + v * LANES) = a[r][v];                                  \
}

/* The tile of npx pixels (CK_DW_PIXELS, or 4 for what is left of a row's interior), with literal tap
 * counts for 3x3 windows inside the image, the common case (fully unrolled: 1.06-1.18x on MobileNetV2's
 * depthwise layers, 1 thread, Zen 4). */
#define DW_DEFINE_TILE(NAME, T, VT, LANES, NV)                                               \
DW_DEFINE_TAPS(NAME##_wide, T, VT, LANES, NV, CK_DW_PIXELS)                                 \
DW_DEFINE_TAPS(NAME##_narrow, T, VT, LANES, NV, 4)                                          \
static inline __attribute__((always_inline)) void NAME(                                     \
    const T *const *rows, ptrdiff_t off, ptrdiff_t npx, ptrdiff_t step, ptrdiff_t col,       \
    ptrdiff_t nkh, ptrdiff_t KW, const T *w, ptrdiff_t C, const T *bias, T *out,             \
    ptrdiff_t ostep)                                                                         \
{                                                                                            \
    if (npx == CK_DW_PIXELS) {                                                               \
        if (nkh == 3 && KW == 3)                                                             \
            NAME##_wide(rows, off, step, col, 3, 3, w, C, bias, out, ostep);                    \
        else                                                                                 \
            NAME##_wide(rows, off, step, col, nkh, KW, w, C, bias, out, ostep);                 \
    } else {                                                                                 \
        if (nkh == 3 && KW == 3)                                                             \
            NAME##_narrow(rows, off, step, col, 3, 3, w, C, bias, out, ostep);                  \
        else                                                                                 \
            NAME##_narrow(rows, off, step, col, nkh, KW, w, C, bias, out, ostep);               \
    }                                                                                        \
}
DW_DEFINE_TILE(dw_tile_f32, float, ck_vf32, CK_LANES_F32, 2)
DW_DEFINE_TILE(dw_tile_f64, double, ck_vf64, CK_LANES_F64, 2)
DW_DEFINE_TILE(dw_half_tile_f32, float, ck_vf32, CK_LANES_F32, 1)
DW_DEFINE_TILE(dw_half_tile_f64, double, ck_vf64, CK_LANES_F64, 1)

#endif
