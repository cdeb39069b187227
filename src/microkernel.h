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
 *            acc (CK_ACC_LEN, row r at r*NR) is overwritten with the product of the first `rows` rows
 *            (at least; rows past them may be left untouched); ck_gemm_tile_store_* stores a whole
 *            tile to its destination with the epilogue instead.  The destination rows
 *            (c, ldc apart) are prefetched first, as BLIS's kernels do: the tile's store then finds them
 *            in cache (without it a 1000^3 product spent a quarter of its time waiting on those stores).
 */
#ifndef CONVKIT_MICROKERNEL_H
#define CONVKIT_MICROKERNEL_H
#include <stddef.h>
#include "simd.h"

/* The direct kernels' form over several taps at once (conv_direct.pyx): for each tap t < taps, ROWS rows
 * xp[t * ROWS + r] times `cin` packed weight rows (a block's taps follow one another, so w runs on), the
 * accumulators kept in registers across the taps, started from acc if `accumulate` else from zero, and
 * stored to acc once (a call per tap loaded and stored them for each). */
#define CK_DEFINE_TAPS_TILE(NAME, T, VT, LANES, ROWS)                                       \
static inline void NAME(const T *const *xp, ptrdiff_t taps, const T *w, ptrdiff_t cin, T *acc, \
                        int accumulate)                                                     \
{                                                                                           \
    VT a[ROWS][2];                                                                          \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < ROWS; r++) {                                                        \
        a[r][0] = accumulate ? *(const VT *)(acc + 2 * LANES * r) : (VT){0};                \
        a[r][1] = accumulate ? *(const VT *)(acc + 2 * LANES * r + LANES) : (VT){0};        \
    }                                                                                       \
    for (ptrdiff_t t = 0; t < taps; t++, xp += ROWS)                                        \
        for (ptrdiff_t ci = 0; ci < cin; ci++, w += 2 * LANES) {                            \
            VT w0 = *(const VT *)w, w1 = *(const VT *)(w + LANES);                          \
            _Pragma("GCC unroll 16")                                                        \
            for (int r = 0; r < ROWS; r++) {                                                \
                T v = xp[r][ci];                                                            \
                a[r][0] += v * w0;                                                          \
                a[r][1] += v * w1;                                                          \
            }                                                                               \
        }                                                                                   \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < ROWS; r++) {                                                        \
        *(VT *)(acc + 2 * LANES * r) = a[r][0];                                             \
        *(VT *)(acc + 2 * LANES * r + LANES) = a[r][1];                                     \
    }                                                                                       \
}

/* The direct form of one tap, accumulating into acc: ROWS rows xp[r] times `cin` packed rows of NR. */
#define CK_DEFINE_TILE(NAME, T, VT, LANES, ROWS)                                            \
CK_DEFINE_TAPS_TILE(NAME##_taps, T, VT, LANES, ROWS)                                        \
static inline void NAME(const T *const *xp, const T *w, ptrdiff_t cin, T *acc)              \
{                                                                                           \
    NAME##_taps(xp, 1, w, cin, acc, 1);                                                     \
}

/* NAME: the taps tile of CK_MR rows of two vectors; NAME##_half: 2 * CK_MR rows of one vector, reading
 * the first LANES values of each weight row (a block with at most half its channels in use); both
 * CK_ACC_LEN accumulators, rows 2 * LANES and LANES apart. */
#define CK_DEFINE_TAPS_TILES(NAME, T, VT, LANES)                                            \
CK_DEFINE_TAPS_TILE(NAME, T, VT, LANES, CK_MR)                                              \
static inline void NAME##_half(const T *const *xp, ptrdiff_t taps, const T *w, ptrdiff_t cin, \
                               T *acc, int accumulate)                                      \
{                                                                                           \
    VT a[2 * CK_MR];                                                                        \
    _Pragma("GCC unroll 32")                                                                \
    for (int r = 0; r < 2 * CK_MR; r++)                                                     \
        a[r] = accumulate ? *(const VT *)(acc + LANES * r) : (VT){0};                       \
    for (ptrdiff_t t = 0; t < taps; t++, xp += 2 * CK_MR)                                   \
        for (ptrdiff_t ci = 0; ci < cin; ci++, w += 2 * LANES) {                            \
            VT w0 = *(const VT *)w;                                                         \
            _Pragma("GCC unroll 32")                                                        \
            for (int r = 0; r < 2 * CK_MR; r++)                                             \
                a[r] += xp[r][ci] * w0;                                                     \
        }                                                                                   \
    _Pragma("GCC unroll 32")                                                                \
    for (int r = 0; r < 2 * CK_MR; r++)                                                     \
        *(VT *)(acc + LANES * r) = a[r];                                                    \
}

/* The GEMM tile's product: c[ROWS][2] = a (kc columns of CK_MR values) times b (kc rows of NR values),
 * after prefetching the ROWS destination rows (dst, ldd apart). */
#define CK_GEMM_TILE_PRODUCT(T, VT, LANES, ROWS, c, kc, a, b, dst, ldd)                     \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < ROWS; r++) {                                                        \
        __builtin_prefetch(dst + r * ldd, 1);                                               \
        __builtin_prefetch(dst + r * ldd + 2 * LANES - 1, 1);                               \
        c[r][0] = c[r][1] = (VT){0};                                                        \
    }                                                                                       \
    _Pragma("GCC unroll 2")                                                                 \
    for (ptrdiff_t k = 0; k < kc; k++, a += CK_MR, b += 2 * LANES) {                        \
        VT b0 = *(const VT *)b, b1 = *(const VT *)(b + LANES);                              \
        _Pragma("GCC unroll 16")                                                            \
        for (int r = 0; r < ROWS; r++) {                                                    \
            T v = a[r];                                                                     \
            c[r][0] += v * b0;                                                              \
            c[r][1] += v * b1;                                                              \
        }                                                                                   \
    }

#define CK_DEFINE_GEMM_TILE(NAME, T, VT, LANES, ROWS)                                       \
static inline void NAME(ptrdiff_t kc, const T *a, const T *b, T *acc, const T *dst, ptrdiff_t ldd) \
{                                                                                           \
    VT c[ROWS][2];                                                                          \
    CK_GEMM_TILE_PRODUCT(T, VT, LANES, ROWS, c, kc, a, b, dst, ldd)                            \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < ROWS; r++) {                                                        \
        *(VT *)(acc + 2 * LANES * r) = c[r][0];                                             \
        *(VT *)(acc + 2 * LANES * r + LANES) = c[r][1];                                     \
    }                                                                                       \
}

/* x with the activation `act` applied (CK_ACT_NONE/RELU/RELU6, activation.pxd's codes), as bitwise
 * blends so that NaN passes through as in activation.pxd's relu and relu6. */
#define CK_ACT_NONE 0
#define CK_ACT_RELU 1
#define CK_ACT_RELU6 2
#define CK_DEFINE_VECTOR_ACTIVATION(NAME, VT, VI)                                           \
static inline VT NAME(VT x, int act)                                                        \
{                                                                                           \
    if (act == CK_ACT_RELU6) {                                                              \
        VT six = (VT){0} + 6;                                                               \
        VI big = x > six;                                                                   \
        x = (VT)(((VI)x & ~big) | ((VI)six & big));                                         \
    }                                                                                       \
    if (act != CK_ACT_NONE)                                                                 \
        x = (VT)((VI)x & ~(x < (VT){0}));                                                   \
    return x;                                                                               \
}

/* One vector of a tile stored to *dst with the epilogue, in the order gemm.pxd's store_tile applies it:
 * (+ *dst if add) (+ *bias if bias) (+ *res if res), then the activation ACT(., act). */
#define CK_STORE_EPILOGUE(VT, ACT, value, dst, add, bias, res, act)                          \
    do {                                                                                    \
        VT x_ = (value);                                                                    \
        if (add)                                                                            \
            x_ += *(const VT *)(dst);                                                       \
        if (bias)                                                                           \
            x_ += *(const VT *)(bias);                                                      \
        if (res)                                                                            \
            x_ += *(const VT *)(res);                                                       \
        *(VT *)(dst) = ACT(x_, act);                                                        \
    } while (0)
/* A whole CK_MR x NR tile computed and stored straight to dst (ldd apart) with its epilogue, in the
 * order gemm.pxd's store_tile applies it: (+ dst if add) (+ bias, NR values, if not NULL) (+ residual
 * rows ldr apart if not NULL), then the activation (CK_ACT_*).  It saves the trip through an
 * accumulator buffer, a quarter of a K = 16 product's time. */
#define CK_DEFINE_GEMM_TILE_STORE(NAME, T, VT, LANES, ACT)                                  \
static inline void NAME(ptrdiff_t kc, const T *a, const T *b, T *dst, ptrdiff_t ldd, int add, \
                        const T *bias, const T *res, ptrdiff_t ldr, int act)                \
{                                                                                           \
    VT c[CK_MR][2];                                                                         \
    CK_GEMM_TILE_PRODUCT(T, VT, LANES, CK_MR, c, kc, a, b, dst, ldd)                           \
    _Pragma("GCC unroll 16")                                                                \
    for (int r = 0; r < CK_MR; r++)                                                         \
        for (int v = 0; v < 2; v++)                                                         \
            CK_STORE_EPILOGUE(VT, ACT, c[r][v], dst + r * ldd + v * LANES, add,             \
                              bias ? bias + v * LANES : NULL,                                \
                              res ? res + r * ldr + v * LANES : NULL, act);                  \
}

/* The direct form of the tile for a product exactly one vector wide (a 16-channel projection with 512-bit
 * vectors), stored straight to dst with the GEMM store's epilogue: 2 * CK_MR rows xp[r] times `cin` packed
 * weight rows (2 * LANES apart, the first LANES values used), where the whole tile would compute a second
 * vector of padding in vain (narrow GEMMs read A in place through row pointers: gemm.pxd's
 * macro_kernel_rows). */
#define CK_DEFINE_HALF_TILE_STORE(NAME, T, VT, LANES, ACT)                                  \
static inline void NAME(const T *const *xp, const T *w, ptrdiff_t cin, T *dst, ptrdiff_t ldd, \
                        int add, const T *bias, const T *res, ptrdiff_t ldr, int act)       \
{                                                                                           \
    VT c[2 * CK_MR];                                                                        \
    _Pragma("GCC unroll 32")                                                                \
    for (int r = 0; r < 2 * CK_MR; r++)                                                     \
        c[r] = (VT){0};                                                                     \
    for (ptrdiff_t ci = 0; ci < cin; ci++, w += 2 * LANES) {                                \
        VT w0 = *(const VT *)w;                                                             \
        _Pragma("GCC unroll 32")                                                            \
        for (int r = 0; r < 2 * CK_MR; r++)                                                 \
            c[r] += xp[r][ci] * w0;                                                         \
    }                                                                                       \
    _Pragma("GCC unroll 32")                                                                \
    for (int r = 0; r < 2 * CK_MR; r++)                                                     \
        CK_STORE_EPILOGUE(VT, ACT, c[r], dst + r * ldd, add, bias, res ? res + r * ldr : NULL, act); \
}
/* A direct kernel's accumulator tile (acc: CK_MR rows of two vectors; NAME##_half: 2 * CK_MR rows of one,
 * the taps tiles' layouts) stored to dst (rows ldd apart) with the GEMM store's epilogue: (+ bias)
 * (+ residual rows ldr apart), then the activation (CK_ACT_*), in vector registers; the scalar epilogue
 * it replaces for whole tiles took as long as the multiply-adds of a 27-value reduction (an RGB stem). */
#define CK_DEFINE_ACC_STORE(NAME, T, VT, LANES, ACT, ROWS, NV)                               \
static inline void NAME(const T *acc, T *dst, ptrdiff_t ldd, const T *bias, const T *res,    \
                        ptrdiff_t ldr, int act)                                             \
{                                                                                           \
    _Pragma("GCC unroll 32")                                                                \
    for (int r = 0; r < ROWS; r++)                                                          \
        for (int v = 0; v < NV; v++)                                                        \
            CK_STORE_EPILOGUE(VT, ACT, *(const VT *)(acc + (r * NV + v) * LANES),           \
                              dst + r * ldd + v * LANES, 0, bias ? bias + v * LANES : NULL,  \
                              res ? res + r * ldr + v * LANES : NULL, act);                  \
}
#define CK_DEFINE_ACC_STORES(NAME, T, VT, LANES, ACT)                                       \
CK_DEFINE_ACC_STORE(NAME, T, VT, LANES, ACT, CK_MR, 2)                                      \
CK_DEFINE_ACC_STORE(NAME##_half, T, VT, LANES, ACT, 2 * CK_MR, 1)
/* The GEMM tile for the first `rows` rows of a packed A panel: the full CK_MR-row tile, or, for the last
 * panel of a block whose height is not a multiple of CK_MR, a shorter one (a third or two thirds of
 * CK_MR rows), so that e.g. M = 64 on the 12-row tile computes 5 x 12 + 4 rows rather than 6 x 12. */
#define CK_MR_SHORT (CK_MR / 3)
#define CK_MR_MID (2 * CK_MR / 3)
#define CK_DEFINE_GEMM_TILES(NAME, T, VT, LANES)                                            \
CK_DEFINE_GEMM_TILE(NAME##_full, T, VT, LANES, CK_MR)                                       \
CK_DEFINE_GEMM_TILE(NAME##_mid, T, VT, LANES, CK_MR_MID)                                    \
CK_DEFINE_GEMM_TILE(NAME##_short, T, VT, LANES, CK_MR_SHORT)                                \
static inline void NAME(ptrdiff_t rows, ptrdiff_t kc, const T *a, const T *b, T *acc,       \
                        const T *dst, ptrdiff_t ldd)                                        \
{                                                                                           \
    if (rows > CK_MR_MID)                                                                   \
        NAME##_full(kc, a, b, acc, dst, ldd);                                               \
    else if (rows > CK_MR_SHORT)                                                            \
        NAME##_mid(kc, a, b, acc, dst, ldd);                                                \
    else                                                                                    \
        NAME##_short(kc, a, b, acc, dst, ldd);                                              \
}

/* The direct form for the first `rows` rows only (xp[rows..] are not read, acc's rows past them not
 * touched): the full tile, or one of a third or two thirds of CK_MR rows, as the GEMM's edge panels. */
#define CK_DEFINE_TILES(NAME, T, VT, LANES)                                                 \
CK_DEFINE_TILE(NAME, T, VT, LANES, CK_MR)                                                   \
CK_DEFINE_TILE(NAME##_mid, T, VT, LANES, CK_MR_MID)                                         \
CK_DEFINE_TILE(NAME##_short, T, VT, LANES, CK_MR_SHORT)                                     \
static inline void NAME##_rows(ptrdiff_t rows, const T *const *xp, const T *w, ptrdiff_t cin, T *acc) \
{                                                                                           \
    if (rows > CK_MR_MID)                                                                   \
        NAME(xp, w, cin, acc);                                                              \
    else if (rows > CK_MR_SHORT)                                                            \
        NAME##_mid(xp, w, cin, acc);                                                        \
    else                                                                                    \
        NAME##_short(xp, w, cin, acc);                                                      \
}

CK_DEFINE_TILES(ck_tile_f32, float, ck_vf32, CK_LANES_F32)
CK_DEFINE_TILES(ck_tile_f64, double, ck_vf64, CK_LANES_F64)
CK_DEFINE_TAPS_TILES(ck_taps_tile_f32, float, ck_vf32, CK_LANES_F32)
CK_DEFINE_TAPS_TILES(ck_taps_tile_f64, double, ck_vf64, CK_LANES_F64)
CK_DEFINE_GEMM_TILES(ck_gemm_tile_f32, float, ck_vf32, CK_LANES_F32)
CK_DEFINE_GEMM_TILES(ck_gemm_tile_f64, double, ck_vf64, CK_LANES_F64)
typedef int ck_vi32 __attribute__((vector_size(CK_VECTOR_BYTES)));
typedef long long ck_vi64 __attribute__((vector_size(CK_VECTOR_BYTES)));
CK_DEFINE_VECTOR_ACTIVATION(ck_activate_f32, ck_vf32, ck_vi32)
CK_DEFINE_VECTOR_ACTIVATION(ck_activate_f64, ck_vf64, ck_vi64)
CK_DEFINE_GEMM_TILE_STORE(ck_gemm_tile_store_f32, float, ck_vf32, CK_LANES_F32, ck_activate_f32)
CK_DEFINE_GEMM_TILE_STORE(ck_gemm_tile_store_f64, double, ck_vf64, CK_LANES_F64, ck_activate_f64)
CK_DEFINE_HALF_TILE_STORE(ck_half_tile_store_f32, float, ck_vf32, CK_LANES_F32, ck_activate_f32)
CK_DEFINE_HALF_TILE_STORE(ck_half_tile_store_f64, double, ck_vf64, CK_LANES_F64, ck_activate_f64)
CK_DEFINE_ACC_STORES(ck_acc_store_f32, float, ck_vf32, CK_LANES_F32, ck_activate_f32)
CK_DEFINE_ACC_STORES(ck_acc_store_f64, double, ck_vf64, CK_LANES_F64, ck_activate_f64)

#endif
