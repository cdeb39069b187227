/* Vector width and register-tile constants, defined once for every kernel (Cython sees them via simd.pxd).
 *
 * The width follows the build's ISA: 512-bit where the compiler targets AVX-512F, 128-bit on NEON, 256-bit
 * otherwise (AVX2; elsewhere GCC/Clang lower the vector types to what the target has).  Defining
 * CK_VECTOR_BITS (setup.py does, from CONVKIT_VECTOR_BITS) forces a width: 512 on an AVX2 machine runs the
 * 512-bit code as pairs of 256-bit operations, so its correctness can be tested anywhere.
 *
 * The register tile (microkernel.h) is CK_MR rows (output pixels, rows of A) x two vectors (CK_NR_F32 /
 * CK_NR_F64 columns: output channels, columns of B).  Its accumulators must fit the register file with the
 * two B vectors and one broadcast A value: 6 x 2 = 12 of AVX2's 16 registers, 12 x 2 = 24 of AVX-512's
 * 32 (NEON has 32 registers of 128 bits: 8 x 2 = 16, as in ncnn's and XNNPACK's 8x8 float tiles).
 */
#ifndef CONVKIT_SIMD_H
#define CONVKIT_SIMD_H
#include <stddef.h>

#ifndef CK_VECTOR_BITS
#  if defined(__AVX512F__)
#    define CK_VECTOR_BITS 512
#  elif defined(__ARM_NEON) || defined(__ARM_NEON__)
#    define CK_VECTOR_BITS 128
#  else
#    define CK_VECTOR_BITS 256
#  endif
#endif

#define CK_VECTOR_BYTES (CK_VECTOR_BITS / 8)
#define CK_LANES_F32 (CK_VECTOR_BYTES / 4)
#define CK_LANES_F64 (CK_VECTOR_BYTES / 8)

/* Unaligned-capable vector types (packed buffers are 64-byte aligned, strided output rows need not be). */
typedef float ck_vf32 __attribute__((vector_size(CK_VECTOR_BYTES), aligned(4)));
typedef double ck_vf64 __attribute__((vector_size(CK_VECTOR_BYTES), aligned(8)));

#if CK_VECTOR_BITS == 512
#  define CK_MR 12
#elif CK_VECTOR_BITS == 128
#  define CK_MR 8
#elif CK_VECTOR_BITS == 256
#  define CK_MR 6
#else
#  error "CK_VECTOR_BITS must be 128, 256 or 512"
#endif
#define CK_TILE_PIXELS CK_MR                 /* the direct kernels' name for the tile's rows */
#define CK_NR_F32 (2 * CK_LANES_F32)          /* columns of the tile (a block of output channels) */
#define CK_NR_F64 (2 * CK_LANES_F64)
#define CK_ACC_LEN (CK_MR * CK_NR_F32)       /* elements of an accumulator buffer of either dtype */

/* The depthwise tile (depthwise_tile.h): CK_DW_PIXELS pixels x two vectors of channels, a multiple of 4
 * (depthwise.pyx's general tile has four rows): 8 x 2 accumulators of AVX-512's 32 registers, 4 x 2 of
 * AVX2's 16. */
#if CK_VECTOR_BITS == 512
#  define CK_DW_PIXELS 8
#else
#  define CK_DW_PIXELS 4
#endif
#define CK_DW_ACC_LEN CK_NR_F32              /* one row of the depthwise tile, either dtype */

/* Every accumulator buffer is declared with CK_ACC_LEN / CK_DW_ACC_LEN elements of its dtype, and the
 * kernels store CK_MR rows of two vectors into it: these must agree for float32 and float64 alike. */
_Static_assert(CK_NR_F32 == 2 * CK_LANES_F32 && CK_NR_F64 == 2 * CK_LANES_F64, "tile: two vectors wide");
_Static_assert(CK_NR_F32 * sizeof(float) == CK_NR_F64 * sizeof(double), "a tile row is the same bytes in both dtypes");
_Static_assert(CK_ACC_LEN * sizeof(float) == CK_MR * 2 * sizeof(ck_vf32), "float32 accumulators fill the buffer");
_Static_assert(CK_ACC_LEN * sizeof(double) >= CK_MR * 2 * sizeof(ck_vf64), "float64 accumulators fit the buffer");
_Static_assert(CK_DW_ACC_LEN * sizeof(float) == 2 * sizeof(ck_vf32), "depthwise row: two float32 vectors");
_Static_assert(CK_DW_ACC_LEN * sizeof(double) >= 2 * sizeof(ck_vf64), "depthwise row: two float64 vectors fit");
_Static_assert(CK_DW_PIXELS % 4 == 0, "depthwise tile: whole general tiles of four pixels");

#endif
