"""How noisy is the numerical derivative of minirnn's gradient checks?

Runs the checks that the tests run (every unit alone, and small models on both
paths, three seeds) and reports, over every entry compared, the absolute
difference |analytic - numerical| divided by max(1, |f|), by size of the entry,
and the worst error measure [GC-F2] that results.  A correct gradient differs
from the stencil only by the stencil's own noise, so these numbers are that noise;
docs/gradcheck.md quotes them.

    python scripts/gradcheck_noise.py          # about 40 s on two cores
"""
from __future__ import annotations

import numpy as np

import minirnn.gradcheck as gc
from minirnn.units import GRU, LSTM, NestedLSTM


def main() -> None:
    records = []
    original = gc.relative_error

    def recording(analytic, numeric, f_value):
        a, n = np.asarray(analytic, float), np.asarray(numeric, float)
        scale = max(1.0, abs(float(f_value)))
        records.append((np.abs(a - n) / scale, np.maximum(np.abs(a), np.abs(n)) / scale))
        return original(analytic, numeric, f_value)

    gc.relative_error = recording
    errors = []
    try:
        for seed in range(3):
            for unit in (GRU(4, 3), LSTM(3, 5), NestedLSTM(4, 3, depth=3), NestedLSTM(3, 3, depth=2, outer_tanh=True)):
                errors += [r.error for r in gc.check_unit(unit, T=5, B=3, seed=seed)]
            for name in ("gru", "lstm", "nlstm"):
                for impl in ("reference", "fast"):
                    report, _ = gc.check_model_config(name, depth=3, impl=impl, seed=seed)
                    errors += [r.error for r in report]
    finally:
        gc.relative_error = original
    diff = np.concatenate([r[0] for r in records])
    size = np.concatenate([r[1] for r in records])
    print(f"{diff.size} entries; floor = {gc.FLOOR:g} * max(1, |f|), tolerance {gc.DEFAULT_TOLERANCE:g}")
    print("size of entry / max(1,|f|)   entries   worst |a - n| / max(1,|f|)   worst |a - n| / |entry|")
    edges = [0.0, gc.FLOOR, 1e-4, 1e-2, 1.0, np.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (size >= lo) & (size < hi)
        if m.any():
            # below the floor (zeros included) a relative difference means nothing
            rel = f"{np.max(diff[m] / size[m]):22.2e}" if lo > 0 else f"{'-':>22}"
            print(f"  [{lo:7.0e}, {hi:7.0e})   {int(m.sum()):8d}   {diff[m].max():26.2e}   {rel}")
    print(f"worst error measure [GC-F2] of any tensor: {max(errors):.2e}")


if __name__ == "__main__":
    main()
