# O(1) checks of what a kernel wrapper relies on, raised as ValueError while it still holds the GIL.
# The public Python layer validates everything first; these catch a wrong call from convkit itself
# before it can read or write out of bounds.

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
