#!/usr/bin/env bash
# The whole test suite on a build with the other vector width: 256-bit where the compiler's native target
# has AVX-512F, otherwise 512-bit (GCC then runs the 512-bit code as pairs of 256-bit operations), so both
# register tiles of src/simd.h (and every kernel's packing that follows them) are tested on any machine.
#
#   scripts/vector_width.sh          # the other width, whole suite (about 2 minutes on 2 idle cores)
#   scripts/vector_width.sh 128 tests/test_matmul.py     # a given width (128, 256, 512), pytest arguments
#
# Runs with the current Python (numpy, Cython, pytest, hypothesis installed), in a temporary copy of the tree.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $# -gt 0 && "$1" =~ ^(128|256|512)$ ]]; then
    BITS="$1"
    shift
elif echo | "${CC:-gcc}" -march=native -dM -E - 2>/dev/null | grep -q __AVX512F__; then
    BITS=256
else
    BITS=512
fi
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(tests)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tar -C "$ROOT" --exclude='__pycache__' --exclude='*.so' --exclude='src/*.c' \
    --exclude='convkit/_build_config.py' -cf - setup.py pyproject.toml README.md src convkit tests bench scripts \
    | tar -C "$WORK" -xf -
start=$SECONDS
(cd "$WORK" && CONVKIT_VECTOR_BITS="$BITS" python setup.py --quiet build_ext --inplace -j 2 \
    >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log"; exit 1; }
built=$(cd "$WORK" && python -c "from convkit._kernels import gemm; print(gemm.vector_bits())")
[[ "$built" == "$BITS" ]] || { echo "== vector width: FAILED, asked for $BITS-bit, built $built-bit"; exit 1; }
echo "== vector width: $BITS-bit build in $((SECONDS - start)) s, running ${args[*]}"
(cd "$WORK" && python -m pytest -q -p no:cacheprovider "${args[@]}")
