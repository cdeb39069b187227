"""convkit.matmul (convkit's own GEMM) against NumPy's BLAS on a square and two convolution-shaped products.

The convolution shapes are ResNet's im2col GEMMs: 3x3 56x56x64 at batch 1 (M=3136, K=576, N=64) and 3x3
14x14x512 -> 512 at batch 2 (M=392, K=4608, N=512).  Both run on the same thread count (the bench's
--threads: convkit's OpenMP team, NumPy's BLAS limited through threadpoolctl).
"""
import numpy as np

import convkit

from .core import Candidate, Case

SECTIONS = {"matmul": "matmul: convkit vs NumPy's BLAS, square and convolution-shaped products"}
ORDER = 5

# (name, M, K, N)
PRODUCTS = [
    ("2048^3", 2048, 2048, 2048),
    ("conv 3136x576x64", 3136, 576, 64),
    ("conv 392x4608x512", 392, 4608, 512),
]
QUICK_PRODUCTS = [1, 2]


def matmul_case(name, m, k, n):
    def make(config):
        rng = config.rng()
        a = rng.standard_normal((m, k)).astype(config.dtype)
        b = rng.standard_normal((k, n)).astype(config.dtype)
        ours, theirs = np.empty((m, n), config.dtype), np.empty((m, n), config.dtype)
        return [Candidate("convkit", lambda: convkit.matmul(a, b, out=ours)),
                Candidate("numpy", lambda: np.matmul(a, b, out=theirs), ours=False)]

    return Case("matmul", name, make, flops=2.0 * m * k * n)


def cases(config):
    products = [PRODUCTS[i] for i in QUICK_PRODUCTS] if config.quick else PRODUCTS
    return [matmul_case(*product) for product in products]
