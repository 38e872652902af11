"""One training step on the GPU: minirnn (CUDA kernels + CUDA graphs) vs PyTorch + cuDNN.

Paper configuration: batch 64, 200 characters, 600 units, 16386 output classes;
GRU 2 layers, LSTM 2 layers, Nested LSTM 1 layer of depth 2.  A step is forward,
backward and the Adam update, float32 on both sides (TF32 off for PyTorch, as
minirnn computes in full float32).  Runs alternate minirnn / PyTorch within one
process; the medians, their ratio and the projected time of the study's 14,278
steps are printed as a short table at the very end and written (JSON + Markdown)
to $OUT or --out when given.

PyTorch has no Nested LSTM; its row compares with a 2-layer cuDNN LSTM, which has
the same number of recurrent parameters (5,764,800) and the same sequential
depth of two recurrent GEMMs per step.

    python benchmarks/gpu_bench.py [--steps 10] [--units gru,lstm,nlstm] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

STUDY_STEPS = 14278
CONFIGS = {"gru": ("GRU", 2, 1), "lstm": ("LSTM", 2, 1), "nlstm": ("Nested LSTM", 1, 2)}


def say(*a):
    print(*a, flush=True)


def make_batch(B, T, V, seed=0):
    rng = np.random.default_rng(seed)
    source = rng.integers(1, 28, (B, T))
    target = rng.integers(2, V, (B, T))
    target[rng.random((B, T)) < 0.05] = 1  # some <unknown> targets, which cost nothing
    return source, target


# --- minirnn ----------------------------------------------------------------------------
def minirnn_step_fn(unit, layers, depth, hidden, vocab, source, target):
    import cupy

    from minirnn.model import Model
    from minirnn.optim import Adam

    model = Model(unit=unit, hidden=hidden, layers=layers, depth=depth, input_vocab=28, output_vocab=vocab,
                  seed=0, device="gpu", dtype="float32", impl="fast")
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
def torch_step_fn(unit, hidden, vocab, source, target):
    import torch
    from torch import nn

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    rnn_cls = nn.GRU if unit == "gru" else nn.LSTM
    layers = 2  # GRU x2, LSTM x2; the Nested LSTM row uses a 2-layer LSTM (see module doc)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(28, hidden, padding_idx=0)
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

    return step


def timed(step):
    t0 = time.perf_counter()
    loss = step()
    return time.perf_counter() - t0, loss


def fmt_duration(seconds):
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}h{rem // 60:02d}m"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default="gru,lstm,nlstm")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per framework and model")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, capture graphs)")
    ap.add_argument("--eager-steps", type=int, default=3, help="extra minirnn steps with CUDA graphs off")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=600)
    ap.add_argument("--vocab", type=int, default=16386)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT") or None)
    args = ap.parse_args(argv)

    import cupy

    from minirnn.kernels.cuda import graph_status, set_graphs

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    gpu_name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    have_torch = False
    if not args.no_torch:
        try:
            import torch

            have_torch = torch.cuda.is_available()
        except Exception as exc:  # noqa: BLE001
            say(f"PyTorch unavailable ({exc}); timing minirnn only")
    say(f"GPU: {gpu_name}; cupy {cupy.__version__}"
        + (f"; torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}" if have_torch else ""))
    say(f"config: B={args.batch} T={args.length} hidden={args.hidden} vocab={args.vocab}, float32")

    source, target = make_batch(args.batch, args.length, args.vocab)
    results = []
    for key in args.units.split(","):
        label, layers, depth = CONFIGS[key]
        say(f"[{label}] building ...")
        set_graphs(True)
        m_step, model = minirnn_step_fn(key, layers, depth, args.hidden, args.vocab, source, target)
        t_step = torch_step_fn(key, args.hidden, args.vocab, source, target) if have_torch else None
        t0 = time.perf_counter()
        for i in range(args.warmup):
            dt, loss = timed(m_step)
            say(f"[{label}] minirnn warm-up {i + 1}: {dt * 1e3:.1f} ms, loss {loss:.4f}")
            if t_step is not None:
                dt, loss = timed(t_step)
                say(f"[{label}] torch   warm-up {i + 1}: {dt * 1e3:.1f} ms, loss {loss:.4f}")
        m_times, t_times = [], []
        for i in range(args.steps):
            m_times.append(timed(m_step)[0])
            if t_step is not None:
                t_times.append(timed(t_step)[0])
        say(f"[{label}] timed {args.steps} alternating steps in {time.perf_counter() - t0:.1f} s")
        status = graph_status()
        e_times = []
        if args.eager_steps:
            set_graphs(False)
            e_times = [timed(m_step)[0] for _ in range(args.eager_steps)]
            set_graphs(True)
        m_med = statistics.median(m_times)
        t_med = statistics.median(t_times) if t_times else None
        row = {
            "model": label, "layers": layers, "depth": depth,
            "recurrent_params": model.parameter_counts()["recurrent"],
            "minirnn_median_s": m_med, "minirnn_samples_s": m_times,
            "minirnn_eager_median_s": statistics.median(e_times) if e_times else None,
            "torch_median_s": t_med, "torch_samples_s": t_times,
            "torch_model": (f"cuDNN {'GRU' if key == 'gru' else 'LSTM'} x2") if t_step is not None else None,
            "ratio_minirnn_over_torch": (m_med / t_med) if t_med else None,
            "minirnn_study_projection_s": m_med * STUDY_STEPS,
            "torch_study_projection_s": (t_med * STUDY_STEPS) if t_med else None,
            "cuda_graphs": {k: status[k] for k in ("graphs", "captured", "replayed", "fallback_reason")},
        }
        results.append(row)
        say(f"[{label}] minirnn {m_med * 1e3:.1f} ms/step"
            + (f", torch {t_med * 1e3:.1f} ms/step, ratio {m_med / t_med:.2f}" if t_med else "")
            + (f"; graphs: captured {status['captured']}, replayed {status['replayed']}"
               + (f", FALLBACK: {status['fallback_reason']}" if status["fallback_reason"] else "")))
        del m_step, t_step, model
        cupy.get_default_memory_pool().free_all_blocks()
        if have_torch:
            torch.cuda.empty_cache()

    lines = [f"GPU training step, paper configuration (B={args.batch}, T={args.length}, {args.hidden} units, "
             f"{args.vocab} classes, float32) on {gpu_name}; medians of {args.steps} alternating steps",
             "",
             "| model | minirnn ms/step | minirnn no graphs | PyTorch cuDNN ms/step | ratio | "
             f"minirnn {STUDY_STEPS:,} steps | PyTorch {STUDY_STEPS:,} steps |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        t_ms = f"{r['torch_median_s'] * 1e3:.1f} ({r['torch_model']})" if r["torch_median_s"] else "n/a"
        e_ms = f"{r['minirnn_eager_median_s'] * 1e3:.1f}" if r["minirnn_eager_median_s"] else "n/a"
        ratio = f"{r['ratio_minirnn_over_torch']:.2f}" if r["ratio_minirnn_over_torch"] else "n/a"
        t_proj = fmt_duration(r["torch_study_projection_s"]) if r["torch_study_projection_s"] else "n/a"
        lines.append(f"| {r['model']} | {r['minirnn_median_s'] * 1e3:.1f} | {e_ms} | {t_ms} | {ratio} | "
                     f"{fmt_duration(r['minirnn_study_projection_s'])} | {t_proj} |")
    table = "\n".join(lines)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_bench.json").write_text(json.dumps(
            {"gpu": gpu_name, "config": vars(args), "study_steps": STUDY_STEPS, "results": results}, indent=2))
        (out / "gpu_bench.md").write_text(table + "\n")
        say(f"wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'}")
    say("")
    say(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
