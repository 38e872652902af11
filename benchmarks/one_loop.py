"""Could the CPU and the GPU share one time loop?  A measurement.

The GPU units (kernels/cuda/units.py) are written against a small backend (gemm,
launch, run_loop), and their Numba counterparts of the LSTM take the same
arguments in the same order.  So the GPU's LSTM orchestration can run on the CPU
unchanged, with a backend whose ``gemm`` is ``numpy.matmul(..., out=)`` and whose
``launch`` calls the Numba kernel of the same name.  This script times one
forward + backward of the demo-sized LSTM layer both ways, alternating, on the
same inputs:

* ``cpu``: the fast CPU unit (kernels/cpu/lstm.py, pooled scratch memory), on
  the one-hot inputs as floats (the same work as the shared loop) and on ids
  (the first layer's row lookup, what training uses);
* ``shared``: the GPU unit's loop on the Numba backend.

    python benchmarks/one_loop.py [--repeats 30] [--hidden 128] [--batch 32] [--time 100]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np


class NumbaBackend:
    """The GPU units' backend interface, served by NumPy products and the Numba kernels."""

    xp = np

    def __init__(self):
        from minirnn.kernels.cpu import gates

        self.gates = gates

    def gemm(self, a, b, out):
        np.matmul(a, b, out=out)

    @staticmethod
    def ptr(a):
        return a.ctypes.data

    def launch(self, name, dtype, n, H, *args, grid=None, block=None):
        getattr(self.gates, name)(*args)   # the CUDA kernel's arguments after (n, H), in the same order

    def run_loop(self, ws, key, loop, outputs, reset=None, params=()):
        loop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time", type=int, default=100)
    args = ap.parse_args(argv)

    from minirnn.bench import time_alternating
    from minirnn.kernels.cpu import fast_cpu_unit
    from minirnn.kernels.cuda.units import cuda_unit
    from minirnn.units import make_unit

    I, H, B, T = 28, args.hidden, args.batch, args.time
    ref = make_unit("lstm", I, H)
    cpu, shared = fast_cpu_unit(ref), cuda_unit(ref, backend=NumbaBackend())
    rng = np.random.default_rng(0)
    params = ref.init_params(rng, np.float32)
    ids = rng.integers(1, I, (T, B))
    x = (ids[..., None] == np.arange(I)).astype(np.float32)
    state0 = tuple(np.zeros((B, H), np.float32) for _ in range(2))
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)

    def run(unit, inputs):
        def step():
            _, _, cache = unit.forward(params, inputs, state0)
            unit.backward(params, cache, dhs)
        return step

    # Same results first (float32 rounding), then the times.
    hs_a, _, ca = cpu.forward(params, x, state0)
    hs_b, _, cb = shared.forward(params, x, state0)
    da = cpu.backward(params, ca, dhs)[0]
    db = shared.backward(params, cb, dhs)[0]
    err = max(float(np.max(np.abs(hs_a - hs_b))), max(float(np.max(np.abs(da[k] - db[k]))) for k in da))
    times = time_alternating({"cpu (one-hot floats)": run(cpu, x), "cpu (ids)": run(cpu, ids),
                              "shared loop (one-hot floats)": run(shared, x)}, args.repeats, warmup=2, pause=0.0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["cpu (one-hot floats)"]
    print(f"LSTM layer, I={I} H={H} B={B} T={T}, float32, forward + backward; largest difference {err:.1e}")
    for name, t in med.items():
        print(f"  {name:<30} {t * 1e3:8.2f} ms  {t / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
