"""convkit's GEMMs leave NumPy's BLAS alone: no process-global setting changed, no library loaded by path,
and convkit and NumPy GEMMs running at the same time in different threads both give correct results."""
import pathlib
import threading

import numpy as np
import pytest

import convkit
from helpers import assert_close

PACKAGE = pathlib.Path(convkit.__file__).parent


def test_no_library_loaded_by_path():
    loaders = ("CDLL", "cdll", "LoadLibrary", "dlopen", "PyDLL")
    sources = [p.name for p in PACKAGE.rglob("*.py") if any(name in p.read_text() for name in loaders)]
    assert sources == []


def test_blas_thread_setting_untouched():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 9, 9, 32), np.float32), rng.standard_normal((3, 3, 32, 16), np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [(p["internal_api"], p["num_threads"]) for p in threadpoolctl.threadpool_info()]
        convkit.conv2d(x, w, algo="im2col")
        convkit.linear(x.reshape(81, 32), w.reshape(288, 16)[:32].T)
        convkit.matmul(x.reshape(81, 32), w.reshape(288, 16)[:32])
        after = [(p["internal_api"], p["num_threads"]) for p in threadpoolctl.threadpool_info()]
    assert after == before


def test_convkit_and_numpy_gemms_in_parallel_threads():
    """Four threads alternate convkit and NumPy products; every result is checked, every exception kept."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 150))
    expected = a @ b
    errors, results = [], []
    barrier = threading.Barrier(4)

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                results.append(convkit.matmul(a, b, num_threads=2) if i % 2 else np.matmul(a, b))
        except BaseException as exc:   # noqa: BLE001 (kept, then asserted empty)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 20
    for r in results:
        assert_close(r, expected, np.float64)
