"""Inputs are never modified unless documented (``out=``, in-place activations, batch norm's running
statistics), and read-only or non-contiguous inputs work.

Every public function (tests/public_calls.py) is called on writeable inputs, which must stay as they were
bit for bit (a network's parameters and buffers too), while the inputs it documents modifying must change;
then on read-only inputs and on non-contiguous copies, which must give the same result bit for bit.
"""
import numpy as np
import pytest

import convkit
from public_calls import CALLS, PUBLIC, assert_identical


def test_every_public_function_has_a_call():
    assert set(PUBLIC) - {c.function for c in CALLS} == set()


def _state(module):
    return {key: value.copy() for key, value in module.state_dict().items()}


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
def test_inputs_are_left_as_they_were(call):
    inputs = call.make(0)
    arrays = {name: v.copy() for name, v in inputs.items() if isinstance(v, np.ndarray)}
    states = {name: _state(v) for name, v in inputs.items() if isinstance(v, convkit.nn.Module)}
    call.run(inputs)
    for name, before in arrays.items():
        if name in call.mutates:
            assert inputs[name].tobytes() != before.tobytes(), f"{name} was documented to change"
        else:
            assert inputs[name].tobytes() == before.tobytes(), f"{name} was modified"
    for name, before in states.items():
        assert_identical(_state(inputs[name]), before)


def _strided(a):
    """A non-contiguous array with ``a``'s values (every other element of a buffer twice as long)."""
    if a.ndim == 0 or a.size == 0:
        return a
    buffer = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    view = buffer[..., ::2]
    view[...] = a
    assert not view.flags.c_contiguous
    return view


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
@pytest.mark.parametrize("kind", ["read_only", "non_contiguous"])
def test_read_only_and_non_contiguous_inputs_give_the_same_result(call, kind):
    expected = call.run(call.make(0))
    inputs = call.make(0)
    for name, value in inputs.items():
        if isinstance(value, np.ndarray) and name not in call.mutates:
            if kind == "read_only":
                value.setflags(write=False)
            else:
                inputs[name] = _strided(value)
    assert_identical(call.run(inputs), expected)
