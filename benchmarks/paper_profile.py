"""Where a paper-configuration training step spends its time, against the
machine's own matrix-product rate measured in the same run.

    python benchmarks/paper_profile.py --unit lstm [--time 200] [--repeats 2]

Prints: the measured float32 GEMM rate (a large product, all cores), the
step's matrix-product work (counted from the shapes), the step time and the
fraction of the GEMM rate it reaches, and a breakdown: recurrent forward,
recurrent backward, dense + softmax cross-entropy, Adam.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from minirnn import layers as L
from minirnn.bench import StepSetup, Stepper
from minirnn.presets import preset


def gemm_rate(repeats: int = 5) -> float:
    """GFLOP/s of a (4096 x 600) @ (600 x 16386) float32 product: the dense layer's shape."""
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
    input rows are the 28-row folded embedding table (docs/layers.md); a Nested
    LSTM's inner levels read [a, b], 2H rows.
    """
    N, H, V = setup.batch * setup.time, setup.hidden, setup.classes
    gates = {"gru": 3, "lstm": 4, "nlstm": 4}[unit]
    rows = []
    for layer in range(setup.layers):
        rows.append((28 if layer == 0 else H) + H)             # outer level / plain unit: [x, h]
        if unit == "nlstm":
            rows += [2 * H] * (setup.depth - 1)                # inner levels: [a_k, b_k]
    recurrent = sum(3 * 2 * N * r * gates * H for r in rows)
    dense = 3 * 2 * counted * H * V
    return {"recurrent": recurrent / 1e9, "dense": dense / 1e9}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unit", default="lstm", choices=["gru", "lstm", "nlstm"])
    ap.add_argument("--time", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--counted", type=float, default=0.9)
    args = ap.parse_args(argv)

    cfg = preset("paper", args.unit)
    setup = StepSetup(unit=args.unit, hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg["depth"],
                      classes=cfg["vocab_size"] + 2, batch=cfg["batch_size"], time=args.time,
                      counted_fraction=args.counted)
    rate = gemm_rate()
    s = Stepper(setup, "fast")
    s.step()
    m = s.model
    src, tgt = m._ids(s.source), m._ids(s.target)
    counted = int((tgt >= 2).sum())
    work = step_gflop(args.unit, setup, counted)

    def timed(fn):
        fn()
        out = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    step = timed(s.step)
    # Parts, run the same way loss_and_grads runs them.
    hs_in, folded = m.folded_first_layer(src)
    units = [(m.folded_first_unit, folded)] + [(m.units[k], m.layer_params(k)) for k in range(1, len(m.units))]

    def forward():
        x, caches = hs_in, []
        for u, p in units:
            x, _, c = u.forward(p, x, u.zero_state(np, setup.batch, x.dtype))
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
    print(f"{setup.describe()}, {counted} of {T * B} positions counted")
    print(f"machine float32 GEMM rate (4096x600 @ 600x16386): {rate:.1f} GFLOP/s")
    print(f"matrix-product work per step: recurrent {work['recurrent']:.0f} + dense {work['dense']:.0f} "
          f"= {total:.0f} GFLOP")
    print(f"step: {step:.2f} s -> {total / step:.1f} GFLOP/s = {100 * total / step / rate:.0f}% of the GEMM rate")
    rest = step - fwd - bwd - dense - adam
    print("breakdown (each part timed alone):")
    for name, t in (("recurrent forward", fwd), ("recurrent backward", bwd), ("dense + softmax CE", dense),
                    ("Adam", adam), ("rest (embedding fold, one-hot, gradient bookkeeping)", rest)):
        print(f"  {name:<55} {t:7.2f} s  {100 * t / step:5.1f}%")
    print(f"  dense alone runs at {work['dense'] / dense:.1f} GFLOP/s; recurrent at "
          f"{work['recurrent'] / (fwd + bwd):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
