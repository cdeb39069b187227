"""Calls from 8 Python threads at once give exactly the results of serial calls.

The kernels release the GIL and run their own OpenMP teams, so several Python threads really do run
kernels at the same time here.  Every public function (tests/public_calls.py) is called by 8 threads
started together through a barrier, each repeating the call, on inputs shared by all threads (made
read-only) and on each thread's own inputs; every result must equal the serial one bit for bit.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import convkit
from public_calls import CALLS, assert_identical

THREADS = 8
ROUNDS = 2
CONCURRENT = [c for c in CALLS if c.threads]


def rounds(call):
    """Calls per thread: ROUNDS, once for the whole networks."""
    return ROUNDS if call.reps >= 100 else 1


def run(call, inputs):
    """The call's result and the final state of the inputs it modifies, on private copies of those."""
    args = dict(inputs)
    for name in call.mutates:
        args[name] = inputs[name].copy()
    return call.run(args), {name: args[name] for name in call.mutates}


def read_only(inputs, call):
    for name, value in inputs.items():
        if isinstance(value, np.ndarray) and name not in call.mutates:
            value.setflags(write=False)
    return inputs


def together(work):
    """``work(i)`` in THREADS threads released at the same moment; their return values."""
    barrier = threading.Barrier(THREADS)

    def start(i):
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(start, range(THREADS)))


@pytest.mark.parametrize("call", CONCURRENT, ids=lambda c: c.id)
def test_shared_read_only_inputs(call):
    inputs = read_only(call.make(0), call)
    expected = run(call, inputs)
    for net in (v for v in inputs.values() if isinstance(v, convkit.nn.Module)):
        net.load_state_dict(net.state_dict())   # so the threads' first calls rebuild its caches together
    for results in together(lambda i: [run(call, inputs) for _ in range(rounds(call))]):
        for result in results:
            assert_identical(result, expected)


@pytest.mark.parametrize("call", CONCURRENT, ids=lambda c: c.id)
def test_own_inputs_per_thread(call):
    inputs = [call.make(seed) for seed in range(1, THREADS + 1)]
    expected = [run(call, inp) for inp in inputs]
    results = together(lambda i: [run(call, inputs[i]) for _ in range(rounds(call))])
    for i, thread_results in enumerate(results):
        for result in thread_results:
            assert_identical(result, expected[i])
