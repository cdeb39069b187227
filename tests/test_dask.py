"""convkit.dask: chunked results equal the in-memory calls, on a real 2-process LocalCluster.

Two kinds of equality tests: a few cases of each function computed on the cluster (one ``LocalCluster`` of
2 worker processes for the module: tasks, weights and errors really travel between processes), and
Hypothesis-drawn chunkings and geometries on the synchronous scheduler (the property "equal to the
in-memory call for every chunking", many cases, fast).  Bit for bit: ``algo="direct"`` and pooling.
"""
import logging
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import convkit  # noqa: E402
import convkit.dask as ckd  # noqa: E402
from convkit import nn  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, every worker's convkit on its share of the cores; not the
    default scheduler: the tests that take it compute on it explicitly (``run``).  One cluster for every
    test here, closed at the end of the module (not of the session: a live client's threads allocate in
    this process, and tests/test_resources.py measures that process's heap)."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    with distributed.Client(cluster, set_as_default=False) as c:
        ckd.share_cores(c)
        yield c
    cluster.close()


def run(client, *arrays):
    """Compute dask arrays on the cluster, together (one graph)."""
    return client.gather(client.compute(list(arrays)))


def synchronous():
    return dask.config.set(scheduler="synchronous")


def chunked(x, chunks):
    return da.from_array(x, chunks=chunks)


def random(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def chunkings(draw, size, most=4):
    """Chunk sizes along an axis of ``size``: up to ``most`` chunks cut anywhere (uneven, size-1 chunks)."""
    cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=most - 1)) if size > 1 else [])
    bounds = [0, *cuts, size]
    return tuple(b - a for a, b in zip(bounds, bounds[1:]))


def to_layout(shape_nhwc, layout):
    n, h, w, c = shape_nhwc
    return shape_nhwc if layout == "NHWC" else (n, c, h, w)


def spatial_chunks(layout, n_chunks, ch, cw, c):
    return (n_chunks, ch, cw, c) if layout == "NHWC" else (n_chunks, c, ch, cw)


def equal_or_refused(make, expected):
    """``make()`` computed equals ``expected`` bit for bit, or was refused for an empty output chunk."""
    try:
        y = make()
    except ValueError as error:
        assert "empty output chunk" in str(error)
        return False
    assert y.shape == expected.shape
    with synchronous():
        assert np.array_equal(y.compute(), expected)
    return True


# ---------------------------------------------------------------------------------------------------------
# On the cluster


def test_each_worker_uses_its_share_of_the_cores(client):
    cores = ckd.share_cores(client)
    threads = client.run(convkit.get_num_threads)
    assert set(threads) == set(cores) and len(threads) == 2
    machine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert all(t == max(machine // 2, 1) for t in threads.values())
    assert sum(threads.values()) <= max(machine, 2)


# (shape NHWC, kernel, stride, padding, dilation, groups, chunks along H and W)
CONV_CASES = [
    ((2, 17, 13, 4), (3, 3), 1, 1, 1, 1, (5, 13)),          # rows chunked, padding 1: the bench's pattern
    ((1, 16, 16, 3), (3, 3), 2, 1, 1, 1, (7, 9)),           # stride 2, chunks not multiples of it
    ((1, 15, 18, 4), (5, 3), (2, 1), "same", 1, 2, (8, 7)),  # non-square, "same", groups
    ((1, 20, 11, 2), (3, 2), 1, (2, 0), (3, 2), 1, (10, 6)),  # dilation, asymmetric kernel
]


def conv_case(rng, shape, kernel, stride, padding, dilation, groups, layout):
    """``(x, weight, (bias, stride, padding, dilation, groups))`` of a CONV_CASES row, 2 outputs per group."""
    c, cout = shape[3], 2 * groups
    x = random(rng, to_layout(shape, layout))
    weight = random(rng, (*kernel, c // groups, cout) if layout == "NHWC" else (cout, c // groups, *kernel))
    return x, weight, (random(rng, cout), stride, padding, dilation, groups)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_conv2d_equals_in_memory_bit_for_bit(client, layout):
    rng = np.random.default_rng(0)
    results, expected = [], []
    for shape, *geometry, (ch, cw) in CONV_CASES:
        x, weight, args = conv_case(rng, shape, *geometry, layout)
        expected.append(convkit.conv2d(x, weight, *args, layout=layout, algo="direct", activation="relu6"))
        results.append(ckd.conv2d(chunked(x, spatial_chunks(layout, 1, ch, cw, shape[3])), weight, *args,
                                  layout=layout, algo="direct", activation="relu6"))
        assert results[-1].shape == expected[-1].shape
    for case, y, e in zip(CONV_CASES, run(client, *results), expected):
        assert np.array_equal(y, e), case


def test_conv2d_other_algorithms_equal_up_to_rounding(client):
    rng = np.random.default_rng(1)
    results, expected = [], []
    for dtype in (np.float32, np.float64):
        x, weight = random(rng, (2, 14, 12, 8), dtype), random(rng, (3, 3, 8, 16), dtype)
        for algo in ("auto", "im2col"):
            expected.append(convkit.conv2d(x, weight, None, 1, 1, algo=algo))
            results.append(ckd.conv2d(chunked(x, (1, 7, 12, 8)), weight, None, 1, 1, algo=algo))
    for y, e in zip(run(client, *results), expected):
        tol = 1e-5 if e.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, e, rtol=tol, atol=tol)


# (shape NHWC, kernel, stride, padding, output_padding, dilation, groups, chunks along H and W)
TRANSPOSED_CASES = [
    ((2, 9, 8, 4), (4, 4), 2, 1, 0, 1, 1, (3, 5)),
    ((1, 7, 10, 4), (3, 3), 2, 1, 1, 1, 2, (4, 6)),
    ((1, 6, 6, 2), (1, 1), 3, 0, 2, 1, 1, (3, 3)),   # stride beyond the kernel: gaps of bias only
]


def test_conv_transpose2d_equals_in_memory_bit_for_bit(client):
    rng = np.random.default_rng(2)
    results, expected = [], []
    for shape, kernel, stride, padding, output_padding, dilation, groups, (ch, cw) in TRANSPOSED_CASES:
        x = random(rng, shape)
        weight = random(rng, (*kernel, 3, shape[3]))    # (KH, KW, Cout/groups, Cin)
        args = (random(rng, 3 * groups), stride, padding, output_padding, groups, dilation)
        expected.append(convkit.conv_transpose2d(x, weight, *args, algo="direct"))
        results.append(ckd.conv_transpose2d(chunked(x, (1, ch, cw, shape[3])), weight, *args, algo="direct"))
        assert results[-1].shape == expected[-1].shape
    for case, y, e in zip(TRANSPOSED_CASES, run(client, *results), expected):
        assert np.array_equal(y, e), case


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_pooling_equals_in_memory_bit_for_bit(client, layout):
    rng = np.random.default_rng(3)
    x = random(rng, to_layout((2, 15, 14, 6), layout))
    xd = chunked(x, spatial_chunks(layout, 1, 8, 7, 3))   # channel chunks kept
    results, expected = [], []
    for k, s, p, ceil_mode in (((3, 3), 2, 1, True), ((2, 3), (2, 1), (1, 0), False)):
        expected.append(convkit.max_pool2d(x, k, s, p, 1, ceil_mode, layout=layout))
        results.append(ckd.max_pool2d(xd, k, s, p, 1, ceil_mode, layout=layout))
        expected.append(convkit.avg_pool2d(x, k, s, p, ceil_mode, False, layout=layout))
        results.append(ckd.avg_pool2d(xd, k, s, p, ceil_mode, False, layout=layout))
    for i, (y, e) in enumerate(zip(run(client, *results), expected)):
        assert np.array_equal(y, e), i


def test_deform_conv2d_chunks_space_with_offset_and_mask_or_the_batch(client):
    rng = np.random.default_rng(4)
    x, weight = random(rng, (4, 17, 15, 4)), random(rng, (3, 3, 4, 6))
    offset = np.clip(3 * random(rng, (4, 9, 8, 2 * 2 * 9)), -2.5, 2.5)   # 2 offset groups, samples far away
    mask = rng.random((4, 9, 8, 2 * 9)).astype(np.float32)
    expected = convkit.deform_conv2d(x, offset, weight, None, 2, 1, 1, mask, algo="direct")
    bound = 2.5
    # Spatial chunks: output rows and columns of the input chunks (8, 9) x (7, 8) at stride 2: (4, 5) x (4, 4).
    y = ckd.deform_conv2d(chunked(x, (2, 8, 7, 4)), chunked(offset, (2, (4, 5), 4, 36)), weight, None, 2, 1, 1,
                          chunked(mask, (2, (4, 5), 4, 18)), offset_bound=bound, algo="direct")
    assert y.chunks[:3] == ((2, 2), (4, 5), (4, 4))
    with pytest.warns(ckd.RechunkWarning, match="rechunking offset once"):
        y_nchw = ckd.deform_conv2d(chunked(x.transpose(0, 3, 1, 2), (1, 4, 6, 5)),
                                   chunked(offset.transpose(0, 3, 1, 2), 3), weight.transpose(3, 2, 0, 1), None,
                                   2, 1, 1, chunked(mask.transpose(0, 3, 1, 2), (1, 18, 3, (3, 2, 3))), offset_bound="compute",
                                   layout="NCHW", algo="direct")
    with pytest.warns(ckd.RechunkWarning, match="anywhere in the image"):
        y_batch = ckd.deform_conv2d(chunked(x, (2, 4, 15, 4)), chunked(offset, (1, 2, 8, 36)), weight, None, 2, 1,
                                    1, chunked(mask, (3, 9, 8, 18)), algo="direct")
    assert y_batch.chunks[0] == (2, 2)
    results = run(client, y, y_nchw, y_batch)
    assert np.array_equal(results[0], expected)
    assert np.array_equal(results[1], expected.transpose(0, 3, 1, 2))
    assert np.array_equal(results[2], expected)
    # A bound the offsets exceed is found where they are, on a worker: an error, never a wrong answer.
    y = ckd.deform_conv2d(chunked(x, (2, 8, 7, 4)), chunked(offset, (2, (4, 5), 4, 36)), weight, None, 2, 1, 1,
                          offset_bound=1.5)
    with pytest.raises(ValueError, match=r"at most offset_bound=1.5 pixels in magnitude, got [\d.]+ in output"):
        client.compute(y).result(timeout=60)


def test_batch_norm_and_activations_on_any_chunking(client):
    rng = np.random.default_rng(5)
    x = random(rng, (3, 6, 7, 8))
    xd = chunked(x, (2, 4, 7, 3))
    stats = [random(rng, 8), rng.random(8).astype(np.float32) + 0.5, random(rng, 8), random(rng, 8)]
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    expected = [convkit.batch_norm(x, *stats, 1e-3),
                convkit.batch_norm(xn, stats[0], stats[1], None, stats[3], layout="NCHW")]
    results = [ckd.batch_norm(xd, *stats, 1e-3),
               ckd.batch_norm(chunked(xn, (1, 5, 3, 7)), da.from_array(stats[0], 3), stats[1], None, stats[3],
                              layout="NCHW")]
    activations = (("relu", {}), ("relu6", {}), ("leaky_relu", {"negative_slope": 0.2}),
                   ("elu", {"alpha": 0.5}), ("sigmoid", {}), ("tanh", {}))
    for name, params in activations:
        expected.append(getattr(convkit, name)(x, **params))
        results.append(getattr(ckd, name)(xd, **params))
    for i, (y, e) in enumerate(zip(run(client, *results), expected)):
        assert np.array_equal(y, e), i


def test_predict_maps_a_model_over_batch_chunks(client):
    rng = np.random.default_rng(6)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.GlobalAvgPool2d(), nn.Linear(8, 5))
    for name, p in model.named_parameters():
        p[...] = random(rng, p.shape)
    x = random(rng, (5, 12, 10, 3))
    y = ckd.predict(model, chunked(x, (2, 12, 10, 3)))
    assert y.shape == (5, 5) and y.chunks == ((2, 2, 1), (5,))
    np.testing.assert_allclose(run(client, y)[0], model(x), rtol=1e-5, atol=1e-5)
    graph = dict(y.__dask_graph__())
    assert sum(1 for key in graph if str(key[0] if isinstance(key, tuple) else key)
               .startswith("convkit-model-")) == 1


def test_weights_are_one_graph_key_not_copied_into_each_task(client):
    rng = np.random.default_rng(7)
    x = chunked(random(rng, (1, 64, 8, 64)), (1, 4, 8, 64))    # 16 chunks
    weight = random(rng, (3, 3, 64, 256))                         # 576 KiB
    y = ckd.conv2d(x, weight, None, 1, 1)
    assert len(cloudpickle.dumps(dict(y.__dask_graph__()))) < 2 * weight.nbytes + x.nbytes
    # A weight given as a dask array: merged into one chunk, that single key feeding every conv task.
    wd = chunked(weight, (3, 3, 16, 256)) * 1
    y = ckd.conv2d(x, wd, None, 1, 1)
    graph = y.__dask_graph__()
    deps = graph.get_all_dependencies()
    conv_keys = [k for k in graph if k[0] == y.name]
    weight_keys = set.intersection(*(set(d for d in deps[k] if str(d[0]).startswith("rechunk"))
                                     for k in conv_keys))
    assert len(conv_keys) == 16 and len(weight_keys) == 1
    # algo="direct": the whole map has enough tiles for auto's Winograd, its 4-row chunks do not
    np.testing.assert_allclose(run(client, y)[0], convkit.conv2d(x.compute(), weight, None, 1, 1, algo="direct"),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_conv2d_zarr_equals_in_memory_bit_for_bit(client, tmp_path, layout):
    """Zarr to Zarr in fused tasks: every case of CONV_CASES, source chunked along the batch and rows,
    runs of 1 and 2 output chunks per task; the target is a plain Zarr array chunked like the source."""
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(10)
    writes, expected, targets = [], [], []
    for i, (shape, *geometry, (ch, _)) in enumerate(CONV_CASES):
        x, weight, args = conv_case(rng, shape, *geometry, layout)
        expected.append(convkit.conv2d(x, weight, *args, layout=layout, algo="direct", activation="relu6"))
        source = zarr.create_array(tmp_path / f"x{i}.zarr", shape=x.shape, dtype=x.dtype,
                                   chunks=spatial_chunks(layout, 1, ch, shape[2], shape[3]))
        source[...] = x
        target, write = ckd.conv2d_zarr(source, tmp_path / f"y{i}.zarr", weight, *args, layout=layout,
                                        algo="direct", activation="relu6", chunks_per_task=1 + i % 2,
                                        compute=False)
        assert target.shape == expected[-1].shape and target.chunks[0] == 1
        writes.append(write)
        targets.append(tmp_path / f"y{i}.zarr")
    run(client, *writes)
    for case, path, e in zip(CONV_CASES, targets, expected):
        assert np.array_equal(zarr.open_array(path, mode="r")[...], e), case


def test_conv2d_zarr_refuses_chunks_that_split_rows(tmp_path):
    zarr = pytest.importorskip("zarr")
    source = zarr.create_array(tmp_path / "x.zarr", shape=(1, 8, 8, 4), chunks=(1, 4, 4, 4), dtype=np.float32)
    weight = np.zeros((3, 3, 4, 2), np.float32)
    with pytest.raises(ValueError, match=r"expected source chunks to hold whole rows .* axes \[2\] are split"):
        ckd.conv2d_zarr(source, tmp_path / "y.zarr", weight)
    with pytest.raises(ValueError, match="expected chunks_per_task to be a positive integer, got 0"):
        ckd.conv2d_zarr(source, tmp_path / "y.zarr", weight, chunks_per_task=0)
    with pytest.raises(ValueError, match="expected groups to divide the input channels 4"):
        ckd.conv2d_zarr(source, tmp_path / "y.zarr", np.zeros((3, 3, 1, 3), np.float32), groups=3)


def test_a_failing_task_raises_the_workers_exception(client):
    x = chunked(np.zeros((2, 8, 8, 3), np.float32), (1, 8, 8, 3))
    lying = x.map_blocks(lambda b: b.astype(np.int16), dtype=np.float32)   # wrong dtype, found on a worker
    y = ckd.conv2d(lying, np.zeros((3, 3, 3, 2), np.float32))
    with pytest.raises(TypeError, match="expected x to have dtype float32 or float64, got int16"):
        client.compute(y).result(timeout=60)


# ---------------------------------------------------------------------------------------------------------
# Every chunking: Hypothesis-drawn chunks and geometries, synchronous scheduler


@given(data=st.data(), layout=st.sampled_from(["NHWC", "NCHW"]), kernel=st.tuples(st.integers(1, 4),
       st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), groups=st.sampled_from([1, 2]),
       padding=st.sampled_from([0, 1, (2, 1), "same", "valid"]))
def test_conv2d_every_chunking(data, layout, kernel, stride, dilation, groups, padding):
    h, w = data.draw(st.integers(8, 20)), data.draw(st.integers(6, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    c, cout = 2 * groups, 2 * groups
    x = random(rng, to_layout((2, h, w, c), layout))
    weight = random(rng, (*kernel, 2, cout) if layout == "NHWC" else (cout, 2, *kernel))
    args = (random(rng, cout), stride, padding, dilation, groups)
    try:
        expected = convkit.conv2d(x, weight, *args, layout=layout, algo="direct")
    except ValueError:   # empty output: kernel larger than the padded image
        return
    chunks = spatial_chunks(layout, 1, data.draw(chunkings(h)), data.draw(chunkings(w, 3)), c)
    equal_or_refused(lambda: ckd.conv2d(chunked(x, chunks), weight, *args, layout=layout, algo="direct"),
                     expected)


@given(data=st.data(), kernel=st.tuples(st.integers(1, 4), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 2)), dilation=st.tuples(st.integers(1, 2),
       st.integers(1, 2)), padding=st.tuples(st.integers(0, 2), st.integers(0, 1)), groups=st.sampled_from([1, 2]))
def test_conv_transpose2d_every_chunking(data, kernel, stride, dilation, padding, groups):
    h, w = data.draw(st.integers(3, 12)), data.draw(st.integers(3, 9))
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = random(rng, (1, h, w, 2 * groups))
    weight = random(rng, (*kernel, 2, 2 * groups))    # (KH, KW, Cout/groups, Cin)
    args = (random(rng, 2 * groups), stride, padding, output_padding, groups, dilation)
    try:
        expected = convkit.conv_transpose2d(x, weight, *args, algo="direct")
    except ValueError:   # empty output, or output_padding not below stride or dilation
        return
    chunks = (1, data.draw(chunkings(h)), data.draw(chunkings(w, 3)), 2 * groups)
    equal_or_refused(lambda: ckd.conv_transpose2d(chunked(x, chunks), weight, *args, algo="direct"), expected)


@given(data=st.data(), layout=st.sampled_from(["NHWC", "NCHW"]), kernel=st.tuples(st.integers(1, 3),
       st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), max_pool=st.booleans(), dilation=st.integers(1, 2))
def test_pooling_every_chunking(data, layout, kernel, stride, ceil_mode, count_include_pad, max_pool,
                                dilation):
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
    h, w = data.draw(st.integers(4, 16)), data.draw(st.integers(4, 10))
    x = random(np.random.default_rng(data.draw(st.integers(0, 2**16))), to_layout((1, h, w, 3), layout))
    chunks = spatial_chunks(layout, 1, data.draw(chunkings(h)), data.draw(chunkings(w, 3)), 3)
    if max_pool:
        args = (kernel, stride, padding, dilation, ceil_mode)
        in_memory, chunked_fn = convkit.max_pool2d, ckd.max_pool2d
    else:
        args = (kernel, stride, padding, ceil_mode, count_include_pad)
        in_memory, chunked_fn = convkit.avg_pool2d, ckd.avg_pool2d
    try:
        expected = in_memory(x, *args, layout=layout)
    except ValueError:
        return
    equal_or_refused(lambda: chunked_fn(chunked(x, chunks), *args, layout=layout), expected)


@given(data=st.data(), layout=st.sampled_from(["NHWC", "NCHW"]), kernel=st.tuples(st.integers(1, 3),
       st.integers(1, 3)), stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), padding=st.sampled_from([0, 1, (2, 0), "same"]),
       bound=st.sampled_from([0.0, 0.5, 1.0, 2.5]), modulated=st.booleans())
def test_deform_conv2d_every_chunking(data, layout, kernel, stride, dilation, padding, bound, modulated):
    """Spatial chunks of x with offset and mask chunked like the output, bit for bit in float32 (offsets
    drawn up to the bound, and NaN: a non-finite offset samples zero wherever its chunk is)."""
    h, w = data.draw(st.integers(6, 16)), data.draw(st.integers(5, 10))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x, weight = random(rng, (1, h, w, 4)), random(rng, (*kernel, 4, 3))
    try:
        hout, wout = convkit.conv2d(x, weight, None, stride, padding, dilation).shape[1:3]
    except ValueError:   # empty output
        return
    taps = kernel[0] * kernel[1]
    offset = rng.uniform(-bound, bound, (1, hout, wout, 2 * 2 * taps)).astype(np.float32)  # 2 offset groups
    offset[rng.random(offset.shape) < 0.05] = np.nan
    mask = (rng.random((1, hout, wout, 2 * taps)) - 0.2).astype(np.float32) if modulated else None
    expected = convkit.deform_conv2d(x, offset, weight, None, stride, padding, dilation, mask, algo="direct")
    rows, cols = data.draw(chunkings(h)), data.draw(chunkings(w, 3))
    if layout == "NCHW":
        x, offset, expected = (a.transpose(0, 3, 1, 2) for a in (x, offset, expected))
        mask = None if mask is None else mask.transpose(0, 3, 1, 2)
        weight = weight.transpose(3, 2, 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ckd.RechunkWarning)   # offset and mask rechunked like the output
        equal_or_refused(lambda: ckd.deform_conv2d(
            chunked(x, spatial_chunks(layout, 1, rows, cols, 4)), chunked(offset, 4), weight, None, stride,
            padding, dilation, None if mask is None else chunked(mask, 4), offset_bound=bound, layout=layout,
            algo="direct"), expected)


def test_every_equal_row_chunking_of_a_strided_dilated_conv(rng):
    """Every chunking of the rows into equal chunks (the last one shorter): equal to the in-memory call,
    or refused when a chunk would have no output rows (the last chunk holding no window's first row)."""
    x, weight = random(rng, (1, 23, 9, 3)), random(rng, (3, 2, 3, 4))
    expected = convkit.conv2d(x, weight, None, (2, 1), (2, 1), (2, 1), algo="direct")
    computed = sum(equal_or_refused(lambda: ckd.conv2d(chunked(x, (1, rows, 4, 3)), weight, None, (2, 1), (2, 1),
                                                       (2, 1), algo="direct"), expected)
                   for rows in range(1, 13))
    assert computed >= 10


# ---------------------------------------------------------------------------------------------------------
# Arguments and errors (no computation)


def test_channel_chunks_are_merged_once_with_a_warning_or_refused_over_budget():
    rng = np.random.default_rng(8)
    x, weight = random(rng, (1, 16, 16, 8)), random(rng, (3, 3, 8, 4))
    with pytest.warns(ckd.RechunkWarning, match=r"channels \(chunks \(4, 4\)\)"):
        y = ckd.conv2d(chunked(x, (1, 8, 16, 4)), weight, None, 1, 1, algo="direct")
    with synchronous():
        assert np.array_equal(y.compute(), convkit.conv2d(x, weight, None, 1, 1, algo="direct"))
    with dask.config.set({"array.chunk-size": "2KiB"}):
        with pytest.raises(ValueError, match=r"4.00 kiB .* above the chunk budget 2.00 kiB"):
            ckd.conv2d(chunked(x, (1, 8, 16, 4)), weight, None, 1, 1)


def test_an_empty_output_chunk_is_refused_with_the_numbers():
    x = chunked(np.zeros((2, 9, 8, 3), np.float32), (1, (4, 4, 1), 8, 3))
    weight = np.zeros((3, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"chunk 2 \(input height 8:9, 1 pixels\) would give an empty "
                                         r"output chunk with kernel 3, stride 2, dilation 1, padding 0"):
        ckd.conv2d(x, weight, None, 2)
    with pytest.raises(ValueError, match=r"chunk 1 \(input height 8:9, 1 pixels\) would give an empty"):
        ckd.max_pool2d(chunked(np.zeros((1, 9, 8, 3), np.float32), (1, (8, 1), 8, 3)), 2)


def test_in_memory_input_is_pointed_to_convkit():
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match=r"dask.array.Array, got ndarray; .* call convkit.conv2d directly"):
        ckd.conv2d(x, np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(TypeError, match="convkit.relu directly"):
        ckd.relu(x)
    with pytest.raises(TypeError, match="convkit.max_pool2d directly"):
        ckd.max_pool2d(x, 2)
    with pytest.raises(TypeError, match=r"call model\(x\) directly"):
        ckd.predict(nn.ReLU(), x)


def test_bad_arguments_get_the_in_memory_messages():
    offset = chunked(np.zeros((1, 8, 8, 18), np.float32), 4)
    for bound in (-1, float("inf"), "max", True):
        with pytest.raises(ValueError, match=r"expected offset_bound to be a finite number >= 0, 'compute' or None"):
            ckd.deform_conv2d(chunked(np.zeros((1, 8, 8, 4), np.float32), 4), offset,
                              np.zeros((3, 3, 4, 2), np.float32), padding=1, offset_bound=bound)
    x = chunked(np.zeros((1, 8, 8, 4), np.float32), 4)
    with pytest.raises(ValueError, match="expected groups to divide the input channels 4"):
        ckd.conv2d(x, np.zeros((3, 3, 1, 3), np.float32), groups=3)
    with pytest.raises(ValueError, match="expected a non-empty output"):
        ckd.conv2d(x, np.zeros((9, 9, 4, 1), np.float32))
    with pytest.raises(TypeError, match="expected x to have dtype float32 or float64"):
        ckd.relu(x.astype(np.int32))
    with pytest.raises(ValueError, match="training=False"):
        ckd.batch_norm(x, None, None, training=True)
