#!/usr/bin/env bash
# The GPU check: run on a machine with a CUDA GPU, python3, cupy, pytest (and
# torch for the comparison).  Works offline and installs nothing: minirnn is
# made importable through a throw-away package tree of symbolic links (the repo
# maps kernels/ and cli/ into the minirnn package, see setup.cfg).
#
#   scripts/gpu-check.sh            # at most 6 minutes (step time limits), expected 3-5 on an H100
#
# Steps: GPU tests (pytest -m gpu), the CPU-side CUDA source tests, then the
# training-step benchmark; its short table is printed last.  JSON and Markdown
# results go to $OUT when it is set.  Exit status: non-zero if any step failed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-}"
status=0

say() { printf '%s\n' "$*"; }

SHIM="$(mktemp -d "${TMPDIR:-/tmp}/minirnn-gpu-check.XXXXXX")"
trap 'rm -rf "$SHIM"' EXIT
mkdir "$SHIM/minirnn"
for entry in "$REPO"/minirnn/*; do
    ln -s "$entry" "$SHIM/minirnn/$(basename "$entry")"
done
ln -s "$REPO/kernels" "$SHIM/minirnn/kernels"
ln -s "$REPO/cli" "$SHIM/minirnn/cli"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$SHIM"   # so that `python -m` finds the shim, not the repo's bare minirnn/

say "== environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || say "(nvidia-smi not available)"
"$PY" - <<'PYEOF' || status=1
import minirnn, cupy
print("minirnn from", minirnn.__file__)
print("cupy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
      "devices", cupy.cuda.runtime.getDeviceCount())
PYEOF

run_step() {  # run_step <label> <seconds> <command...>
    local label="$1" limit="$2"
    shift 2
    say ""
    say "== $label"
    local t0=$SECONDS
    if timeout "$limit" "$@"; then
        say "-- $label: ok ($((SECONDS - t0)) s)"
    else
        say "-- $label: FAILED (exit $?, $((SECONDS - t0)) s)"
        status=1
    fi
}

PYTEST=("$PY" -m pytest -c "$REPO/setup.cfg" --rootdir "$REPO" -p no:cacheprovider)
# Step limits add up to under 6 minutes, so the script fits a 15-minute lease with a rerun.
run_step "GPU tests" 150 "${PYTEST[@]}" -m gpu -q -rs "$REPO/tests"
run_step "CUDA source tests (nvcc / host harness)" 60 "${PYTEST[@]}" -q -rs "$REPO/tests/test_cuda_sources.py"

BENCH_OUT="${OUT_DIR:-$SHIM/bench}"
run_step "benchmark" 140 "$PY" "$REPO/benchmarks/gpu_bench.py" --out "$BENCH_OUT"

say ""
if [ "$status" -ne 0 ]; then say "gpu-check: SOME STEPS FAILED (see above)"; else say "gpu-check: all steps passed"; fi
# The benchmark's short table, last.
if [ -f "$BENCH_OUT/gpu_bench.md" ]; then cat "$BENCH_OUT/gpu_bench.md"; else say "(no benchmark table)"; fi
exit "$status"
