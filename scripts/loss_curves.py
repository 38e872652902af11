"""Two training runs' loss curves side by side, from their checkpoints.

    python scripts/loss_curves.py GPU.h5 CPU.h5 [--labels gpu,cpu] [--every 1]

Reads ``/history/train_step`` and ``/history/train_loss`` of both checkpoints
(docs/checkpoint-format.md; h5py alone, minirnn is not imported) and prints, per
step, the first run's loss, the second's and their relative difference
|a - b| / |b|.  Then it says whether step 1 agrees to float32 rounding (relative
difference <= --agree, 1e-5) and gives the largest relative difference over all
common steps.  Later steps may drift apart (different summation orders, amplified
by training); only step 1 -- same parameters, same batch -- must agree.

Exit status: 0 when the comparison ran and passed; 1 when step 1 differs by more
than --limit (1e-4), step 1 is missing from either run, or the first run's curve
has a non-finite value; 2 when a file cannot be read.
"""
from __future__ import annotations

import argparse
import json
import math
import sys


def read_curve(path: str) -> tuple[list[int], list[float], dict]:
    """(steps, losses, info) of a checkpoint's training history; info: config and extra (may be empty)."""
    import h5py

    with h5py.File(path, "r") as f:
        if "history/train_step" not in f or "history/train_loss" not in f:
            raise KeyError(f"{path} has no /history/train_step and /history/train_loss (not a minirnn checkpoint?)")
        steps = [int(s) for s in f["history/train_step"][()]]
        losses = [float(v) for v in f["history/train_loss"][()]]
        info = {}
        for key in ("config", "extra"):
            raw = f.attrs.get(key)
            if raw is not None:
                try:
                    info[key] = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
                except ValueError:
                    pass
    if len(steps) != len(losses):
        raise ValueError(f"{path}: {len(steps)} steps but {len(losses)} losses in /history")
    return steps, losses, info


def rel_diff(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(b), 1e-30)


def settings_differences(info_a: dict, info_b: dict) -> list[str]:
    """Run settings (other than device and output path) that differ between the two checkpoints."""
    ca, cb = info_a.get("config", {}), info_b.get("config", {})
    skip = {"device", "out", "impl"}
    return [f"{k}: {ca.get(k)!r} vs {cb.get(k)!r}" for k in sorted(set(ca) | set(cb))
            if k not in skip and ca.get(k) != cb.get(k)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", help="checkpoint of the run under test (e.g. the GPU run)")
    ap.add_argument("second", help="checkpoint of the reference run (e.g. the CPU run)")
    ap.add_argument("--labels", default="gpu,cpu", help="column names of the two runs [gpu,cpu]")
    ap.add_argument("--agree", type=float, default=1e-5, help="step 1 'agrees to float32 rounding' up to this [1e-5]")
    ap.add_argument("--limit", type=float, default=1e-4, help="exit 1 when step 1 differs by more [1e-4]")
    ap.add_argument("--every", type=int, default=1, help="print every Nth step (first and last always) [1]")
    args = ap.parse_args(argv)
    labels = [s.strip() for s in args.labels.split(",")]
    if len(labels) != 2 or not all(labels):
        ap.error("--labels takes two names separated by a comma")
    la, lb = labels

    try:
        steps_a, loss_a, info_a = read_curve(args.first)
        steps_b, loss_b, info_b = read_curve(args.second)
    except (OSError, KeyError, ValueError) as exc:
        print(f"loss_curves: cannot read the checkpoints: {exc}", file=sys.stderr)
        return 2

    for label, path, steps, info in ((la, args.first, steps_a, info_a), (lb, args.second, steps_b, info_b)):
        device = info.get("extra", {}).get("device", "?")
        print(f"{label}: {path} ({len(steps)} steps recorded, device {device})")
    for line in settings_differences(info_a, info_b):
        print(f"note: the runs' settings differ: {line}")

    curve_b = dict(zip(steps_b, loss_b))
    common = [(s, a, curve_b[s]) for s, a in zip(steps_a, loss_a) if s in curve_b]
    only_a = len(steps_a) - len(common)
    only_b = len(steps_b) - len(common)
    if only_a or only_b:
        print(f"note: {only_a} step(s) only in {la}, {only_b} only in {lb}; comparing the {len(common)} common steps")

    print()
    print(f"{'step':>6}  {la + ' loss':>14}  {lb + ' loss':>14}  {'rel. diff':>10}")
    every = max(1, args.every)
    for i, (s, a, b) in enumerate(common):
        if i % every == 0 or i == len(common) - 1:
            print(f"{s:>6}  {a:>14.8f}  {b:>14.8f}  {rel_diff(a, b):>10.2e}")
    print()

    failed = False
    bad_a = [s for s, v in zip(steps_a, loss_a) if not math.isfinite(v)]
    if bad_a:
        print(f"FAIL: the {la} curve has {len(bad_a)} non-finite loss(es), first at step {bad_a[0]}")
        failed = True
    bad_b = [s for s, v in zip(steps_b, loss_b) if not math.isfinite(v)]
    if bad_b:
        print(f"warning: the {lb} curve has {len(bad_b)} non-finite loss(es), first at step {bad_b[0]}")

    first = next(((a, b) for s, a, b in common if s == 1), None)
    if first is None:
        print(f"FAIL: step 1 is not in both curves ({la}: {steps_a[:1]}, {lb}: {steps_b[:1]}); nothing to check")
        failed = True
    else:
        d1 = rel_diff(*first)
        if d1 <= args.agree:
            print(f"step 1: {la} and {lb} agree to float32 rounding (relative difference {d1:.2e} <= {args.agree:g})")
        elif d1 <= args.limit:
            print(f"step 1: relative difference {d1:.2e}: NOT within float32 rounding ({args.agree:g}), "
                  f"but within the {args.limit:g} limit")
        else:
            print(f"FAIL: step 1 disagrees: relative difference {d1:.2e} > {args.limit:g} "
                  f"({la} {first[0]!r}, {lb} {first[1]!r})")
            failed = True
    if common:
        worst_step, worst = max(((s, rel_diff(a, b)) for s, a, b in common), key=lambda t: t[1])
        print(f"max relative difference over {len(common)} steps: {worst:.2e} (step {worst_step})")
        last_s, last_a, last_b = common[-1]
        print(f"last common step {last_s}: {la} {last_a:.6f}, {lb} {last_b:.6f} (rel. diff {rel_diff(last_a, last_b):.2e})")
    print("loss curves: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
