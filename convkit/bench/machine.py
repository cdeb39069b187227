"""The machine and build facts written into benchmark JSON (and named in the README's tables).

The CPU model is ``lscpu``'s "Model name"; the ISA is the one the build targets, read from the
compiler's predefined macros for the build's flags at build time (``convkit/_build_config.py``), beside
the vector extensions the CPU reports, so a portable build on an AVX-512 machine says "AVX2 build".
"""
import importlib.metadata
import json
import os
import platform
import subprocess

import numpy as np

from convkit._config import config as build_config

PEERS = ("torch", "torchvision", "onnxruntime", "onnx", "dask", "threadpoolctl", "matplotlib")
CPU_ISA_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx2", "fma", "avx", "sse4_2",
                 "asimd", "sve", "neon")


def lscpu():
    """``lscpu``'s fields as a dict ("Model name" -> "AMD EPYC", ...); empty where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu", "-J"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {e["field"].rstrip(":"): e["data"] for e in json.loads(out).get("lscpu", []) if "data" in e}


def cpu_model(fields=None):
    fields = lscpu() if fields is None else fields
    return fields.get("Model name") or platform.processor() or platform.machine()


def compiler_version(compiler):
    try:
        out = subprocess.run(compiler.split() + ["--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def blas_details():
    """threadpoolctl's description of the BLAS NumPy loaded (library, version, kernel architecture)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def package_versions(names=PEERS):
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def facts():
    """Everything a reader needs to place a benchmark figure: CPU, cores, caches, ISA, OS, compiler, flags,
    NumPy, BLAS and the peers' versions."""
    from convkit import _build_config as build
    fields = lscpu()
    flags = set(fields.get("Flags", "").split())
    sockets = int(fields.get("Socket(s)", "1") or 1)
    cores = int(fields["Core(s) per socket"]) * sockets if "Core(s) per socket" in fields else None
    return {
        "cpu_model": cpu_model(fields),
        "cpu_family_model": f"{fields.get('CPU family', '?')}/{fields.get('Model', '?')}",
        "cpus": os.cpu_count(),
        "cores": cores,
        "caches": {k: v for k, v in fields.items() if k.endswith("cache")},
        "cpu_isa_flags": [f for f in CPU_ISA_FLAGS if f in flags],
        "build_isa": getattr(build, "isa", "unknown"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,   # 1 minute, at the start
        "os": platform.platform(),
        "compiler": compiler_version(build.compiler),
        "build": build_config(),
        "numpy": np.__version__,
        "blas": blas_details(),
        "packages": package_versions(),
    }
