"""Training-step time of two checkouts of minirnn, in alternating processes.

    mkdir -p build/before build/after                  # (untracked) checkouts to compare
    git archive <commit before> | tar -x -C build/before
    git archive HEAD | tar -x -C build/after
    python benchmarks/before_after.py --before build/before --after build/after --config demo --rounds 5
    python benchmarks/before_after.py --before build/before --after build/after --config paper --rounds 3 --steps 1
    python benchmarks/before_after.py ... --clock process        # CPU time, one BLAS thread

Each round runs one process per checkout (in turn, the order swapped every
round) for every unit; a process builds the preset's model (float32, CPU, fast
path), runs one untimed step and times ``--steps`` steps (forward + backward +
Adam on one batch), and reports their median.  The table gives, per unit, the
median over rounds of each checkout's process medians, their spread (min-max),
and after / before (> 1: the after checkout is slower).  Processes, not steps,
alternate because the two checkouts are different code under one import name.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# Imports the checkout at argv[1] (its package and, like an installed minirnn, its kernels/
# and cli/ as minirnn.kernels and minirnn.cli), then times the steps of argv[2] (JSON).
CHILD = """
import json, sys, time
root = sys.argv[1]
sys.path.insert(0, root)
import minirnn
minirnn.__path__.append(root)
from minirnn.machine.bench import StepSetup, Stepper
from minirnn.training.presets import preset
a = json.loads(sys.argv[2])
cfg = preset(a["config"], a["unit"])
setup = StepSetup(unit=a["unit"], hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg.get("depth", 1),
                  classes=cfg["vocab_size"], batch=cfg["batch_size"], time=cfg["max_length"])
stepper = Stepper(setup, "fast")
stepper.step()
times = []
clock = time.process_time if a["clock"] == "process" else time.perf_counter
for _ in range(a["steps"]):
    time.sleep(a["pause"])
    t0 = clock()
    stepper.step()
    times.append(clock() - t0)
print(json.dumps(sorted(times)[len(times) // 2]))
"""


def one(root: Path, unit: str, args) -> float:
    spec = json.dumps({"config": args.config, "unit": unit, "steps": args.steps, "pause": args.pause,
                       "clock": args.clock})
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1") if args.clock == "process" else None
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), spec], capture_output=True, text=True,
                         cwd=root, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--config", choices=("demo", "paper"), default="demo")
    ap.add_argument("--units", default="gru,lstm,nlstm")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--pause", type=float, default=0.3, help="untimed seconds before each step (docs/benchmarks.md)")
    ap.add_argument("--clock", choices=("wall", "process"), default="wall",
                    help="wall time, or the process's CPU time with one BLAS thread")
    args = ap.parse_args(argv)
    from minirnn.machine.blas import report_lines   # numpy's BLAS: the same for both checkouts

    print("\n".join(report_lines()), flush=True)
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    units = args.units.split(",")
    for unit in units:                      # compile and cache every Numba kernel once per side, untimed
        for root in sides.values():
            one(root, unit, argparse.Namespace(**{**vars(args), "steps": 1}))
    times = {(u, s): [] for u in units for s in sides}
    for r in range(args.rounds):
        for unit in units:
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for side in order:
                times[unit, side].append(one(sides[side], unit, args))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"{args.config} step (float32, CPU, fast path, {args.clock} time), median of {args.steps} steps per "
          f"process, {args.rounds} processes per checkout")
    print("| unit | before: median (min-max) | after: median (min-max) | after / before |")
    print("|---|---|---|---|")
    for unit in units:
        cells = []
        for side in sides:
            t = times[unit, side]
            cells.append(f"{statistics.median(t) * 1e3:.1f} ms ({min(t) * 1e3:.1f}-{max(t) * 1e3:.1f})")
        ratio = statistics.median(times[unit, "after"]) / statistics.median(times[unit, "before"])
        print(f"| {unit} | {cells[0]} | {cells[1]} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
