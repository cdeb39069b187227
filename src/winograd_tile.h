/* Winograd minimal filtering F(m x m, 3 x 3), m = 2 or 4: the tile transforms, over channel vectors.
 *
 * A tile of A x A inputs (A = m + 2) becomes V = B^T d B, and A x A element-wise products M become the
 * m x m outputs Y = A^T M A (Lavin & Gray 2016).  F(4,3) uses the interpolation points 0, +-1, +-2 and
 * infinity, F(2,3) 0, +-1 and infinity.  The matching weight transform U = G g G^T (ck_wino_weight_*)
 * is done in the weights' dtype, once per layer or inside each work item of a call (src/winograd.pyx).
 *
 * Each 1-D transform is straight-line arithmetic over L channel lanes (CK_WINO_LANES_F32/_F64: the width
 * of the micro-kernel's block of output channels), so the compiler vectorises it over channels: NHWC keeps
 * a pixel's channels contiguous, and every tile of the image is transformed without gathers.
 */
#ifndef CONVKIT_WINOGRAD_TILE_H
#define CONVKIT_WINOGRAD_TILE_H
#include <stddef.h>
#include <string.h>
#include "microkernel.h"

#define CK_WINO_LANES_F32 CK_NR_F32      /* simd.h's tile width */
#define CK_WINO_LANES_F64 CK_NR_F64

#define CK_WINO_MAX_A 6
#define CK_WINO_WEIGHT_RUN 8       /* input channels per weight-transform work item */
#define CK_WINO_WEIGHT_CHUNK 64    /* input channels of U a work item computes at once (a per-call transform) */

/* o[k*os] = (G e)[k], k < A, for the 3 values e[k*is], each a run of L lanes, in the weights' dtype T:
 * G of F(2,3) (A = 4) or F(4,3) (A = 6), Lavin & Gray's, written out; then out (A x A positions x L
 * lanes) = G g G^T for the 3 x 3 taps g = in (9 x L lanes).  One function per A, so that with L a
 * constant each lane loop is a few vector operations.  (In float64 for float32 weights, the conversions
 * took as long as the arithmetic: a fifth of a per-call 7x7x512 batch-8 layer.) */
#define CK_WINO_DEFINE_G(SUF, T)                                                                   \
static inline void ck_wino_g4_##SUF(const T *e, ptrdiff_t is, T *o, ptrdiff_t os, int L)           \
{                                                                                                  \
    for (int l = 0; l < L; l++) {         /* rows (1 0 0) (1/2 1/2 1/2) (1/2 -1/2 1/2) (0 0 1) */   \
        T g0 = e[l], g1 = e[is + l], g2 = e[2 * is + l];                                           \
        T s = (T)0.5 * (g0 + g2);                                                                  \
        o[l] = g0;                                                                                 \
        o[os + l] = s + (T)0.5 * g1;                                                               \
        o[2 * os + l] = s - (T)0.5 * g1;                                                           \
        o[3 * os + l] = g2;                                                                        \
    }                                                                                              \
}                                                                                                  \
static inline void ck_wino_g6_##SUF(const T *e, ptrdiff_t is, T *o, ptrdiff_t os, int L)           \
{                                                                                                  \
    const T sixth = (T)(1. / 6), twelfth = (T)(1. / 12), tw4th = (T)(1. / 24);  /* no divisions */ \
    for (int l = 0; l < L; l++) {         /* (1/4 0 0) -(1/6)(1 +-1 1) (1/24 +-1/12 1/6) (0 0 1) */ \
        T g0 = e[l], g1 = e[is + l], g2 = e[2 * is + l];                                           \
        T s = -(g0 + g2) * sixth, t = g0 * tw4th + g2 * sixth;                                     \
        o[l] = (T)0.25 * g0;                                                                       \
        o[os + l] = s - g1 * sixth;                                                                \
        o[2 * os + l] = s + g1 * sixth;                                                            \
        o[3 * os + l] = t + g1 * twelfth;                                                          \
        o[4 * os + l] = t - g1 * twelfth;                                                          \
        o[5 * os + l] = g2;                                                                        \
    }                                                                                              \
}                                                                                                  \
static inline __attribute__((always_inline)) void ck_wino_ggt_##SUF(int A, const T *in, T *out, int L) \
{                                                                                                  \
    T tmp[CK_WINO_MAX_A * 3 * CK_WINO_LANES_F32];                                                  \
    if (A == 6) {                                                                                  \
        for (int c = 0; c < 3; c++)       /* columns: tmp (A x 3) = G g */                         \
            ck_wino_g6_##SUF(in + c * L, 3 * L, tmp + c * L, 3 * L, L);                            \
        for (int i = 0; i < 6; i++)       /* rows: U = tmp G^T */                                  \
            ck_wino_g6_##SUF(tmp + i * 3 * L, L, out + i * 6 * L, L, L);                           \
    } else {                                                                                       \
        for (int c = 0; c < 3; c++)                                                                \
            ck_wino_g4_##SUF(in + c * L, 3 * L, tmp + c * L, 3 * L, L);                            \
        for (int i = 0; i < 4; i++)                                                                \
            ck_wino_g4_##SUF(tmp + i * 3 * L, L, out + i * 4 * L, L, L);                           \
    }                                                                                              \
}

CK_WINO_DEFINE_G(f32, float)
CK_WINO_DEFINE_G(f64, double)

/* o[k*os] = (B^T e)[k] for the A values e[k*is], k < A, each a run of L lanes. */
#define CK_WINO_DEFINE(SUF, T, L)                                                              \
static inline void ck_wino_bt4_##SUF(const T *e, ptrdiff_t is, T *o, ptrdiff_t os)            \
{                                                                                              \
    for (int l = 0; l < L; l++) {                                                              \
        T d0 = e[l], d1 = e[is + l], d2 = e[2 * is + l], d3 = e[3 * is + l];                   \
        o[l] = d0 - d2;                                                                        \
        o[os + l] = d1 + d2;                                                                   \
        o[2 * os + l] = d2 - d1;                                                               \
        o[3 * os + l] = d1 - d3;                                                               \
    }                                                                                          \
}                                                                                              \
static inline void ck_wino_bt6_##SUF(const T *e, ptrdiff_t is, T *o, ptrdiff_t os)            \
{                                                                                              \
    for (int l = 0; l < L; l++) {                                                              \
        T d0 = e[l], d1 = e[is + l], d2 = e[2 * is + l], d3 = e[3 * is + l];                   \
        T d4 = e[4 * is + l], d5 = e[5 * is + l];                                              \
        T a = d4 - 4 * d2, b = d3 - 4 * d1, c = d4 - d2, d = 2 * (d3 - d1);                   \
        o[l] = 4 * d0 - 5 * d2 + d4;                                                           \
        o[os + l] = a + b;                                                                     \
        o[2 * os + l] = a - b;                                                                 \
        o[3 * os + l] = c + d;                                                                 \
        o[4 * os + l] = c - d;                                                                 \
        o[5 * os + l] = 4 * d1 - 5 * d3 + d5;                                                  \
    }                                                                                          \
}                                                                                              \
/* (A^T e) for A = 4 -> 2 outputs and A = 6 -> 4 outputs. */                                   \
static inline void ck_wino_at4_##SUF(const T *e, ptrdiff_t is, T *o, ptrdiff_t os)            \
{                                                                                              \
    for (int l = 0; l < L; l++) {                                                              \
        T d0 = e[l], d1 = e[is + l], d2 = e[2 * is + l], d3 = e[3 * is + l];                   \
        o[l] = d0 + d1 + d2;                                                                   \
        o[os + l] = d1 - d2 - d3;                                                              \
    }                                                                                          \
}                                                                                              \
static inline void ck_wino_at6_##SUF(const T *e, ptrdiff_t is, T *o, ptrdiff_t os)            \
{                                                                                              \
    for (int l = 0; l < L; l++) {                                                              \
        T d0 = e[l], d1 = e[is + l], d2 = e[2 * is + l], d3 = e[3 * is + l];                   \
        T d4 = e[4 * is + l], d5 = e[5 * is + l];                                              \
        T s12 = d1 + d2, t12 = d1 - d2, s34 = d3 + d4, t34 = d3 - d4;                          \
        o[l] = d0 + s12 + s34;                                                                 \
        o[os + l] = t12 + 2 * t34;                                                             \
        o[2 * os + l] = s12 + 4 * s34;                                                         \
        o[3 * os + l] = t12 + 8 * t34 + d5;                                                    \
    }                                                                                          \
}                                                                                              \
/* Input transform of one tile over channels [0, nc): d[i*A + j] points at input pixel (i, j)'s    \
 * channels (a row of zeros outside the image); V(i, j) is written at v + (i*A + j)*pos_stride,     \
 * in runs of L lanes (v's rows are padded to a multiple of L; padding lanes get zeros). */        \
static inline void ck_wino_input_##SUF(int A, const T *const *d, ptrdiff_t nc, T *v,              \
                                       ptrdiff_t pos_stride)                                     \
{                                                                                              \
    T in[CK_WINO_MAX_A * CK_WINO_MAX_A * L], tmp[CK_WINO_MAX_A * CK_WINO_MAX_A * L];            \
    for (ptrdiff_t c0 = 0; c0 < nc; c0 += L) {                                                 \
        ptrdiff_t n = nc - c0 < L ? nc - c0 : L;                                               \
        for (int p = 0; p < A * A; p++) {                                                      \
            memcpy(in + p * L, d[p] + c0, (size_t)n * sizeof(T));                              \
            if (n < L)                                                                         \
                memset(in + p * L + n, 0, (size_t)(L - n) * sizeof(T));                        \
        }                                                                                      \
        for (int j = 0; j < A; j++) {          /* columns: tmp = B^T d */                      \
            if (A == 6) ck_wino_bt6_##SUF(in + j * L, A * L, tmp + j * L, A * L);              \
            else ck_wino_bt4_##SUF(in + j * L, A * L, tmp + j * L, A * L);                     \
        }                                                                                      \
        for (int i = 0; i < A; i++) {          /* rows: V = tmp B, straight into v */          \
            if (A == 6) ck_wino_bt6_##SUF(tmp + i * A * L, L, v + i * A * pos_stride + c0,      \
                                          pos_stride);                                         \
            else ck_wino_bt4_##SUF(tmp + i * A * L, L, v + i * A * pos_stride + c0, pos_stride); \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* Output transform of one tile, one block of L channels: M(i, j) at mm + (i*A + j)*pos_stride;    \
 * the m x m outputs go to o[(i*m + j)*L + lane]. */                                           \
static inline void ck_wino_output_##SUF(int A, const T *mm, ptrdiff_t pos_stride, T *o)         \
{                                                                                              \
    T tmp[CK_WINO_MAX_A * CK_WINO_MAX_A * L];                                                  \
    int m = A - 2;                                                                             \
    for (int j = 0; j < A; j++) {              /* columns: tmp (m x A) = A^T M */              \
        if (A == 6) ck_wino_at6_##SUF(mm + j * pos_stride, A * pos_stride, tmp + j * L, A * L); \
        else ck_wino_at4_##SUF(mm + j * pos_stride, A * pos_stride, tmp + j * L, A * L);       \
    }                                                                                          \
    for (int i = 0; i < m; i++) {              /* rows: Y = tmp A */                           \
        if (A == 6) ck_wino_at6_##SUF(tmp + i * A * L, L, o + i * m * L, L);                   \
        else ck_wino_at4_##SUF(tmp + i * A * L, L, o + i * m * L, L);                          \
    }                                                                                          \
}                                                                                              \
/* Weight transform of one input channel and one block of n <= L output channels:                      \
 * g(k, l) at w + (k*3 + l)*tap_stride (HWIO: tap_stride = Cin*Cout), U(i, j) = (G g G^T)(i, j) stored \
 * at u + (i*A + j)*pos_stride; lanes n..L get zeros.  Inlined once per A, so that every loop has      \
 * constant bounds and is plain vector code (with A a variable GCC gathered the stores). */             \
static inline __attribute__((always_inline)) void ck_wino_weight_a_##SUF(                      \
    const int A, const T *w, ptrdiff_t tap_stride, ptrdiff_t n, T *u, ptrdiff_t pos_stride)    \
{                                                                                              \
    T in[9 * L], out[CK_WINO_MAX_A * CK_WINO_MAX_A * L];                                       \
    if (n == L) {                                                                              \
        for (int t = 0; t < 9; t++)                                                            \
            for (int l = 0; l < L; l++)                                                        \
                in[t * L + l] = w[t * tap_stride + l];                                         \
    } else {                                                                                   \
        for (int t = 0; t < 9; t++)                                                            \
            for (int l = 0; l < L; l++)                                                        \
                in[t * L + l] = l < n ? w[t * tap_stride + l] : 0;                             \
    }                                                                                          \
    ck_wino_ggt_##SUF(A, in, out, L);                                                          \
    for (int p = 0; p < A * A; p++)                                                            \
        for (int l = 0; l < L; l++)                                                            \
            u[p * pos_stride + l] = out[p * L + l];                                            \
}                                                                                              \
static inline void ck_wino_weight_##SUF(int A, const T *w, ptrdiff_t tap_stride, ptrdiff_t n, T *u,   \
                                        ptrdiff_t pos_stride)                                          \
{                                                                                              \
    if (A == 6)                                                                                \
        ck_wino_weight_a_##SUF(6, w, tap_stride, n, u, pos_stride);                            \
    else                                                                                       \
        ck_wino_weight_a_##SUF(4, w, tap_stride, n, u, pos_stride);                            \
}                                                                                              \
/* Weight transforms of nci <= CK_WINO_WEIGHT_RUN consecutive input channels (w + c*ci_stride) for one \
 * block of n <= L output channels, whose runs of U are adjacent: each position's nci runs are stored \
 * with one contiguous copy to u + p*pos_stride.  (Stored a channel at a time, a channel's A*A runs    \
 * sit pos_stride apart, a power of two in most layers: one cache set, and nearly every store missed; \
 * a 256 -> 256 F(4,3) transform took 4 ms, 60 ns per filter.) */                                     \
static inline void ck_wino_weights_##SUF(int A, const T *w, ptrdiff_t tap_stride, ptrdiff_t ci_stride, \
                                         int nci, ptrdiff_t n, T *u, ptrdiff_t pos_stride)             \
{                                                                                              \
    T run[CK_WINO_MAX_A * CK_WINO_MAX_A * CK_WINO_WEIGHT_RUN * L];                             \
    for (int c = 0; c < nci; c++)                                                              \
        ck_wino_weight_##SUF(A, w + c * ci_stride, tap_stride, n, run + c * L, nci * L);       \
    for (int p = 0; p < A * A; p++)                                                            \
        memcpy(u + p * pos_stride, run + p * nci * L, (size_t)nci * L * sizeof(T));            \
}

CK_WINO_DEFINE(f32, float, CK_WINO_LANES_F32)
CK_WINO_DEFINE(f64, double, CK_WINO_LANES_F64)

#endif
