#!/usr/bin/env bash
# The GPU check: run on a machine with a CUDA GPU, python3, cupy, pytest (and
# torch for the comparison).  Works offline and installs nothing: minirnn is
# made importable through a throw-away package tree of symbolic links (the repo
# maps kernels/ and cli/ into the minirnn package, see setup.cfg).
#
#   scripts/gpu-check.sh            # step limits add up to 450 s (7.5 minutes at most)
#
# Steps: `minirnn doctor --device gpu` (the preflight a user runs: driver, libraries,
# every kernel compiled, a graph captured, GPU = CPU in float64), GPU tests (pytest
# -m gpu), the CPU-side CUDA source tests, an end-to-end run (the Nested LSTM demo
# trained 60 steps on the GPU, its checkpoint evaluated on the CPU and back on the GPU, the same run on the CPU, both loss curves side
# by side: scripts/loss_curves.py), then the training-step benchmark (paper and
# demo configurations); its short table is printed last.  JSON and Markdown
# results go to $OUT when it is set.  Exit status: non-zero if any step failed.
# Nothing is written outside a temporary folder (removed at exit) and $OUT,
# except the caches of compiled kernels (Numba's __pycache__, CuPy's kernel cache).
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

run_step() {  # run_step <label> <seconds> <command...>; with STEP_STDOUT=<file>, stdout is kept there (and shown)
    local label="$1" limit="$2" rc=0 keep="${STEP_STDOUT:-}"
    shift 2
    say ""
    say "== $label"
    local t0=$SECONDS
    if [ -n "$keep" ]; then
        timeout "$limit" "$@" >"$keep" || rc=$?
        cat "$keep"
    else
        timeout "$limit" "$@" || rc=$?
    fi
    if [ "$rc" -eq 0 ]; then
        say "-- $label: ok ($((SECONDS - t0)) s)"
    else
        say "-- $label: FAILED (exit $rc$([ "$rc" -eq 124 ] && printf ', timed out after %s s' "$limit"), $((SECONDS - t0)) s)"
        status=1
    fi
}

PYTEST=("$PY" -m pytest -c "$REPO/setup.cfg" --rootdir "$REPO" -p no:cacheprovider)
# Step limits add up to 450 s (30 + 100 + 30 + 90 + 120 + 40 + 40), so the script fits a 15-minute lease with a
# rerun.  The doctor compiles every kernel first, into CuPy's disk cache, which the GPU tests then reuse.
run_step "minirnn doctor" 30 "$PY" -m minirnn doctor --device gpu
run_step "GPU tests" 100 "${PYTEST[@]}" -m gpu -q -rs "$REPO/tests"
run_step "CUDA source tests (nvcc / host harness)" 30 "${PYTEST[@]}" -q -rs "$REPO/tests/test_cuda_sources.py"

# --- End to end (limits add up to 90 s): the demo trained on the GPU, evaluated on the CPU and back on the
# GPU, the same run on the CPU, and the two loss curves side by side.  `minirnn` here is scripts/minirnn_cli.py
# (the console script minirnn.cli.main:cli, which also prints the process's CUDA graph counters on stderr when
# it used the GPU).  The demo's data cache lives in the temporary folder; its built-in corpus needs no network.
E2E="$SHIM/e2e"
mkdir -p "$E2E/home" "$SHIM/bin"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$PY" "$REPO/scripts/minirnn_cli.py" >"$SHIM/bin/minirnn"
chmod +x "$SHIM/bin/minirnn"
export PATH="$SHIM/bin:$PATH"
export MINIRNN_HOME="$E2E/home"
export MINIRNN_CLI_GRAPH_STATUS_FILE="$E2E/graph-status.txt"   # minirnn_cli.py appends its CUDA graph line
# Validation off and one checkpoint at the end; the preset's final test evaluation stays (a second).
DEMO=(--unit nlstm --preset demo --steps 60 --seed 0 --eval-every 0 --checkpoint-every 0 --no-progress)
run_step "e2e: train the Nested LSTM demo on the GPU (60 steps)" 30 \
    minirnn train "${DEMO[@]}" --device gpu --out "$E2E/gpu.h5"
STEP_STDOUT="$E2E/eval-cpu.txt" run_step "e2e: evaluate the GPU checkpoint on the CPU" 12 \
    minirnn evaluate "$E2E/gpu.h5" --device cpu --no-progress
STEP_STDOUT="$E2E/eval-gpu.txt" run_step "e2e: ... and back on the GPU" 13 \
    minirnn evaluate "$E2E/gpu.h5" --device gpu --no-progress
if [ -s "$E2E/eval-cpu.txt" ] && [ -s "$E2E/eval-gpu.txt" ]; then
    if cmp -s "$E2E/eval-cpu.txt" "$E2E/eval-gpu.txt"; then
        say "(evaluate: the same printed metrics on the CPU and on the GPU)"
    else
        say "(evaluate: the printed metrics differ between the CPU (<) and the GPU (>); informational:)"
        diff "$E2E/eval-cpu.txt" "$E2E/eval-gpu.txt" || true
    fi
fi
run_step "e2e: the same demo run on the CPU (60 steps)" 25 \
    minirnn train "${DEMO[@]}" --device cpu --out "$E2E/cpu.h5"
run_step "e2e: loss curves, GPU vs CPU" 10 \
    "$PY" "$REPO/scripts/loss_curves.py" "$E2E/gpu.h5" "$E2E/cpu.h5" --labels gpu,cpu

say ""
say "== CUDA graph status of the end-to-end GPU runs (graph_status(): captured / replayed / fallback_reason)"
if [ -s "$MINIRNN_CLI_GRAPH_STATUS_FILE" ]; then cat "$MINIRNN_CLI_GRAPH_STATUS_FILE"; else say "(none recorded: no end-to-end run got as far as loading the CUDA path)"; fi

# The benchmark: paper and demo configurations, 3 units each, minirnn alternating with PyTorch.  It starts no
# new row after 95 s and writes its table after every row, so even a slow run leaves the rows it finished.
BENCH_OUT="${OUT_DIR:-$SHIM/bench}"
run_step "benchmark (paper and demo configurations)" 120 \
    "$PY" "$REPO/benchmarks/gpu_bench.py" --configs paper,demo --precision fp32 --time-budget 95 --out "$BENCH_OUT"

# Reliability on the GPU: real signals inside real saves of a GPU run, a resume, an oversized model refused.
run_step "reliability on the GPU (signals inside saves, resume, memory refusal)" 40 \
    "$PY" "$REPO/scripts/gpu_signals.py"

# Where a paper step goes (CUDA events around each part); informational.
run_step "profile of a paper step (CUDA events)" 40 \
    "$PY" "$REPO/benchmarks/gpu_profile.py" --units lstm,gru,nlstm --repeats 5

say ""
if [ "$status" -ne 0 ]; then say "gpu-check: SOME STEPS FAILED (see above)"; else say "gpu-check: all steps passed"; fi
# The benchmark's short table, last.
if [ -f "$BENCH_OUT/gpu_bench.md" ]; then cat "$BENCH_OUT/gpu_bench.md"; else say "(no benchmark table)"; fi
exit "$status"
