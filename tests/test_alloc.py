"""convkit's outputs start on a 64-byte boundary (convkit/_alloc.py)."""
import numpy as np
import pytest

import convkit
from convkit import _alloc


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (2, 7, 9, 3), (1, 0, 4, 4), (4096, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_is_aligned_c_contiguous_and_writable(shape, dtype):
    for _ in range(5):     # several allocations: malloc returns different offsets
        a = _alloc.empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or a.ctypes.data % _alloc.ALIGNMENT == 0   # (no data: NumPy's own pointer)
        a[...] = 1
        assert a.sum() == a.size


def test_impossible_size_raises_like_numpy():
    with pytest.raises((MemoryError, ValueError)):
        _alloc.empty((2 ** 40, 2 ** 40), np.float32)


def test_outputs_of_the_layer_functions_are_aligned(rng):
    x = rng.standard_normal((1, 37, 29, 24)).astype(np.float32)     # sizes that leave malloc's offsets
    w = rng.standard_normal((3, 3, 24, 40)).astype(np.float32)
    outputs = [convkit.conv2d(x, w, padding=1, algo=algo) for algo in ("direct", "im2col", "winograd")]
    outputs.append(convkit.conv2d(x, rng.standard_normal((3, 3, 1, 24)).astype(np.float32), padding=1, groups=24))
    outputs.append(convkit.conv_transpose2d(x, rng.standard_normal((4, 4, 8, 24)).astype(np.float32), stride=2))
    outputs.append(convkit.max_pool2d(x, 2))
    outputs.append(convkit.avg_pool2d(x, 3, 2, 1))
    outputs.append(convkit.linear(x.reshape(-1, 24), w[0, 0].T.copy()))
    for y in outputs:
        assert y.ctypes.data % 64 == 0


def test_outputs_of_prepared_network_layers_are_aligned(rng):
    """The evaluation-mode path of convkit.nn (prepared convolutions, fused shortcut) allocates the same way."""
    block = convkit.nn.InvertedResidual(24, 24, 1, 6, rng=rng)
    x = rng.standard_normal((1, 64, 61, 24)).astype(np.float32)    # 375 KB: malloc maps pages, 16 bytes in
    for _ in range(3):   # the first call plans, the next ones run the prepared convolutions
        assert block(x).ctypes.data % 64 == 0
