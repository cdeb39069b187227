# Vector width and register-tile constants for Cython: the C definitions (and their static asserts) are
# in simd.h, the only place they are written.
cdef extern from "simd.h" nogil:
    enum:
        CK_VECTOR_BITS   # 128 (NEON), 256 (AVX2) or 512 (AVX-512F, or forced by CONVKIT_VECTOR_BITS)
        CK_LANES_F32
        CK_LANES_F64
        CK_MR            # rows of the register tile (output pixels of the direct kernels)
        CK_TILE_PIXELS   # = CK_MR
        CK_NR_F32        # columns of the register tile (output channels): two vectors
        CK_NR_F64
        CK_ACC_LEN       # elements of every accumulator buffer (CK_MR x CK_NR_F32, either dtype)
        CK_DW_PIXELS     # pixels of the depthwise tile
        CK_DW_ACC_LEN    # channels of one row of the depthwise tile (CK_NR_F32, either dtype)


cdef inline Py_ssize_t tile_width(bint single) noexcept nogil:
    """Columns of the register tile: CK_NR_F32 for float32 (``single``), CK_NR_F64 for float64."""
    return CK_NR_F32 if single else CK_NR_F64
