"""Thread scaling: each convkit algorithm on --threads threads against the same call on one thread, timed
in the same interleaved rounds (two runs one after the other, as ``bench/compare.py`` compares them, see
the machine drift between them; these do not).

The "1 thread" row stands where a peer stands in other sections, so the verdict's ratio ("faster than
1 thread (1.9x)") is the speed-up from the extra threads: the median of the per-round ratios.
"""
import numpy as np

import convkit

from .core import Candidate, Case

SECTIONS = {"threads": "thread scaling: direct and im2col on --threads threads against one thread, "
                       "interleaved"}
ORDER = 12

# (name, N, H=W, C): 3x3, stride 1, padding 1, C -> C
LAYERS = [
    ("3x3 56x56x64 b1", 1, 56, 64),
    ("3x3 28x28x128 b8", 8, 28, 128),
]
ALGOS = ("im2col", "direct")


def scaling_case(algo, name, n, size, c):
    def make(config):
        rng = config.rng()
        x = rng.standard_normal((n, size, size, c)).astype(config.dtype)
        w = (rng.standard_normal((3, 3, c, c)) * np.sqrt(2 / (9 * c))).astype(config.dtype)

        def call(threads):
            return lambda: convkit.conv2d(x, w, padding=1, algo=algo, num_threads=threads)

        return [Candidate(f"{config.threads} threads", call(config.threads)),
                Candidate("1 thread", call(1), ours=False)]

    return Case("threads", f"{algo} {name}", make, flops=2.0 * n * size * size * c * c * 9)


def cases(config):
    if config.threads < 2:
        return []
    return [scaling_case(algo, *layer) for layer in LAYERS for algo in ALGOS]
