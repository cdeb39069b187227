"""Compiled kernels, built from ``src/*.pyx``. Call them through convkit's public functions."""
import importlib.machinery
from pathlib import Path


def _check_built():
    """A clear ImportError where the kernels were never compiled (a source tree before its first build)."""
    here = Path(__file__).parent
    if not any((here / f"threads{suffix}").exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        raise ImportError(
            f"convkit's compiled kernels are missing from {here}: this is a source tree whose kernels were "
            f"never compiled for this Python. From the repository root, run `python -m pip install .` "
            f"(it also leaves the compiled kernels here) or `python setup.py build_ext --inplace`, or "
            f"import the installed convkit from another directory.")


_check_built()
