"""Resources and limits: no memory growth over many calls, requests for terabytes fail fast with
MemoryError/ValueError before any kernel runs, thread counts out of range are refused, and ``out=``
arrays that are wrong are refused without touching ``out`` or the inputs.
"""
import ctypes
import gc
import inspect
import os

import numpy as np
import pytest

import convkit
from public_calls import CALLS

# --- memory does not grow over repeated calls ------------------------------------------------------

# Two measures after a warm-up (thread pools, caches, allocator arenas): the bytes malloc has handed out
# and not had back (glibc's mallinfo2: exact, counts every thread's arena, so the kernels' own buffers and
# NumPy's arrays alike), where leaking 128 bytes per call would show over the 300 repetitions; and the RSS
# the issue asks for, with a generous bound (freed memory stays resident, so RSS only catches big leaks).
HEAP_GROWTH_BOUND = 32 << 10
RSS_GROWTH_BOUND = 16 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2():
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    fn.restype = _MallInfo2
    return fn


MALLINFO2 = _mallinfo2()


def heap_bytes():
    """Bytes allocated by malloc and not freed, or 0 where glibc's mallinfo2 is missing."""
    if MALLINFO2 is None:
        return 0
    info = MALLINFO2()
    return info.uordblks + info.hblkhd


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc/self/statm")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under AddressSanitizer freed memory waits in its quarantine (scripts/sanitize.sh)")
@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
def test_repeated_calls_do_not_grow_memory(call):
    inputs = call.make(0)
    for _ in range(max(call.reps // 10, 2)):
        call.run(inputs)
    gc.collect()
    heap, rss = heap_bytes(), rss_bytes()
    for _ in range(call.reps):
        call.run(inputs)
    gc.collect()
    heap, rss = heap_bytes() - heap, rss_bytes() - rss
    assert heap < HEAP_GROWTH_BOUND, f"malloc'd memory grew by {heap / 1024:.0f} KiB over {call.reps} calls"
    assert rss < RSS_GROWTH_BOUND, f"RSS grew by {rss / 2**20:.1f} MiB over {call.reps} calls"


# --- requests for terabytes fail fast ----------------------------------------------------------------

def huge(shape, dtype=np.float32):
    """A read-only array of ``shape`` (terabytes) that costs one element: every stride 0."""
    return np.broadcast_to(np.zeros((), dtype), shape)


T = 1 << 20            # a side of 2**20: a 2**20 x 2**20 image is 4 TiB of float32 per channel
SMALL = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype(np.float32)
W3 = np.random.default_rng(1).standard_normal((3, 3, 2, 2)).astype(np.float32)
OFFSET_HUGE = huge((1, 2 * T + 1, 2 * T + 1, 18))
BN = (np.zeros(2, np.float32), np.ones(2, np.float32))

TERABYTES = [
    ("conv2d input", lambda: convkit.conv2d(huge((1, T, T, 2)), W3)),
    ("conv2d output by padding", lambda: convkit.conv2d(SMALL, W3, padding=T)),
    ("conv2d output by padding im2col", lambda: convkit.conv2d(SMALL, W3, padding=T, algo="im2col")),
    ("conv2d wide weight", lambda: convkit.conv2d(SMALL, huge((1, 1, 2, 1 << 40)))),
    ("conv2d output by padding winograd", lambda: convkit.conv2d(SMALL, W3, padding=T, algo="winograd")),
    ("conv2d winograd wide weight", lambda: convkit.conv2d(SMALL, huge((3, 3, 2, 1 << 38)), algo="winograd")),
    ("nn winograd model", lambda: convkit.nn.Conv2d(3, 4, 3, algo="winograd")(huge((1, T, T, 3)))),
    ("conv_transpose2d output by stride", lambda: convkit.conv_transpose2d(SMALL, W3, stride=T)),
    ("conv_transpose2d output by stride col2im",
     lambda: convkit.conv_transpose2d(SMALL, W3, stride=T, algo="col2im")),
    ("im2col input", lambda: convkit.im2col(huge((1, T, T, 1)), 3)),
    ("im2col output", lambda: convkit.im2col(np.zeros((1, 2048, 2048, 1), np.float32), 1024, padding=512)),
    ("col2im output", lambda: convkit.col2im(np.zeros((1, 2), np.float32), (T, T), 1, stride=T)),
    ("deform_conv2d input", lambda: convkit.deform_conv2d(huge((1, T, T, 2)), huge((1, T, T, 18)), W3,
                                                          padding=1)),
    ("deform_conv2d offset", lambda: convkit.deform_conv2d(SMALL, OFFSET_HUGE, W3, padding=T)),
    ("bilinear_sample points", lambda: convkit.bilinear_sample(SMALL, huge((1, 1 << 40, 2)))),
    ("relu", lambda: convkit.relu(huge((T, T)))),
    ("sigmoid", lambda: convkit.sigmoid(huge((T, T)))),
    ("batch_norm", lambda: convkit.batch_norm(huge((1, T, T, 2)), *BN)),
    ("batch_norm training", lambda: convkit.batch_norm(huge((1, T, T, 2)), None, None, training=True)),
    ("fold_batch_norm", lambda: convkit.fold_batch_norm(huge((T, T, 2, 2)), None, *BN, None, None)),
    ("max_pool2d", lambda: convkit.max_pool2d(huge((1, T, T, 2)), 2)),
    ("avg_pool2d", lambda: convkit.avg_pool2d(huge((1, T, T, 2)), 2)),
    ("global_avg_pool2d", lambda: convkit.global_avg_pool2d(huge((1, T, T, 2)))),
    ("linear input", lambda: convkit.linear(huge((T, T)), np.zeros((2, T), np.float32))),
    ("linear output", lambda: convkit.linear(np.zeros((T, 1), np.float32), huge((T, 1)))),
    ("matmul output", lambda: convkit.matmul(huge((T, 1)), huge((1, T)))),
    ("matmul reduction", lambda: convkit.matmul(huge((T, T)), huge((T, T)))),
    ("nn model", lambda: convkit.nn.Sequential(convkit.nn.Conv2d(3, 4, 3))(huge((1, T, T, 3)))),
    ("softmax", lambda: convkit.softmax(huge((T, T)))),
    ("grad conv2d_input", lambda: convkit.grad.conv2d_input((1, T, T, 2), W3, huge((1, T - 2, T - 2, 2)))),
    ("grad conv2d_weight", lambda: convkit.grad.conv2d_weight(huge((1, T, T, 2)), W3.shape,
                                                              huge((1, T - 2, T - 2, 2)))),
    ("grad max_pool2d", lambda: convkit.grad.max_pool2d(huge((1, T // 2, T // 2, 2)), huge((1, T, T, 2)), 2)),
]


@pytest.mark.parametrize("call", [t[1] for t in TERABYTES], ids=[t[0] for t in TERABYTES])
def test_terabyte_requests_raise_before_any_kernel_runs(call):
    with pytest.raises((MemoryError, ValueError)):
        call()


def test_summary_of_a_terabyte_input_needs_no_memory():
    """summary works on shapes alone: a 2**20 x 2**20 input is counted, not allocated."""
    net = convkit.nn.Sequential(convkit.nn.Conv2d(3, 4, 3, padding=1), convkit.nn.ReLU())
    rows = convkit.summary(net, (1, T, T, 3), file=open(os.devnull, "w"))
    assert rows[0]["output_shape"] == (1, T, T, 4)
    assert rows[0]["macs"] == T * T * 4 * 3 * 3 * 3


# --- geometry near the 64-bit limit ------------------------------------------------------------------

X3 = np.random.default_rng(1).standard_normal((2, 3, 3, 2)).astype(np.float32)
W2 = np.random.default_rng(2).standard_normal((2, 2, 2, 3)).astype(np.float32)


@pytest.mark.parametrize("big", [2**40, 2**61])
@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_conv2d_stride_and_padding_near_2_to_63(big, algo):
    """stride = padding = S >= H: a 3x3 output whose centre is the unpadded convolution's first pixel and
    whose other pixels see only padding, with indices up to 2*S computed on the way (64-bit, wrapping
    nowhere; S = 2**62 would reach 2**63 and is refused, see test_geometry_beyond_64_bits_raises)."""
    y = convkit.conv2d(X3, W2, stride=big, padding=big, algo=algo)
    expected = np.zeros((2, 3, 3, 3), np.float32)
    expected[:, 1, 1] = convkit.conv2d(X3, W2, algo=algo)[:, 0, 0]
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("big", [2**40, 2**61])
def test_other_kernels_with_stride_and_padding_near_2_to_63(big):
    cols = convkit.im2col(X3, 2, stride=big, padding=big)
    expected = np.zeros((2, 3, 3, 8), np.float32)
    expected[:, 1, 1] = convkit.im2col(X3, 2)[::4]
    np.testing.assert_array_equal(cols, expected.reshape(18, 8))
    offset = np.zeros((2, 3, 3, 8), np.float32)
    for algo in ("direct", "im2col"):   # (summed in another order than conv2d's: rounding differs)
        np.testing.assert_allclose(convkit.deform_conv2d(X3, offset, W2, stride=big, padding=big, algo=algo),
                                   convkit.conv2d(X3, W2, stride=big, padding=big), rtol=1e-6, atol=1e-6)
    # Transposed, stride = padding = S: a 2x2 output, all from input pixel (1, 1).
    wt = np.ascontiguousarray(W2.transpose(0, 1, 3, 2))           # (KH, KW, Cout, Cin=2)
    for algo in ("direct", "col2im"):
        y = convkit.conv_transpose2d(X3, wt, stride=big, padding=big, algo=algo)
        np.testing.assert_allclose(y, np.einsum("nc,hwoc->nhwo", X3[:, 1, 1], wt), rtol=1e-6)
    # Max pooling, 2x2 window, padding 1: one window, over the padding and pixel (0, 0).
    np.testing.assert_array_equal(convkit.max_pool2d(X3, 2, big, 1), X3[:, :1, :1])


@pytest.mark.parametrize("call", [
    lambda: convkit.conv2d(X3, W2, stride=2**63),
    lambda: convkit.conv2d(X3, W2, padding=2**63),
    lambda: convkit.conv2d(X3, W2, dilation=2**62, padding=2**62),
    lambda: convkit.conv2d(X3, W2, stride=2**62, padding=2**62),
    lambda: convkit.im2col(X3, 2, stride=2**64),
    lambda: convkit.col2im(np.zeros((1, 8), np.float32), (2**62, 2**62), 2, stride=2**63),
    lambda: convkit.conv_transpose2d(X3, W2.transpose(0, 1, 3, 2).copy(), stride=2**63),
    lambda: convkit.max_pool2d(X3, 2, 2**64),
    lambda: convkit.avg_pool2d(X3, 2**63),
], ids=["conv2d stride", "conv2d padding", "conv2d dilation", "conv2d stride and padding 2**62", "im2col", "col2im", "conv_transpose2d",
        "max_pool2d", "avg_pool2d"])
def test_geometry_beyond_64_bits_raises(call):
    with pytest.raises(ValueError):
        call()


# --- thread counts ------------------------------------------------------------------------------------

F32 = np.float32
COLS = np.random.default_rng(3).standard_normal((9, 8)).astype(F32)
WITH_THREADS = {
    "conv2d": lambda nt: convkit.conv2d(SMALL, W3, num_threads=nt),
    "conv_transpose2d": lambda nt: convkit.conv_transpose2d(SMALL, W3, num_threads=nt),
    "im2col": lambda nt: convkit.im2col(SMALL, 2, num_threads=nt),
    "col2im": lambda nt: convkit.col2im(COLS, (4, 4), 2, num_threads=nt),
    "deform_conv2d": lambda nt: convkit.deform_conv2d(SMALL, np.zeros((1, 2, 2, 18), F32), W3, num_threads=nt),
    "bilinear_sample": lambda nt: convkit.bilinear_sample(SMALL, np.zeros((1, 3, 2), F32), num_threads=nt),
    **{name: (lambda nt, name=name: getattr(convkit, name)(SMALL, num_threads=nt))
       for name in ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "global_avg_pool2d")},
    "batch_norm": lambda nt: convkit.batch_norm(SMALL, *BN, num_threads=nt),
    "max_pool2d": lambda nt: convkit.max_pool2d(SMALL, 2, num_threads=nt),
    "avg_pool2d": lambda nt: convkit.avg_pool2d(SMALL, 2, num_threads=nt),
    "linear": lambda nt: convkit.linear(SMALL.reshape(8, 4), W3.reshape(9, 4), W3.reshape(-1)[:9], num_threads=nt),
    **{name: (lambda nt, name=name: getattr(convkit, name)(np.ones((3, 4), F32), num_threads=nt))
       for name in ("softmax", "log_softmax")},
    "cross_entropy": lambda nt: convkit.cross_entropy(np.ones((3, 4), F32), np.arange(3), num_threads=nt),
    "matmul": lambda nt: convkit.matmul(np.ones((9, 5), F32), np.ones((5, 7), F32), num_threads=nt),
}


def test_every_function_with_num_threads_is_checked():
    with_param = {name for name in convkit.__all__ if callable(getattr(convkit, name))
                  and "num_threads" in inspect.signature(getattr(convkit, name)).parameters}
    assert with_param == set(WITH_THREADS)


@pytest.mark.parametrize("name", sorted(WITH_THREADS))
@pytest.mark.parametrize("bad", [0, -1, 1025, 100_000, 2**31, 2**64, 2.0, True, "2"])
def test_thread_counts_out_of_range_raise(name, bad):
    with pytest.raises(ValueError, match="num_threads"):
        WITH_THREADS[name](bad)


@pytest.mark.parametrize("bad", [0, -3, 1025, 100_000, 2.0])
def test_set_num_threads_out_of_range_raises(bad):
    before = convkit.get_num_threads()
    with pytest.raises(ValueError, match="expected n "):
        convkit.set_num_threads(bad)
    assert convkit.get_num_threads() == before


@pytest.mark.parametrize("name", sorted(WITH_THREADS))
def test_thread_counts_in_range_work(name):
    """Any count in range works and gives the same result up to rounding (the fuzz tests check this on
    random geometry for the convolutions)."""
    results = [WITH_THREADS[name](nt) for nt in (1, 2, 7)]
    assert np.any(results[0])   # random non-zero inputs: a wrong thread split would show
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-6, atol=1e-6)


# --- out= ----------------------------------------------------------------------------------------------

def conv_inputs(layout="NHWC"):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 6, 5, 4)).astype(F32), rng.standard_normal((3, 3, 4, 8)).astype(F32)
    b = rng.standard_normal(8).astype(F32)
    if layout == "NCHW":
        x, w = x.transpose(0, 3, 1, 2).copy(), w.transpose(3, 2, 0, 1).copy()
    return x, w, b


def conv_out_shape(layout):
    return (2, 6, 5, 8) if layout == "NHWC" else (2, 8, 6, 5)


def bad_conv_outs(layout, x, w, b):
    shape = conv_out_shape(layout)
    big = np.full((2 * np.prod(shape),), 5.0, F32)
    return [
        ("shape", np.full(shape[:-1] + (shape[-1] + 1,), 5.0, F32)),
        ("transposed shape", np.full(shape[::-1], 5.0, F32)),
        ("dtype float64", np.full(shape, 5.0, np.float64)),
        ("dtype int", np.full(shape, 5, np.int32)),
        ("Fortran order", np.asfortranarray(np.full(shape, 5.0, F32))),
        ("strided", big[::2].reshape(shape)),
        ("read-only", np.broadcast_to(np.float32(5), shape).copy()),
        ("overlaps x", None),
        ("overlaps weight", None),
        ("overlaps bias", None),
    ]


def _overlapping(what, x, w, b, shape):
    """An array of ``shape`` sharing memory with an input (a view of a buffer the input also views)."""
    source = {"x": x, "weight": w, "bias": b}[what]
    buffer = np.full(source.size + int(np.prod(shape)), 5.0, F32)
    buffer[:source.size] = source.ravel()
    return buffer[:source.size].reshape(source.shape), buffer[-int(np.prod(shape)) - 1:-1].reshape(shape)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("algo", ["direct", "im2col"])
@pytest.mark.parametrize("kind", [k for k, _ in bad_conv_outs("NHWC", *conv_inputs())])
def test_conv2d_bad_out_raises_and_changes_nothing(layout, algo, kind):
    x, w, b = conv_inputs(layout)
    shape = conv_out_shape(layout)
    out = dict(bad_conv_outs(layout, x, w, b))[kind]
    if kind == "read-only":
        out.setflags(write=False)
    if kind.startswith("overlaps"):
        name = kind.split()[1]
        if name == "x":
            x, out = _overlapping("x", x, w, b, shape)
        elif name == "weight":
            w, out = _overlapping("weight", x, w, b, shape)
        else:
            b, out = _overlapping("bias", x, w, b, shape)
    snapshot = [a.copy() for a in (x, w, b, out)]
    with pytest.raises(ValueError, match="expected out"):
        convkit.conv2d(x, w, b, padding=1, layout=layout, algo=algo, out=out)
    for before, after in zip(snapshot, (x, w, b, out)):
        assert before.tobytes() == after.tobytes()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("failure", ["padding", "groups", "bias", "activation", "weight dtype", "algo",
                                     "num_threads"])
def test_conv2d_failed_call_leaves_a_good_out_untouched(layout, failure):
    x, w, b = conv_inputs(layout)
    out = np.full(conv_out_shape(layout), 5.0, F32)
    kwargs = dict(padding=1, layout=layout, out=out)
    if failure == "padding":
        kwargs["padding"] = -1
    elif failure == "groups":
        kwargs["groups"] = 3
    elif failure == "bias":
        b = np.zeros(7, F32)
    elif failure == "activation":
        kwargs["activation"] = "gelu"
    elif failure == "weight dtype":
        w = w.astype(np.float64)
    elif failure == "algo":
        kwargs["algo"] = "fft"
    else:
        kwargs["num_threads"] = 0
    snapshot = [a.copy() for a in (x, w, b)]
    with pytest.raises((ValueError, TypeError)):
        convkit.conv2d(x, w, b, **kwargs)
    assert np.all(out == 5.0)
    for before, after in zip(snapshot, (x, w, b)):
        assert before.tobytes() == after.tobytes()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_conv2d_good_out_receives_the_result(layout, algo):
    x, w, b = conv_inputs(layout)
    out = np.full(conv_out_shape(layout), 5.0, F32)
    assert convkit.conv2d(x, w, b, padding=1, layout=layout, algo=algo, out=out) is out
    np.testing.assert_array_equal(out, convkit.conv2d(x, w, b, padding=1, layout=layout, algo=algo))


ACTIVATIONS = ["relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh"]


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["shape", "dtype", "int", "read-only", "list"])
def test_activation_bad_out_raises_and_changes_nothing(name, kind):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(F32)
    out = {"shape": np.full((3, 4, 6), 5.0, F32), "dtype": np.full(x.shape, 5.0),
           "int": np.full(x.shape, 5, np.int32), "read-only": np.full(x.shape, 5.0, F32),
           "list": [5.0] * x.size}[kind]
    if kind == "read-only":
        out.setflags(write=False)
    snapshot = x.copy(), np.array(out, copy=True)
    with pytest.raises((ValueError, TypeError), match="out"):
        getattr(convkit, name)(x, out=out)
    assert x.tobytes() == snapshot[0].tobytes()
    assert np.array(out).tobytes() == snapshot[1].tobytes()


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shift", [1, -1, 7])
def test_activation_out_partly_overlapping_x_is_documented_to_work(name, shift):
    """Activations document ``out`` overlapping ``x`` (in place or shifted) as supported: the result is
    then computed through a temporary, as if ``x`` had been copied first."""
    buffer = np.random.default_rng(0).standard_normal(64).astype(F32)
    x = buffer[8:40]
    expected = getattr(convkit, name)(x.copy())
    out = buffer[8 + shift:40 + shift]
    assert getattr(convkit, name)(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
