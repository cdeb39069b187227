"""``python -m convkit demo``: build resnet18 and mobilenet_v2, print their summaries, time a forward pass."""
import argparse
import statistics
import time

import numpy as np

import convkit
from convkit.models import mobilenet_v2, resnet18
from convkit.summary import summary

MODELS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convkit demo", description=__doc__)
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--layout", choices=["NHWC", "NCHW"], default="NHWC")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.size < 32 or args.repeats < 1:
        parser.error("--batch and --repeats must be at least 1, --size at least 32")
    if args.threads is not None:
        convkit.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name in MODELS if args.model == "all" else [args.model]:
        model = MODELS[name](args.layout, dtype=args.dtype, rng=rng)
        shape = ((args.batch, args.size, args.size, 3) if args.layout == "NHWC"
                 else (args.batch, 3, args.size, args.size))
        summary(model, shape)
        x = rng.standard_normal(shape).astype(args.dtype)
        logits = model(x)  # warm-up: also folds batch norm into the convolutions, once
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        gmacs = model.macs(shape) / 1e9
        print(f"{name}: forward {shape} -> logits {logits.shape}: median {ms:.1f} ms of {args.repeats} "
              f"({args.batch / ms * 1e3:.1f} images/s, {2 * gmacs / ms * 1e3:.1f} GFLOP/s), "
              f"{convkit.get_num_threads()} thread(s); top-5 classes {np.argsort(logits[0])[::-1][:5].tolist()}\n")
