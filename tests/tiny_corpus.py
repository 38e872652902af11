"""A tiny seeded text for training and evaluation tests: words of a 20-word
language drawn with Zipf-like frequencies, so a model can learn something fast;
its training config and command line; and how the reliability tests call the CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from minirnn.cli.main import cli

VOCAB = ["the", "of", "and", "cat", "sat", "on", "mat", "dog", "ran", "far", "a", "big", "red", "sun", "tree",
         "house", "river", "stone", "light", "quick"]


def write_tiny_corpus(path: Path, words: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(VOCAB) + 1)
    path.write_text(" ".join(rng.choice(VOCAB, size=words, p=p / p.sum())) + "\n")
    return path


def tiny_train_config(corpus, out, **kw):
    """A TrainConfig of a GRU small enough to train in a blink on the tiny corpus."""
    from minirnn.training.loop import TrainConfig

    values = dict(hidden=6, layers=1, depth=1, vocab_size=12, max_length=40, batch_size=16, lr=1e-2, steps=4,
                  epochs=None, seed=5, corpus=corpus, out=str(out), dtype="float32", impl="reference", eval_every=2,
                  eval_batches=1, checkpoint_every=0)
    values.update(kw)
    return TrainConfig.from_preset("demo", "gru", **values)


def tiny_train_command(corpus, out, *more):
    """The `minirnn train` command line of the same kind of tiny run, for real processes."""
    import sys

    return [sys.executable, "-m", "minirnn", "train", "--unit", "gru", "--corpus", corpus, "--out", str(out),
            "--hidden", "6", "--vocab-size", "12", "--max-length", "40", "--batch-size", "16", "--eval-every", "0",
            "--no-progress", *more]


def invoke(*args):
    """The CLI called in this process, every argument as text."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line(result) -> str:
    """The output of a refused command, asserted to be exactly one 'Error:' line and exit status 1."""
    assert result.exit_code == 1 and result.output.startswith("Error: ") and result.output.count("\n") == 1, \
        result.output
    return result.output
