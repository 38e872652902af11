"""`minirnn train`: train one unit on the autocomplete task (a thin wrapper of minirnn.training.loop)."""
from __future__ import annotations

import click

from minirnn.training.presets import PRESETS

from .options import (apply_precision, depth_option, device_option, hidden_option, impl_option, layers_option,
                      outer_tanh_option, precision_option, refuse_unused, unit_option)
from minirnn.training.loop import TrainConfig, default_out, train as run_training
from minirnn.errors import MinirnnError
from minirnn.training.distributed import RankStopped


@click.command()
@unit_option
@click.option("--preset", type=click.Choice(PRESETS), default=None,
              help="Named configuration: demo (small, built-in corpus, ~2 min on a laptop) or paper (the study). "
                   "[default: demo]")
@hidden_option
@layers_option
@depth_option
@click.option("--vocab-size", type=click.IntRange(min=1), default=None, help="Output words (classes = this + 2).")
@click.option("--max-length", type=click.IntRange(min=2), default=None, help="Characters per observation.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Observations per mini-batch.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Total optimizer steps of the run (wins over --epochs).")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Total epochs over the training split.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of the initial parameters and of the batch order. [default: 0]")
@click.option("--corpus", default=None, help="builtin, text8 (downloaded once) or the path of a text file.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file. [default: runs/<unit>-<preset>.h5]")
@click.option("--resume", is_flag=True, help="Continue the run saved at --out (its settings are reused).")
@click.option("--overwrite", is_flag=True, help="Replace an existing checkpoint at --out instead of refusing.")
@device_option
@precision_option
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default=None, help="[default: float32]")
@impl_option
@outer_tanh_option
@click.option("--eval-every", type=click.IntRange(min=0), default=None,
              help="Validation loss every N steps (0: never).")
@click.option("--eval-batches", type=click.IntRange(min=0), default=None,
              help="Validation batches used each time (a fixed subset).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=None,
              help="Save a checkpoint every N steps (always at the end).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def train(unit, preset, hidden, layers, depth, vocab_size, max_length, batch_size, lr, steps, epochs, seed, corpus,
          out, resume, overwrite, device, precision, dtype, impl, outer_tanh, eval_every, eval_batches,
          checkpoint_every, progress):
    """Train a GRU, LSTM or Nested LSTM and save a checkpoint.

    Prints a progress bar (step, loss, characters/s, ETA) on stderr and a short
    summary at the end.  With --resume the run continues exactly where the
    checkpoint stopped; --steps/--epochs count from the start of the run.
    """
    overrides = dict(hidden=hidden, layers=layers, depth=depth, vocab_size=vocab_size, max_length=max_length,
                     batch_size=batch_size, lr=lr, steps=steps, epochs=epochs, seed=seed, corpus=corpus,
                     dtype=dtype, outer_tanh=outer_tanh, eval_every=eval_every, eval_batches=eval_batches,
                     checkpoint_every=checkpoint_every)


    refuse_unused(unit, depth=depth, outer_tanh=outer_tanh)
    apply_precision(precision, device)
    if out is not None and not out.strip():  # "" must not silently become the default path
        raise MinirnnError("--out is empty; give a file name such as runs/my-run.h5, or leave --out out for "
                           f"{default_out(unit, preset or 'demo')}")
    out = out or default_out(unit, preset or "demo")
    if resume:   # the resume checks live in minirnn.training.loop (TrainConfig.from_checkpoint, train)
        config = TrainConfig.from_checkpoint(out, preset=preset, unit=unit, device=device, impl=impl, **overrides)
    else:
        config = TrainConfig.from_preset(preset or "demo", unit, device=device, impl=impl, out=out, **overrides)

    try:
        run_training(config, resume=resume, progress=progress, echo=click.echo, overwrite=overwrite)
    except RankStopped:     # under mpiexec: rank 0 prints the one line, the other ranks stop quietly
        raise SystemExit(1) from None
