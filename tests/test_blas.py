"""convkit's GEMMs keep NumPy's OpenBLAS on one thread and restore its setting afterwards."""
import threading

import numpy as np
import pytest

import convkit
from convkit import _blas

pytestmark = pytest.mark.skipif(not _blas.controls_blas_threads(),
                                reason="NumPy's BLAS is not an OpenBLAS convkit can control")


def test_single_threaded_inside_and_restored_after():
    get, set_ = _blas._control
    before = get()
    set_(2)
    try:
        with _blas.single_threaded_blas():
            assert get() == 1
            with _blas.single_threaded_blas():     # nested sections keep it at one thread
                assert get() == 1
            assert get() == 1
        assert get() == 2
    finally:
        set_(before)


def test_concurrent_sections_restore_once(rng):
    """Calls from several threads overlap; the setting is restored when the last one ends."""
    get, set_ = _blas._control
    before = get()
    set_(2)
    x = rng.standard_normal((2, 9, 9, 64)).astype(np.float32)
    w = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    try:
        threads = [threading.Thread(target=convkit.conv2d, args=(x, w), kwargs={"algo": "im2col"})
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert get() == 2
    finally:
        set_(before)
