"""`minirnn plot`: loss curves, or accuracy by letters seen, of one or several checkpoints."""
from __future__ import annotations

from pathlib import Path

import click

from .options import device_option
from minirnn.study.comparison import evaluation_for
from minirnn.study.plotting import UNIT_LABELS, plot_accuracy_by_letters, plot_loss_curves, pyplot
from minirnn.training.atomic import check_output
from minirnn.training.checkpoint import load_checkpoint


def run_labels(paths, units) -> list[str]:
    """'GRU', 'LSTM', ...; the file name is added where two runs share a unit."""
    names = [UNIT_LABELS.get(u, str(u)) for u in units]
    return [f"{n} ({Path(p).stem})" if names.count(n) > 1 else n for n, p in zip(names, paths)]


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Image file to write (.png).")
@click.option("--kind", type=click.Choice(["loss", "accuracy"]), default="loss", show_default=True,
              help="loss: training and validation loss against steps; accuracy: top-1/2/3 by letters seen.")
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True,
              help="--kind accuracy: the split to evaluate (stored results are used when present).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="--kind accuracy: evaluate only the first N observations of the split.")
@click.option("--published/--no-published", default=True, show_default=True,
              help="--kind accuracy: draw the published top-1 curve of each unit.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file at --out.")
@device_option
def plot(checkpoints, out, kind, split, limit, published, overwrite, device):
    """Plot CHECKPOINTS (one or several runs) on one chart (needs minirnn[plot])."""
    pyplot()  # fail first, in one line, when matplotlib is missing
    output = {"overwrite": overwrite, "inputs": checkpoints}
    check_output(out, "figure", **output)   # before anything is loaded or evaluated
    cks = [load_checkpoint(p) for p in checkpoints]
    units = [ck.config.get("unit") or ck.model.config["unit"] for ck in cks]
    labels = run_labels(checkpoints, units)
    if kind == "loss":
        path = plot_loss_curves([(label, ck.history) for label, ck in zip(labels, cks)], out, **output)
    else:
        results = []
        for label, ck, unit, p in zip(labels, cks, units, checkpoints):
            ev, where = evaluation_for(p, ck, split=split, device=device, limit=limit)
            click.echo(f"{label}: {where}", err=True)
            results.append((label, ev, unit))
        path = plot_accuracy_by_letters(results, out, published=published, **output)
    click.echo(f"wrote {path}")
