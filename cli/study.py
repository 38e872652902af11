"""`minirnn study`: train and evaluate GRU, LSTM and Nested LSTM alike and write one report."""
from __future__ import annotations

import click

from minirnn.training.presets import PRESETS

from .options import device_option, hidden_option, impl_option
from minirnn.study.comparison import parse_units, run_study


@click.command()
@click.option("--preset", type=click.Choice(PRESETS), default="demo", show_default=True,
              help="demo: small models on the built-in corpus (minutes); paper: the study's configuration.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for checkpoints, evaluations and report.md  [default: study-<preset>]")
@click.option("--units", default="gru,lstm,nlstm", show_default=True, help="Comma-separated units to compare.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Optimizer steps per unit instead of the preset's run length (quick runs).")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Epochs per unit instead of the preset's.")
@hidden_option
@click.option("--corpus", default=None, help="Corpus instead of the preset's: text8, builtin or a text file.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the models and the batch order.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N test observations.")
@impl_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
@device_option
def study(preset, out, units, steps, epochs, hidden, corpus, seed, limit, impl, progress, device):
    """Train and evaluate the units with the same data and seed, then write report.md.

    Running the same command again resumes an interrupted study: finished units
    are skipped and a unit stopped mid-training continues from its checkpoint.
    """
    state = run_study(preset=preset, out=out, units=parse_units(units), steps=steps, epochs=epochs, device=device,
                      seed=seed, corpus=corpus, limit=limit, impl=impl, overrides={"hidden": hidden}, progress=progress, echo=click.echo)
    for unit, entry in state["units"].items():
        ev = entry.get("evaluation") or {}
        if ev.get("cross_entropy") is not None:
            click.echo(f"{unit:6s} cross-entropy {ev['cross_entropy']:.4f}  accuracy {100 * ev['accuracy']:.2f}%")
