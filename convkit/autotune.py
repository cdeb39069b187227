"""The measured choice of ``algo="auto"``, as ``torch.backends.cudnn.benchmark``: off by default.

With :func:`set_autotune(True) <set_autotune>`, the first ``conv2d(..., algo="auto")`` call of each
convolution problem (input shape, weight shape, stride, padding, dilation, groups, dtype, layout and
thread count) times every eligible exact algorithm on the call's own arrays (``"direct"`` and
``"im2col"``: never Winograd, which rounds differently) and remembers the fastest for the process; later
calls with the same problem use it without timing.  :func:`autotune_cache` shows what was chosen.

Thread-safe: concurrent first calls of one problem time it once (the others wait for the choice), and
different problems are timed independently.
"""
import threading
import time
from typing import NamedTuple, Tuple

#: What the autotuner times: the algorithms that compute the same sums as the reference in a
#: different order only.
EXACT_ALGORITHMS = ("direct", "im2col")

#: Timed calls per algorithm (after one warm-up call); the fastest counts.
REPEATS = 2

_enabled = False
_lock = threading.Lock()
_chosen = {}      # Problem -> algorithm name
_pending = {}     # Problem -> threading.Event set when its timing ends


class Problem(NamedTuple):
    """What an autotuned choice is keyed by."""
    input_shape: Tuple[int, ...]
    weight_shape: Tuple[int, ...]
    stride: Tuple[int, int]
    padding: Tuple[int, int, int, int]
    dilation: Tuple[int, int]
    groups: int
    dtype: str
    layout: str
    num_threads: int


def set_autotune(enabled):
    """Turn the measured choice of ``algo="auto"`` on or off (choices made so far are kept)."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"expected enabled to be a bool, got {type(enabled).__name__}")
    _enabled = enabled


def autotune_enabled():
    return _enabled


def autotune_cache():
    """{Problem: algorithm} chosen so far in this process (a copy)."""
    with _lock:
        return dict(_chosen)


def clear_autotune_cache():
    """Forget every choice (the next call of each problem is timed again)."""
    with _lock:
        _chosen.clear()


def tuned_algorithm(problem, run, fallback):
    """The remembered choice for ``problem``, timing ``run(algo)`` for each exact algorithm if none yet.

    ``run(algo)`` computes the call with ``algo`` (into its output, which the caller then overwrites);
    ``fallback`` is returned to a waiting thread if the timing thread failed.
    """
    with _lock:
        hit = _chosen.get(problem)
        if hit is not None:
            return hit
        event = _pending.get(problem)
        owner = event is None
        if owner:
            event = _pending[problem] = threading.Event()
    if not owner:
        event.wait()
        with _lock:
            return _chosen.get(problem, fallback)
    try:
        best = min(EXACT_ALGORITHMS, key=lambda algo: _time(run, algo))
        with _lock:
            _chosen[problem] = best
        return best
    finally:
        with _lock:
            del _pending[problem]
        event.set()


def _time(run, algo):
    run(algo)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(algo)
        best = min(best, time.perf_counter() - start)
    return best
