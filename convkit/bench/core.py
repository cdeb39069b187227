"""The benchmark harness: sections, cases, candidates, interleaved timing, verdicts.

Adding a section
----------------
A section is a module in ``convkit/bench/`` that defines two names; it is found by itself (there is no
list to edit)::

    SECTIONS = {"matmul": "convkit.matmul against NumPy's BLAS on square and skinny shapes"}
    ORDER = 60                     # optional: where its tables print (conv 10, newconv 20, units 30, ...)

    def cases(config):             # config: core.Config (dtype, layout, threads, quick, rng())
        return [Case("matmul", "1024x1024x1024", make, flops=2 * 1024 ** 3)]

A module may hold several sections (one ``SECTIONS`` entry each); every Case's ``section`` must be one of
them.  ``python -m convkit bench --help`` lists the sections, ``--only matmul`` runs one.

Adding a candidate
------------------
``Case.make(config)`` builds the inputs once and returns the Candidates to time, each a zero-argument
callable::

    def make(config):
        a = config.rng().standard_normal((n, n)).astype(config.dtype)
        return [Candidate("convkit", lambda: convkit.matmul(a, a)),              # ours (default)
                Candidate("numpy", lambda: a @ a, ours=False),                  # a peer library
                Candidate("copy", lambda: np.copyto(b, a), ours=False, reference=True)]   # a yardstick

* ``ours=True``: one of convkit's algorithms; the fastest of them is the row every ratio is taken against.
* ``ours=False``: a peer (PyTorch, NumPy, torchvision, ONNX Runtime, ...): the verdict compares with it.
* ``reference=True`` (with ``ours=False``): a yardstick that is not a competitor (memory copy, convkit's
  own conv2d beside deformable convolution): timed and printed, left out of the verdict.
* ``workspace_bytes``: extra memory the algorithm allocates, when known (printed).
* ``Case.flops`` (compute-bound, 2 x MACs) or ``Case.bytes`` (memory-bound, read + written) give the
  GFLOP/s and GB/s columns.  Cases with ``flops`` also get the harness's ``ceiling`` candidate: NumPy's
  BLAS GEMM (sgemm for float32) timed in the same rounds, so "% of ceiling" compares like with like.

How candidates are timed
------------------------
The machines are shared VMs whose speed drifts by tens of percent within seconds, so candidates are
never timed one after the other.  Each case runs ``rounds`` rounds; in every round each candidate, in
turn (A B C, A B C, ...), gets a warm-up (calls for ``warmup_seconds``: caches, and the previous
candidate's spinning thread pool goes idle before our clock starts) and then a timed block (calls for
``block_seconds``, at least one).  A candidate's time in a round is the median of its block; its
printed time is the median over rounds.  Every ratio is the median of the per-round ratios (each round's
candidates ran within a second or so of each other, at the same machine speed), and its spread is the
interquartile range of those per-round ratios over their median; rows whose spread exceeds
``NOISY_SPREAD`` (10%) are marked ``*``.

Verdicts say what happened: "convkit fastest" only when every peer's per-round ratios are mostly above
1 (their lower quartile is), "0.87x PyTorch (PyTorch faster)" when a peer's upper quartile is below 1,
"level with PyTorch" in between, "no peer" when no peer ran.  A kernel measured above the GEMM
ceiling is flagged in the verdict, never printed silently.
"""
import dataclasses
import importlib
import pkgutil
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

#: Rows whose ratio spread (interquartile range / median of the per-round ratios) exceeds this are marked.
NOISY_SPREAD = 0.10

#: How peers are named in verdicts (a label not listed here is printed as it is).
PEER_NAMES = {"torch": "PyTorch", "numpy": "NumPy", "ort": "ONNX Runtime", "onnxruntime": "ONNX Runtime",
              "torchvision": "torchvision", "dask": "Dask"}

CEILING_LABEL = "ceiling"


@dataclasses.dataclass
class Config:
    dtype: type = np.float32
    layout: str = "NHWC"
    threads: int = 1
    quick: bool = False
    seed: int = 0
    ceiling: bool = True            # add the GEMM-ceiling candidate to compute-bound cases

    def rng(self):
        return np.random.default_rng(self.seed)

    @property
    def rounds(self):
        return 5 if self.quick else 7

    @property
    def warmup_seconds(self):
        return 0.08 if self.quick else 0.15

    @property
    def block_seconds(self):
        return 0.05 if self.quick else 0.1


@dataclasses.dataclass
class Candidate:
    label: str                      # "direct", "im2col", "auto=direct", "torch", "numpy", ...
    fn: Callable[[], object]
    ours: bool = True
    workspace_bytes: Optional[int] = None   # extra memory the algorithm allocates, when known
    reference: bool = False         # a yardstick (memory copy, ceiling), not a competitor


@dataclasses.dataclass
class Case:
    section: str                    # the table this row belongs to ("conv2d", "depthwise", ...)
    name: str                       # the shape, readable
    make: Callable[["Config"], List[Candidate]]
    flops: float = 0.0              # floating-point operations per call (2 x MACs)
    bytes: float = 0.0              # bytes read + written per call (memory-bound kernels)


@dataclasses.dataclass
class Result:
    """One candidate on one case: every timed call, and its ratio to convkit's fastest."""
    section: str
    case: str
    label: str
    ours: bool
    reference: bool
    median_ms: float                # median over rounds of each round's block median
    gflops: Optional[float]
    gbytes_per_s: Optional[float]
    workspace_bytes: Optional[int]
    repeats: int                    # timed calls, all rounds
    samples_ms: List[List[float]]   # every timed call, one list per round
    ratio: Optional[float] = None   # median over rounds of (this time / convkit's fastest time)
    ratio_spread: Optional[float] = None   # interquartile range of those ratios / their median
    ratio_quartiles: Optional[List[float]] = None

    @property
    def round_ms(self):
        return [statistics.median(block) for block in self.samples_ms]

    @property
    def noisy(self):
        return self.ratio_spread is not None and self.ratio_spread > NOISY_SPREAD


@dataclasses.dataclass
class CaseResult:
    section: str
    case: str
    results: List[Result]
    verdict: str
    ceiling_fraction: Optional[float] = None   # median per-round GFLOP/s of ours over the ceiling's
    above_ceiling: bool = False


# --- sections ------------------------------------------------------------------------------------------

def suite_modules():
    """The bench modules that define SECTIONS and cases(), in print order (ORDER, then name)."""
    from convkit import bench
    modules = []
    for info in pkgutil.iter_modules(bench.__path__):
        module = importlib.import_module(f"convkit.bench.{info.name}")
        if hasattr(module, "SECTIONS") and hasattr(module, "cases"):
            modules.append(module)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def sections() -> Dict[str, str]:
    """Every section name -> its one-line description, in print order."""
    out = {}
    for module in suite_modules():
        out.update(module.SECTIONS)
    return out


def load_cases(config, only=None):
    """Every case of the sections in ``only`` (all when None)."""
    cases = []
    for module in suite_modules():
        if only is not None and not set(module.SECTIONS) & set(only):
            continue
        for case in module.cases(config):
            if case.section not in module.SECTIONS:
                raise ValueError(f"{module.__name__}: case {case.name!r} has section {case.section!r}, "
                                 f"not one of its SECTIONS {sorted(module.SECTIONS)}")
            if only is None or case.section in only:
                cases.append(case)
    return cases


# --- timing --------------------------------------------------------------------------------------------

def run_block(fn, warmup_seconds, block_seconds, clock=time.perf_counter):
    """Warm up ``fn`` for ``warmup_seconds`` (at least one call), then time calls for ``block_seconds``
    (at least one); returns each timed call's seconds."""
    start = clock()
    fn()
    while clock() - start < warmup_seconds:
        fn()
    times = []
    start = clock()
    while not times or clock() - start < block_seconds:
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


def time_interleaved(fns, rounds, warmup_seconds, block_seconds, clock=time.perf_counter):
    """Time every function in ``fns`` in ``rounds`` interleaved rounds (A B C, A B C, ...): returns, per
    function, one list of call times (seconds) per round."""
    samples = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            samples[i].append(run_block(fn, warmup_seconds, block_seconds, clock))
    return samples


def ceiling_candidate(dtype, quick=False):
    """NumPy's BLAS GEMM on square matrices, and its flops: the machine's practical compute ceiling."""
    n = 1024 if quick else 1536
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    c = np.empty_like(a)
    return Candidate(CEILING_LABEL, lambda: np.matmul(a, a, out=c), ours=False, reference=True), 2.0 * n ** 3


def measure_case(case, config):
    """Build the case's candidates, time them in interleaved rounds, return its CaseResult."""
    cands = list(case.make(config))
    ceiling_flops = None
    if case.flops and config.ceiling:
        ceiling, ceiling_flops = ceiling_candidate(config.dtype, config.quick)
        cands.append(ceiling)
    samples = time_interleaved([c.fn for c in cands], config.rounds, config.warmup_seconds,
                               config.block_seconds)
    results = [Result(case.section, case.name, c.label, c.ours, c.reference, 0.0, None, None,
                      c.workspace_bytes, sum(len(b) for b in s), [[t * 1e3 for t in b] for b in s])
               for c, s in zip(cands, samples)]
    for r in results:
        r.median_ms = statistics.median(r.round_ms)
        flops = ceiling_flops if r.label == CEILING_LABEL and ceiling_flops else case.flops
        r.gflops = flops / r.median_ms / 1e6 if flops else None
        r.gbytes_per_s = case.bytes / r.median_ms / 1e6 if case.bytes and r.label != CEILING_LABEL else None
    return summarize_case(case.section, case.name, results, ceiling_flops, case.flops)


def run_cases(cases, config, progress=True):
    """Measure every case (progress bar on stderr); returns the CaseResults."""
    out = []
    for i, case in enumerate(cases):
        if progress:
            _progress(i, len(cases), f"{case.section}: {case.name}")
        out.append(measure_case(case, config))
    if progress:
        _progress(len(cases), len(cases), "done")
        sys.stderr.write("\n")
    return out


def _progress(done, total, what):
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what[:60]:<60}")
    sys.stderr.flush()


# --- ratios and verdicts -------------------------------------------------------------------------------

def quartiles(values):
    """(first quartile, median, third quartile), linear interpolation; one value gives it three times."""
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q1), float(q2), float(q3)


def ratio_stats(numerators, denominators):
    """Median of the per-round ratios, their spread (IQR / median) and quartiles."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    q1, q2, q3 = quartiles(ratios)
    return q2, (q3 - q1) / q2, [q1, q3]


def peer_name(label):
    return PEER_NAMES.get(label, label)


def summarize_case(section, case, results, ceiling_flops=None, flops=0.0):
    """Fill each result's ratio to convkit's fastest algorithm and write the case's verdict."""
    ours = [r for r in results if r.ours]
    if not ours:
        return CaseResult(section, case, results, "reference only (no convkit candidate)")
    best = min(ours, key=lambda r: r.median_ms)
    for r in results:
        r.ratio, r.ratio_spread, r.ratio_quartiles = ratio_stats(r.round_ms, best.round_ms)
    words = []
    others = [r for r in ours if r is not best]
    if others:
        slower = sorted(others, key=lambda r: r.ratio)
        words.append(f"{best.label} fastest of convkit's ({slower[0].label} takes {slower[0].ratio:.2f}x"
                     + "".join(f", {r.label} {r.ratio:.2f}x" for r in slower[1:]) + ")")
    words.append(peer_verdict([r for r in results if not r.ours and not r.reference]))
    out = CaseResult(section, case, results, "")
    ceiling = next((r for r in results if r.label == CEILING_LABEL), None)
    if ceiling is not None and ceiling_flops and flops:
        # per round: (our GFLOP/s) / (ceiling GFLOP/s) = (flops / t_best) / (ceiling_flops / t_ceiling)
        fraction, _, _ = ratio_stats([flops * t for t in ceiling.round_ms],
                                     [ceiling_flops * t for t in best.round_ms])
        out.ceiling_fraction = fraction
        out.above_ceiling = fraction > 1.0
        words.append(f"ABOVE the GEMM ceiling ({fraction:.0%} of it: NumPy's BLAS is not the bound here)"
                     if out.above_ceiling else f"{fraction:.0%} of the GEMM ceiling")
    out.verdict = "; ".join(words)
    return out


def peer_verdict(peers):
    """'convkit fastest (1.15x PyTorch, 5.2x NumPy)', '0.87x PyTorch (PyTorch faster)', 'level with ...',
    or 'no peer'; ratios are the peer's time over convkit's fastest (above 1: convkit is faster)."""
    if not peers:
        return "no peer"
    faster = [p for p in peers if p.ratio_quartiles[1] < 1.0]      # upper quartile below 1
    level = [p for p in peers if p not in faster and p.ratio_quartiles[0] <= 1.0]
    slower = [p for p in peers if p not in faster and p not in level]

    def listed(group):
        return ", ".join(f"{p.ratio:.2f}x {peer_name(p.label)}" for p in group)

    parts = []
    if not faster and not level:
        parts.append(f"convkit fastest ({listed(slower)})")
    else:
        parts += [f"{p.ratio:.2f}x {peer_name(p.label)} ({peer_name(p.label)} faster)" for p in faster]
        parts += [f"level with {peer_name(p.label)} ({p.ratio:.2f}x, within the rounds' spread)" for p in level]
        parts += [f"faster than {peer_name(p.label)} ({p.ratio:.2f}x)" for p in slower]
    return "; ".join(parts)


# --- the table -----------------------------------------------------------------------------------------

def format_bytes(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def format_table(case_results):
    """One block per section: a row per candidate (time, rate, workspace, ratio to convkit's fastest with
    its spread; '*' marks a spread above NOISY_SPREAD), then the case's verdict."""
    lines = []
    noisy = False
    for section in dict.fromkeys(c.section for c in case_results):
        lines.append(f"\n## {section}")
        lines.append(f"{'case':<40} {'algo':<14} {'ms':>9} {'GFLOP/s':>8} {'GB/s':>7} {'workspace':>10} "
                     f"{'x best':>7} {'spread':>7}")
        for c in (c for c in case_results if c.section == section):
            for j, r in enumerate(c.results):
                mark = "*" if r.noisy else ""
                noisy |= r.noisy
                ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
                spread = "-" if r.ratio_spread is None else f"{r.ratio_spread:.0%}{mark}"
                lines.append(
                    f"{c.case if j == 0 else '':<40} {r.label:<14} {r.median_ms:>9.3f} "
                    f"{_fmt(r.gflops, 8, 1)} {_fmt(r.gbytes_per_s, 7, 1)} {format_bytes(r.workspace_bytes):>10} "
                    f"{ratio:>7} {spread:>7}")
            lines.append(f"{'':<40} -> {c.verdict}")
    if noisy:
        lines.append(f"\n* spread above {NOISY_SPREAD:.0%}: the per-round ratios of this row disagree; "
                     "the machine was busy, rerun before trusting it.")
    return "\n".join(lines)


def _fmt(value, width, digits):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def flat_results(case_results):
    return [r for c in case_results for r in c.results]
