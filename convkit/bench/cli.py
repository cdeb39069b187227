"""``python -m convkit bench``: run the suites, print the table, optionally write JSON and a PNG chart."""
import argparse
import contextlib
import dataclasses
import json
import sys

import numpy as np

import convkit
from convkit._config import config as build_config

from . import core
from .peers import torch_module


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats (a minute or two)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for convkit, its BLAS and the peers (default: convkit.get_num_threads())")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--layout", choices=["NHWC", "NCHW"], default="NHWC")
    parser.add_argument("--only", nargs="+", metavar="SECTION",
                        help="run only these sections (conv2d, depthwise, grouped, transposed, deformable, ...)")
    parser.add_argument("--json", metavar="PATH", help="write every figure plus machine and build info")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG chart (needs matplotlib)")


@contextlib.contextmanager
def thread_limits(threads):
    """Give convkit, the BLAS behind its GEMMs and PyTorch the same thread count."""
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


def run(args):
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            sys.exit("--plot needs matplotlib: pip install matplotlib (or pip install 'convkit[bench]')")
    threads = args.threads if args.threads is not None else convkit.get_num_threads()
    if threads < 1:
        sys.exit(f"--threads must be at least 1, got {threads}")
    cfg = core.Config(dtype=np.dtype(args.dtype).type, layout=args.layout, threads=threads, quick=args.quick)
    with thread_limits(threads):
        cases = core.load_cases(cfg, set(args.only) if args.only else None)
        if not cases:
            sys.exit(f"no benchmark case matches --only {' '.join(args.only)}")
        sgemm = core.measure_sgemm(cfg.dtype, cfg.quick)
        results = core.run_cases(cases, cfg)
    torch = torch_module()
    print(f"convkit {convkit.__version__} bench: {args.dtype} {args.layout}, {threads} thread(s), "
          f"median of repeats after warm-up")
    print(f"BLAS {build_config()['blas']}: {'s' if args.dtype == 'float32' else 'd'}gemm {sgemm:.1f} GFLOP/s "
          f"(the ceiling); peers: numpy {np.__version__}"
          + (f", torch {torch.__version__} (channels_last)" if torch else ", torch not installed"))
    print("'Nx vs peer' is the peer's time over the fastest convkit algorithm's: above 1, convkit is faster.")
    print(core.format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build": build_config(), "threads": threads, "dtype": args.dtype,
                       "layout": args.layout, "quick": args.quick, "sgemm_gflops": sgemm,
                       "torch": torch.__version__ if torch else None,
                       "results": [dataclasses.asdict(r) for r in results]}, f, indent=1)
    if args.plot:
        plot(results, args.plot)
    return results


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cases = list(dict.fromkeys((r.section, r.case) for r in results))
    labels = sorted({r.label.split("=")[0] for r in results})
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(cases) * max(1, len(labels) / 3) + 1.5))
    height = 0.8 / len(labels)
    times = {(r.section, r.case, r.label.split("=")[0]): r.median_ms for r in results}
    for j, label in enumerate(labels):
        ys, xs = [], []
        for i, (section, case) in enumerate(cases):
            if (section, case, label) in times:
                ys.append(i + j * height)
                xs.append(times[section, case, label])
        ax.barh(ys, xs, height=height, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cases))])
    ax.set_yticklabels([f"{s}: {c}" for s, c in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time per call (ms, log scale; shorter is faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convkit bench", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))
