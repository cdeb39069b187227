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


def matmul(const floating[:, :] a, const floating[:, :] b, floating[:, ::1] out, bint accumulate,
           int num_threads):
    """out = a @ b (``accumulate``: out += a @ b).  Strides of a and b must be multiples of the itemsize
    (convkit.matmul copies other arrays); out is C-contiguous and does not overlap them."""
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = a.shape[1]
    cdef Py_ssize_t size = sizeof(floating)
    assert a.shape[0] == M and b.shape[0] == K and b.shape[1] == N
    if M == 0 or N == 0:
        return
    cdef const floating* ap = &a[0, 0] if K > 0 else NULL
    cdef const floating* bp = &b[0, 0] if K > 0 else NULL
    cdef Py_ssize_t rsa = a.strides[0] // size, csa = a.strides[1] // size
    cdef Py_ssize_t rsb = b.strides[0] // size, csb = b.strides[1] // size
    cdef int status
    with nogil:
        status = gemm(M, N, K, ap, rsa, csa, bp, rsb, csb, &out[0, 0], N, accumulate, <const floating*>NULL, <const floating*>NULL, 0,
                      ACT_NONE, 0, num_threads)
    if status:
        raise MemoryError(f"convkit.matmul: cannot allocate the packing workspace for a "
                          f"({M}, {K}) x ({K}, {N}) product")
