"""`minirnn evaluate`: the published metrics of a checkpoint (a thin wrapper of minirnn.study.evaluate)."""
from __future__ import annotations

import json

import click

from .options import device_option, impl_option
from minirnn.training.distributed import RankStopped, context
from minirnn.study.evaluate import evaluate_checkpoint, format_metrics


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N observations of the split.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Observations per batch (the metrics do not depend on it).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@device_option
@impl_option
@click.option("--corpus", default=None,
              help="The training corpus, when its file has moved since training (default: the checkpoint's).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def evaluate(checkpoint, split, limit, batch_size, as_json, device, impl, corpus, progress):
    """Cross-entropy, accuracy and top-1/2/3 accuracy by letters seen, as published.

    CHECKPOINT is the .h5 file written by 'minirnn train', or a .safetensors file
    written by 'minirnn export'.
    """
    try:
        result = evaluate_checkpoint(checkpoint, split=split, device=device, limit=limit, batch_size=batch_size,
                                     impl=impl, progress=progress and not as_json, corpus=corpus)
    except RankStopped:     # under mpiexec: rank 0 prints the one line, the other ranks stop quietly
        raise SystemExit(1) from None
    if not context().is_root:
        return              # under mpiexec the ranks share the work and rank 0 reports
    for line in result.pop("notes", []):
        click.echo(line, err=True)
    if result.get("note"):
        click.echo(result["note"], err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2, allow_nan=True))
    else:
        click.echo(format_metrics(result))
