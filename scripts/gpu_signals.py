"""Reliability on the GPU (docs/reliability.md): real SIGTERM/SIGINT inside real saves of a GPU
training run, a resume, and the refusal of a model that cannot fit on the card.

Run by scripts/gpu-check.sh on a machine with a CUDA GPU (minirnn importable; no network).
Prints one line per try and exits non-zero if an interrupt was lost, a checkpoint did not
load on the CPU, the resume failed, or the oversized model was not refused in one line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tiny_corpus import write_tiny_corpus  # noqa: E402

from minirnn.training.checkpoint import load_checkpoint  # noqa: E402


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="gpu", help="gpu (the check); cpu for a dry run of the script itself")
    device = ap.parse_args(argv).device
    folder = Path(tempfile.mkdtemp(prefix="minirnn-gpu-signals-"))
    corpus = write_tiny_corpus(folder / "tiny.txt", 1200, 7)
    out = folder / "gpu-run.h5"
    # tests/slow_saves.py holds every save open for 50 ms, so that the signal lands inside it
    slow = str(Path(__file__).resolve().parents[1] / "tests" / "slow_saves.py")
    cmd = [sys.executable, slow, "0.05", "train", "--unit", "lstm", "--device", device, "--corpus", str(corpus),
           "--out", str(out), "--hidden", "16", "--vocab-size", "12", "--max-length", "40", "--batch-size", "16",
           "--no-progress"]
    env = {**os.environ, "MINIRNN_HOME": str(folder / "home")}
    failures = 0
    for i, sig in enumerate([signal.SIGTERM, signal.SIGINT, signal.SIGTERM]):
        p = subprocess.Popen(cmd + ["--steps", "100000", "--checkpoint-every", "1"] + (["--resume"] if i else []),
                             stderr=subprocess.PIPE, text=True, env=env)
        t0 = time.time()
        while not any(n.startswith(out.name + ".tmp-") for n in os.listdir(folder)):
            if p.poll() is not None or time.time() - t0 > 60:
                print(f"try {i}: no save seen ({p.communicate()[1].strip()[-300:]})")
                p.kill()
                return 1
            time.sleep(0.001)
        time.sleep(0.01 * i)
        p.send_signal(sig)
        err = p.communicate(timeout=60)[1]
        errors = [line for line in err.splitlines() if line.startswith("Error")]
        want = 128 + int(sig)
        step = load_checkpoint(out, device="cpu").step
        ok = p.returncode == want and len(errors) == 1 and "Traceback" not in err
        failures += not ok
        print(f"try {i}: {signal.Signals(sig).name} inside a save -> exit {p.returncode} (want {want}); "
              f"{errors[0] if errors else 'no error line'}; checkpoint loads on the CPU at step {step}"
              f"{'' if ok else '  FAILED'}")
    step = load_checkpoint(out).step
    r = subprocess.run(cmd + ["--steps", str(step + 3), "--resume"], capture_output=True, text=True, env=env)
    ok = r.returncode == 0 and load_checkpoint(out).step == step + 3
    failures += not ok
    print(f"resume on the {device.upper()}: exit {r.returncode}, step {step} -> {load_checkpoint(out).step}{'' if ok else '  FAILED'}")
    r = subprocess.run([sys.executable, "-m", "minirnn", "train", "--unit", "gru", "--device", device, "--hidden",
                        "60000", "--out", str(folder / "big.h5"), "--no-progress"], capture_output=True, text=True,
                       env=env)
    lines = r.stderr.strip().splitlines()
    ok = r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr
    failures += not ok
    print(f"oversized model on the {device.upper()}: exit {r.returncode}: {lines[-1] if lines else ''}{'' if ok else '  FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
