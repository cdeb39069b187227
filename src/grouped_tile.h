/* The register tile of the grouped convolution with few channels per group, groups as vector lanes.
 *
 * Lane l of every vector is group gb*LANES + l.  The input is repacked per pixel as (group block, ci,
 * lane) and the weights as (group block, channel chunk, tap, ci, c, lane), so for each tap and input
 * channel ci of the group, one vector load gives that channel for LANES groups at once and each of the
 * CG_CHANNELS output channels of the chunk is one vector FMA: no shuffles, whatever the channels per
 * group.  The tile is CG_PIXELS output pixels x CG_CHANNELS output channels per group: on AVX2, twelve
 * vector accumulators, three input vectors and one weight vector (16 of its 16 registers); where AVX-512VL
 * gives 256-bit code 32 registers, six pixels (24 accumulators, six inputs, one weight: each weight
 * vector loaded serves twice the FMAs).  Vector extensions (GCC/Clang), as microkernel.h, so the
 * accumulators stay in registers whatever the surrounding code.  CG_KEEP pins each loaded input vector
 * in a register: without it GCC folded the loads into the FMAs, loading every input vector once per
 * output channel (24 loads per 12 FMAs), and the tile ran at 38 GFLOP/s on one Zen 4 core from L1
 * against 59 with it (72 with six pixels).
 *
 * xp[t*CG_PIXELS + r] points at the repacked input of pixel r for tap t (a row of zeros in the padding),
 * ``off`` selects the group block; w runs over (tap, ci, c, lane); acc receives [r][c][lane].
 *
 * cg_store_* write one pixel's [c][lane] accumulators of a full chunk and a full group block to the
 * NHWC output, out[lane*cout_g + c] (+ bias): a CG_CHANNELS x LANES transpose in registers, then one
 * CG_CHANNELS-value store per group, instead of scattering single values.
 */
#ifndef CONVKIT_GROUPED_TILE_H
#define CONVKIT_GROUPED_TILE_H
#include <stddef.h>

#if defined(__AVX512VL__)
#define CG_PIXELS 6
#else
#define CG_PIXELS 3
#endif
#define CG_CHANNELS 4

/* An empty asm that takes the vector in a register and gives it back: the compiler must keep it there. */
#if defined(__AVX__) && (defined(__GNUC__) || defined(__clang__))   /* 256-bit registers */
#define CG_KEEP(v) __asm__("" : "+v"(v))
#else
#define CG_KEEP(v) ((void)0)
#endif

typedef float cg_f32x8 __attribute__((vector_size(32), aligned(4)));
typedef float cg_f32x4 __attribute__((vector_size(16), aligned(4)));
typedef double cg_f64x4 __attribute__((vector_size(32), aligned(8)));
typedef int cg_i32x8 __attribute__((vector_size(32)));
typedef long long cg_i64x4 __attribute__((vector_size(32)));

/* Two-input shuffle with constant indices (element i of a, LANES + i of b), GCC or Clang spelling. */
#if defined(__clang__)
#define CG_SHUFFLE(a, b, MASK, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define CG_SHUFFLE(a, b, MASK, ...) __builtin_shuffle(a, b, (MASK){__VA_ARGS__})
#endif

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
            for (int r = 0; r < CG_PIXELS; r++) {                                           \
                v[r] = *(const VT *)(xs[r] + ci * LANES);                                   \
                CG_KEEP(v[r]);                                                              \
            }                                                                               \
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

static inline cg_f32x4 cg_half_f32(cg_f32x8 v, int high)
{
    return high ? (cg_f32x4){v[4], v[5], v[6], v[7]} : (cg_f32x4){v[0], v[1], v[2], v[3]};
}

static inline void cg_store_f32(const float *acc, const float *bias, float *out, ptrdiff_t cout_g)
{
    const cg_f32x8 *a = (const cg_f32x8 *)acc;
    /* Interleave per 128-bit half, then pair up: u[l] holds group l in its low half, l + 4 high. */
    cg_f32x8 t0 = CG_SHUFFLE(a[0], a[1], cg_i32x8, 0, 8, 1, 9, 4, 12, 5, 13);
    cg_f32x8 t1 = CG_SHUFFLE(a[0], a[1], cg_i32x8, 2, 10, 3, 11, 6, 14, 7, 15);
    cg_f32x8 t2 = CG_SHUFFLE(a[2], a[3], cg_i32x8, 0, 8, 1, 9, 4, 12, 5, 13);
    cg_f32x8 t3 = CG_SHUFFLE(a[2], a[3], cg_i32x8, 2, 10, 3, 11, 6, 14, 7, 15);
    cg_f32x8 u[4];
    u[0] = CG_SHUFFLE(t0, t2, cg_i32x8, 0, 1, 8, 9, 4, 5, 12, 13);
    u[1] = CG_SHUFFLE(t0, t2, cg_i32x8, 2, 3, 10, 11, 6, 7, 14, 15);
    u[2] = CG_SHUFFLE(t1, t3, cg_i32x8, 0, 1, 8, 9, 4, 5, 12, 13);
    u[3] = CG_SHUFFLE(t1, t3, cg_i32x8, 2, 3, 10, 11, 6, 7, 14, 15);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++) {
            ptrdiff_t o = (4 * h + l) * cout_g;
            cg_f32x4 v = cg_half_f32(u[l], h);
            if (bias)
                v += *(const cg_f32x4 *)(bias + o);
            *(cg_f32x4 *)(out + o) = v;
        }
}

static inline void cg_store_f64(const double *acc, const double *bias, double *out, ptrdiff_t cout_g)
{
    const cg_f64x4 *a = (const cg_f64x4 *)acc;
    cg_f64x4 t0 = CG_SHUFFLE(a[0], a[1], cg_i64x4, 0, 4, 2, 6);
    cg_f64x4 t1 = CG_SHUFFLE(a[0], a[1], cg_i64x4, 1, 5, 3, 7);
    cg_f64x4 t2 = CG_SHUFFLE(a[2], a[3], cg_i64x4, 0, 4, 2, 6);
    cg_f64x4 t3 = CG_SHUFFLE(a[2], a[3], cg_i64x4, 1, 5, 3, 7);
    cg_f64x4 u[4];
    u[0] = CG_SHUFFLE(t0, t2, cg_i64x4, 0, 1, 4, 5);
    u[1] = CG_SHUFFLE(t1, t3, cg_i64x4, 0, 1, 4, 5);
    u[2] = CG_SHUFFLE(t0, t2, cg_i64x4, 2, 3, 6, 7);
    u[3] = CG_SHUFFLE(t1, t3, cg_i64x4, 2, 3, 6, 7);
    for (int l = 0; l < 4; l++) {
        cg_f64x4 v = u[l];
        if (bias)
            v += *(const cg_f64x4 *)(bias + l * cout_g);
        *(cg_f64x4 *)(out + l * cout_g) = v;
    }
}

#endif
