"""convkit's GEMM, structured as BLIS (Van Zee & van de Geijn, 2015) around microkernel.h's register tile.

    for jc in N by NC:              B[pc:pc+KC, jc:jc+NC] packed into NR-column micro-panels
      for pc in K by KC:
        for ic in M by MC:          A[ic:ic+MC, pc:pc+KC] packed into CK_MR-row micro-panels
          for jr in NC by NR:       a B micro-panel (KC x NR) stays in L1 ...
            for ir in MC by CK_MR:  ... while the A block streams from L2
              register tile, then the epilogue on the tile, then the store

Edges are handled by padded packing (the tile computes NR columns; only the valid part is stored); the
last row panel of a block runs a shorter tile (CK_MR/3 or 2*CK_MR/3 rows) when that covers it, so M = 64
on the 12-row tile computes 64 rows, not 72 (linear 512->1000 at batch 64: 1.2x, 1 thread).  Threads
(gemm.pxd's gemm_packed_by) each take a contiguous block of rows or of column panels, of the longer side,
and run the loops above on it with their own packed A and B: one parallel region and no barrier inside,
at the price of every thread packing all of the other operand (measured on the shared 2-core machine: a B
panel shared as in BLIS made 2 threads 5-15x slower than 1, each synchronisation waiting for a descheduled
thread).  A B packed once ahead (``pack_b``: nn.Linear keeps its weight so) is shared by the threads and
not packed in the call: linear 512->1000 at batch 64 went from 0.95 to 0.66 ms (1 thread), the
transposed weight's packing being most of the difference.

Narrow products (N <= 64, gemm.pxd's ROWS_IN_PLACE_MAX_N) whose A has unit column stride skip packing A:
the direct kernels' form of the tile reads CK_MR rows of A in place through row pointers, since each
packed A value would serve only N multiply-adds.  K is cut into blocks of equal size of at most KC
(gemm.pxd's block_steps: K = 576 as 3 x 192, not 256 + 256 + 64).  Together, on 3136x576x64, 1 thread,
interleaved against the previous build on the shared machine (CPU time, 9 rounds): 1.18x, and 1.11x NumPy
where the previous build was 0.92x; chosen on this Zen 4 with the 512-bit tile only.  The transposed B
that linear multiplies by (W.T: its columns are W's rows) is packed with a software prefetch of each row's
next lines (32 interleaved row streams defeat the hardware prefetcher): linear 512->1000 b64 per call,
1 thread, 1.11x.

Packing (gemm.pxd): B is cut row by row, each row of B read once in sequence and copied as whole vectors
into its panels (pack_b_block: a memcpy call per 32-value panel row had taken 10% of 392x4608x512 on one
thread); A's CK_MR row streams are transposed 4 x 4 in registers (pack_panel.h; im2col's packer uses the
same copy).  Together, against the previous build in interleaved rounds (AMD EPYC Zen 4, float32):
392x4608x512 1.09x on 1 thread and 1.05x on 2, 2048^3 1.06x on 2; the transposing copy alone 1.04x on
392x4608x512 and 1.03-1.05x on 1000x300x1000.

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
from cython.parallel cimport prange

from activation cimport ACT_NONE, ACT_RELU, ACT_RELU6
from checks cimport check_min, check_size
from gemm cimport ALIGN, block_sizes, gemm, packed_b_len, pack_b_panels
from microkernel cimport CK_ACT_NONE, CK_ACT_RELU, CK_ACT_RELU6
from simd cimport CK_MR, CK_NR_F32, CK_NR_F64, CK_VECTOR_BITS

import numpy as np

if (CK_ACT_NONE, CK_ACT_RELU, CK_ACT_RELU6) != (ACT_NONE, ACT_RELU, ACT_RELU6):
    raise ImportError("microkernel.h's activation codes differ from activation.pxd's")


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


cdef class PackedB:
    """A GEMM operand B (K, N) packed once into the GEMM's panels (``pack_b``), for many products with the
    same B, e.g. a layer's weight: ``gemm_into(a, b, c, packed=pack_b(b))`` then packs only A, and its
    threads share the one packed copy.  It is a copy: it does not follow later changes to ``b``."""
    cdef readonly tuple shape
    cdef readonly object dtype
    cdef readonly object buffer       # 1-D, packed_b_len elements from a 64-byte boundary
    cdef const void* data

    def __reduce__(self):
        return packed_from_buffer, (self.shape, self.buffer)


cdef PackedB new_packed(Py_ssize_t K, Py_ssize_t N, dtype):
    """An uninitialised PackedB for a (K, N) operand of ``dtype``."""
    cdef Py_ssize_t length = (packed_b_len(K, N, <float>0) if dtype == np.float32
                              else packed_b_len(K, N, <double>0))
    cdef Py_ssize_t size = np.dtype(dtype).itemsize
    raw = np.empty(length + ALIGN // size, dtype)
    cdef Py_ssize_t skip = (-raw.ctypes.data % ALIGN) // size
    packed = PackedB()
    packed.shape, packed.dtype, packed.buffer = (K, N), np.dtype(dtype), raw[skip:skip + length]
    packed.data = <const void*><size_t>packed.buffer.ctypes.data
    return packed


def packed_from_buffer(shape, buffer):
    """The PackedB whose panels are ``buffer`` (copied), e.g. when unpickling one."""
    packed = new_packed(shape[0], shape[1], buffer.dtype)
    if packed.buffer.shape != buffer.shape:
        raise ValueError(f"expected {packed.buffer.shape[0]} packed values for shape {shape}, got "
                         f"{buffer.shape}")
    packed.buffer[...] = buffer
    return packed


def pack_b(const floating[:, :] b, int num_threads=1):
    """``b`` (K, N, any strides in whole elements) packed for ``gemm_into(..., packed=)``."""
    cdef Py_ssize_t K = b.shape[0], N = b.shape[1], size = sizeof(floating)
    check_strides(b.strides[0], b.strides[1], size, "b")
    check_min(num_threads, 1, "num_threads")
    cdef Py_ssize_t NR = CK_NR_F32 if floating is float else CK_NR_F64
    cdef Py_ssize_t panels = (N + NR - 1) // NR, p
    packed = new_packed(K, N, np.float32 if floating is float else np.float64)
    if packed.buffer.shape[0] == 0:
        return packed
    cdef const floating* bp = &b[0, 0]
    cdef Py_ssize_t rsb = b.strides[0] // size, csb = b.strides[1] // size
    cdef floating* out = <floating*>packed.data
    for p in prange(panels, nogil=True, num_threads=max(min(num_threads, panels), 1), schedule="static"):
        pack_b_panels(bp, rsb, csb, K, N, p, p + 1, out)
    return packed


def gemm_into(const floating[:, :] a, const floating[:, :] b, floating[:, :] c, bint accumulate=False,
              bias=None, residual=None, int act=ACT_NONE, double alpha=0, int num_threads=1,
              PackedB packed=None):
    """c = act((c if accumulate) + a @ b + bias + residual), the kernel wrapper every GEMM of convkit
    goes through: a and b with any strides (multiples of the itemsize), c (and residual, c's shape)
    with unit column stride and any row stride (e.g. one group's columns of a bigger output).
    ``packed``: ``pack_b(b)``, used instead of packing b (b then only gives the shapes)."""
    cdef Py_ssize_t M = c.shape[0], N = c.shape[1], K = a.shape[1]
    cdef Py_ssize_t size = sizeof(floating)
    if a.shape[0] != M or b.shape[0] != K or b.shape[1] != N:
        raise ValueError(f"expected a ({M}, K) and b (K, {N}) for c ({M}, {N}), got a ({a.shape[0]}, {K}) and "
                         f"b ({b.shape[0]}, {b.shape[1]})")
    check_strides(a.strides[0], a.strides[1], size, "a")
    check_strides(b.strides[0], b.strides[1], size, "b")
    dtype = np.float32 if floating is float else np.float64
    if packed is not None and (packed.shape != (K, N) or packed.dtype != dtype):
        raise ValueError(f"expected packed to be b ({K}, {N}) {np.dtype(dtype)} packed, got "
                         f"{packed.shape} {packed.dtype}")
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
    cdef const floating* b_packed = <const floating*>packed.data if packed is not None else NULL
    cdef Py_ssize_t rsa = a.strides[0] // size, csa = a.strides[1] // size
    cdef Py_ssize_t rsb = b.strides[0] // size, csb = b.strides[1] // size
    cdef Py_ssize_t ldc = c.strides[0] // size
    cdef int status
    with nogil:
        status = gemm(M, N, K, ap, rsa, csa, bq, rsb, csb, b_packed, &c[0, 0], ldc, accumulate, bp, rp,
                      ldr, act, <floating>alpha, num_threads)
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
