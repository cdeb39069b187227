"""Mutation check: flip one sign in each kernel (forward, GEMM, gradients, SGD) and confirm that the tests catch it.

    python scripts/mutation_check.py [--only NAME ...] [--scratch DIR]

Works on a scratch copy of the tree (the tracked files and the built kernels of the tree it runs from; build
it first), never on the tree itself.  For each mutant it edits one line of one kernel source, rebuilds only
the modules compiled from it (CONVKIT_MODULES), runs the tests that cover it and records whether they
failed (they must), then restores the source and the compiled modules.  Prints one line per mutant and
exits 1 when a mutant survived.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (source, text, its mutant, modules compiled from the source, tests that must catch it)
MUTANTS = {
    "microkernel": ("src/microkernel.h", "a[r][0] += v * w0", "a[r][0] -= v * w0",
                    "conv_direct,conv_transpose,deform_direct,winograd",
                    "tests/test_conv2d.py tests/test_conv_transpose.py tests/test_deform.py"),
    "conv_direct": ("src/conv_direct.pyx", "iw = iw0[r] + kw * dw", "iw = iw0[r] - kw * dw", "conv_direct",
                    "tests/test_conv2d.py"),
    "depthwise": ("src/depthwise_tile.h", "a[r][v] += *(const VT *)(xp + r * step + v * LANES) * wv[v]",
                  "a[r][v] -= *(const VT *)(xp + r * step + v * LANES) * wv[v]", "depthwise",
                  "tests/test_depthwise.py"),
    "grouped_tile": ("src/grouped_tile.h", "a[r][c] += v[r] * wc", "a[r][c] -= v[r] * wc", "conv_grouped",
                     "tests/test_grouped.py"),
    "conv_grouped": ("src/conv_grouped.pyx", "iw = (ow0 + r) * sw - pl + kw * dw",
                     "iw = (ow0 + r) * sw + pl + kw * dw", "conv_grouped", "tests/test_grouped.py"),
    "winograd_tile": ("src/winograd_tile.h", "o[3 * os + l] = d1 - d3", "o[3 * os + l] = d1 + d3", "winograd",
                      "tests/test_winograd.py"),
    "winograd": ("src/winograd.pyx", "iw = tx * m - pl + j", "iw = tx * m + pl + j", "winograd",
                 "tests/test_winograd.py"),
    "conv_transpose": ("src/conv_transpose.pyx", "ah = phh + pt - kh * dh", "ah = phh - pt - kh * dh",
                       "conv_transpose", "tests/test_conv_transpose.py"),
    "im2col": ("src/im2col.pyx", "iw = ow * sw - pl + kw * dw", "iw = ow * sw + pl + kw * dw", "im2col",
               "tests/test_im2col.py tests/test_conv2d.py"),
    "col2im": ("src/im2col.pyx", "dst[c] += src[c]", "dst[c] -= src[c]", "im2col",
               "tests/test_im2col.py tests/test_conv_transpose.py"),
    "bilinear": ("src/bilinear.pxd", "w00 * p00[c] + w01 * p01[c]", "w00 * p00[c] - w01 * p01[c]",
                 "deform,deform_direct", "tests/test_deform.py"),
    "deform_cols": ("src/deform_cols.pxd", "xbase + j * dw + off", "xbase - j * dw + off", "deform,deform_direct",
                    "tests/test_deform.py"),
    "activation": ("src/activation.pxd", "y[i] = x[i] + bias[i]", "y[i] = x[i] - bias[i]",
                   "elementwise,conv_direct", "tests/test_conv2d.py tests/test_linear.py"),
    "batchnorm": ("src/batchnorm.pyx", "x[r * C + c] * scale[c] + shift[c]", "x[r * C + c] * scale[c] - shift[c]",
                  "batchnorm", "tests/test_batch_norm.py"),
    "reductions": ("src/reductions.pyx", "acc[c] += x[r * C + c]", "acc[c] -= x[r * C + c]", "reductions",
                   "tests/test_batch_norm.py tests/test_pooling.py"),
    "pooling": ("src/pooling.pyx", "dst[c] += src[c]", "dst[c] -= src[c]", "pooling", "tests/test_pooling.py"),
    "max_pool": ("src/pooling.pyx", "iw = ow * sw - pw + kw * dw", "iw = ow * sw + pw + kw * dw", "pooling",
                 "tests/test_pooling.py"),
    "gemm_tile": ("src/microkernel.h", "c[r][0] += v * b0", "c[r][0] -= v * b0", "gemm", "tests/test_matmul.py"),
    "gemm_epilogue": ("src/gemm.pxd", "row[j] += bias[j]", "row[j] -= bias[j]", "gemm", "tests/test_linear.py"),
    "conv_grad": ("src/conv_grad.pyx", "iw = ow * sw - pl + kw * dw", "iw = ow * sw + pl + kw * dw", "conv_grad",
                  "tests/test_grad_numeric.py"),
    "deform_grad": ("src/deform_grad.pyx", "dots[1] += l01[j]", "dots[1] -= l01[j]", "deform_grad",
                    "tests/test_grad_numeric.py"),
    "pooling_grad": ("src/pooling_grad.pyx", "dst[c] += src[c] * inv", "dst[c] -= src[c] * inv", "pooling_grad",
                     "tests/test_grad_numeric.py"),
    "max_pool_grad": ("src/pooling_grad.pyx", "+= go[c]", "-= go[c]", "pooling_grad", "tests/test_grad_numeric.py"),
    "batchnorm_grad": ("src/batchnorm_grad.pyx", "(x[r * C + c] - mean[c])", "(x[r * C + c] + mean[c])",
                       "batchnorm_grad", "tests/test_grad_numeric.py"),
    "activation_grad": ("src/elementwise_grad.pyx", "(one - s * s)", "(one + s * s)", "elementwise_grad",
                        "tests/test_grad_numeric.py"),
    "softmax_grad": ("src/softmax.pyx", "y[i] * (g[i] - s)", "y[i] * (g[i] + s)", "softmax",
                     "tests/test_grad_numeric.py"),
    "sgd": ("src/sgd.pyx", "p[i] = p[i] - lr * d", "p[i] = p[i] + lr * d", "sgd", "tests/test_optim.py"),
}


def run(cmd, cwd, **env):
    return subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)


def copy_tree(scratch):
    files = run(["git", "ls-files"], ROOT).stdout.split()
    built = [str(p.relative_to(ROOT)) for p in (ROOT / "convkit").rglob("*.so")] + ["convkit/_build_config.py"]
    for rel in files + built:
        if (ROOT / rel).is_file():
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, scratch / rel)


def check(scratch, name):
    source, text, mutant, modules, tests = MUTANTS[name]
    path = scratch / source
    original = path.read_text()
    if original.count(text) < 1:
        return f"{name:15s} NOT APPLIED: {text!r} not in {source}"
    sos = [p for m in modules.split(",") for p in (scratch / "convkit" / "_kernels").glob(f"{m}.*so")]
    saved = {p: p.read_bytes() for p in sos}
    try:
        path.write_text(original.replace(text, mutant, 1))
        build = run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--force"], scratch,
                    CONVKIT_MODULES=modules)   # (--force: a mutated header must recompile its modules)
        if build.returncode:
            return f"{name:15s} BUILD FAILED\n{build.stderr[-2000:]}"
        result = run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests.split()], scratch)
        verdict = "caught" if result.returncode else "SURVIVED"
        last = (result.stdout.strip().splitlines() or [""])[-1]
        return f"{name:15s} {verdict:8s} {source}: {text!r} -> {mutant!r} ({tests}: {last})"
    finally:
        path.write_text(original)
        for p, data in saved.items():
            p.write_bytes(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(MUTANTS), default=sorted(MUTANTS))
    parser.add_argument("--scratch", help="scratch directory (default: a temporary one, removed after)")
    args = parser.parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="convkit-mutants-"))
    copy_tree(scratch)
    survived = False
    try:
        for name in args.only:
            line = check(scratch, name)
            survived |= "SURVIVED" in line or "NOT APPLIED" in line or "FAILED" in line
            print(line, flush=True)
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
