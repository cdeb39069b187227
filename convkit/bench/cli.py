"""python -m convkit bench (or the console script: convkit bench): convkit's algorithms against each other,
PyTorch, NumPy and the machine's GEMM ceiling, timed in interleaved rounds (see convkit/bench/core.py)."""
import argparse
import contextlib
import dataclasses
import datetime
import json
import sys

import convkit

from . import core, machine
from .peers import torch_module


def add_arguments(parser, sections):
    parser.add_argument("--quick", action="store_true", help="fewer shapes, rounds and repeats (a minute or two)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for convkit, NumPy's BLAS and the peers (default: convkit.get_num_threads())")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--layout", choices=["NHWC", "NCHW"], default="NHWC")
    parser.add_argument("--only", nargs="+", metavar="SECTION", choices=list(sections),
                        help="run only these sections: " + ", ".join(sections))
    parser.add_argument("--json", metavar="PATH", help="write every timed call plus machine and build facts")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG chart (needs matplotlib: the bench extra)")


def make_parser():
    sections = core.sections()
    epilog = "sections:\n" + "\n".join(f"  {name:<12} {text}" for name, text in sections.items())
    parser = argparse.ArgumentParser(prog="python -m convkit bench", description=__doc__, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, sections)
    return parser


@contextlib.contextmanager
def thread_limits(threads):
    """Give convkit, NumPy's BLAS (the GEMM ceiling and NumPy peers; convkit's own GEMM uses convkit's
    threads) and PyTorch the same thread count."""
    convkit.set_num_threads(threads)
    torch = torch_module()
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("note: threadpoolctl is not installed, so NumPy's BLAS threads are not limited "
              "(pip install threadpoolctl)", file=sys.stderr)
        limiter = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(limits=threads, user_api="blas")
    try:
        with limiter:
            yield
    finally:
        convkit.set_num_threads(None)


def require_matplotlib(what):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit(f"{what} needs matplotlib: pip install 'convkit[bench]' (or pip install matplotlib)")


def run(args, argv=()):
    if args.plot:
        require_matplotlib("--plot")
    threads = args.threads if args.threads is not None else convkit.get_num_threads()
    if threads < 1:
        sys.exit(f"--threads must be at least 1, got {threads}")
    import numpy as np
    cfg = core.Config(dtype=np.dtype(args.dtype).type, layout=args.layout, threads=threads, quick=args.quick)
    facts = machine.facts()
    with thread_limits(threads):
        cases = core.load_cases(cfg, set(args.only) if args.only else None)
        case_results = core.run_cases(cases, cfg)
    print(header(facts, args, threads, cfg))
    print(core.format_table(case_results))
    if args.json:
        write_json(args.json, case_results, facts, args, threads, cfg, argv)
    if args.plot:
        plot(case_results, args.plot, title_of(facts, args, threads))
    return case_results


def title_of(facts, args, threads):
    return (f"convkit {convkit.__version__} bench: {facts['cpu_model']} ({facts['build_isa']} build), "
            f"{threads} thread(s), {args.dtype} {args.layout}")


def header(facts, args, threads, cfg):
    torch = torch_module()
    peers = ", ".join(f"{k} {v}" for k, v in facts["packages"].items() if v and k in ("torch", "torchvision",
                                                                                       "onnxruntime"))
    return "\n".join([
        title_of(facts, args, threads),
        f"{cfg.rounds} interleaved rounds per case (each candidate: {cfg.warmup_seconds:.2f} s warm-up, then "
        f"{cfg.block_seconds:.2f} s of timed calls); ms = median over rounds of each round's median call",
        f"NumPy {facts['numpy']}, BLAS {facts['build']['blas']}; peers: {peers or 'none installed'}"
        + ("" if torch is None else " (PyTorch channels_last, inference_mode)"),
        "x best = time over convkit's fastest algorithm in the same round, median of rounds (above 1: convkit's "
        "fastest is faster); spread = interquartile range of those per-round ratios over their median.",
        "ceiling = NumPy's BLAS GEMM on square matrices, timed in the same rounds.",
    ])


def write_json(path, case_results, facts, args, threads, cfg, argv):
    results = []
    for r in core.flat_results(case_results):
        row = dataclasses.asdict(r)
        row["round_ms"] = r.round_ms
        row["noisy"] = r.noisy
        results.append(row)
    data = {
        "command": "python -m convkit bench " + " ".join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": facts, "threads": threads, "dtype": args.dtype, "layout": args.layout,
        "quick": args.quick, "rounds": cfg.rounds, "warmup_seconds": cfg.warmup_seconds,
        "block_seconds": cfg.block_seconds, "noisy_spread": core.NOISY_SPREAD,
        "cases": [{"section": c.section, "case": c.case, "verdict": c.verdict,
                   "ceiling_fraction": c.ceiling_fraction, "above_ceiling": c.above_ceiling}
                  for c in case_results],
        "results": results,
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def plot(case_results, path, title):
    """Horizontal bars, one per candidate (the GEMM ceiling left out), grouped by case: time relative to
    convkit's fastest algorithm with the per-round interquartile range, labelled with its ms and ratio."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {"ours": "#1f77b4", "peer": "#ff7f0e", "reference": "#9a9a9a"}
    rows, y, ticks, ylabels, group_heads = [], 0.0, [], [], []
    for c in case_results:
        shown = [r for r in c.results if r.label != core.CEILING_LABEL and r.ratio is not None]
        if not shown:
            continue
        group_heads.append((y - 0.7, f"{c.section}: {c.case}"))
        for r in shown:
            rows.append((y, r))
            ticks.append(y)
            ylabels.append(r.label)
            y += 1.0
        y += 1.2
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.26 * y))
    for yy, r in rows:
        kind = "ours" if r.ours else "reference" if r.reference else "peer"
        lo, hi = r.ratio_quartiles
        ax.barh(yy, r.ratio, height=0.8, color=colours[kind], xerr=[[r.ratio - lo], [hi - r.ratio]],
                error_kw={"elinewidth": 0.8, "capsize": 2})
        ax.text(max(r.ratio, hi) * 1.06, yy, f"{r.median_ms:.4g} ms  ({r.ratio:.2f}x{' *' if r.noisy else ''})",
                va="center", fontsize=7)
    for yy, text in group_heads:
        ax.text(0.0, yy, text, transform=ax.get_yaxis_transform(), fontsize=8, fontweight="bold", va="center")
    ax.set_yticks(ticks)
    ax.set_yticklabels(ylabels, fontsize=7)
    ax.set_ylim(y - 0.6, -1.6)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlim(right=ax.get_xlim()[1] * 3)
    ax.set_xlabel("time / convkit's fastest in the same round (median of rounds, bars: interquartile range; "
                  "log scale; above 1 is slower)", fontsize=8)
    ax.set_title(title, fontsize=10)
    handles = [matplotlib.patches.Patch(color=v, label=k) for k, v in
               (("convkit", colours["ours"]), ("peer", colours["peer"]), ("reference", colours["reference"]))]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    run(make_parser().parse_args(argv), argv)
