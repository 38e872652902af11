"""Timing training steps (forward, backward, Adam) — the library behind `minirnn bench`.

Speed is reported as ratios against a baseline measured in the same run, with
runs alternating between the implementations so that a noisy neighbour slows
both alike.  Peak memory is measured in a separate, untimed step (tracing
allocations slows them down).
"""
from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from ..errors import MinirnnError
from ..model import Model
from ..optim import Adam
from ..training.limits import check_limit, check_memory
from ..units import unit_spec
from ..scratch import POOL


@dataclass
class StepSetup:
    unit: str
    hidden: int
    layers: int
    depth: int
    classes: int
    batch: int
    time: int
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    counted_fraction: float = 1.0  # share of positions whose target counts in the loss

    def check(self) -> None:
        """The size limits and the memory estimate of `minirnn train` (minirnn/training/limits.py): one line,
        before anything is allocated, instead of a traceback or a machine pushed into swap."""
        for name, value in (("hidden", self.hidden), ("layers", self.layers), ("depth", self.depth),
                            ("vocab_size", self.classes - 2), ("batch_size", self.batch), ("max_length", self.time)):
            check_limit(name, value)
        if not 0 <= self.counted_fraction <= 1:      # also NaN
            raise MinirnnError(f"the counted fraction must be in [0, 1], got {self.counted_fraction}")
        check_memory(self.unit, self.hidden, self.layers, self.depth, self.classes, self.batch, self.time,
                     self.dtype, self.device)

    def describe(self) -> str:
        options = unit_spec(self.unit).describe(depth=self.depth)
        return (f"{self.unit}{options}: {self.layers}x{self.hidden}, {self.classes} classes, "
                f"batch {self.batch}x{self.time}, {self.dtype}, {self.device}")


def make_batch(setup: StepSetup, rng: np.random.Generator):
    """Full-length random ids; a fraction of targets set to <unknown> so they do not count."""
    source = rng.integers(1, 28, size=(setup.batch, setup.time))
    target = rng.integers(2, setup.classes, size=(setup.batch, setup.time))
    drop = rng.random(target.shape) >= setup.counted_fraction
    target[drop] = 1
    return source, target


class Stepper:
    """One model + Adam; ``step()`` runs one full training step."""

    def __init__(self, setup: StepSetup, impl: str):
        self.model = Model(unit=setup.unit, hidden=setup.hidden, layers=setup.layers, depth=setup.depth,
                           output_vocab=setup.classes, seed=setup.seed, device=setup.device, dtype=setup.dtype,
                           impl=impl)
        self.opt = Adam(self.model.params, fused=impl == "fast")  # reference: the readable NumPy lines
        source, target = make_batch(setup, np.random.default_rng(setup.seed))
        self.source = self.model.xp.asarray(source)
        self.target = self.model.xp.asarray(target)

    def step(self) -> float:
        loss, grads = self.model.loss_and_grads(self.source, self.target)
        self.opt.step(grads)
        return loss

    def sync(self):
        if self.model.device == "gpu":
            self.model.xp.cuda.Device().synchronize()


def peak_host_memory(setup: StepSetup, impl: str) -> int:
    """Peak bytes allocated through Python/NumPy during one step (model and Adam state included)."""
    POOL.clear()  # pooled buffers made before tracing started would go uncounted
    gc.collect()
    tracemalloc.start()
    try:
        stepper = Stepper(setup, impl)
        stepper.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return int(peak)


@dataclass
class BenchResult:
    setup: StepSetup
    seconds: dict = field(default_factory=dict)     # impl -> list of step times
    peak_bytes: dict = field(default_factory=dict)  # impl -> bytes

    def median(self, impl: str) -> float:
        return statistics.median(self.seconds[impl])

    def chars_per_second(self, impl: str) -> float:
        return self.setup.batch * self.setup.time / self.median(impl)

    def as_dict(self) -> dict:
        out = {"setup": self.setup.__dict__, "impls": {}}
        for impl, times in self.seconds.items():
            out["impls"][impl] = {"median_s": self.median(impl), "times_s": times,
                                  "chars_per_s": self.chars_per_second(impl),
                                  "peak_bytes": self.peak_bytes.get(impl)}
        if {"fast", "reference"} <= set(self.seconds):
            out["speedup_fast_over_reference"] = self.median("reference") / self.median("fast")
        return out


DEFAULT_PAUSE = 0.3
MAX_PAUSE = 60.0


def time_alternating(steps: dict, repeats: int, warmup: int = 1, pause: float = DEFAULT_PAUSE,
                     on_time=None) -> dict:
    """Seconds of ``repeats`` calls of each callable in ``steps`` (name -> fn), interleaved.

    ``pause`` untimed seconds pass before each timed call: thread pools (OpenBLAS,
    PyTorch's OpenMP) keep spinning for a while after a parallel product and would
    otherwise take the cores from whatever runs next (docs/benchmarks.md, "How
    steps are timed").  ``on_time(name, repeat, seconds)`` is told of each time.
    """
    for fn in steps.values():
        for _ in range(warmup):  # JIT compilation, BLAS warm-up
            fn()
    times = {name: [] for name in steps}
    for r in range(repeats):
        for name, fn in steps.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            if on_time:
                on_time(name, r, times[name][-1])
    return times


def check_bench(setup: StepSetup, pause: float) -> None:
    """Refuse, in one line, a setup or a pause that bench cannot run (train's limits and memory estimate)."""
    setup.check()
    if not 0 <= pause <= MAX_PAUSE:                  # also NaN and infinity
        raise MinirnnError(f"the pause must be between 0 and {MAX_PAUSE:g} seconds, got {pause}")


def run_bench(setup: StepSetup, impls=("fast", "reference"), repeats: int = 5, warmup: int = 1,
              memory: bool = True, echo=None, pause: float = DEFAULT_PAUSE) -> BenchResult:
    """Time ``repeats`` steps per implementation, alternating between them (``time_alternating``)."""
    check_bench(setup, pause)
    result = BenchResult(setup)
    steppers = {impl: Stepper(setup, impl) for impl in impls}

    def step(s):
        s.step()
        s.sync()

    def report(impl, r, seconds):
        echo(f"  {setup.unit} {impl} step {r + 1}/{repeats}: {seconds:.3f} s")

    result.seconds = time_alternating({impl: (lambda s=s: step(s)) for impl, s in steppers.items()}, repeats,
                                      warmup=warmup, pause=pause, on_time=report if echo else None)
    del steppers
    if memory and setup.device == "cpu":
        for impl in impls:
            result.peak_bytes[impl] = peak_host_memory(setup, impl)
    return result


def format_results(results: list[BenchResult]) -> str:
    rows = [("configuration", "impl", "median s/step", "chars/s", "peak MB", "speed-up")]
    for res in results:
        d = res.as_dict()
        for impl, v in d["impls"].items():
            speed = ""
            if impl == "fast" and "speedup_fast_over_reference" in d:
                speed = f"{d['speedup_fast_over_reference']:.2f}x"
            peak = f"{v['peak_bytes'] / 2**20:.0f}" if v["peak_bytes"] else "-"
            rows.append((res.setup.describe(), impl, f"{v['median_s']:.4f}", f"{v['chars_per_s']:,.0f}", peak, speed))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(x.rstrip() for x in lines)
