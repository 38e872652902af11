"""Where a GPU training step goes: the parts of one step timed with CUDA events.

The parts are run the way ``Model.loss_and_grads`` runs them (embedding fold,
recurrent forward, dense + fused softmax-CE, recurrent backward, gradient
bookkeeping, Adam), each bracketed by CUDA events on the current stream, after
warm-up steps (so the time loops replay their CUDA graphs).  Medians over
``--repeats`` steps; the sum is compared with whole steps timed the same way.

    python benchmarks/gpu_profile.py [--units lstm,gru,nlstm] [--repeats 10] [--precision fp32]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

CONFIGS = {"gru": (2, 1), "lstm": (2, 1), "nlstm": (1, 2)}


def profile(unit, args, cupy):
    from minirnn import layers as L
    from minirnn.model import Model
    from minirnn.optim import Adam

    layers, depth = CONFIGS[unit]
    m = Model(unit=unit, hidden=args.hidden, layers=layers, depth=depth, input_vocab=28, output_vocab=args.vocab,
              seed=0, device="gpu", dtype="float32")
    opt = Adam(m.params)
    rng = np.random.default_rng(0)
    src = m._ids(cupy.asarray(rng.integers(1, 28, (args.batch, args.length))))
    tgt = m._ids(cupy.asarray(rng.integers(2, args.vocab, (args.batch, args.length))))
    T, B = args.length, args.batch
    stream = cupy.cuda.get_current_stream()

    def parts():
        marks = [cupy.cuda.Event()]
        marks[0].record(stream)

        def mark():
            e = cupy.cuda.Event()
            e.record(stream)
            marks.append(e)

        inputs, folded = m.folded_first_layer(src)
        mark()
        hs, caches, _ = m.run_layers(inputs, None, folded)
        mark()
        H = hs.shape[-1]
        _, _, dHs, dW, db = L.dense_xent_forward_backward(hs.reshape(T * B, H), tgt.T.reshape(-1), m.params["dense.W"],
                                                          m.params["dense.b"], chunk=m.chunk_size, fused=True)
        mark()
        grads = {"dense.W": dW, "dense.b": db}
        dhs = dHs.reshape(T, B, H)
        for layer in reversed(range(len(m.units))):
            unit_, params = (m.folded_first_unit, folded) if layer == 0 else (m.units[layer], m.layer_params(layer))
            dparams, dhs, _ = unit_.backward(params, caches[layer], dhs)
            grads.update({f"layer{layer}.{k}": g for k, g in dparams.items()})
        del caches
        mark()
        grads = m.unfold_first_layer_grads(grads)
        mark()
        opt.step(grads)
        mark()
        marks[-1].synchronize()
        return [cupy.cuda.get_elapsed_time(a, b) for a, b in zip(marks, marks[1:])]

    def whole():
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        a.record(stream)
        opt.step(m.loss_and_grads(src, tgt)[1])
        b.record(stream)
        b.synchronize()
        return cupy.cuda.get_elapsed_time(a, b)

    for _ in range(3):
        parts()
        whole()
    samples, steps = [], []
    for _ in range(args.repeats):
        samples.append(parts())
        steps.append(whole())
    names = ["embedding fold", "recurrent forward", "dense + softmax CE", "recurrent backward",
             "embedding/W_x gradients", "Adam"]
    med = [statistics.median(s[i] for s in samples) for i in range(len(names))]
    step = statistics.median(steps)
    print(f"[{unit}] whole step {step:.2f} ms (CUDA events, median of {args.repeats}); parts:", flush=True)
    for n, t in zip(names, med):
        print(f"  {n:<26} {t:8.2f} ms  {100 * t / step:5.1f}%", flush=True)
    print(f"  {'sum of parts':<26} {sum(med):8.2f} ms", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default="lstm,gru,nlstm")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=600)
    ap.add_argument("--vocab", type=int, default=16386)
    ap.add_argument("--precision", choices=["fp32", "tf32"], default="fp32")
    args = ap.parse_args(argv)

    import cupy

    from minirnn.kernels.cuda import graph_status, set_precision

    set_precision(args.precision)
    print(f"config: B={args.batch} T={args.length} hidden={args.hidden} vocab={args.vocab}, float32, "
          f"{args.precision} products", flush=True)
    for unit in args.units.split(","):
        profile(unit, args, cupy)
        cupy.get_default_memory_pool().free_all_blocks()
    print("graphs:", {k: v for k, v in graph_status().items() if k != "graphs"}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
