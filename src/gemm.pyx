"""convkit's GEMM, structured as BLIS (Van Zee & van de Geijn, 2015) around microkernel.h's register tile.

    for jc in N by NC:              B[pc:pc+KC, jc:jc+NC] packed once, by all threads, into NR-column panels
      for pc in K by KC:
        for ic in M by MC:          parallel: each thread packs its own A block (MC x KC, CK_MR-row panels)
          for jr in NC by NR:       a B micro-panel (KC x NR) stays in L1 ...
            for ir in MC by CK_MR:  ... while the A block streams from L2
              register tile, then the epilogue on the tile, then the store

Edges are handled by zero-padded packing (the tile always computes CK_MR x NR; only the valid part is
stored).  The threads share the packed B panel and split the ic loop (and, when M has fewer blocks than
threads, the jr loop too), as BLIS does on one socket.  The work is split into items of (ic block, run of
jr panels), handed out statically in order, so a thread repacks A only when its ic block changes.

Block sizes, in bytes so that they carry over between dtypes and vector widths (see ``blocking``):
a B micro-panel of KC x NR is 16 KiB (half of a 32 KiB L1d: KC = 256 for 6x16 float32 / 6x8 float64 tiles);
the A block is about 144 KiB (MC = 144 float32 rows at KC = 256: within a 512 KiB-1 MiB L2); the B panel is
KC x NC of about 4 MiB (NC = 4080 at KC = 256, in the shared L3).  These are BLIS's sgemm values for
Haswell and Zen; the measurement that kept them is in the module's README section (bench/gemm_blocking.py).
"""
from cython cimport floating

from activation cimport ACT_NONE
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


def gemm_into(const floating[:, :] a, const floating[:, :] b, floating[:, :] c, bint accumulate=False,
              bias=None, residual=None, int act=ACT_NONE, double alpha=0, int num_threads=1):
    """c = act((c if accumulate) + a @ b + bias + residual), the kernel wrapper every GEMM of convkit
    goes through: a and b with any strides (multiples of the itemsize), c (and residual, c's shape)
    with unit column stride and any row stride (e.g. one group's columns of a bigger output)."""
    cdef Py_ssize_t M = c.shape[0], N = c.shape[1], K = a.shape[1]
    cdef Py_ssize_t size = sizeof(floating)
    assert a.shape[0] == M and b.shape[0] == K and b.shape[1] == N
    assert N <= 1 or c.strides[1] == size
    if M == 0 or N == 0:
        return
    cdef const floating[:] bias_view
    cdef const floating[:, :] res_view
    cdef const floating* bp = NULL
    cdef const floating* rp = NULL
    cdef Py_ssize_t ldr = 0
    if bias is not None:
        bias_view = bias
        assert bias_view.shape[0] == N and (N <= 1 or bias_view.strides[0] == size)
        bp = &bias_view[0]
    if residual is not None:
        res_view = residual
        assert res_view.shape[0] == M and res_view.shape[1] == N and (N <= 1 or res_view.strides[1] == size)
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
