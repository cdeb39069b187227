#!/usr/bin/env bash
# Memory-safety run: build convkit in debug mode (-O0 -g, Cython bounds checks) with AddressSanitizer and
# UndefinedBehaviorSanitizer in a fresh virtual environment and a temporary copy of the tree, then run the
# tests under them.  Fails on any failing test and on any sanitizer report.
#
#   scripts/sanitize.sh                 # the default selection (SANITIZE_TESTS below), 4-6 minutes on 2 cores
#   scripts/sanitize.sh tests/test_fuzz.py -k conv2d     # any pytest arguments instead
#
# Environment: PYTHON (interpreter for the venv, default python3), CONVKIT_SANITIZE_DIR (work directory,
# default a new temporary one, removed afterwards), CONVKIT_FUZZ (hypothesis profile, default "sanitize":
# tests/conftest.py).
# CPython is not instrumented, so libasan is LD_PRELOADed, and leak detection is off (the interpreter
# keeps memory alive at exit by design).  PYTHONMALLOC=malloc routes Python's small objects through
# malloc too, so ASan sees every allocation.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
if [[ -n "${CONVKIT_SANITIZE_DIR:-}" ]]; then
    WORK="$CONVKIT_SANITIZE_DIR"
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi

# The test suite: every kernel, the fuzzed edge cases (profile "sanitize"), the memory, out= and
# input-safety tests, the networks.  PyTorch is not installed in this venv, so its cross-checks skip.
# Left out: tests that run no kernel code of their own (README blocks in subprocesses, the bench harness,
# the README tables, CI's strictness hook) and whole-network training steps (their kernels are covered by
# tests/test_grad_numeric.py), which would take most of CI's time under ASan at -O0.
SANITIZE_TESTS=(tests --ignore=tests/test_readme_code.py --ignore=tests/test_bench_harness.py
                --ignore=tests/test_readme_tables.py --ignore=tests/test_ci_strict.py
                --ignore=tests/test_train.py --ignore=tests/test_train_digits.py)

start=$SECONDS
echo "== sanitize: fresh venv in $WORK"
"$PY" -m venv "$WORK/venv"
# shellcheck disable=SC1091
source "$WORK/venv/bin/activate"
python -m pip install --quiet "Cython>=3" "numpy>=2" "setuptools>=77" wheel pytest hypothesis \
    >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }

echo "== sanitize: copy of the tree (no build products)"
mkdir -p "$WORK/tree"
tar -C "$ROOT" --exclude='__pycache__' --exclude='*.so' --exclude='src/*.c' \
    --exclude='convkit/_build_config.py' -cf - setup.py pyproject.toml src convkit tests \
    | tar -C "$WORK/tree" -xf -

SAN="-fsanitize=address -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
echo "== sanitize: debug build with $SAN"
(cd "$WORK/tree" && CONVKIT_DEBUG=1 CONVKIT_EXTRA_COMPILE_ARGS="$SAN" CONVKIT_EXTRA_LINK_ARGS="$SAN" \
    python setup.py --quiet build_ext --inplace >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log"; exit 1; }
echo "   built in $((SECONDS - start)) s"

LIBASAN="$(${CC:-gcc} -print-file-name=libasan.so)"
[[ -f "$LIBASAN" ]] || { echo "libasan.so not found (gcc -print-file-name gave '$LIBASAN')"; exit 1; }
REPORTS="$WORK/sanitizer-report"
rm -f "$REPORTS".* "$WORK/canary".*
run_sanitized() {   # run_sanitized LOG_PREFIX COMMAND...: in the tree, under both sanitizers
    local log="$1"
    shift
    (cd "$WORK/tree" && \
        LD_PRELOAD="$LIBASAN" PYTHONMALLOC=malloc PYTHONPATH="$WORK/tree" \
        ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:log_path=$log" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$log" \
        CONVKIT_FUZZ="${CONVKIT_FUZZ:-sanitize}" "$@")
}

# Canary: a kernel writing past a column buffer one row short must be reported, or the sanitizer is not
# really active and a clean run below would prove nothing.  The buffer hides behind a view that claims
# the full 4 rows (as_strided), so the wrapper's own shape checks pass and the kernel writes the 4th row.
if run_sanitized "$WORK/canary" python -c "
import numpy as np
from numpy.lib.stride_tricks import as_strided
from convkit._kernels import im2col
cols = as_strided(np.empty((3, 8), np.float32), shape=(4, 8), strides=(32, 4))
im2col.im2col_nhwc(np.ones((1, 4, 4, 2), np.float32), cols,
                   0, 2, 0, 2, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2, 1)" 2>"$WORK/canary-stderr" \
        || ! grep -q "heap-buffer-overflow" "$WORK/canary".* 2>/dev/null; then
    echo "== sanitize: FAILED, AddressSanitizer did not report the canary's overflow (not active?)"
    cat "$WORK/canary-stderr"
    exit 1
fi
echo "== sanitize: canary overflow reported, the sanitizer is active"
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=("${SANITIZE_TESTS[@]}")

echo "== sanitize: pytest ${args[*]}"
status=0
run_sanitized "$REPORTS" python -m pytest -q -p no:cacheprovider --durations=15 "${args[@]}" || status=$?

# The terabyte-allocation tests make ASan warn "failed to allocate" (and return NULL: NumPy raises
# MemoryError, as the tests expect); any other line in the logs is a report.
if compgen -G "$REPORTS.*" >/dev/null && grep -qv "WARNING: AddressSanitizer failed to allocate" "$REPORTS".*; then
    echo "== sanitize: FAILED, sanitizer reports:"
    grep -v "WARNING: AddressSanitizer failed to allocate" "$REPORTS".*
    exit 1
fi
echo "== sanitize: no sanitizer report ($(cat "$REPORTS".* 2>/dev/null | wc -l) refused terabyte allocations);" \
     "pytest exit status $status; total $((SECONDS - start)) s"
exit "$status"
