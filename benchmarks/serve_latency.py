"""Keystroke latency of `minirnn serve`, measured over real HTTP.

    python benchmarks/serve_latency.py                   # three demo-sized models (GRU, LSTM, Nested LSTM)
    python benchmarks/serve_latency.py --config paper    # the paper's sizes (600 units, 16,386 classes)
    python benchmarks/serve_latency.py --device gpu      # the server computes on the GPU
    python benchmarks/serve_latency.py --chars 500       # up to the server's default text limit

The three checkpoints are **untrained** models of the preset's exact shapes (the
``demo`` or ``paper`` preset of each unit, float32, seed 0, a synthetic
vocabulary that holds the typed words): the time to answer does not depend on
what the weights have learned.  The real command, ``python -m minirnn serve A B C
--port 0``, runs in its own process; this script types a sentence into it one
character at a time, as the page does, over one keep-alive HTTP connection:

- ``complete``: POST /api/complete with the text so far (the page's answer to a
  keystroke: every model's top-3 words at every position);
- ``connectivity``: POST /api/connectivity at the last character (what the page
  asks next, for the heat maps of the selected character);
- ``unchanged``: the same text again (answered from the cache);
- ``click``: connectivity of an earlier character of the full text (a click).

Times are wall-clock milliseconds per request, seen by the client (JSON
encoding, HTTP and decoding included); the table gives the median, the 90th
percentile and the maximum over the keystrokes.  Write the table into
docs/serve.md with the machine, the date and the command.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCE = ("the function returns a list of values and the object is used by the module "
            "to build a new list of names for the class")


def write_models(folder: Path, config: str) -> list[str]:
    """Untrained float32 checkpoints of the preset's shapes, one per unit."""
    from minirnn.training.checkpoint import save_checkpoint
    from minirnn.model import Model
    from minirnn.optim import Adam
    from minirnn.training.presets import preset

    words = sorted(set(SENTENCE.split()))
    paths = []
    for unit in ("gru", "lstm", "nlstm"):
        p = preset(config, unit)
        vocab = list(words) + [f"w{i:05d}" for i in range(p["vocab_size"] - len(words))]
        model = Model(unit=unit, hidden=p["hidden"], layers=p["layers"], depth=p["depth"],
                      output_vocab=p["vocab_size"] + 2, seed=0, dtype="float32", impl="reference")
        path = folder / f"{unit}-{config}.h5"
        save_checkpoint(path, model, Adam(model.params), step=0, order_state={"epoch": 0, "position": 0},
                        config={**p, "preset": config}, output_words=["<eos>", "<unknown>"] + vocab,
                        history={"train_step": np.array([0]), "train_loss": np.array([np.log(p["vocab_size"] + 2)])})
        paths.append(str(path))
    return paths


def start_server(paths, device: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "minirnn", "serve", *paths, "--port", "0", "--device", device],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
    return proc, int(m.group(1))


def timed(conn, path, body) -> float:
    data = json.dumps(body)
    t0 = time.perf_counter()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    answer = json.loads(r.read())
    elapsed = time.perf_counter() - t0
    if r.status != 200:
        raise SystemExit(f"{path}: {answer}")
    return 1000.0 * elapsed


def row(name, ms) -> str:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p90:.1f} | {ms[-1]:.1f} |"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["demo", "paper"], default="demo")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--chars", type=int, default=len(SENTENCE),
                    help="Type N characters: the sentence, repeated as needed (the server's limit is 500).")
    args = ap.parse_args(argv)

    from minirnn.study.analysis import encode_text

    typed = ((SENTENCE + " ") * (args.chars // len(SENTENCE) + 1))[: args.chars].rstrip()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_models(Path(tmp), args.config)
        proc, port = start_server(paths, args.device)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            complete, conn_last, unchanged, clicks = [], [], [], []
            for i in range(1, len(typed) + 1):
                text = typed[:i]
                complete.append(timed(conn, "/api/complete", {"text": text}))
                last = len(encode_text(text)) - 1                        # the page selects the last character
                conn_last.append(timed(conn, "/api/connectivity", {"text": text, "at": last}))
                unchanged.append(timed(conn, "/api/complete", {"text": text}))
            length = len(encode_text(typed))
            for at in range(3, length - 1, max(1, length // 20)):
                clicks.append(timed(conn, "/api/connectivity", {"text": typed, "at": at}))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    import numpy

    print(f"# serve latency: {args.config}-sized GRU, LSTM and Nested LSTM (untrained), device {args.device}")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"NumPy {numpy.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# typed {len(typed)} characters one at a time ({length} as the models read them)")
    print("| request (all three models) | requests | median ms | p90 ms | max ms |")
    print("|---|---|---|---|---|")
    print(row("keystroke: complete", complete))
    print(row("keystroke: connectivity of the last character", conn_last))
    print(row("keystroke: both (what the page waits for)", [a + b for a, b in zip(complete, conn_last)]))
    print(row("unchanged text: complete (cached)", unchanged))
    print(row(f"click: connectivity in the full text ({length} characters)", clicks))


if __name__ == "__main__":
    main()
