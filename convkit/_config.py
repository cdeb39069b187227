"""convkit.show_config(): how this copy of convkit was built and what it runs on."""
import platform
import sys

import numpy as np

from . import _alloc
from . import _build_config as build
from ._kernels import gemm as _gemm
from ._kernels import threads as _omp
from ._threads import get_num_threads


def blas_info():
    """Name and version of the BLAS NumPy is built with (no convkit kernel calls it: convkit's GEMM is
    its own; reported for the peers and the benchmark's GEMM ceiling)."""
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return "unknown"


def config():
    """The build and runtime facts as a dict (also written into benchmark JSON)."""
    from . import __version__
    return {
        "convkit": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "compiler": build.compiler,
        "compile_args": " ".join(build.compile_args),
        "openmp": _omp.openmp_enabled(),
        "native": build.native,
        "vector_bits": _gemm.vector_bits(),
        "tile": "x".join(map(str, _gemm.tile_shape(np.float32))) + " float32",
        "debug": build.debug,
        "blas": blas_info(),
        "num_threads": get_num_threads(),
        "buffer_cache": f"{_alloc.CACHE_LIMIT >> 20} MiB (CONVKIT_BUFFER_CACHE_MB)",
    }


def show_config():
    """Print the version, compiler and flags, OpenMP, native flags, vector width and register tile, BLAS,
    thread count and the output buffer cache's limit."""
    for key, value in config().items():
        print(f"{key:>13}: {value}")
