# The register tile of microkernel.h (constants in simd.h / simd.pxd).
from cython cimport floating

cdef extern from "microkernel.h" nogil:
    void ck_tile_f32(const float* const* xp, const float* w, Py_ssize_t cin, float* acc)
    void ck_tile_f64(const double* const* xp, const double* w, Py_ssize_t cin, double* acc)
    void ck_taps_tile_f32(const float* const* xp, Py_ssize_t taps, const float* w, Py_ssize_t cin,
                          float* acc, bint accumulate)
    void ck_taps_tile_f64(const double* const* xp, Py_ssize_t taps, const double* w, Py_ssize_t cin,
                          double* acc, bint accumulate)
    void ck_taps_tile_f32_half(const float* const* xp, Py_ssize_t taps, const float* w, Py_ssize_t cin,
                               float* acc, bint accumulate)
    void ck_taps_tile_f64_half(const double* const* xp, Py_ssize_t taps, const double* w, Py_ssize_t cin,
                               double* acc, bint accumulate)
    void ck_tile_f32_rows(Py_ssize_t rows, const float* const* xp, const float* w, Py_ssize_t cin, float* acc)
    void ck_tile_f64_rows(Py_ssize_t rows, const double* const* xp, const double* w, Py_ssize_t cin,
                          double* acc)
    void ck_gemm_tile_f32(Py_ssize_t rows, Py_ssize_t kc, const float* a, const float* b, float* acc,
                          const float* dst, Py_ssize_t ldd)
    void ck_gemm_tile_f64(Py_ssize_t rows, Py_ssize_t kc, const double* a, const double* b, double* acc,
                          const double* dst, Py_ssize_t ldd)
    void ck_gemm_tile_store_f32(Py_ssize_t kc, const float* a, const float* b, float* dst, Py_ssize_t ldd,
                                bint add, const float* bias, const float* res, Py_ssize_t ldr, int act)
    void ck_gemm_tile_store_f64(Py_ssize_t kc, const double* a, const double* b, double* dst,
                                Py_ssize_t ldd, bint add, const double* bias, const double* res,
                                Py_ssize_t ldr, int act)
    void ck_half_tile_store_f32(const float* const* xp, const float* w, Py_ssize_t cin, float* dst,
                                Py_ssize_t ldd, bint add, const float* bias, const float* res, Py_ssize_t ldr,
                                int act)
    void ck_half_tile_store_f64(const double* const* xp, const double* w, Py_ssize_t cin, double* dst,
                                Py_ssize_t ldd, bint add, const double* bias, const double* res,
                                Py_ssize_t ldr, int act)
    void ck_acc_store_f32(const float* acc, float* dst, Py_ssize_t ldd, const float* bias, const float* res,
                          Py_ssize_t ldr, int act)
    void ck_acc_store_f64(const double* acc, double* dst, Py_ssize_t ldd, const double* bias,
                          const double* res, Py_ssize_t ldr, int act)
    void ck_acc_store_f32_half(const float* acc, float* dst, Py_ssize_t ldd, const float* bias,
                               const float* res, Py_ssize_t ldr, int act)
    void ck_acc_store_f64_half(const double* acc, double* dst, Py_ssize_t ldd, const double* bias,
                               const double* res, Py_ssize_t ldr, int act)
    enum:   # the activations of the vector epilogue, numbered as activation.pxd's (gemm.pyx checks)
        CK_ACT_NONE
        CK_ACT_RELU
        CK_ACT_RELU6


cdef inline void micro_tile(const floating* const* xp, const floating* w, Py_ssize_t cin,
                            floating* acc) noexcept nogil:
    """acc (CK_MR x NR) += rows xp[r][:cin] times ``cin`` packed rows of NR weights (direct kernels)."""
    if floating is float:
        ck_tile_f32(xp, w, cin, acc)
    else:
        ck_tile_f64(xp, w, cin, acc)


cdef inline void micro_taps_tile(const floating* const* xp, Py_ssize_t taps, const floating* w, Py_ssize_t cin,
                                 floating* acc, bint accumulate, bint half) noexcept nogil:
    """microkernel.h's taps tile: acc (= or +=) the sums over ``taps`` taps of rows xp[t * rows + r] times
    ``cin`` packed weight rows each; CK_MR rows x NR, or with ``half`` 2 * CK_MR rows x NR / 2."""
    if floating is float:
        if half:
            ck_taps_tile_f32_half(xp, taps, w, cin, acc, accumulate)
        else:
            ck_taps_tile_f32(xp, taps, w, cin, acc, accumulate)
    else:
        if half:
            ck_taps_tile_f64_half(xp, taps, w, cin, acc, accumulate)
        else:
            ck_taps_tile_f64(xp, taps, w, cin, acc, accumulate)


cdef inline void micro_tile_rows(Py_ssize_t rows, const floating* const* xp, const floating* w, Py_ssize_t cin,
                                 floating* acc) noexcept nogil:
    """micro_tile for the first ``rows`` rows only, on a tile of CK_MR, two thirds or a third of its rows
    (the smallest that holds them): xp[rows:] may be unset; acc's rows past the tile's are untouched."""
    if floating is float:
        ck_tile_f32_rows(rows, xp, w, cin, acc)
    else:
        ck_tile_f64_rows(rows, xp, w, cin, acc)


cdef inline void gemm_tile(Py_ssize_t rows, Py_ssize_t kc, const floating* a, const floating* b,
                           floating* acc, const floating* dst, Py_ssize_t ldd) noexcept nogil:
    """acc (CK_MR x NR) = packed A panel (kc x CK_MR) times packed B panel (kc x NR), at least its first
    ``rows`` rows (a shorter tile for an edge panel); the rows the tile will be stored to (``dst``,
    ``ldd`` apart) are prefetched."""
    if floating is float:
        ck_gemm_tile_f32(rows, kc, a, b, acc, dst, ldd)
    else:
        ck_gemm_tile_f64(rows, kc, a, b, acc, dst, ldd)


cdef inline void gemm_tile_store(Py_ssize_t kc, const floating* a, const floating* b, floating* dst,
                                 Py_ssize_t ldd, bint add, const floating* bias, const floating* res,
                                 Py_ssize_t ldr, int act) noexcept nogil:
    """A whole tile (CK_MR x NR) of packed A panel times packed B panel stored to ``dst`` with the
    epilogue: (+ dst if ``add``) (+ bias) (+ res), then activation ``act`` (at most CK_ACT_RELU6)."""
    if floating is float:
        ck_gemm_tile_store_f32(kc, a, b, dst, ldd, add, bias, res, ldr, act)
    else:
        ck_gemm_tile_store_f64(kc, a, b, dst, ldd, add, bias, res, ldr, act)


cdef inline void half_tile_store(const floating* const* xp, const floating* w, Py_ssize_t cin,
                                 floating* dst, Py_ssize_t ldd, bint add, const floating* bias,
                                 const floating* res, Py_ssize_t ldr, int act) noexcept nogil:
    """microkernel.h's half tile stored with the vector epilogue: 2 * CK_MR rows xp[r] x NR / 2 columns to
    ``dst`` (ldd apart): (+ dst if ``add``) (+ bias) (+ res), then activation ``act`` (at most
    CK_ACT_RELU6)."""
    if floating is float:
        ck_half_tile_store_f32(xp, w, cin, dst, ldd, add, bias, res, ldr, act)
    else:
        ck_half_tile_store_f64(xp, w, cin, dst, ldd, add, bias, res, ldr, act)


cdef inline void acc_store(bint half, const floating* acc, floating* dst, Py_ssize_t ldd, const floating* bias,
                           const floating* res, Py_ssize_t ldr, int act) noexcept nogil:
    """A whole taps tile's accumulators (CK_MR rows x NR, or with ``half`` 2 * CK_MR rows x NR / 2) to
    ``dst`` (ldd apart) with the vector epilogue: (+ bias) (+ res), then activation ``act`` (at most
    CK_ACT_RELU6)."""
    if floating is float:
        if half:
            ck_acc_store_f32_half(acc, dst, ldd, bias, res, ldr, act)
        else:
            ck_acc_store_f32(acc, dst, ldd, bias, res, ldr, act)
    else:
        if half:
            ck_acc_store_f64_half(acc, dst, ldd, bias, res, ldr, act)
        else:
            ck_acc_store_f64(acc, dst, ldd, bias, res, ldr, act)
