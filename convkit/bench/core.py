"""The benchmark harness: cases, timing, the table, JSON and the plot.

A suite module (listed in SUITES) defines ``cases(config) -> list[Case]``.  Each Case names its work
(``flops`` for compute-bound kernels, ``bytes`` for memory-bound ones) and a ``make(config)`` that builds
the inputs and returns the Candidates to time: convkit's algorithms (``ours=True``) and peers such as
PyTorch or plain NumPy (``ours=False``).  Each candidate is timed the same way, one after the other:
warm-up (``WARMUP_SECONDS``), then the median of repeated calls.
"""
import dataclasses
import importlib
import statistics
import sys
import time
from typing import Callable, List, Optional

import numpy as np

# Suite modules, in the order their tables print.  A new suite appends its module name here.
SUITES = [
    "convkit.bench.conv",
    "convkit.bench.newconv",
    "convkit.bench.units",
    "convkit.bench.deform",
    "convkit.bench.models",
]


@dataclasses.dataclass
class Config:
    dtype: type = np.float32
    layout: str = "NHWC"
    threads: int = 1
    quick: bool = False
    seed: int = 0

    def rng(self):
        return np.random.default_rng(self.seed)


@dataclasses.dataclass
class Candidate:
    label: str                      # "direct", "im2col", "auto", "torch", "numpy", ...
    fn: Callable[[], object]
    ours: bool = True
    workspace_bytes: Optional[int] = None   # extra memory the algorithm allocates, when known


@dataclasses.dataclass
class Case:
    section: str                    # the table this row belongs to ("conv2d", "depthwise", ...)
    name: str                       # the shape, readable
    make: Callable[[Config], List[Candidate]]
    flops: float = 0.0              # floating-point operations per call (2 x MACs)
    bytes: float = 0.0              # bytes read + written per call (memory-bound kernels)


@dataclasses.dataclass
class Result:
    section: str
    case: str
    label: str
    ours: bool
    median_ms: float
    gflops: Optional[float]
    gbytes_per_s: Optional[float]
    workspace_bytes: Optional[int]
    repeats: int


def _repeats(quick):
    """(minimum calls, minimum seconds) per candidate."""
    return (3, 0.2) if quick else (7, 1.0)


#: Warm-up time per candidate.  Besides caches, it lets the thread pools of the candidate timed before
#: go idle: OpenBLAS's workers spin for about 0.1 s after a GEMM and libgomp's briefly after a parallel
#: region, and a candidate timed in their wake (as when candidates are interleaved call by call) was
#: measured up to 2x slower on 2 cores.
WARMUP_SECONDS = 0.25


def time_call(fn, quick=False):
    """(median seconds, calls) of ``fn()``: warm-up, then repeats until enough calls and enough time."""
    min_calls, min_seconds = _repeats(quick)
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < WARMUP_SECONDS:
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < min_seconds and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def measure_sgemm(dtype, quick=False):
    """The machine's GEMM rate through NumPy's BLAS (GFLOP/s): the ceiling for the conv kernels."""
    n = 1024 if quick else 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    c = np.empty_like(a)
    seconds, _ = time_call(lambda: np.matmul(a, a, out=c), quick)
    return 2 * n ** 3 / seconds / 1e9


def measure_copy_bandwidth(quick=False):
    """Memory-copy bandwidth (GB/s, read + write) of np.copyto on a 256 MiB array."""
    n = (64 if quick else 256) << 20
    src = np.ones(n // 4, np.float32)
    dst = np.empty_like(src)
    seconds, _ = time_call(lambda: np.copyto(dst, src), quick)
    return 2 * n / seconds / 1e9


def load_cases(config, sections=None):
    cases = []
    for name in SUITES:
        module = importlib.import_module(name)
        cases += [c for c in module.cases(config) if sections is None or c.section in sections]
    return cases


def run_cases(cases, config, progress=True):
    results = []
    total = len(cases)
    for i, case in enumerate(cases):
        if progress:
            _progress(i, total, f"{case.section}: {case.name}")
        for cand in case.make(config):
            seconds, repeats = time_call(cand.fn, config.quick)
            results.append(Result(
                case.section, case.name, cand.label, cand.ours, seconds * 1e3,
                case.flops / seconds / 1e9 if case.flops else None,
                case.bytes / seconds / 1e9 if case.bytes else None,
                cand.workspace_bytes, repeats))
    if progress:
        _progress(total, total, "done")
        sys.stderr.write("\n")
    return results


def _progress(done, total, what):
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what[:60]:<60}")
    sys.stderr.flush()


def format_bytes(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def format_table(results):
    """One block per section: a row per candidate, then which of ours is fastest and by how much."""
    lines = []
    for section in dict.fromkeys(r.section for r in results):
        rows = [r for r in results if r.section == section]
        lines.append(f"\n## {section}")
        lines.append(f"{'case':<40} {'algo':<12} {'ms':>9} {'GFLOP/s':>8} {'GB/s':>7} {'workspace':>10}")
        for case in dict.fromkeys(r.case for r in rows):
            group = [r for r in rows if r.case == case]
            for j, r in enumerate(group):
                lines.append(
                    f"{case if j == 0 else '':<40} {r.label:<12} {r.median_ms:>9.3f} "
                    f"{_fmt(r.gflops, 8, 1)} {_fmt(r.gbytes_per_s, 7, 1)} {format_bytes(r.workspace_bytes):>10}")
            lines.append(f"{'':<40} -> {summarize(group)}")
    return "\n".join(lines)


def _fmt(value, width, digits):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def summarize(group):
    """'direct fastest (1.32x im2col); 0.85x torch, 31.0x numpy' for one case's results."""
    ours = sorted((r for r in group if r.ours), key=lambda r: r.median_ms)
    if not ours:
        return "no convkit result"
    best = ours[0]
    text = f"{best.label} fastest"
    if len(ours) > 1:
        text += " (" + ", ".join(f"{r.median_ms / best.median_ms:.2f}x {r.label}" for r in ours[1:]) + ")"
    peers = [r for r in group if not r.ours]
    if peers:
        text += "; " + ", ".join(f"{r.median_ms / best.median_ms:.2f}x vs {r.label}" for r in peers)
    return text


def speedup(results, section, case, label, versus):
    """How many times faster ``label`` is than ``versus`` on one case (None if either is missing)."""
    times = {r.label: r.median_ms for r in results if r.section == section and r.case == case}
    if label not in times or versus not in times:
        return None
    return times[versus] / times[label]
