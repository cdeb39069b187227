"""The address of a NumPy array's data, for convkit._alloc's alignment: NumPy's ``a.ctypes.data`` builds a
ctypes object on every call (1.8 us, most of an output allocation's cost in a network's layer)."""
from libc.stdint cimport uintptr_t

cimport numpy as cnp

cnp.import_array()


def data_address(cnp.ndarray a not None):
    """``a.ctypes.data``: the address of ``a``'s first element."""
    return <uintptr_t>cnp.PyArray_DATA(a)
