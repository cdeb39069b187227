"""Dask: convolution from a Zarr array on disk to a Zarr array on disk, on a 2-process LocalCluster.

The layer: 3x3 convolution, 16 -> 16 channels, padding 1, float32, NHWC, ``algo="auto"`` (direct here).

* Table row (interleaved rounds): a 1x2048x2048x16 crop, "in memory" (``convkit.conv2d`` in this process,
  ``--threads`` threads, input already in memory, output not written anywhere) against the same crop read
  from Zarr in chunks of 64 rows, computed on the cluster's 2 worker processes of 1 thread each (convkit
  on 1 thread in each) and written back to Zarr, two ways: "dask conv2d_zarr" (``convkit.dask.conv2d_zarr``:
  fused tasks, buffers reused) and "dask map_overlap + to_zarr" (``convkit.dask.conv2d`` on
  ``da.from_zarr``, then ``da.to_zarr``).  Same pixels, so "x best" is Dask's cost per pixel: I/O, halos,
  scheduling.
* Out of core, measured before the rounds and printed above the table, with Dask's progress bar: the
  issue's 1x8192x8192x16 image (4 GiB; 1x4096x4096x16 with ``--quick``) from Zarr to Zarr with
  ``conv2d_zarr``, twice on one fresh cluster, each run's nanoseconds per pixel over those of the in-memory
  crop timed just before and just after it (in memory, run, in memory, run, in memory: a drifting machine
  slows both sides of a ratio), the median of the two ratios; the workers' CPU time per pixel over the
  in-memory call's on one thread; the bare file I/O under it measured without Zarr (``_bare_io``); every
  worker's peak resident memory (VmHWM of the worker process, read at the end; see ``_peak_rss``).

Chunks of 64 full-width rows (32 MiB), the same in the Zarr arrays and in Dask, no compression (random data
would not compress, and a codec costs CPU the 2 cores do not have).  On a quarter of the image a worker
peaked at 0.65-0.88 GiB with 256-row chunks (128 MiB: the chunk, the neighbours its halo rows were cut from
as views, the concatenated copy, the output, the bytes Zarr encodes), 0.37-0.44 GiB with 64 rows, 0.31-0.34
GiB with 64 rows and the halo rows copied (convkit.dask._halo), 0.33 GiB with conv2d_zarr.

Where the time goes (AMD EPYC Zen 4, 2 cores, machine shared with other jobs, load 6-8; CPU time per pixel
of one process running conv2d_zarr's tasks on the 8192x8192 image with ``MALLOC_TRIM_THRESHOLD_=65536`` as
Dask's nanny sets it): the convolution 121 ns, Zarr reads 77 ns, Zarr writes 149 ns.  Both are the cost of
memory this VM has not used lately, not of Zarr's Python: a read is ``Path.read_bytes`` into a fresh
32 MiB bytes object (above glibc's largest mmap threshold, so mapped afresh: 8192 page faults per chunk,
~1.7 us each on this Firecracker VM, whose kernel hands freed memory back to the host,
``page_reporting_order=11``), then a copy into ``out``; a write is a new file (temporary, then renamed),
so every output byte lands on a page the page cache takes from free memory.  Bare, without Zarr:
reading a chunk file into a reused buffer 10-16 ns per pixel; writing 64 new 32 MiB files 25 ns per pixel
at the median but 93 ns on average (some files cost 10x, under reclaim).  With 16 MiB chunks and Dask's
``MALLOC_TRIM_THRESHOLD_`` raised above them (with ``MALLOC_MMAP_THRESHOLD_`` too), glibc reuses the read
buffers and the read's page faults vanish (reads 47 -> 20 ns per pixel in one process), but on the cluster
the workers' total did not move beyond the noise (2.77x against 2.87x the CPU time of the in-memory call),
so the bench keeps Dask's defaults.  ``da.to_zarr`` with ``write_empty_chunks=False`` (Zarr's default)
also scans every chunk for the fill value (20-30 ns per pixel); conv2d_zarr writes them all.

The input Zarr is written once (random normal data, no compression: it would not compress) under
``$CONVKIT_BENCH_DASK_DIR`` (default: the temporary directory) and reused by later runs; outputs are
deleted after each run.  Needs the ``dask`` extra and zarr (``pip install 'convkit[dask]' zarr``).
"""
import atexit
import collections
import contextlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

import convkit

from .core import Candidate, Case

SECTIONS = {"dask": "convkit.dask.conv2d Zarr -> Zarr on a 2-process LocalCluster: per pixel against the "
                    "in-memory call, and 1x8192x8192x16 out of core (time, peak memory per worker)"}
ORDER = 90
CROP = 2048
CHANNELS = 16
ROWS_PER_CHUNK = 64
OUT_OF_CORE_RUNS = 2
WORKERS = 2


def cases(config):
    try:
        import distributed  # noqa: F401
        import zarr  # noqa: F401
        import convkit.dask  # noqa: F401
    except ImportError as error:
        print(f"note: section dask skipped ({error}); pip install 'convkit[dask]' zarr", file=sys.stderr)
        return []
    flops = 2.0 * CROP * CROP * 9 * CHANNELS * CHANNELS
    return [Case("dask", f"1x{CROP}x{CROP}x{CHANNELS} 3x3->{CHANNELS}, Zarr->Zarr", make, flops=flops)]


def make(config):
    import distributed
    import zarr
    workdir = os.path.join(os.environ.get("CONVKIT_BENCH_DASK_DIR", tempfile.gettempdir()), "convkit-bench-dask")
    side = 4096 if config.quick else 8192
    source = _input_zarr(workdir, side, config)
    weight = (config.rng().standard_normal((3, 3, CHANNELS, CHANNELS)) / 12).astype(np.float32)
    crop = np.asarray(zarr.open_array(source, mode="r")[:, :CROP, :CROP, :])
    in_memory = Candidate("in memory", lambda: convkit.conv2d(crop, weight, None, 1, 1))
    _out_of_core(workdir, source, weight, in_memory.fn, config,
                 one_thread=lambda: convkit.conv2d(crop, weight, None, 1, 1, num_threads=1))

    # A cluster for the interleaved rounds, which run after make() returns: closed at exit.
    cluster = _cluster()
    client = distributed.Client(cluster, set_as_default=False)
    atexit.register(cluster.close)
    atexit.register(client.close)
    crop_path, crop_out = os.path.join(workdir, f"crop-{CROP}.zarr"), os.path.join(workdir, "crop-out.zarr")
    _write(crop_path, crop)
    for path in (crop_path, crop_out):        # deleted at exit, after the rounds (atexit runs in reverse)
        atexit.register(shutil.rmtree, path, ignore_errors=True)

    def on_dask(fused):
        return lambda: _conv_to_zarr(crop_path, crop_out, weight, client, fused=fused)

    return [in_memory, Candidate("dask conv2d_zarr", on_dask(True)),
            Candidate("dask map_overlap + to_zarr", on_dask(False))]


def _cluster():
    import logging

    import distributed

    import convkit.dask
    cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    with distributed.Client(cluster) as client:
        convkit.dask.share_cores(client)
    return cluster


def _input_zarr(workdir, side, config):
    """The path of the (1, side, side, 16) float32 input, written once in row bands and reused."""
    import zarr
    path = os.path.join(workdir, f"input-{side}-rows{ROWS_PER_CHUNK}.zarr")
    shape = (1, side, side, CHANNELS)
    try:
        z = zarr.open_array(path, mode="r")
        if z.shape == shape and z.attrs.get("complete"):
            return path
    except Exception:  # missing or unreadable: write it again
        pass
    os.makedirs(workdir, exist_ok=True)
    print(f"dask: writing the {side}x{side}x{CHANNELS} float32 input Zarr once ({path})", file=sys.stderr)
    z = zarr.create_array(path, shape=shape, chunks=(1, ROWS_PER_CHUNK, side, CHANNELS), dtype=np.float32,
                          compressors=None, overwrite=True)
    rng = config.rng()
    for r0 in range(0, side, ROWS_PER_CHUNK):
        z[:, r0:r0 + ROWS_PER_CHUNK] = rng.standard_normal((1, ROWS_PER_CHUNK, side, CHANNELS), np.float32)
    z.attrs["complete"] = True
    return path


def _write(path, array):
    import zarr
    z = zarr.create_array(path, shape=array.shape, chunks=(1, ROWS_PER_CHUNK) + array.shape[2:],
                          dtype=array.dtype, compressors=None, overwrite=True)
    z[...] = array


def _conv_to_zarr(source, target, weight, client, progress=False, fused=True):
    """The convolution from the Zarr at ``source`` into a new Zarr at ``target``, on ``client``: with
    ``convkit.dask.conv2d_zarr`` (``fused``) or ``convkit.dask.conv2d`` on ``da.from_zarr`` then
    ``da.to_zarr``."""
    import dask.array as da
    import distributed

    import convkit.dask
    if fused:
        _, store = convkit.dask.conv2d_zarr(source, target, weight, None, 1, 1, compressors=None, compute=False)
    else:
        y = convkit.dask.conv2d(da.from_zarr(source), weight, None, 1, 1)
        store = da.to_zarr(y, target, mode="w", compute=False, compressors=None)
    future = client.compute(store)
    if progress:   # on stderr, beside the harness's own progress bar: not a line of the printed table
        with contextlib.redirect_stdout(sys.stderr):
            distributed.progress(future)
    future.result()


def _out_of_core(workdir, source, weight, in_memory, config, one_thread):
    """The whole image from Zarr to Zarr, OUT_OF_CORE_RUNS times on one fresh cluster, each run between two
    timings of the in-memory crop; prints time per pixel, the ratios and every worker's peak memory.

    Also CPU time per pixel (all processes' threads), which a machine shared with other jobs changes far less
    than wall time: the workers' over the in-memory call's on one thread (``one_thread``), the cost of the
    I/O, halos and scheduling around the same convolution."""
    import distributed
    import zarr
    target = os.path.join(workdir, "output.zarr")
    n, h, w, c = shape = zarr.open_array(source, mode="r").shape
    print(f"\ndask out of core: {n}x{h}x{w}x{c} float32 Zarr ({np.prod(shape) * 4 / 2 ** 30:.1f} GiB, chunks "
          f"1x{ROWS_PER_CHUNK}x{w}x{c}, uncompressed) -> 3x3 conv to {CHANNELS} channels -> Zarr (same chunks), "
          f"LocalCluster of {WORKERS} worker processes x 1 thread")
    crop_ns = [_seconds(in_memory) / (CROP * CROP) * 1e9]
    runs, cpu = [], []
    cluster = _cluster()
    with distributed.Client(cluster) as client:
        threads = client.run(convkit.get_num_threads)
        for run in range(OUT_OF_CORE_RUNS):
            start, cpu_start = time.perf_counter(), client.run(_cpu_seconds)
            with distributed.get_task_stream(client) as tasks:
                _conv_to_zarr(source, target, weight, client, progress=run == 0)
            runs.append((time.perf_counter() - start) / (h * w) * 1e9)
            cpu.append(sum(client.run(_cpu_seconds).values()) - sum(cpu_start.values()))
            shares = _task_time_shares(tasks.data)
            shutil.rmtree(target, ignore_errors=True)
            crop_ns.append(_seconds(in_memory) / (CROP * CROP) * 1e9)
        peaks = client.run(_peak_rss)
    cluster.close()
    one_thread()
    cpu_start = _cpu_seconds()
    one_thread()
    cpu_crop = (_cpu_seconds() - cpu_start) / (CROP * CROP) * 1e9
    cpu_ratio = statistics.median(cpu) / (h * w) * 1e9 / cpu_crop
    read_ns, write_ns = _bare_io(source, workdir, ROWS_PER_CHUNK * w)
    ratios = [ns / statistics.median(crop_ns[i:i + 2]) for i, ns in enumerate(runs)]
    ratio = statistics.median(ratios)
    print(f"\n  out of core: " + ", ".join(f"{ns:.0f}" for ns in runs) + " ns/pixel; in memory on the "
          f"{CROP}x{CROP} crop ({config.threads} thread(s), before, between and after): "
          + ", ".join(f"{ns:.0f}" for ns in crop_ns) + " ns/pixel")
    print(f"  per-run ratios " + ", ".join(f"{r:.2f}x" for r in ratios) + f", median {ratio:.2f}x per pixel "
          f"({'meets' if ratio <= 1.3 else 'MISSES'} the 1.3x target)")
    print(f"  CPU time: workers " + ", ".join(f"{t / (h * w) * 1e9:.0f}" for t in cpu) + f" ns/pixel; in memory on "
          f"1 thread {cpu_crop:.0f} ns/pixel -> {cpu_ratio:.2f}x the CPU time per pixel")
    print(f"  bare page-cache I/O, no Zarr (CPU time in this process): reading a chunk file into a reused buffer "
          f"{read_ns:.0f} ns/pixel, writing it to a new file {write_ns:.0f} ns/pixel; the 1.3x target leaves "
          f"0.3 x {cpu_crop:.0f} = {0.3 * cpu_crop:.0f} ns/pixel for all reading, writing and scheduling")
    print("  workers' time by task (last run): " + ", ".join(f"{name} {share:.0%}" for name, share in shares))
    gib = 2 ** 30
    print(f"  convkit threads per worker: {sorted(threads.values())}; peak resident memory per worker: "
          + ", ".join(f"{p / 2 ** 20:.0f} MiB" for p in sorted(peaks.values()))
          + f" ({'all under' if max(peaks.values()) < gib else 'NOT all under'} 1 GiB)\n")


def _bare_io(source, workdir, pixels_per_chunk, files=64):
    """CPU nanoseconds per pixel of the bare file I/O under a Zarr-to-Zarr run, measured without Zarr: the
    first ``files`` chunk files of ``source`` read (from the page cache: the runs just read them) into one
    reused buffer, then each written to a new file, as Zarr writes every chunk (the files deleted after
    all are written: 2 GiB, 1 GiB with ``--quick``; with a few files only, the kernel hands out pages just
    freed and the writes look 4x cheaper than a run's).  The least a run spends besides the convolution;
    ``(read, write)``."""
    paths = sorted(os.path.join(d, f) for d, _, names in os.walk(os.path.join(source, "c")) for f in names)
    paths = paths[:files]
    buffer = bytearray(os.path.getsize(paths[0]))
    scratch = os.path.join(workdir, "bare-io")
    os.makedirs(scratch, exist_ok=True)
    for timed in (False, True):          # the first pass maps the buffer's pages
        start = _cpu_seconds()
        for path in paths if timed else paths[:1]:
            with open(path, "rb", buffering=0) as f:
                f.readinto(buffer)
    read = _cpu_seconds() - start
    for i in range(len(paths)):
        with open(os.path.join(scratch, str(i)), "wb", buffering=0) as f:
            f.write(buffer)
    write = _cpu_seconds() - start - read
    shutil.rmtree(scratch, ignore_errors=True)
    pixels = len(paths) * pixels_per_chunk
    return read / pixels * 1e9, write / pixels * 1e9


def _task_time_shares(records):
    """[(task name, share of the workers' compute time)], largest first, from Dask's task stream."""
    seconds = collections.Counter()
    for record in records:
        key = record["key"][0] if isinstance(record["key"], tuple) else record["key"]
        name = key.rsplit("-", 1)[0]     # without the token
        seconds[name] += sum(s["stop"] - s["start"] for s in record["startstops"] if s["action"] == "compute")
    total = sum(seconds.values()) or 1.0
    return [(name, t / total) for name, t in seconds.most_common(4) if t / total >= 0.01]


def _seconds(fn):
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_seconds():
    """This process's CPU time (user and system, all threads), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss():
    """This process's peak resident set size in bytes: Linux's VmHWM, the high-water mark of the memory
    it has mapped since it started its program.  Not ``ru_maxrss``: Linux keeps that across ``execve``, so
    a worker process, forked from the nanny in this (large) benchmark process and then exec'd, starts with
    this process's peak, 1.2 GiB here, whatever the worker does.  ``ru_maxrss`` elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
