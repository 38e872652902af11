"""`minirnn export`: a checkpoint's model as safetensors (a thin wrapper of minirnn.study.export; docs/export.md)."""
from __future__ import annotations

import click
from minirnn.study.export import export_file, read_export


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.argument("out", type=click.Path(dir_okay=True))
@click.option("--layout", type=click.Choice(["minirnn", "torch"]), default="minirnn", show_default=True,
              help="minirnn: the parameters under their own names; torch (LSTM only): PyTorch's state_dict of "
                   "nn.Embedding, nn.LSTM and nn.Linear.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export at OUT (never a checkpoint).")
def export(checkpoint, out, layout, overwrite):
    """Write the model of CHECKPOINT to OUT (a .safetensors file).

    Every parameter is stored in the trained dtype, with metadata (unit, sizes,
    gate order, forget-bias convention, input symbols, output vocabulary, the
    run's settings) that rebuilds the model: 'minirnn evaluate', 'complete' and
    'connectivity' accept the file.  Needs: pip install 'minirnn[export]'.
    """
    path = export_file(checkpoint, out, layout=layout, overwrite=overwrite)
    ck = read_export(path, impl="reference")
    # counted as `train` and `info` count (trainable only), and the stored constants named
    count = ck.model.parameter_counts()["total"]
    constants = "the embedding's fixed zero padding row" + (
        " and PyTorch's second bias, a constant" if layout == "torch" else "")
    click.echo(f"wrote {path}: {ck.model.config['unit']}, layout {layout}, {count:,} parameters in {ck.model.dtype} "
               f"(as 'minirnn train' counts them; the file also stores {constants})")
