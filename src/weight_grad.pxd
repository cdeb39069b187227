# The weight gradient's accumulation, shared by the convolution and deformable weight gradients.
#
# For a chunk of P output pixels with their columns (P rows of KH*KW*C values ordered (tap, c), as im2col
# and the deformable sampler write them) and their output gradients (P rows of Cout), every group g adds
#     dW_g[co, k] += sum_p go[p, g*cout_g + co] * cols[p, tap(k)*C + g*cin_g + ci(k)],  k = tap*cin_g + ci
# to a thread's private partial sums.  The product runs in the direct convolution's register tile
# (microkernel.h): CK_TILE_PIXELS output channels (rows of go transposed, the "pixels" of the tile) x one
# block of column entries (the tile's width, src/simd.h; the columns packed in blocks, the tile's
# "weights"), reducing over the chunk's pixels.  The partial sums stay in the tile's layout,
# [g][k block][co tile][CK_TILE_PIXELS][block], so the
# register tile loads and stores them in place.
from cython cimport floating
from libc.string cimport memset

from microkernel cimport ck_tile_f32, ck_tile_f64
from simd cimport CK_NR_F32, CK_NR_F64, CK_TILE_PIXELS

cdef enum:
    WG_BLOCK_F32 = CK_NR_F32
    WG_BLOCK_F64 = CK_NR_F64


cdef inline Py_ssize_t wg_block(floating dummy) noexcept nogil:
    return WG_BLOCK_F32 if floating is float else WG_BLOCK_F64


cdef inline Py_ssize_t wg_partial_size(Py_ssize_t G, Py_ssize_t K_g, Py_ssize_t cout_g,
                                       Py_ssize_t B) noexcept nogil:
    """Elements of one thread's partial sums."""
    return G * ((K_g + B - 1) // B) * ((cout_g + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS) * CK_TILE_PIXELS * B


cdef inline void wg_accumulate(
    const floating* cols, const floating* go, Py_ssize_t npix, Py_ssize_t pc,
    Py_ssize_t taps, Py_ssize_t C, Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g,
    floating* kpack, floating* goT, const floating* zeros, floating* partial,
) noexcept nogil:
    """partial += this chunk's contribution; ``cols`` npix x taps*C, ``go`` npix x G*cout_g.

    Scratch: ``kpack`` (K_g rounded up to the block) x npix, ``goT`` Cout x pc (pc >= npix),
    ``zeros`` at least npix zeros.
    """
    cdef Py_ssize_t B = wg_block(<floating>0)
    cdef Py_ssize_t K = taps * C, K_g = taps * cin_g, Cout = G * cout_g
    cdef Py_ssize_t nkb = (K_g + B - 1) // B
    cdef Py_ssize_t nct = (cout_g + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS
    cdef Py_ssize_t p, co, g, t, ci, k, kb, ct, r, j
    cdef const floating* src
    cdef floating* dst
    cdef const floating* xp[CK_TILE_PIXELS]
    cdef floating* tile
    for p in range(npix):
        for co in range(Cout):
            goT[co * pc + p] = go[p * Cout + co]
    for g in range(G):
        # kpack[kb][p][j] = column entry k = kb*B + j of group g for pixel p (zero past K_g)
        for p in range(npix):
            src = cols + p * K + g * cin_g
            if cin_g % B == 0:      # each tap's channels are whole blocks: copy runs of B
                for t in range(taps):
                    for kb in range(cin_g // B):
                        ci = kb * B
                        dst = kpack + (((t * cin_g + ci) // B) * npix + p) * B
                        for j in range(B):
                            dst[j] = src[t * C + ci + j]
                continue
            k = 0
            for t in range(taps):
                for ci in range(cin_g):
                    kpack[((k // B) * npix + p) * B + k % B] = src[t * C + ci]
                    k += 1
            while k % B != 0:
                kpack[((k // B) * npix + p) * B + k % B] = 0
                k += 1
        tile = partial + g * nkb * nct * CK_TILE_PIXELS * B
        for kb in range(nkb):
            for ct in range(nct):
                for r in range(CK_TILE_PIXELS):
                    co = ct * CK_TILE_PIXELS + r
                    xp[r] = goT + (g * cout_g + co) * pc if co < cout_g else zeros
                if floating is float:
                    ck_tile_f32(xp, kpack + kb * npix * B, npix, tile)
                else:
                    ck_tile_f64(xp, kpack + kb * npix * B, npix, tile)
                tile += CK_TILE_PIXELS * B


cdef inline void wg_reduce(const floating* partials, Py_ssize_t nparts, Py_ssize_t part_size,
                           floating* dw, Py_ssize_t g, Py_ssize_t kb, Py_ssize_t G, Py_ssize_t K_g,
                           Py_ssize_t cout_g) noexcept nogil:
    """dw (K_g, G*cout_g) rows kb*B ... of group g = the sum of the partials, in their order."""
    cdef Py_ssize_t B = wg_block(<floating>0)
    cdef Py_ssize_t nkb = (K_g + B - 1) // B
    cdef Py_ssize_t nct = (cout_g + CK_TILE_PIXELS - 1) // CK_TILE_PIXELS
    cdef Py_ssize_t Cout = G * cout_g
    cdef Py_ssize_t ct, r, j, i, k, co, base
    cdef floating s
    for ct in range(nct):
        base = ((g * nkb + kb) * nct + ct) * CK_TILE_PIXELS * B
        for r in range(CK_TILE_PIXELS):
            co = ct * CK_TILE_PIXELS + r
            if co >= cout_g:
                break
            for j in range(B):
                k = kb * B + j
                if k >= K_g:
                    break
                s = 0
                for i in range(nparts):
                    s += partials[i * part_size + base + r * B + j]
                dw[k * Cout + g * cout_g + co] = s
