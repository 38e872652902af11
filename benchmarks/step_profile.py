"""Where a training step spends its time, against the machine's own matrix-product
rate and the time its matrix products alone take, measured in the same run.

    python benchmarks/step_profile.py --config paper --unit lstm [--repeats 2]
    python benchmarks/step_profile.py --config demo --unit gru --repeats 9

Prints, for one fast-path float32 step (forward, backward, Adam) of the preset's
sizes:

- the measured float32 GEMM rate of a large product, all cores;
- the step's matrix-product work (counted from the shapes), the step time and
  the fraction of the GEMM rate it reaches;
- a breakdown, each part timed alone: recurrent forward, recurrent backward,
  dense + softmax cross-entropy, Adam;
- the matrix-product floor: every ``numpy.matmul`` call of one step is recorded
  (with its operands) and replayed alone, timed alternately with whole steps.
  No implementation that makes these products through this BLAS can take less;
  step minus floor is everything else (gate kernels, softmax, Python).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from minirnn import layers as L
from minirnn.machine.blas import report_lines
from minirnn.machine.bench import DEFAULT_PAUSE, StepSetup, Stepper, time_alternating
from minirnn.training.presets import preset


def gemm_rate(repeats: int = 5) -> float:
    """GFLOP/s of a (4096 x 600) @ (600 x 16386) float32 product: the paper's dense layer's shape."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 600), dtype=np.float32)
    b = rng.standard_normal((600, 16386), dtype=np.float32)
    out = np.empty((4096, 16386), dtype=np.float32)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2 * 4096 * 600 * 16386 / statistics.median(times) / 1e9


def step_gflop(unit: str, setup: StepSetup, counted: int) -> dict:
    """Matrix-product work of one step (2 flops per multiply-add), as minirnn computes it.

    Every kernel W (rows_in x gates*H) costs three products of N rows: the forward
    product, the weight gradient and the input/state gradient.  The first layer's
    input rows make no product: its inputs are one-hot rows of the folded
    embedding table, looked up and scatter-added (docs/layers.md [EMB-F2]); a
    Nested LSTM's inner levels read [a, b], 2H rows.
    """
    N, H, V = setup.batch * setup.time, setup.hidden, setup.classes
    gates = {"gru": 3, "lstm": 4, "nlstm": 4}[unit]
    rows = []
    for layer in range(setup.layers):
        rows.append((0 if layer == 0 else H) + H)              # outer level / plain unit: [x, h]
        if unit == "nlstm":
            rows += [2 * H] * (setup.depth - 1)                # inner levels: [a_k, b_k]
    recurrent = sum(3 * 2 * N * r * gates * H for r in rows)
    dense = 3 * 2 * counted * H * V
    return {"recurrent": recurrent / 1e9, "dense": dense / 1e9}


class ProductRecorder:
    """Inside ``with``: every ``numpy.matmul`` call is made and recorded with its operands.

    The fast path calls ``np.matmul`` through the module attribute, so replacing it
    sees every product (the 28-row embedding-table products use ``@`` and are left
    out: they are too small to matter)."""

    def __enter__(self):
        self.calls = []
        self._matmul = original = np.matmul
        calls = self.calls

        def recording(a, b, out=None):
            calls.append((a, b, out))
            return original(a, b, out=out) if out is not None else original(a, b)

        np.matmul = recording
        return self

    def __exit__(self, *exc):
        np.matmul = self._matmul

    def replay(self):
        """Make every recorded product again, in order (outputs land where they did)."""
        matmul = self._matmul
        for a, b, out in self.calls:
            if out is None:
                matmul(a, b)
            else:
                matmul(a, b, out=out)

    def gflop(self, rows: int | None = None) -> float:
        """Work of the recorded products (only those whose left operand has ``rows`` rows, if given)."""
        return sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in self.calls
                   if rows is None or a.shape[0] == rows) / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="paper", choices=["paper", "demo"])
    ap.add_argument("--unit", default="lstm", choices=["gru", "lstm", "nlstm"])
    ap.add_argument("--time", type=int, default=None, help="sequence length (default: the preset's)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--counted", type=float, default=0.9, help="share of positions whose target counts")
    ap.add_argument("--pause", type=float, default=DEFAULT_PAUSE,
                    help="untimed seconds before each timed run, so BLAS threads stop spinning")
    args = ap.parse_args(argv)
    print("\n".join(report_lines()), flush=True)   # the kernels and threads behind every number below

    cfg = preset(args.config, args.unit)
    setup = StepSetup(unit=args.unit, hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg["depth"],
                      classes=cfg["vocab_size"] + 2, batch=cfg["batch_size"], time=args.time or cfg["max_length"],
                      counted_fraction=args.counted)
    rate = gemm_rate()
    s = Stepper(setup, "fast")
    s.step()
    m = s.model
    src, tgt = m._ids(s.source), m._ids(s.target)
    counted = int((tgt >= 2).sum())
    work = step_gflop(args.unit, setup, counted)

    def timed(fn):
        """Median time of a part, repeated back to back (warm, as inside a step)."""
        fn()
        out = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    # Whole steps and their products replayed alone, alternating.
    with ProductRecorder() as products:
        s.step()
    times = time_alternating({"step": s.step, "floor": products.replay}, args.repeats, warmup=0, pause=args.pause)
    step, floor = statistics.median(times["step"]), statistics.median(times["floor"])

    # Parts, run the same way loss_and_grads runs them.
    hs_in, folded = m.folded_first_layer(src)
    units = [(m.folded_first_unit, folded)] + [(m.units[k], m.layer_params(k)) for k in range(1, len(m.units))]

    def forward():
        x, caches = hs_in, []
        for u, p in units:
            x, _, c = u.forward(p, x, u.zero_state(np, setup.batch, m.dtype))
            caches.append(c)
        return x, caches

    fwd = timed(forward)
    top, caches = forward()
    dtop = np.ones_like(top)

    def backward():
        d = dtop
        for (u, p), c in zip(reversed(units), reversed(caches)):
            _, d, _ = u.backward(p, c, d)

    bwd = timed(backward)
    T, B, H = top.shape
    dense = timed(lambda: L.dense_xent_forward_backward(top.reshape(T * B, H), tgt.T.reshape(-1), m.params["dense.W"],
                                                        m.params["dense.b"], fused=True))
    _, grads = m.loss_and_grads(src, tgt)
    adam = timed(lambda: s.opt.step(grads))
    total = work["recurrent"] + work["dense"]
    print(f"{args.config}: {setup.describe()}, {counted} of {T * B} positions counted")
    print(f"machine float32 GEMM rate (4096x600 @ 600x16386): {rate:.1f} GFLOP/s")
    print(f"matrix-product work per step: recurrent {work['recurrent']:.2f} + dense {work['dense']:.2f} "
          f"= {total:.2f} GFLOP")
    print(f"step: {step:.4f} s -> {total / step:.1f} GFLOP/s = {100 * total / step / rate:.0f}% of the GEMM rate")
    rest = step - fwd - bwd - dense - adam
    print("breakdown (each part timed alone, back to back):")
    for name, t in (("recurrent forward", fwd), ("recurrent backward", bwd), ("dense + softmax CE", dense),
                    ("Adam", adam), ("rest (embedding fold, gradient bookkeeping)", rest)):
        print(f"  {name:<55} {t:8.4f} s  {100 * t / step:5.1f}%")
    print(f"  dense alone runs at {work['dense'] / dense:.1f} GFLOP/s; recurrent at "
          f"{work['recurrent'] / (fwd + bwd):.1f} GFLOP/s")
    in_loop = products.gflop(rows=setup.batch)
    print(f"matrix-product floor: {len(products.calls)} products ({products.gflop():.2f} GFLOP, "
          f"{in_loop:.2f} of it in the time loop's {setup.batch}-row products) replayed alone: "
          f"{floor:.4f} s = {100 * floor / step:.0f}% of the step; everything else {step - floor:.4f} s")


if __name__ == "__main__":
    main()
