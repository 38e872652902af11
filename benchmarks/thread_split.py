"""Would splitting the batch over threads put a small CPU step on all its cores?

    python benchmarks/thread_split.py --unit lstm --repeats 11

In a demo step every matrix product runs on all cores (OpenBLAS's threads), but
the gate kernels, the softmax and the bookkeeping run on one.  Splitting the
batch in halves, each run by its own Python thread with single-threaded BLAS and
their gradients summed (as data-parallel ranks do), would put all of it on both
cores.  This measures the gain that would be on offer and whether threads
deliver it:

1. the full step (BLAS on all cores), a step of half the batch with one BLAS
   thread (with perfect overlap, the split step would take this long), and two
   such half steps at once in two threads (what the split step takes), each on
   its own model sharing the same parameters; alternating;
2. the fast LSTM's forward on the half batch (its inputs' row lookup, then the time
   loop: per step a product and the gate kernel) run by one thread, then by two
   threads at once, each with its own unit: "overlap" = 2 x one thread's time /
   the two threads' time (2: they ran side by side; 1: one after the other).
   Also with 256 rows, whose calls are 16 times longer.

Needs threadpoolctl (pip install threadpoolctl) to set the BLAS threads.
docs/benchmarks.md ("What is left of the small step") has a run.
"""
from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minirnn.kernels.units import fast_unit
from minirnn.machine.blas import report_lines
from minirnn.machine.bench import DEFAULT_PAUSE, StepSetup, Stepper
from minirnn.model import INPUT_VOCAB
from minirnn.training.presets import preset
from minirnn.units.lstm import LSTM


def split_steps(unit: str, repeats: int, pause: float, blas) -> dict:
    """Median seconds of the full demo step (all BLAS threads), of a half-batch step alone and of
    two half-batch steps at once in two threads (one BLAS thread each)."""
    cfg = preset("demo", unit)
    sizes = dict(unit=unit, hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg["depth"],
                 classes=cfg["vocab_size"] + 2, time=cfg["max_length"], counted_fraction=0.9)
    full = Stepper(StepSetup(batch=cfg["batch_size"], **sizes), "fast")
    halves = [Stepper(StepSetup(batch=cfg["batch_size"] // 2, seed=seed, **sizes), "fast") for seed in (0, 1)]
    for h in halves:
        h.model.params.update(full.model.params)   # one set of weights, read by both threads

    with ThreadPoolExecutor(2) as pool:
        def both():
            list(pool.map(lambda h: h.model.loss_and_grads(h.source, h.target), halves))

        runs = {"full": (None, lambda: full.model.loss_and_grads(full.source, full.target)),
                "half": (1, lambda: halves[0].model.loss_and_grads(halves[0].source, halves[0].target)),
                "two halves at once": (1, both)}
        times = {name: [] for name in runs}
        for r in range(repeats + 1):                  # the first round warms up
            for name, (threads, fn) in runs.items():
                with blas.limit(limits=threads, user_api="blas"):   # switched outside the timed part
                    time.sleep(pause)
                    t0 = time.perf_counter()
                    fn()
                    if r:
                        times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def loop_overlap(rows: int, hidden: int, steps: int, repeats: int, blas) -> tuple[float, float]:
    """Median seconds of the fast LSTM's forward (its inputs' row lookup, then the time loop) in one
    thread, and of two threads running it at once, each with its own unit (its own workspaces)."""
    rng = np.random.default_rng(0)
    units = [fast_unit(LSTM(INPUT_VOCAB, hidden)) for _ in range(2)]
    params = units[0].init_params(rng, np.float32)
    ids = rng.integers(1, INPUT_VOCAB, size=(steps, rows))
    state = units[0].zero_state(np, rows, np.float32)

    def loop(i):
        units[i].forward(params, ids, state)

    one, two = [], []
    with ThreadPoolExecutor(2) as pool, blas.limit(limits=1, user_api="blas"):
        loop(0)
        list(pool.map(loop, [0, 1]))
        for _ in range(repeats):
            t0 = time.perf_counter()
            loop(0)
            one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            list(pool.map(loop, [0, 1]))
            two.append(time.perf_counter() - t0)
    return statistics.median(one), statistics.median(two)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unit", default="lstm", choices=["gru", "lstm", "nlstm"])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--pause", type=float, default=DEFAULT_PAUSE,
                    help="untimed seconds before each timed step, so BLAS threads stop spinning")
    args = ap.parse_args(argv)
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController()
    print("\n".join(report_lines()), flush=True)
    t = split_steps(args.unit, args.repeats, args.pause, blas)
    print(f"demo {args.unit}, loss and gradients (no Adam), median of {args.repeats}:")
    print(f"  full batch, BLAS on all cores        {1e3 * t['full']:6.1f} ms")
    print(f"  half the batch alone, 1 BLAS thread  {1e3 * t['half']:6.1f} ms "
          f"(perfect overlap: {t['full'] / t['half']:.2f}x faster than the full batch)")
    print(f"  both halves at once, 2 threads       {1e3 * t['two halves at once']:6.1f} ms "
          f"({t['full'] / t['two halves at once']:.2f}x)")
    cfg = preset("demo", args.unit)
    for rows in (cfg["batch_size"] // 2, 256):
        one, two = loop_overlap(rows, cfg["hidden"], cfg["max_length"], args.repeats, blas)
        print(f"forward loop of {rows} rows, one BLAS thread: one thread {1e3 * one:.2f} ms, "
              f"two threads at once {1e3 * two:.2f} ms -> overlap {2 * one / two:.2f}")


if __name__ == "__main__":
    main()
