"""`minirnn evaluate`: the published metrics of a checkpoint (a thin wrapper of minirnn.evaluate)."""
from __future__ import annotations

import json

import click

from .options import device_option, impl_option


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
    from minirnn.checkpoint import OLD_FILE_NOTE
    from minirnn.distributed import RankStopped, context
    from minirnn.evaluate import evaluate_checkpoint, format_metrics
    from minirnn.export import peek_model_file

    info = peek_model_file(checkpoint)   # settings only: evaluate_checkpoint loads the model once
    if not info["checksums"] and context().is_root:
        click.echo(OLD_FILE_NOTE.format(path=checkpoint), err=True)
    try:
        dataset = _dataset(checkpoint, info, corpus, progress and not as_json)
        result = evaluate_checkpoint(checkpoint, split=split, device=device, limit=limit, batch_size=batch_size,
                                     impl=impl, progress=progress and not as_json, dataset=dataset)
    except RankStopped:     # under mpiexec: rank 0 prints the one line, the other ranks stop quietly
        raise SystemExit(1) from None
    if not context().is_root:
        return              # under mpiexec the ranks share the work and rank 0 reports
    if result.get("note"):
        click.echo(result["note"], err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2, allow_nan=True))
    else:
        click.echo(format_metrics(result))


def _dataset(checkpoint, info: dict, corpus, progress: bool):
    """The dataset to evaluate on: from --corpus, from the cache when the corpus file has moved, or None
    (then evaluate_checkpoint rebuilds it from the checkpoint's own corpus)."""
    from pathlib import Path

    from minirnn.data import cached_dataset, load_or_build_dataset
    from minirnn.errors import MinirnnError
    from minirnn.presets import DEFAULT_DATA_SEED

    cfg, extra = info["config"], info["extra"]
    try:
        sizes = (int(cfg["vocab_size"]), int(cfg["max_length"]), int(cfg.get("data_seed", DEFAULT_DATA_SEED)))
    except (KeyError, TypeError, ValueError):
        return None  # not a 'minirnn train' checkpoint: evaluate_checkpoint says what is missing
    sha = extra.get("corpus_sha256")
    if corpus is not None:
        dataset = load_or_build_dataset(corpus, *sizes, progress=progress)
        if sha and dataset.corpus_sha256 != sha:
            raise MinirnnError(f"corpus {corpus} is not the text checkpoint {checkpoint} was trained on (its "
                               f"checksum differs); give the training corpus with --corpus")
        return dataset
    named = cfg.get("corpus", "builtin")
    if named in ("builtin", "text8"):
        return None
    paths = [Path(named).expanduser()] + ([Path(extra["corpus_path"])] if extra.get("corpus_path") else [])
    if any(p.exists() for p in paths):
        return None
    dataset = cached_dataset(sha, *sizes) if sha else None
    if dataset is None:
        raise MinirnnError(f"the corpus file {paths[-1]} that checkpoint {checkpoint} was trained on no longer "
                           "exists; give its new location with --corpus PATH")
    return dataset
