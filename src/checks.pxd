# O(1) checks of what a kernel wrapper relies on, raised as ValueError while it still holds the GIL.
# The public Python layer validates everything first; these catch a wrong call from convkit itself
# before it can read or write out of bounds.
from cython cimport floating

cdef inline int check_size(Py_ssize_t got, Py_ssize_t expected, str what) except -1:
    if got != expected:
        raise ValueError(f"expected {what} to be {expected}, got {got}")
    return 0


cdef inline int check_min(Py_ssize_t got, Py_ssize_t minimum, str what) except -1:
    if got < minimum:
        raise ValueError(f"expected {what} to be at least {minimum}, got {got}")
    return 0


cdef inline int check_geometry(Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                               int num_threads) except -1:
    """Positive strides, dilations and thread count."""
    check_min(sh, 1, "the vertical stride")
    check_min(sw, 1, "the horizontal stride")
    check_min(dh, 1, "the vertical dilation")
    check_min(dw, 1, "the horizontal dilation")
    check_min(num_threads, 1, "num_threads")
    return 0


cdef inline int check_packed_blocks(Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t C, Py_ssize_t nblk, Py_ssize_t width,
                                    Py_ssize_t B, Py_ssize_t cout_g) except -1:
    """Weights packed (G, nblk, KH, KW, cin_g, B) by conv_direct.pack_weights for C input channels and
    cout_g output channels per group."""
    check_size(G * cin_g, C, "the packed weight's groups * input channels per group (the input channels)")
    check_size(width, B, "the packed weight's block width")
    check_size(nblk, (cout_g + B - 1) // B, "the packed weight's blocks (for cout_g output channels)")
    return 0


cdef inline int check_offsets(object offset, object mask, Py_ssize_t N, Py_ssize_t Hout, Py_ssize_t Wout,
                              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t C, Py_ssize_t cpg) except -1:
    """Deformable offsets (N, Hout, Wout, 2*G*KH*KW) and mask (N, Hout, Wout, G*KH*KW) or None, for G
    offset groups of ``cpg`` channels covering the C input channels."""
    cdef Py_ssize_t taps = KH * KW
    check_min(cpg, 1, "the channels per offset group")
    if offset.shape[:3] != (N, Hout, Wout) or taps == 0 or offset.shape[3] != 2 * taps * (C // cpg) \
            or C % cpg:
        raise ValueError(f"expected offset to have shape ({N}, {Hout}, {Wout}, 2*{taps}*G) with G*{cpg} = "
                         f"{C} channels, got {offset.shape}")
    if mask is not None and mask.shape != (N, Hout, Wout, offset.shape[3] // 2):
        raise ValueError(f"expected mask to have shape ({N}, {Hout}, {Wout}, {offset.shape[3] // 2}), "
                         f"got {mask.shape}")
    return 0


cdef inline int check_range(Py_ssize_t begin, Py_ssize_t end, Py_ssize_t size, str what) except -1:
    """begin:end is an ordered range within 0:size."""
    if begin < 0 or end < begin or end > size:
        raise ValueError(f"expected {what} {begin}:{end} to lie within 0:{size}")
    return 0



# Optional arrays (a bias, a residual, a deformable mask) -> a const pointer to their first element, or NULL
# for None or an empty array, after checking the length or shape the kernel relies on.  The pointer stays
# valid while the caller holds the array (a wrapper's argument: until the wrapper returns).

cdef inline int optional_vector(object v, Py_ssize_t length, str what, const floating** ptr) except -1:
    cdef const floating[::1] view
    ptr[0] = NULL
    if v is None:
        return 0
    view = v
    if view.shape[0] != length:
        raise ValueError(f"expected {what} to have length {length}, got {view.shape[0]}")
    if length > 0:
        ptr[0] = &view[0]
    return 0


cdef inline int optional_rows(object a, Py_ssize_t rows, Py_ssize_t cols, str what,
                              const floating** ptr) except -1:
    cdef const floating[:, ::1] view
    ptr[0] = NULL
    if a is None:
        return 0
    view = a
    if view.shape[0] != rows or view.shape[1] != cols:
        raise ValueError(f"expected {what} to have shape {(rows, cols)}, got {tuple(a.shape)}")
    if rows * cols > 0:
        ptr[0] = &view[0, 0]
    return 0


cdef inline int optional_image(object a, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, str what,
                               const floating** ptr) except -1:
    cdef const floating[:, :, :, ::1] view
    ptr[0] = NULL
    if a is None:
        return 0
    view = a
    if view.shape[0] != N or view.shape[1] != H or view.shape[2] != W or view.shape[3] != C:
        raise ValueError(f"expected {what} to have shape {(N, H, W, C)}, got {tuple(a.shape)}")
    if N * H * W * C > 0:
        ptr[0] = &view[0, 0, 0, 0]
    return 0
