"""Keep NumPy's BLAS off its thread pool while convkit computes.

NumPy's OpenBLAS runs GEMMs on a pthread pool whose workers spin for a while after each call.  convkit's
kernels run on an OpenMP pool, so a network alternating GEMMs and convkit kernels keeps two pools spinning
on the same cores: on the 2-core development machine mobilenet_v2 took 1.4 s per image instead of 20 ms.
So convkit runs its GEMMs with OpenBLAS set to one thread (the pool is never woken) and parallelises with
its own threads.  The setting is OpenBLAS's global one: it is changed when the first concurrent convkit
GEMM section starts and restored when the last ends, so NumPy GEMMs that other threads run meanwhile are
single-threaded too.  Where NumPy's BLAS is not OpenBLAS, GEMMs run as NumPy runs them.
"""
import contextlib
import ctypes
import glob
import os
import threading

import numpy as np


def _find_openblas_thread_control():
    """(get_num_threads, set_num_threads) of the OpenBLAS NumPy loaded, or None."""
    numpy_dir = os.path.dirname(np.__file__)
    paths = glob.glob(os.path.join(numpy_dir, os.pardir, "numpy.libs", "*openblas*"))
    paths += glob.glob(os.path.join(numpy_dir, ".dylibs", "*openblas*"))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
            try:
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
                set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
            except AttributeError:
                continue
            get.restype = ctypes.c_int
            set_.argtypes = [ctypes.c_int]
            set_.restype = None
            return get, set_
    return None


_control = _find_openblas_thread_control()
_lock = threading.Lock()
_depth = 0
_saved_threads = 1


@contextlib.contextmanager
def single_threaded_blas():
    """Within the block, NumPy's OpenBLAS runs every GEMM on the calling thread alone."""
    global _depth, _saved_threads
    if _control is None:
        yield
        return
    get, set_ = _control
    with _lock:
        if _depth == 0:
            _saved_threads = get()
            set_(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                set_(_saved_threads)


def controls_blas_threads():
    """True when convkit can keep NumPy's BLAS single-threaded (OpenBLAS found)."""
    return _control is not None
