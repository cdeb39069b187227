"""convkit.set_autotune: measured algo="auto" choices, keyed by problem and thread count, thread-safe."""
import threading

import numpy as np
import pytest

import convkit
from convkit import autotune
from helpers import assert_close, nchw, oihw
from reference import conv2d_ref


@pytest.fixture
def tuning(monkeypatch):
    """Autotuning on with an empty cache; the timings counted per (problem, algorithm)."""
    timed = []
    original = autotune._time

    def counting(run, algo):
        timed.append(algo)
        return original(run, algo)

    monkeypatch.setattr(autotune, "_time", counting)
    autotune.clear_autotune_cache()
    convkit.set_autotune(True)
    yield timed
    convkit.set_autotune(False)
    autotune.clear_autotune_cache()


def _case(rng, n=2, h=9, w=8, cin=5, cout=6, dtype=np.float64):
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((3, 3, cin, cout)).astype(dtype)
    return x, wt, conv2d_ref(x, wt, None, (1, 1), (1, 1, 1, 1))


def test_off_by_default(rng):
    assert not autotune.autotune_enabled()
    autotune.clear_autotune_cache()
    x, w, _ = _case(rng)
    convkit.conv2d(x, w, padding=1)
    assert convkit.autotune_cache() == {}


def test_first_call_times_exact_algorithms_once(tuning, rng):
    x, w, expected = _case(rng)
    for _ in range(3):
        assert_close(convkit.conv2d(x, w, padding=1, num_threads=2), expected, np.float64)
    assert sorted(tuning) == sorted(autotune.EXACT_ALGORITHMS)      # timed on the first call only
    (problem, algo), = convkit.autotune_cache().items()
    assert algo in autotune.EXACT_ALGORITHMS                          # never Winograd
    assert problem == autotune.Problem((2, 9, 8, 5), (3, 3, 5, 6), (1, 1), (1, 1, 1, 1), (1, 1), 1,
                                       "float64", "NHWC", 2)


def test_explicit_algorithms_are_not_tuned(tuning, rng):
    x, w, _ = _case(rng)
    for algo in ("direct", "im2col", "winograd"):
        convkit.conv2d(x, w, padding=1, algo=algo)
    assert tuning == [] and convkit.autotune_cache() == {}


def test_key_covers_shape_threads_dtype_layout(tuning, rng):
    x, w, _ = _case(rng)
    convkit.conv2d(x, w, padding=1, num_threads=1)
    convkit.conv2d(x, w, padding=1, num_threads=2)                   # another thread count
    convkit.conv2d(x[:1], w, padding=1, num_threads=1)               # another shape
    convkit.conv2d(x, w, padding=2, num_threads=1)                   # another padding
    convkit.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1, num_threads=1)
    convkit.conv2d(nchw(x), oihw(w), padding=1, layout="NCHW", num_threads=1)
    convkit.conv2d(x, w, padding=1, num_threads=1)                   # seen: not timed again
    assert len(convkit.autotune_cache()) == 6
    assert len(tuning) == 6 * len(autotune.EXACT_ALGORITHMS)


def test_concurrent_first_calls_time_once(tuning, rng):
    x, w, expected = _case(rng, n=1, h=12, w=12, cin=8, cout=8)
    results, barrier = [None] * 6, threading.Barrier(6)

    def call(i):
        barrier.wait()
        results[i] = convkit.conv2d(x, w, padding=1, num_threads=1)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for y in results:
        assert_close(y, expected, np.float64)
    assert sorted(tuning) == sorted(autotune.EXACT_ALGORITHMS)
    assert len(convkit.autotune_cache()) == 1


def test_set_autotune_needs_a_bool():
    with pytest.raises(TypeError, match="expected enabled to be a bool"):
        convkit.set_autotune(1)
