"""convkit's GEMM, structured as BLIS (Van Zee & van de Geijn, 2015) around microkernel.h's register tile.

    for jc in N by NC:              B[pc:pc+KC, jc:jc+NC] packed into NR-column micro-panels
      for pc in K by KC:
        for ic in M by MC:          A[ic:ic+MC, pc:pc+KC] packed into CK_MR-row micro-panels
          for jr in NC by NR:       a B micro-panel (KC x NR) stays in L1 ...
            for ir in MC by CK_MR:  ... while the A block streams from L2
              register tile, then the epilogue on the tile, then the store

Edges are handled by zero-padded packing (the tile always computes CK_MR x NR; only the valid part is
stored).  Threads (gemm.pxd's gemm_packed_by) each take a contiguous block of rows (or of column panels
when M is short) and run the loops above on it with their own packed A and B: one parallel region and no
barrier inside, at the price of every thread packing B (measured on the shared 2-core machine: a B panel
shared as in BLIS made 2 threads 5-15x slower than 1, each synchronisation waiting for a descheduled thread).

Block sizes (gemm.pxd): KC = 256 reduction steps; MC from an A block of about 144 KiB (in L2); NC from a
B panel of about 4 MiB (in L3).  With the 256-bit tile (6 x 16 float32) these are BLIS's sgemm values for
Haswell and Zen (MC=144, KC=256, NC=4080), a B micro-panel of 16 KiB (half a 32 KiB L1d).  With the 512-bit
tile (12 x 32) they give MC=144, KC=256, NC=4064 and a 32 KiB B micro-panel, chosen on the one AVX-512
machine available (AMD EPYC Zen 4, 32 KiB L1d, 1 MiB L2 per core; not measured elsewhere) over the
previous byte-derived KC=128, MC=288 (a 16 KiB micro-panel), in interleaved rounds against NumPy's OpenBLAS,
1 thread, float32, machine shared with other jobs (load 7-10 on 2 cores, so 2-thread timings were not
usable); NumPy's time over convkit's, three runs of 5-9 rounds each:

    (MC, KC)       3136x576x64        392x4608x512       2048^3
    (288, 128)     0.90 0.75 0.83     0.95 0.82 0.87     0.76 0.81 0.84
    (144, 256)     0.95 0.91 0.80     0.97 0.93 0.89     0.90 0.88 0.88
    (384, 192)     0.99 0.92 0.76     0.89 0.82 0.83     0.91 0.91 0.94
    (240, 256)     -    0.74 0.78     -    0.83 0.86     -    0.98 0.96

NC only matters when N > NC (none of these).  BLIS's own Zen 4 sgemm blocking (MC=512, KC=480, NC=6144 for
a 32 x 12 column-major tile, its 12-wide operand kept in L1) is for the other loop order and was not tried.
"""
from cython cimport floating

from activation cimport ACT_NONE
from checks cimport check_min, check_size
from gemm cimport block_sizes, gemm
from simd cimport CK_MR, CK_NR_F32, CK_NR_F64, CK_VECTOR_BITS

import numpy as np


def vector_bits():
    """Width of the vector registers the kernels were built for (128, 256 or 512)."""
    return CK_VECTOR_BITS


def tile_shape(dtype):
    """(rows, columns) of the register tile for ``dtype``: CK_MR x two vectors."""
    return (CK_MR, CK_NR_F32 if np.dtype(dtype) == np.float32 else CK_NR_F64)


def blocking(dtype):
    """(MC, KC, NC) the GEMM uses for ``dtype``."""
    if np.dtype(dtype) == np.float32:
        return block_sizes(<float>0)
    return block_sizes(<double>0)


cdef int check_strides(Py_ssize_t row, Py_ssize_t col, Py_ssize_t size, str what, bint unit_columns=False
                       ) except -1:
    """Strides in whole elements (the kernel steps typed pointers), unit along rows where required."""
    if row % size or col % size or (unit_columns and col != size):
        raise ValueError(f"expected {what}'s strides to be multiples of {size} bytes"
                         f"{' with unit column stride' if unit_columns else ''}, got ({row}, {col})")
    return 0


def gemm_into(const floating[:, :] a, const floating[:, :] b, floating[:, :] c, bint accumulate=False,
              bias=None, residual=None, int act=ACT_NONE, double alpha=0, int num_threads=1):
    """c = act((c if accumulate) + a @ b + bias + residual), the kernel wrapper every GEMM of convkit
    goes through: a and b with any strides (multiples of the itemsize), c (and residual, c's shape)
    with unit column stride and any row stride (e.g. one group's columns of a bigger output)."""
    cdef Py_ssize_t M = c.shape[0], N = c.shape[1], K = a.shape[1]
    cdef Py_ssize_t size = sizeof(floating)
    if a.shape[0] != M or b.shape[0] != K or b.shape[1] != N:
        raise ValueError(f"expected a ({M}, K) and b (K, {N}) for c ({M}, {N}), got a ({a.shape[0]}, {K}) and "
                         f"b ({b.shape[0]}, {b.shape[1]})")
    check_strides(a.strides[0], a.strides[1], size, "a")
    check_strides(b.strides[0], b.strides[1], size, "b")
    check_strides(c.strides[0], size if N <= 1 else c.strides[1], size, "c", True)
    check_min(num_threads, 1, "num_threads")
    if M == 0 or N == 0:
        return
    cdef const floating[:] bias_view
    cdef const floating[:, :] res_view
    cdef const floating* bp = NULL
    cdef const floating* rp = NULL
    cdef Py_ssize_t ldr = 0
    if bias is not None:
        bias_view = bias
        check_size(bias_view.shape[0], N, "the bias length")
        check_strides(0, size if N <= 1 else bias_view.strides[0], size, "bias", True)
        bp = &bias_view[0]
    if residual is not None:
        res_view = residual
        if res_view.shape[0] != M or res_view.shape[1] != N:
            raise ValueError(f"expected residual to have shape ({M}, {N}), got {tuple(residual.shape)}")
        check_strides(res_view.strides[0], size if N <= 1 else res_view.strides[1], size, "residual", True)
        rp = &res_view[0, 0]
        ldr = res_view.strides[0] // size
    cdef const floating* ap = &a[0, 0] if K > 0 else NULL
    cdef const floating* bq = &b[0, 0] if K > 0 else NULL
    cdef Py_ssize_t rsa = a.strides[0] // size, csa = a.strides[1] // size
    cdef Py_ssize_t rsb = b.strides[0] // size, csb = b.strides[1] // size
    cdef Py_ssize_t ldc = c.strides[0] // size
    cdef int status
    with nogil:
        status = gemm(M, N, K, ap, rsa, csa, bq, rsb, csb, &c[0, 0], ldc, accumulate, bp, rp, ldr,
                      act, <floating>alpha, num_threads)
    if status:
        raise MemoryError(f"cannot allocate the GEMM's packing workspace for a ({M}, {K}) x ({K}, {N}) "
                          f"product")


def workspace_bytes(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, dtype, int num_threads):
    """Bytes of packed A blocks and B panels a GEMM of this size allocates (at most)."""
    mc, kc, nc = blocking(dtype)
    nr = tile_shape(dtype)[1]
    kc = min(kc, max(K, 1))
    per_thread = min(mc, -(-M // CK_MR) * CK_MR) * kc + min(nc, -(-N // nr) * nr) * kc
    return min(num_threads, max(M, 1)) * per_thread * np.dtype(dtype).itemsize
