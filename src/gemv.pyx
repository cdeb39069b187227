"""Products of a few rows by a row-major weight, ``y = act(x @ w.T + bias)``: linear at batch 1 to 4.

x is (M, K), w (N, K) as nn.Linear stores it.  The GEMM would pack w.T into panels (or keep it packed)
and compute a tile of CK_MR/3 rows or more for each row of x; at M = 1 the product is bound by reading w
once (MobileNetV2's classifier: 1280 x 1000 float32, 5 MB).  Here each output is a dot product of a row
of x with a row of w, both contiguous: GEMV_W_ROWS rows of w are read side by side in vectors, each
vector multiplied into up to GEMV_X_ROWS rows of x (which stay in L1), and each accumulator vector
summed across its lanes at the end.  Threads take disjoint runs of w's rows (output features).
"""
from cython cimport floating
from cython.parallel cimport prange

from activation cimport activate_span
from checks cimport check_min, check_size

cdef extern from *:
    """
    #include "simd.h"
    #define GEMV_W_ROWS 4
    #define GEMV_X_ROWS 4

    /* y[r * ldy + j] = sum_k x[r * ldx + k] * w[j * ldw + k] for r < XR, j < wr (wr <= GEMV_W_ROWS):
     * XR x GEMV_W_ROWS accumulator vectors (16 on AVX-512's 32 registers, with 4 w vectors and 1 of x). */
    #define CK_DEFINE_GEMV_TILE(NAME, T, VT, LANES, XR)                                         \\
    static inline void NAME(ptrdiff_t K, const T *x, ptrdiff_t ldx, const T *w, ptrdiff_t ldw,  \\
                            ptrdiff_t wr, T *y, ptrdiff_t ldy)                                  \\
    {                                                                                           \\
        const T *wp[GEMV_W_ROWS];                                                               \\
        for (int j = 0; j < GEMV_W_ROWS; j++)      /* missing rows repeat the last: not stored */ \\
            wp[j] = w + (j < wr ? j : wr - 1) * ldw;                                            \\
        VT acc[XR][GEMV_W_ROWS];                                                                \\
        _Pragma("GCC unroll 16")                                                                \\
        for (int r = 0; r < XR; r++)                                                            \\
            for (int j = 0; j < GEMV_W_ROWS; j++)                                               \\
                acc[r][j] = (VT){0};                                                            \\
        ptrdiff_t k = 0;                                                                        \\
        for (; k + LANES <= K; k += LANES) {                                                    \\
            VT wv[GEMV_W_ROWS];                                                                 \\
            _Pragma("GCC unroll 16")                                                            \\
            for (int j = 0; j < GEMV_W_ROWS; j++)                                               \\
            {   wv[j] = *(const VT *)(wp[j] + k);                                               \\
                __asm__("" : "+v"(wv[j]));  /* loaded once, kept in a register (not refolded) */ \\
            }                                                                                   \\
            _Pragma("GCC unroll 16")                                                            \\
            for (int r = 0; r < XR; r++) {                                                      \\
                VT xv = *(const VT *)(x + r * ldx + k);                                         \\
                _Pragma("GCC unroll 16")                                                        \\
                for (int j = 0; j < GEMV_W_ROWS; j++)                                           \\
                    acc[r][j] += xv * wv[j];                                                    \\
            }                                                                                   \\
        }                                                                                       \\
        T sum[XR][GEMV_W_ROWS];      /* (acc indexed by constants only: kept in registers) */   \\
        _Pragma("GCC unroll 16")                                                                \\
        for (int r = 0; r < XR; r++)                                                            \\
            _Pragma("GCC unroll 16")                                                            \\
            for (int j = 0; j < GEMV_W_ROWS; j++) {                                             \\
                T s = 0;                                                                        \\
                _Pragma("GCC unroll 16")                                                        \\
                for (int l = 0; l < LANES; l++)                                                 \\
                    s += acc[r][j][l];                                                          \\
                sum[r][j] = s;                                                                  \\
            }                                                                                   \\
        for (int r = 0; r < XR; r++)                                                            \\
            for (int j = 0; j < wr; j++) {                                                      \\
                T s = sum[r][j];                                                                \\
                for (ptrdiff_t t = k; t < K; t++)       /* the last K % LANES steps */          \\
                    s += x[r * ldx + t] * wp[j][t];                                             \\
                y[r * ldy + j] = s;                                                             \\
            }                                                                                   \\
    }

    #define CK_DEFINE_GEMV(NAME, T, VT, LANES)                                                  \\
    CK_DEFINE_GEMV_TILE(NAME##_1, T, VT, LANES, 1)                                              \\
    CK_DEFINE_GEMV_TILE(NAME##_2, T, VT, LANES, 2)                                              \\
    CK_DEFINE_GEMV_TILE(NAME##_3, T, VT, LANES, 3)                                              \\
    CK_DEFINE_GEMV_TILE(NAME##_4, T, VT, LANES, 4)                                              \\
    /* Rows 0:m of y, its columns j0:j1, GEMV_X_ROWS rows of x at a time. */                    \\
    static inline void NAME(ptrdiff_t m, ptrdiff_t K, const T *x, ptrdiff_t ldx, const T *w,    \\
                            ptrdiff_t ldw, ptrdiff_t j0, ptrdiff_t j1, T *y, ptrdiff_t ldy)     \\
    {                                                                                           \\
        for (ptrdiff_t i = 0; i < m; i += GEMV_X_ROWS) {                                        \\
            const T *xi = x + i * ldx;                                                          \\
            for (ptrdiff_t j = j0; j < j1; j += GEMV_W_ROWS) {                                  \\
                ptrdiff_t wr = j1 - j < GEMV_W_ROWS ? j1 - j : GEMV_W_ROWS;                     \\
                T *yij = y + i * ldy + j;                                                       \\
                const T *wj = w + j * ldw;                                                      \\
                switch (m - i < GEMV_X_ROWS ? m - i : GEMV_X_ROWS) {                            \\
                case 1: NAME##_1(K, xi, ldx, wj, ldw, wr, yij, ldy); break;                     \\
                case 2: NAME##_2(K, xi, ldx, wj, ldw, wr, yij, ldy); break;                     \\
                case 3: NAME##_3(K, xi, ldx, wj, ldw, wr, yij, ldy); break;                     \\
                default: NAME##_4(K, xi, ldx, wj, ldw, wr, yij, ldy);                           \\
                }                                                                               \\
            }                                                                                   \\
        }                                                                                       \\
    }

    CK_DEFINE_GEMV(ck_gemv_f32, float, ck_vf32, CK_LANES_F32)
    CK_DEFINE_GEMV(ck_gemv_f64, double, ck_vf64, CK_LANES_F64)
    """
    int GEMV_W_ROWS
    void ck_gemv_f32(Py_ssize_t m, Py_ssize_t K, const float* x, Py_ssize_t ldx, const float* w,
                     Py_ssize_t ldw, Py_ssize_t j0, Py_ssize_t j1, float* y, Py_ssize_t ldy) noexcept nogil
    void ck_gemv_f64(Py_ssize_t m, Py_ssize_t K, const double* x, Py_ssize_t ldx, const double* w,
                     Py_ssize_t ldw, Py_ssize_t j0, Py_ssize_t j1, double* y, Py_ssize_t ldy) noexcept nogil

cdef enum:
    PARALLEL_MIN_MACS = 1 << 16   # multiply-adds per thread below which fewer threads are used


cdef inline void gemv_columns(Py_ssize_t M, Py_ssize_t K, const floating* x, Py_ssize_t ldx,
                              const floating* w, Py_ssize_t ldw, Py_ssize_t j0, Py_ssize_t j1,
                              floating* y, Py_ssize_t ldy, const floating* bias, int act,
                              floating alpha) noexcept nogil:
    """Columns j0:j1 of every row of y, then their bias and activation."""
    cdef Py_ssize_t i
    if floating is float:
        ck_gemv_f32(M, K, x, ldx, w, ldw, j0, j1, y, ldy)
    else:
        ck_gemv_f64(M, K, x, ldx, w, ldw, j0, j1, y, ldy)
    for i in range(M):
        activate_span(y + i * ldy + j0, bias + j0 if bias != NULL else NULL, y + i * ldy + j0, j1 - j0,
                      act, alpha)


def gemv_into(const floating[:, ::1] x, const floating[:, ::1] w, floating[:, ::1] y, bias=None,
              int act=0, double alpha=0, int num_threads=1):
    """y = act(x @ w.T + bias): x (M, K) with K >= 1, w (N, K), y (M, N), each C-contiguous; bias (N,)
    contiguous or None; act/alpha activation.pxd's code and parameter."""
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], N = w.shape[0]
    if w.shape[1] != K or y.shape[0] != M or y.shape[1] != N:
        raise ValueError(f"expected x (M, K), w (N, K) and y (M, N), got x ({M}, {K}), "
                         f"w ({N}, {w.shape[1]}) and y ({y.shape[0]}, {y.shape[1]})")
    check_min(K, 1, "K (in_features)")
    check_min(num_threads, 1, "num_threads")
    cdef const floating[::1] bias_view
    cdef const floating* bp = NULL
    if bias is not None:
        bias_view = bias
        check_size(bias_view.shape[0], N, "the bias length")
        bp = &bias_view[0] if N > 0 else NULL
    if M == 0 or N == 0:
        return
    cdef const floating* xp = &x[0, 0]
    cdef const floating* wp = &w[0, 0]
    cdef floating* yp = &y[0, 0]
    cdef Py_ssize_t ldx = x.strides[0] // sizeof(floating), ldw = w.strides[0] // sizeof(floating)
    cdef Py_ssize_t ldy = y.strides[0] // sizeof(floating)
    cdef Py_ssize_t blocks = (N + GEMV_W_ROWS - 1) // GEMV_W_ROWS, t
    cdef int parts = max(min(<Py_ssize_t>num_threads, blocks, M * N * max(K, 1) // PARALLEL_MIN_MACS), 1)
    cdef floating a = <floating>alpha
    for t in prange(parts, nogil=True, num_threads=parts, schedule="static"):
        gemv_columns(M, K, xp, ldx, wp, ldw, min(t * blocks // parts * GEMV_W_ROWS, N),
                     min((t + 1) * blocks // parts * GEMV_W_ROWS, N), yp, ldy, bp, act, a)
