"""Compiled kernels, built from ``src/*.pyx``. Call them through convkit's public functions."""
