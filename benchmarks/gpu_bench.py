"""One training step on the GPU: minirnn (CUDA kernels + CUDA graphs) vs PyTorch + cuDNN.

Two configurations, both read from minirnn/training/presets.py (``--configs paper,demo``):

* paper: batch 64, 200 characters, 600 units, 16386 output classes; GRU 2 layers,
  LSTM 2 layers, Nested LSTM 1 layer of depth 2;
* demo: batch 32, 100 characters, 128 units, 1026 output classes; one layer each,
  the Nested LSTM of depth 2.

A step is forward, backward and the Adam update, float32 on both sides.  With
``--precision fp32`` (the default) both compute in full float32 (TF32 off for
PyTorch); with ``tf32`` both let float32 matrix products use TF32 tensor cores
(``minirnn.kernels.cuda.set_precision`` and PyTorch's ``allow_tf32`` flags).
Runs alternate minirnn / PyTorch within one process; for each minirnn row the
table says whether its timed steps really replayed CUDA graphs ("replayed N") or
ran eagerly after a fallback ("EAGER: <reason>"), from the ``graph_status()``
counters around those steps.  The medians, their ratio and the projected time of
the configuration's full run (the study's 14,278 steps; the demo's 300) are
printed as a short table at the very end and written (JSON + Markdown) to $OUT or
--out when given, after every row (so a run stopped early keeps its rows).

PyTorch has no Nested LSTM; its row compares with a cuDNN LSTM of layers x depth
layers (2 for both presets), which has the same number of recurrent parameters
and the same sequential depth of recurrent GEMMs per step.

    python benchmarks/gpu_bench.py [--configs paper,demo] [--units gru,lstm,nlstm] [--precision fp32|tf32]
                                   [--steps 20] [--demo-steps 30] [--no-torch] [--time-budget S] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

UNITS = {"gru": "GRU", "lstm": "LSTM", "nlstm": "Nested LSTM"}
CONFIG_NAMES = ("paper", "demo")
PRECISIONS = ("fp32", "tf32")
INPUT_VOCAB = 28  # 0 padding, 1 space, 2..27 = a..z (minirnn.model.INPUT_VOCAB)
STUDY_STEPS_PER_EPOCH = 7139  # the paper preset's text8 training split in batches of 64 (2 epochs: 14,278 steps)

_T0 = time.perf_counter()


def say(*a):
    print(f"[{time.perf_counter() - _T0:6.1f} s]", *a, flush=True)


def make_batch(B, T, V, seed=0):
    rng = np.random.default_rng(seed)
    source = rng.integers(1, INPUT_VOCAB, (B, T))
    target = rng.integers(2, V, (B, T))
    target[rng.random((B, T)) < 0.05] = 1  # some <unknown> targets, which cost nothing
    return source, target


def config_sizes(name: str, unit: str, args) -> dict:
    """Sizes of one benchmark row, from minirnn's preset (the paper's overridable from the command line)."""
    from minirnn.training.presets import preset

    p = preset(name, unit)
    sizes = {"hidden": int(p["hidden"]), "layers": int(p["layers"]), "depth": int(p["depth"]),
             "batch": int(p["batch_size"]), "length": int(p["max_length"]), "classes": int(p["vocab_size"]) + 2}
    if name == "paper":
        for key, value in (("batch", args.batch), ("length", args.length), ("hidden", args.hidden),
                           ("classes", args.vocab)):
            if value is not None:
                sizes[key] = int(value)
    # Steps of the configuration's full run (for the projection column): the preset's steps, or its
    # epochs of the paper's training split (14,278 steps for 2 epochs of text8 in batches of 64).
    sizes["run_steps"] = int(p["steps"]) if p.get("steps") else STUDY_STEPS_PER_EPOCH * int(p["epochs"])
    return sizes


# --- minirnn ----------------------------------------------------------------------------
def minirnn_step_fn(unit, sz, source, target):
    import cupy

    from minirnn.model import Model
    from minirnn.optim import Adam

    model = Model(unit=unit, hidden=sz["hidden"], layers=sz["layers"], depth=sz["depth"], input_vocab=INPUT_VOCAB,
                  output_vocab=sz["classes"], seed=0, device="gpu", dtype="float32", impl="fast")
    opt = Adam(model.params)
    src, tgt = cupy.asarray(source), cupy.asarray(target)
    sync = cupy.cuda.Device().synchronize

    def step():
        loss, grads = model.loss_and_grads(src, tgt)
        opt.step(grads)
        sync()
        return float(loss)

    return step, model


# --- PyTorch ----------------------------------------------------------------------------
def torch_layers(unit, sz) -> int:
    """cuDNN layers of the PyTorch row: the same layers for GRU/LSTM; layers x depth for the Nested LSTM."""
    return sz["layers"] * sz["depth"] if unit == "nlstm" else sz["layers"]


def torch_step_fn(unit, sz, source, target):
    import torch
    from torch import nn

    dev = torch.device("cuda")
    rnn_cls = nn.GRU if unit == "gru" else nn.LSTM
    hidden, vocab, layers = sz["hidden"], sz["classes"], torch_layers(unit, sz)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(INPUT_VOCAB, hidden, padding_idx=0)
            self.rnn = rnn_cls(hidden, hidden, layers)
            self.dense = nn.Linear(hidden, vocab)

        def forward(self, src_tm):
            h, _ = self.rnn(self.emb(src_tm))
            return self.dense(h)

    torch.manual_seed(0)
    net = Net().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    src = torch.as_tensor(source.T.copy(), device=dev)
    tgt = torch.as_tensor(target.T.copy(), device=dev)
    tgt = torch.where(tgt >= 2, tgt, torch.full_like(tgt, -100))  # padding and <unknown> cost nothing

    def step():
        opt.zero_grad(set_to_none=True)
        logits = net(src)
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), tgt.reshape(-1), ignore_index=-100)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        return float(loss.detach())

    return step, f"cuDNN {'GRU' if unit == 'gru' else 'LSTM'} x{layers}"


def timed(step):
    t0 = time.perf_counter()
    loss = step()
    return time.perf_counter() - t0, loss


def fmt_duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m}m{s:02d}s"
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}h{rem // 60:02d}m"


def graphs_verdict(before: dict, after: dict, steps: int) -> dict:
    """What ``steps`` timed steps did, from graph_status() before and after them."""
    delta = {k: int(after.get(k) or 0) - int(before.get(k) or 0) for k in ("captured", "replayed", "eager_loops")}
    reason = after.get("fallback_reason")
    replayed = f"replayed {delta['replayed']}" + (f" ({delta['replayed'] / steps:g}/step)" if steps else "")
    if delta["replayed"] == 0:
        why = reason or ("graphs off" if not after.get("graphs", True) else "no graph was replayed")
        text = f"EAGER: {why}"
    elif reason:
        text = f"MIXED: {replayed}, then EAGER ({delta['eager_loops']} loops): {reason}"
    elif delta["eager_loops"]:
        text = f"{replayed}, eager loops {delta['eager_loops']}"
    else:
        text = replayed
    return {**delta, "fallback_reason": reason, "graphs_on": bool(after.get("graphs", True)), "text": text}


def table_lines(results, args, gpu_name):
    lines = [f"GPU training step, minirnn vs PyTorch + cuDNN, {args.precision} on {gpu_name}; medians of "
             f"{args.steps} (paper) / {args.demo_steps} (demo) alternating steps"]
    seen = {}
    for r in results:
        sz = r["sizes"]
        seen.setdefault(r["config"], f"{r['config']}: B={sz['batch']}, T={sz['length']}, {sz['hidden']} units, "
                                     f"{sz['classes']} classes, full run {sz['run_steps']:,} steps")
    lines += [f"- {text}" for text in seen.values()]
    lines += ["",
              "| config | model | minirnn ms/step | CUDA graphs (timed steps) | minirnn no graphs | "
              "PyTorch ms/step | ratio | full run: minirnn | full run: PyTorch |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t_ms = f"{r['torch_median_s'] * 1e3:.2f} ({r['torch_model']})" if r["torch_median_s"] else "n/a"
        e_ms = f"{r['minirnn_eager_median_s'] * 1e3:.2f}" if r["minirnn_eager_median_s"] else "n/a"
        ratio = f"{r['ratio_minirnn_over_torch']:.2f}" if r["ratio_minirnn_over_torch"] else "n/a"
        t_proj = fmt_duration(r["torch_run_projection_s"]) if r["torch_run_projection_s"] else "n/a"
        lines.append(f"| {r['config']} | {r['model']} | {r['minirnn_median_s'] * 1e3:.2f} | {r['cuda_graphs']['text']} | "
                     f"{e_ms} | {t_ms} | {ratio} | {fmt_duration(r['minirnn_run_projection_s'])} | {t_proj} |")
    return lines


def write_results(out, results, args, gpu_name, header, done, notes=()):
    """The Markdown table (returned) and, with ``out``, gpu_bench.json and gpu_bench.md there."""
    lines = table_lines(results, args, gpu_name)
    if notes:
        lines += [""] + list(notes)
    elif not done:
        lines += ["", "(incomplete: the run has not finished)"]
    table = "\n".join(lines)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_bench.json").write_text(json.dumps(
            {"gpu": gpu_name, "header": header, "config": vars(args), "complete": done, "notes": list(notes),
             "results": results}, indent=2))
        (out / "gpu_bench.md").write_text(table + "\n")
    return table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="paper,demo", help="configurations, from minirnn's presets [paper,demo]")
    ap.add_argument("--units", default="gru,lstm,nlstm")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="float32 matrix products: exact fp32 or TF32 tensor cores, on both sides [fp32]")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per framework and paper model [20]")
    ap.add_argument("--demo-steps", type=int, default=30, help="timed steps per framework and demo model [30]")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, capture graphs) [3]")
    ap.add_argument("--eager-steps", type=int, default=3, help="extra minirnn steps with CUDA graphs off [3]")
    ap.add_argument("--batch", type=int, default=None, help="paper rows: batch size [the preset's, 64]")
    ap.add_argument("--length", type=int, default=None, help="paper rows: characters per observation [200]")
    ap.add_argument("--hidden", type=int, default=None, help="paper rows: units per layer [600]")
    ap.add_argument("--vocab", type=int, default=None, help="paper rows: output classes [16386]")
    ap.add_argument("--no-torch", action="store_true", help="time minirnn only")
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="seconds; rows not started by then are skipped (0: no limit) [0]")
    ap.add_argument("--out", default=os.environ.get("OUT") or None)
    args = ap.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    units = [u.strip() for u in args.units.split(",") if u.strip()]
    for c in configs:
        if c not in CONFIG_NAMES:
            ap.error(f"unknown configuration {c!r}; choose from {', '.join(CONFIG_NAMES)}")
    for u in units:
        if u not in UNITS:
            ap.error(f"unknown unit {u!r}; choose from {', '.join(UNITS)}")
    if args.warmup < 2:
        say(f"note: --warmup {args.warmup} < 2: CUDA graphs are captured on a loop's second sighting, "
            "so early timed steps run eagerly")

    import cupy

    from minirnn.kernels import cuda as minirnn_cuda

    set_precision = getattr(minirnn_cuda, "set_precision", None)
    if set_precision is not None:
        set_precision(args.precision)
    elif args.precision != "fp32":
        print(f"gpu_bench: --precision {args.precision} needs minirnn.kernels.cuda.set_precision, which this "
              "minirnn lacks (its products are always plain float32); run with --precision fp32", file=sys.stderr)
        return 2
    else:
        say("note: minirnn.kernels.cuda.set_precision is missing; this minirnn computes plain float32 (= fp32)")

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    gpu_name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    have_torch = False
    if not args.no_torch:
        try:
            import torch

            have_torch = torch.cuda.is_available()
            if not have_torch:
                say("PyTorch sees no CUDA device; timing minirnn only")
        except Exception as exc:  # noqa: BLE001
            say(f"PyTorch unavailable ({exc}); timing minirnn only")
    if have_torch:
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        torch.backends.cudnn.benchmark = True
    header = (f"GPU: {gpu_name}; cupy {cupy.__version__}"
              + (f"; torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}" if have_torch else "")
              + f"; precision {args.precision} on both sides"
              + (f" (torch allow_tf32={torch.backends.cuda.matmul.allow_tf32})" if have_torch else ""))
    say(header)

    out = Path(args.out) if args.out else None
    results, skipped, failed = [], [], []
    for cname in configs:
        n_steps = args.steps if cname == "paper" else args.demo_steps
        for key in units:
            name = f"{cname} {UNITS[key]}"
            if args.time_budget and time.perf_counter() - _T0 > args.time_budget:
                skipped.append(name)
                say(f"[{name}] skipped: the --time-budget of {args.time_budget:g} s is spent")
                continue
            try:
                results.append(run_row(cname, key, n_steps, args, have_torch))
            except Exception as exc:  # noqa: BLE001  (one broken row must not lose the others)
                traceback.print_exc()
                sys.stderr.flush()
                failed.append(f"{name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
                say(f"[{name}] FAILED: {failed[-1]}")
            cupy.get_default_memory_pool().free_all_blocks()
            if have_torch:
                torch.cuda.empty_cache()
            write_results(out, results, args, gpu_name, header, done=False)

    notes = ([f"skipped (time budget): {', '.join(skipped)}"] if skipped else []) + \
            ([f"FAILED: {'; '.join(failed)}"] if failed else [])
    table = write_results(out, results, args, gpu_name, header, done=not (skipped or failed), notes=notes)
    if out is not None:
        say(f"wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'}")
    print("", flush=True)
    print(table, flush=True)
    return 1 if failed else 0


def run_row(cname, key, n_steps, args, have_torch) -> dict:
    """Build, warm up and time one configuration and unit; return its result row."""
    from minirnn.kernels.cuda import graph_status, set_graphs

    label = UNITS[key]
    tag = f"[{cname} {label}]"
    sz = config_sizes(cname, key, args)
    say(f"{tag} building: B={sz['batch']} T={sz['length']} hidden={sz['hidden']} layers={sz['layers']} "
        f"depth={sz['depth']} classes={sz['classes']}")
    source, target = make_batch(sz["batch"], sz["length"], sz["classes"])
    set_graphs(True)
    m_step, model = minirnn_step_fn(key, sz, source, target)
    t_step, t_model = torch_step_fn(key, sz, source, target) if have_torch else (None, None)
    t0 = time.perf_counter()
    for i in range(args.warmup):
        dt, loss = timed(m_step)
        say(f"{tag} minirnn warm-up {i + 1}: {dt * 1e3:.1f} ms, loss {loss:.4f}")
        if t_step is not None:
            dt, loss = timed(t_step)
            say(f"{tag} torch   warm-up {i + 1}: {dt * 1e3:.1f} ms, loss {loss:.4f}")
    m_times, t_times = [], []
    before = graph_status()
    for _ in range(n_steps):
        m_times.append(timed(m_step)[0])
        if t_step is not None:
            t_times.append(timed(t_step)[0])
    after = graph_status()
    graphs = graphs_verdict(before, after, n_steps)
    say(f"{tag} timed {n_steps} alternating steps in {time.perf_counter() - t0:.1f} s (with warm-ups); "
        f"CUDA graphs: {graphs['text']}")
    e_times = []
    if args.eager_steps:
        set_graphs(False)
        try:
            e_times = [timed(m_step)[0] for _ in range(args.eager_steps)]
        finally:
            set_graphs(True)
    m_med = statistics.median(m_times) if m_times else float("nan")
    t_med = statistics.median(t_times) if t_times else None
    row = {
        "config": cname, "model": label, "unit": key, "sizes": sz,
        "layers": sz["layers"], "depth": sz["depth"],
        "recurrent_params": model.parameter_counts()["recurrent"],
        "minirnn_median_s": m_med, "minirnn_samples_s": m_times,
        "minirnn_eager_median_s": statistics.median(e_times) if e_times else None,
        "torch_median_s": t_med, "torch_samples_s": t_times, "torch_model": t_model,
        "ratio_minirnn_over_torch": (m_med / t_med) if t_med else None,
        "minirnn_run_projection_s": m_med * sz["run_steps"],
        "torch_run_projection_s": (t_med * sz["run_steps"]) if t_med else None,
        "cuda_graphs": graphs,
        "cuda_graph_status_after": {k: after.get(k) for k in
                                    ("graphs", "captured", "replayed", "eager_loops", "fallback_reason", "precision")
                                    if k in after},
    }
    say(f"{tag} minirnn {m_med * 1e3:.2f} ms/step"
        + (f" (no graphs {row['minirnn_eager_median_s'] * 1e3:.2f})" if e_times else "")
        + (f", torch {t_med * 1e3:.2f} ms/step ({t_model}), ratio {m_med / t_med:.2f}" if t_med else ""))
    return row

if __name__ == "__main__":
    sys.exit(main())
