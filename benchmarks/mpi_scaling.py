"""Data-parallel scaling on one machine: `minirnn train` as 1 process with 1 thread, 2 MPI ranks with
1 thread each, and 1 process with 2 threads (docs/distributed.md).

    python benchmarks/mpi_scaling.py --units gru lstm nlstm --steps 40 --repeats 2

Each run is the demo preset for ``--steps`` steps without validation or periodic
checkpoints; the number reported is the run's own "this run: S s" (the training
steps and the final checkpoint, not the start-up, the dataset or the final test),
the median over ``--repeats`` runs taken in turns (1 thread, 2 ranks, 2 threads,
then again), so that a machine shared with other work disturbs all three alike.
Needs mpi4py and mpiexec (pip install 'minirnn[mpi]').

    mpiexec -n 2 python benchmarks/mpi_scaling.py --allreduce

times the step's one collective alone: an in-place MPI Allreduce of a float32
buffer the size of the demo Nested LSTM's and of the paper LSTM's parameters.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        sys.exit("mpiexec not found: pip install 'minirnn[mpi]'")
    return found


def run(kind: str, unit: str, steps: int, folder: Path) -> float:
    threads = "2" if kind == "1 process, 2 threads" else "1"
    env = dict(os.environ, **{v: threads for v in THREAD_VARS})
    env.pop("MINIRNN_MPI", None)
    out = folder / f"{unit}-{kind.replace(' ', '_').replace(',', '')}.h5"
    argv = [sys.executable, "-m", "minirnn", "train", "--unit", unit, "--preset", "demo", "--steps", str(steps),
            "--eval-every", "0", "--checkpoint-every", "0", "--no-progress", "--overwrite", "--out", str(out)]
    if kind == "2 ranks, 1 thread each":
        argv = [mpiexec(), "-n", "2", *argv]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        sys.exit(f"{kind} failed: {proc.stderr.strip()}")
    match = re.search(r"this run: ([0-9.]+) s", proc.stdout)
    return float(match.group(1))


def time_allreduce() -> None:
    import time

    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for what, n, reps in (("demo Nested LSTM", 399106, 50), ("paper LSTM", 15629586, 5)):
        buffer = np.ones(n, np.float32)
        comm.Allreduce(MPI.IN_PLACE, buffer)
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(reps):
            comm.Allreduce(MPI.IN_PLACE, buffer)
        comm.Barrier()
        seconds = (time.perf_counter() - start) / reps
        if comm.rank == 0:
            print(f"{what}: {n:,} float32 ({4 * n / 1e6:.1f} MB) on {comm.size} ranks: "
                  f"{1e3 * seconds:.2f} ms per Allreduce (mean of {reps})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", nargs="+", default=["gru", "lstm", "nlstm"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--allreduce", action="store_true", help="time the gradient all-reduce alone (under mpiexec)")
    args = parser.parse_args()
    if args.allreduce:
        time_allreduce()
        return
    kinds = ["1 process, 1 thread", "2 ranks, 1 thread each", "1 process, 2 threads"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for unit in args.units:            # build the dataset cache and compile once, untimed
            run(kinds[0], unit, 1, folder)
        print(f"demo preset, {args.steps} steps, median of {args.repeats} (seconds; steps per second)")
        print("| unit | " + " | ".join(kinds) + " | 2 ranks vs 1 thread | 2 ranks vs 2 threads |")
        print("|---|" + "---|" * (len(kinds) + 2))
        for unit in args.units:
            times = {k: [] for k in kinds}
            for _ in range(args.repeats):
                for kind in kinds:
                    times[kind].append(run(kind, unit, args.steps, folder))
            med = {k: statistics.median(v) for k, v in times.items()}
            cells = [f"{med[k]:.1f} s ({args.steps / med[k]:.1f}/s)" for k in kinds]
            print(f"| {unit} | " + " | ".join(cells) + f" | {med[kinds[0]] / med[kinds[1]]:.2f}x"
                  f" | {med[kinds[2]] / med[kinds[1]]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
