"""What `--precision tf32` does to training, measured on the CPU emulation of the GPU path.

Trains the demo configuration (built-in corpus) in float32 through the GPU path's
own code (the fast units on CupyBackend, cuBLAS plans) on the CPU stand-ins of
tests/cuda_standin.py, once with exact float32 products and once
with every product's inputs rounded to TensorFloat-32 as tensor cores do, from
the same seed on the same batches, and prints both loss curves' relative
differences.  Also prints the same for float32 vs float64 (exact products), the
size of float32 rounding itself, for scale.

    python benchmarks/tf32_emulation.py [--units nlstm,lstm,gru] [--steps 40]

What the emulation does not model: cuBLAS's own accumulation order and algorithm
choice on the card (the float32 accumulation here is NumPy's).  The numbers are
an estimate of the effect of TF32 input rounding, not a GPU measurement.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the GPU stand-ins are test code

import numpy as np


def curve(unit, cfg, dataset, steps, precision, dtype, lib):
    from minirnn.data import BatchOrder
    from cuda_standin import HostBackend, emulated_gpu
    from minirnn.kernels.cuda import set_precision
    from minirnn.model import INPUT_VOCAB, Model
    from minirnn.optim import Adam

    set_precision(precision)
    backend = HostBackend(lib)
    losses = []
    with emulated_gpu(backend):
        model = Model(unit, hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg["depth"], input_vocab=INPUT_VOCAB,
                      output_vocab=len(dataset.output_words), seed=0, device="gpu", dtype=dtype)
        opt = Adam(model.params, lr=cfg["lr"])
        order = BatchOrder(len(dataset.split("train")), cfg["batch_size"], 0)
        train_idx = dataset.split("train")
        for _, _, idx in order.take(steps):
            source, target = dataset.batch(train_idx[idx])
            loss, grads = model.loss_and_grads(source, target)
            opt.step(grads)
            losses.append(float(loss))
    return np.array(losses)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default="nlstm,lstm,gru")
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args(argv)

    from minirnn.data import load_or_build_dataset
    from cuda_standin import build_harness
    from minirnn.training.presets import preset
    from minirnn.training.presets import DEFAULT_DATA_SEED

    lib = build_harness(tempfile.mkdtemp(prefix="minirnn-harness-"))
    print(f"demo configuration, {args.steps} steps, float32 on the CPU emulation of the GPU path", flush=True)
    print("| unit | tf32 vs fp32: step 1 | max over steps | last step | fp32 vs float64: max over steps |")
    print("|---|---|---|---|---|")
    for unit in args.units.split(","):
        cfg = preset("demo", unit)
        dataset = load_or_build_dataset(cfg["corpus"], cfg["vocab_size"], cfg["max_length"], DEFAULT_DATA_SEED,
                                        progress=False)
        fp32 = curve(unit, cfg, dataset, args.steps, "fp32", "float32", lib)
        tf32 = curve(unit, cfg, dataset, args.steps, "tf32", "float32", lib)
        f64 = curve(unit, cfg, dataset, args.steps, "fp32", "float64", lib)
        rel = np.abs(tf32 - fp32) / np.abs(fp32)
        rel64 = np.abs(fp32 - f64) / np.abs(f64)
        print(f"| {unit} | {rel[0]:.1e} | {rel.max():.1e} | {rel[-1]:.1e} | {rel64.max():.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
