"""minirnn (fast CPU path) against PyTorch on the CPU, side by side in one run.

    python benchmarks/cpu_vs_torch.py --config demo --repeats 7
    python benchmarks/cpu_vs_torch.py --config paper --repeats 3 --json out.json

Each training step is forward + backward + Adam on the same batch shape, same
sizes, embedding, dense layer and loss.  Implementations alternate step by step
(a noisy neighbour slows all of them alike) and the table reports medians and
ratios.  PyTorch runs as a typical user would write it (dense layer on every
position, masked mean loss) and, for fairness, also with the dense layer only on
the positions that count — the trick minirnn uses.  PyTorch is a benchmark
oracle only; it is never imported by the library.

``--floor`` adds minirnn's matrix products alone (every product of one fast
step, recorded and replayed: benchmarks/step_profile.py) to the alternation,
and prints the largest ratio over each baseline that an implementation making
those products through this BLAS could reach.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import numpy as np

from minirnn.machine.blas import report_lines
from minirnn.machine.bench import DEFAULT_PAUSE, StepSetup, Stepper, make_batch, time_alternating
from minirnn.training.presets import preset


FLOOR = "minirnn products alone"


def torch_stepper(setup: StepSetup, masked_rows: bool, threads: int):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(setup.seed)
    dtype = torch.float32 if setup.dtype == "float32" else torch.float64
    rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[setup.unit]
    emb = nn.Embedding(28, setup.hidden, padding_idx=0).to(dtype)
    rnn = rnn_cls(setup.hidden, setup.hidden, setup.layers, batch_first=True).to(dtype)
    dense = nn.Linear(setup.hidden, setup.classes).to(dtype)
    params = list(emb.parameters()) + list(rnn.parameters()) + list(dense.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    source, target = make_batch(setup, np.random.default_rng(setup.seed))
    src, tgt = torch.from_numpy(source), torch.from_numpy(target)
    mask = tgt >= 2

    def step():
        opt.zero_grad(set_to_none=True)
        h, _ = rnn(emb(src))
        if masked_rows:
            logits = dense(h[mask])
            loss = F.cross_entropy(logits, tgt[mask])
        else:
            logits = dense(h)
            per = F.cross_entropy(logits.reshape(-1, setup.classes), tgt.reshape(-1), reduction="none")
            m = mask.reshape(-1).to(dtype)
            loss = (per * m).sum() / m.sum()
        loss.backward()
        opt.step()
        return float(loss)

    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["demo", "paper"], default="demo")
    ap.add_argument("--units", default="gru,lstm,nlstm")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--counted", type=float, default=0.9,
                    help="fraction of positions whose target counts (padding/unknown words do not)")
    ap.add_argument("--with-reference", action="store_true", help="also time minirnn's reference path")
    ap.add_argument("--floor", action="store_true", help="also time the fast step's matrix products alone")
    ap.add_argument("--pause", type=float, default=DEFAULT_PAUSE, help="untimed seconds before each step (thread pools settle)")
    ap.add_argument("--json", help="write the raw times here")
    args = ap.parse_args(argv)
    print("\n".join(report_lines()), flush=True)   # the kernels and threads behind every number below

    rows, raw, bounds = [], {}, []
    for unit in args.units.split(","):
        cfg = preset(args.config, unit)
        setup = StepSetup(unit=unit, hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg["depth"],
                          classes=cfg["vocab_size"] + 2, batch=cfg["batch_size"], time=cfg["max_length"],
                          counted_fraction=args.counted)
        fast = Stepper(setup, "fast")
        steps = {"minirnn fast": fast.step}
        if unit == "nlstm":
            # The yardstick: a two-layer LSTM of the same width (same recurrent parameter count).
            two_layer = StepSetup(**{**setup.__dict__, "unit": "lstm", "layers": 2, "depth": 1})
            steps["minirnn 2-layer lstm"] = Stepper(two_layer, "fast").step
        if args.with_reference:
            steps["minirnn reference"] = Stepper(setup, "reference").step
        if unit in ("gru", "lstm"):
            steps["torch"] = torch_stepper(setup, masked_rows=False, threads=args.threads)
            steps["torch masked rows"] = torch_stepper(setup, masked_rows=True, threads=args.threads)
        if args.floor:
            from step_profile import ProductRecorder  # this script's folder is on sys.path

            with ProductRecorder() as products:
                fast.step()
            steps[FLOOR] = products.replay
        print(f"timing {setup.describe()} ...", file=sys.stderr, flush=True)
        times = time_alternating(steps, args.repeats, pause=args.pause)
        raw[unit] = {"setup": setup.__dict__, "times_s": times}
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, m in med.items():
            ratio = ""
            if name != "minirnn fast":
                ratio = f"{m / med['minirnn fast']:.2f}x"
            rows.append((unit, name, f"{m:.3f}", f"{setup.batch * setup.time / m:,.0f}", ratio))
        if FLOOR in med:
            reach = ", ".join(f"{name} {m / med[FLOOR]:.2f}x" for name, m in med.items()
                              if name not in ("minirnn fast", FLOOR))
            bounds.append(f"{unit}: {reach}")
    print(f"\n{args.config} configuration, {args.repeats} alternating repeats, median seconds per training step; "
          f"ratio = time / minirnn fast time of the same unit (>1: minirnn faster; "
          f"for nlstm the 2-layer lstm row < 1 means the Nested LSTM takes 1/ratio of its time)")
    header = ("unit", "implementation", "s/step", "chars/s", "ratio")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if bounds:
        print("\nlargest ratio any implementation of minirnn's products could reach (baseline / products alone):")
        for line in bounds:
            print(f"  {line}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1)


if __name__ == "__main__":
    main()
