# convkit's GEMM, BLIS-structured around microkernel.h's register tile: inline, so that every kernel module
# compiles it into its own code (cross-module cimports of cdef functions do not work with convkit's
# top-level kernel names).  gemm.pyx holds the Python-facing wrappers and the design notes.
#
#
#     C[i, j] = act( (C[i, j] if accumulate else 0) + sum_k A[i, k] B[k, j] + bias[j] + residual[i, j] )
#
# for i < M, j < N.  A is read through a packer (any source: a strided matrix, or im2col's patches) or, for
# a narrow product of a matrix with unit column stride, in place (A_rows); B with any row/column strides
# (elements; negative allowed) or packed once ahead (B_packed); C with rows ldc apart and unit column
# stride.  bias (N values) and residual (rows ldr apart) may be NULL; act/alpha are activation.pxd's code and
# parameter.  The epilogue runs on each register tile before it is stored.  Returns 0, or -1 when the
# packing workspace cannot be allocated (nothing has been written then).
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from activation cimport ACT_NONE, activate_span
from microkernel cimport CK_ACT_RELU6, gemm_tile, gemm_tile_store, half_tile_store, micro_tile
from simd cimport CK_ACC_LEN, CK_MR, CK_NR_F32, CK_NR_F64

cdef extern from *:
    """#define ck_prefetch(p) __builtin_prefetch((const void *)(p))"""
    void prefetch "ck_prefetch"(const void* p) noexcept nogil

cdef extern from "pack_panel.h" nogil:
    void ck_pack_panel_f32(const float* const* rows, Py_ssize_t n, float* d)
    void ck_pack_panel_f64(const double* const* rows, Py_ssize_t n, double* d)

cdef enum:
    KC_STEPS = 256                # reduction steps per block (gemm.pyx: the measurement that chose it)
    A_BLOCK_BYTES = 144 << 10     # MC x KC block of A: in L2
    B_BLOCK_BYTES = 4080 << 10    # KC x NC panel of B: in L3
    ALIGN = 64                    # packed buffers start on a cache line
    TRANSPOSE_STEPS = 16          # reduction steps per block when B's columns are strided
    PARALLEL_MIN_MACS = 1 << 16   # multiply-adds per thread below which fewer threads are used
    ROWS_IN_PLACE_MAX_N = 64      # products this narrow read A in place, unpacked
    SHARED_B_MAX_BYTES = 256 << 10    # a B packed ahead this small is read by every thread of a row split
    ROW_SPLIT_MIN_TILES = 4           # ... when each thread gets this many tiles of rows


# Writes rows i0:i0+mc, reduction columns p0:p0+kc of A into ``dst`` as ceil(mc/CK_MR) panels, each kc
# columns of CK_MR values (panel q at dst + q*CK_MR*kc, value (r, k) at k*CK_MR + r), rows past mc any
# finite-or-not values (never stored: the tile computes them, only the first mc rows are written).
ctypedef void (*PackA)(const void* ctx, Py_ssize_t i0, Py_ssize_t mc, Py_ssize_t p0, Py_ssize_t kc,
                       void* dst) noexcept nogil

# The packer of a strided matrix, as gemm() uses it: ctx is a StridedMatrix of the GEMM's dtype.
cdef struct StridedMatrix:
    const void* data
    Py_ssize_t row_stride      # elements
    Py_ssize_t col_stride      # elements

cdef inline Py_ssize_t round_up(Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    return (n + m - 1) // m * m


cdef inline (Py_ssize_t, Py_ssize_t, Py_ssize_t) block_sizes(floating zero) noexcept nogil:
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t kc = KC_STEPS
    cdef Py_ssize_t mc = max(A_BLOCK_BYTES // (kc * sizeof(floating)) // CK_MR, 1) * CK_MR
    cdef Py_ssize_t nc = max(B_BLOCK_BYTES // (kc * sizeof(floating)) // NR, 1) * NR
    return round_up(mc, CK_MR), kc, round_up(nc, NR)


cdef inline Py_ssize_t block_steps(Py_ssize_t K, Py_ssize_t KC) noexcept nogil:
    """Reduction steps per block: K in as few blocks of at most KC as possible, of equal size (but the
    last, shorter by the rounding): K = 576 makes 3 x 192 rather than 256 + 256 + 64, whose short block
    pays a tile's load and store of C for a quarter of the multiply-adds."""
    cdef Py_ssize_t blocks = max((K + KC - 1) // KC, 1)
    return (K + blocks - 1) // blocks


cdef inline void pack_panel(const floating* const* rows, Py_ssize_t n, floating* d) noexcept nogil:
    """d[j * CK_MR + r] = rows[r][j] for j < n: CK_MR row streams as one A panel (pack_panel.h)."""
    if floating is float:
        ck_pack_panel_f32(rows, n, d)
    else:
        ck_pack_panel_f64(rows, n, d)


cdef inline void pack_a_rows(const floating* A, Py_ssize_t rsa, Py_ssize_t csa, Py_ssize_t i0,
                             Py_ssize_t mc, Py_ssize_t p0, Py_ssize_t kc, floating* dst) noexcept nogil:
    """A[i0:i0+mc, p0:p0+kc] (strides in elements) into CK_MR-row panels (see PackA above).

    The rows of a partial panel past mc repeat its last row instead of zeros: the tile computes them
    but they are never stored, and the copy keeps its constant CK_MR rows (pack_panel, reading CK_MR
    sequential streams).
    """
    cdef const floating* rows[CK_MR]
    cdef Py_ssize_t q, r, k
    cdef floating* d
    for q in range((mc + CK_MR - 1) // CK_MR):
        d = dst + q * CK_MR * kc
        for r in range(CK_MR):
            rows[r] = A + (i0 + min(q * CK_MR + r, mc - 1)) * rsa + p0 * csa
        if csa == 1:
            pack_panel(rows, kc, d)
        else:
            for k in range(kc):
                for r in range(CK_MR):
                    d[k * CK_MR + r] = rows[r][k * csa]


cdef inline void pack_a_strided_f32(const void* ctx, Py_ssize_t i0, Py_ssize_t mc, Py_ssize_t p0,
                             Py_ssize_t kc, void* dst) noexcept nogil:
    cdef const StridedMatrix* a = <const StridedMatrix*>ctx
    pack_a_rows(<const float*>a.data, a.row_stride, a.col_stride, i0, mc, p0, kc, <float*>dst)


cdef inline void pack_a_strided_f64(const void* ctx, Py_ssize_t i0, Py_ssize_t mc, Py_ssize_t p0,
                             Py_ssize_t kc, void* dst) noexcept nogil:
    cdef const StridedMatrix* a = <const StridedMatrix*>ctx
    pack_a_rows(<const double*>a.data, a.row_stride, a.col_stride, i0, mc, p0, kc, <double*>dst)


cdef inline void pack_b_block(const floating* B, Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t kc,
                              Py_ssize_t nc, floating* dst) noexcept nogil:
    """B[0:kc, 0:nc] (strides in elements) into ceil(nc/NR) panels of kc rows of NR values (panel p at
    dst + p * NR * kc), columns past nc zero.

    Unit column stride: row by row, each row of B read once in sequence and cut into whole-vector NR
    copies, one per panel (a memcpy call per panel row took 10% of 392x4608x512 on one thread).
    Otherwise (e.g. linear's W.T) column by column in blocks of TRANSPOSE_STEPS rows, which keep the
    panel's rows in L1, each column's next block prefetched (nc interleaved streams defeat the
    hardware's prefetcher).
    """
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t full = nc // NR, tail = nc - nc // NR * NR
    cdef Py_ssize_t k, j, k0, p
    cdef const floating* src
    cdef floating* d
    if tail:
        memset(dst + full * NR * kc, 0, kc * NR * sizeof(floating))
    if csb == 1:
        for k in range(kc):
            src = B + k * rsb
            for p in range(full):
                d = dst + p * NR * kc + k * NR
                for j in range(NR):
                    d[j] = src[p * NR + j]
            for j in range(tail):
                dst[full * NR * kc + k * NR + j] = src[full * NR + j]
        return
    k0 = 0
    while k0 < kc:
        for j in range(nc):
            d = dst + j // NR * NR * kc + j % NR
            prefetch(B + j * csb + (k0 + 4 * TRANSPOSE_STEPS) * rsb)
            for k in range(k0, min(k0 + TRANSPOSE_STEPS, kc)):
                d[k * NR] = B[j * csb + k * rsb]
        k0 += TRANSPOSE_STEPS


cdef inline Py_ssize_t packed_b_len(Py_ssize_t K, Py_ssize_t N, floating zero) noexcept nogil:
    """Elements of a whole packed B (``pack_b_panels``): K rows of N values, N rounded up to panels."""
    return K * round_up(N, CK_NR_F32 if floating is float else CK_NR_F64)


cdef inline void pack_b_panels(const floating* B, Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t K,
                               Py_ssize_t N, Py_ssize_t p_begin, Py_ssize_t p_end,
                               floating* dst) noexcept nogil:
    """Panels p_begin:p_end of the whole of B (K x N) into ``dst`` in the order gemm_serial reads them:
    for each block of block_steps(K, KC) reduction steps (block pc at dst + pc * round_up(N, NR)), its
    panels one after the other (panel p at + p * NR * kc), as pack_b_block writes them."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t MC, KC, NC, pc, kc
    MC, KC, NC = block_sizes(<floating>0)
    KC = block_steps(K, KC)
    pc = 0
    while pc < K:
        kc = min(KC, K - pc)
        pack_b_block(B + pc * rsb + p_begin * NR * csb, rsb, csb, kc, min(p_end * NR, N) - p_begin * NR,
                     dst + pc * round_up(N, NR) + p_begin * NR * kc)
        pc += kc


cdef inline void store_tile(floating* acc, floating* c, Py_ssize_t ldc, Py_ssize_t mr, Py_ssize_t nr,
                            bint add_c, bint final, const floating* bias, const floating* res,
                            Py_ssize_t ldr, int act, floating alpha) noexcept nogil:
    """Store the valid mr x nr part of a tile: (+ C), and on the last reduction block + bias, + residual,
    then the activation (the epilogue, while the tile is in L1)."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t r, j
    cdef floating* row
    cdef floating* crow
    cdef const floating* rrow
    for r in range(mr):
        row = acc + r * NR
        crow = c + r * ldc
        if add_c:
            for j in range(nr):
                row[j] += crow[j]
        if final:
            if bias != NULL:
                for j in range(nr):
                    row[j] += bias[j]
            if res != NULL:
                rrow = res + r * ldr
                for j in range(nr):
                    row[j] += rrow[j]
        activate_span(row, <const floating*>NULL, crow, nr, act if final else ACT_NONE, alpha)


cdef inline void macro_kernel_rows(const floating* A, Py_ssize_t lda, const floating* Bp, Py_ssize_t m,
                                   Py_ssize_t kc, Py_ssize_t npan, Py_ssize_t nc,
                                   floating* C, Py_ssize_t ldc, bint add_c, bint final,
                                   const floating* bias, const floating* res, Py_ssize_t ldr,
                                   int act, floating alpha) noexcept nogil:
    """macro_kernel's product with A read in place (rows lda apart, unit column stride) instead of from
    a packed block: for narrow products, where packing A costs as much as the tiles that use it.  A
    product exactly one vector wide (nc = NR / 2) goes in half tiles of twice the rows, stored with the
    vector epilogue: 12544 x 32 x 16 (MobileNetV2's first projection at batch 1) 2.1x, 2 threads, Zen 4."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef floating acc[CK_ACC_LEN]
    cdef const floating* rows[2 * CK_MR]
    cdef bint half = 2 * nc == NR and (not final or act <= CK_ACT_RELU6)
    cdef Py_ssize_t tile_rows = 2 * CK_MR if half else CK_MR
    cdef Py_ssize_t p, r, ir, j0
    ir = 0
    while ir < m:
        for r in range(tile_rows):
            rows[r] = A + min(ir + r, m - 1) * lda
        if half and ir + tile_rows <= m:
            half_tile_store(rows, Bp, kc, C + ir * ldc, ldc, add_c, bias if final else NULL,
                            res + ir * ldr if final and res != NULL else NULL, ldr, act if final else ACT_NONE)
            ir += tile_rows
            continue
        for p in range(npan):
            j0 = p * NR
            memset(acc, 0, sizeof(acc))
            micro_tile(rows, Bp + p * NR * kc, kc, acc)
            store_tile(acc, C + ir * ldc + j0, ldc, min(CK_MR, m - ir), min(NR, nc - j0), add_c, final,
                       bias + j0 if bias != NULL else NULL,
                       res + ir * ldr + j0 if res != NULL else NULL, ldr, act, alpha)
        ir += CK_MR


cdef inline void macro_kernel(const floating* Ap, const floating* Bp, Py_ssize_t m, Py_ssize_t kc,
                              Py_ssize_t p_begin, Py_ssize_t p_end, Py_ssize_t nc,
                              floating* C, Py_ssize_t ldc, bint add_c, bint final,
                              const floating* bias, const floating* res, Py_ssize_t ldr,
                              int act, floating alpha) noexcept nogil:
    """C[0:m, panels p_begin:p_end] from a packed A block (m x kc) and packed B panels (kc x NR each).
    Whole tiles go straight from registers to C with their epilogue when the activation is one the
    vector epilogue has (none, ReLU, ReLU6); edge tiles and the others through an accumulator buffer."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef floating acc[CK_ACC_LEN]
    cdef Py_ssize_t p, q, ir, j0
    cdef bint vector_epilogue = not final or act <= CK_ACT_RELU6
    for p in range(p_begin, p_end):
        j0 = p * NR
        for q in range((m + CK_MR - 1) // CK_MR):
            ir = q * CK_MR
            if vector_epilogue and ir + CK_MR <= m and j0 + NR <= nc:
                gemm_tile_store(kc, Ap + ir * kc, Bp + p * NR * kc, C + ir * ldc + j0, ldc, add_c,
                                bias + j0 if final and bias != NULL else NULL,
                                res + ir * ldr + j0 if final and res != NULL else NULL, ldr,
                                act if final else ACT_NONE)
                continue
            gemm_tile(m - ir, kc, Ap + ir * kc, Bp + p * NR * kc, acc, C + ir * ldc + j0, ldc)
            store_tile(acc, C + ir * ldc + j0, ldc, min(CK_MR, m - ir), min(NR, nc - j0), add_c, final,
                       bias + j0 if bias != NULL else NULL,
                       res + ir * ldr + j0 if res != NULL else NULL, ldr, act, alpha)


cdef inline void* aligned(void* raw) noexcept nogil:
    """The first ALIGN-byte boundary in a buffer allocated ALIGN bytes larger than needed."""
    return <void*>((<uintptr_t>raw + ALIGN - 1) // ALIGN * ALIGN)


cdef inline void gemm_serial(PackA pack_a, const void* a_ctx, const floating* A_rows, Py_ssize_t lda,
                             Py_ssize_t i_begin, Py_ssize_t i_end,
                             Py_ssize_t j_begin, Py_ssize_t j_end, Py_ssize_t K,
                             const floating* B, Py_ssize_t rsb, Py_ssize_t csb,
                             const floating* B_packed, Py_ssize_t N,
                             floating* C, Py_ssize_t ldc, bint accumulate,
                             const floating* bias, const floating* residual, Py_ssize_t ldr,
                             int act, floating alpha, floating* Ap, floating* Bp) noexcept nogil:
    """Rows i_begin:i_end, columns j_begin:j_end (a multiple of NR) of the product on one thread (C, B,
    bias, residual point at the whole problem, N columns wide); Ap and Bp hold an A block and a B panel,
    or B_packed (if not NULL) holds the whole of B packed by pack_b_panels and Bp is not used."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t MC, KC, NC, jc, nc, npan, pc, kc, ic, m
    cdef const floating* panel
    MC, KC, NC = block_sizes(<floating>0)
    KC = block_steps(K, KC)
    jc = j_begin
    while jc < j_end:
        nc = min(NC, j_end - jc)
        npan = (nc + NR - 1) // NR
        pc = 0
        while True:      # at least once: K = 0 still stores the epilogue of an empty sum
            kc = min(KC, K - pc)
            if B_packed != NULL:
                panel = B_packed + pc * round_up(N, NR) + jc * kc
            else:
                pack_b_block(B + pc * rsb + jc * csb, rsb, csb, kc, nc, Bp)
                panel = Bp
            ic = i_begin
            while ic < i_end:
                m = min(MC, i_end - ic)
                if A_rows != NULL:
                    macro_kernel_rows(A_rows + ic * lda + pc, lda, panel, m, kc, npan, nc,
                                      C + ic * ldc + jc, ldc, accumulate or pc > 0, pc + kc >= K,
                                      bias + jc if bias != NULL else NULL,
                                      residual + ic * ldr + jc if residual != NULL else NULL, ldr, act,
                                      alpha)
                else:
                    pack_a(a_ctx, ic, m, pc, kc, Ap)
                    macro_kernel(Ap, panel, m, kc, 0, npan, nc, C + ic * ldc + jc, ldc,
                                 accumulate or pc > 0, pc + kc >= K,
                                 bias + jc if bias != NULL else NULL,
                                 residual + ic * ldr + jc if residual != NULL else NULL, ldr, act, alpha)
                ic += MC
            pc += kc
            if pc >= K:
                break
        jc += NC


cdef inline int gemm_packed_by(PackA pack_a, const void* a_ctx, const floating* A_rows, Py_ssize_t lda,
                               Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                               const floating* B, Py_ssize_t rsb, Py_ssize_t csb,
                               const floating* B_packed,
                               floating* C, Py_ssize_t ldc, bint accumulate,
                               const floating* bias, const floating* residual, Py_ssize_t ldr,
                               int act, floating alpha, int num_threads) noexcept nogil:
    """The product with A read through ``pack_a`` and B either strided (B, rsb, csb) or, when B_packed is
    not NULL, packed once already by pack_b_panels (then shared by the threads, none packs B)."""
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t MC, KC, NC, parts, t, rows, cols, a_size, b_size
    if M <= 0 or N <= 0:
        return 0
    MC, KC, NC = block_sizes(<floating>0)
    # Each thread computes a block of rows or a block of columns from its own packed A and B: one
    # parallel region, no barrier inside.  Where BLIS shares one B panel it synchronises twice per
    # (jc, pc) block, and on a busy machine each synchronisation can wait for a descheduled thread
    # (measured: 2 threads 5-15x slower than 1 with a shared panel).  So a row split has every thread
    # pack all of B, a column split every thread all of A: split the longer side (the smaller
    # duplicate), rows when there are too few columns to share.  A B packed ahead (B_packed) is shared,
    # so a row split then duplicates no packing, only the reading of B: taken when that B stays in L2
    # (up to SHARED_B_MAX_BYTES) and each thread gets ROW_SPLIT_MIN_TILES tiles of rows.  Measured with
    # resnet18's layers at batch 1, 2 threads, against the column split: 1x1/2 28x28x128->256 (a 128 KiB B)
    # 1.04x; 3x3 14x14x256->256 (2.3 MiB, read from L3 by both threads) 0.82x; 1x1/2 14x14x256->512
    # (M = 49: a partial tile's share of waste) 0.98x.
    parts = max(min(num_threads, M * N * max(K, 1) // PARALLEL_MIN_MACS), 1)
    cdef bint split_rows = ((N <= M and M >= parts * CK_MR) or N < parts * NR
                            or (B_packed != NULL and K * N * sizeof(floating) <= SHARED_B_MAX_BYTES
                                and M >= parts * ROW_SPLIT_MIN_TILES * CK_MR))
    parts = min(parts, (M + CK_MR - 1) // CK_MR if split_rows else (N + NR - 1) // NR)
    rows = M if not split_rows else min(MC, round_up((M + parts - 1) // parts, CK_MR))
    cdef Py_ssize_t panels = (N + NR - 1) // NR     # a column split gives each thread whole panels
    cols = N if split_rows else (panels + parts - 1) // parts * NR
    cdef Py_ssize_t kc_max = min(KC, max(K, 1))
    a_size = 0 if A_rows != NULL else round_up(min(MC, round_up(rows, CK_MR)) * kc_max, ALIGN)
    b_size = 0 if B_packed != NULL else round_up(min(NC, round_up(cols, NR)) * kc_max, ALIGN)
    cdef void* raw = malloc(parts * (a_size + b_size) * sizeof(floating) + ALIGN)
    if raw == NULL:
        return -1
    cdef floating* work = <floating*>aligned(raw)
    for t in prange(parts, num_threads=parts, schedule="static"):
        if split_rows:
            gemm_serial(pack_a, a_ctx, A_rows, lda, t * M // parts, (t + 1) * M // parts, 0, N, K,
                        B, rsb, csb, B_packed, N, C, ldc, accumulate, bias, residual, ldr, act, alpha,
                        work + t * (a_size + b_size), work + t * (a_size + b_size) + a_size)
        else:
            gemm_serial(pack_a, a_ctx, A_rows, lda, 0, M, t * panels // parts * NR,
                        min((t + 1) * panels // parts * NR, N), K, B, rsb, csb, B_packed, N,
                        C, ldc, accumulate, bias, residual, ldr, act, alpha,
                        work + t * (a_size + b_size), work + t * (a_size + b_size) + a_size)
    free(raw)
    return 0


cdef inline int gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
              const floating* A, Py_ssize_t rsa, Py_ssize_t csa,
              const floating* B, Py_ssize_t rsb, Py_ssize_t csb, const floating* B_packed,
              floating* C, Py_ssize_t ldc, bint accumulate,
              const floating* bias, const floating* residual, Py_ssize_t ldr,
              int act, floating alpha, int num_threads) noexcept nogil:
    cdef StridedMatrix a
    a.data = A
    a.row_stride = rsa
    a.col_stride = csa
    # A narrow product reads A in place (a packed A block would serve few B panels)
    cdef const floating* A_rows = A if csa == 1 and K > 0 and N <= ROWS_IN_PLACE_MAX_N else NULL
    if floating is float:
        return gemm_packed_by(pack_a_strided_f32, &a, A_rows, rsa, M, N, K, B, rsb, csb, B_packed, C, ldc,
                              accumulate, bias, residual, ldr, act, alpha, num_threads)
    else:
        return gemm_packed_by(pack_a_strided_f64, &a, A_rows, rsa, M, N, K, B, rsb, csb, B_packed, C, ldc,
                              accumulate, bias, residual, ldr, act, alpha, num_threads)


