"""`minirnn serve`: the interactive figures (autocomplete, connectivity, accuracy) as a local web app."""
from __future__ import annotations

import os
import sys

# The server multiplies one character at a time: small products, where BLAS threads cost far more
# than they save (docs/serve.md).  Only effective before NumPy is first imported, and never
# overriding the user's own setting.
if "numpy" not in sys.modules:
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

import click  # noqa: E402

from .options import device_option  # noqa: E402
from minirnn.backend import resolve_device
from minirnn.study.serve import App, make_server, warm_up
from minirnn.training.signals import Interrupted, StopSignals, signal_name


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port, printed at start).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default answers this machine only; anything else exposes the "
                   "models to the network.")
@click.option("--max-chars", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Longest text the page may send.")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None,
              help="Accuracy chart: evaluate only the first N test observations (default: the whole split).")
@click.option("--verbose", is_flag=True, help="Log every request on stderr.")
@device_option
def serve(checkpoints, port, host, max_chars, eval_limit, verbose, device):
    """Serve one page that shows CHECKPOINT(s) side by side, live.

    Type a sentence: each model's top-3 words at every character.  Click a
    character (or use the arrow keys): each model's connectivity to that
    output.  Also: accuracy by letters seen on the test split, the settings
    and the training curves.  Stop with Ctrl-C.
    """
    resolved, note = resolve_device(device)
    if note:
        click.echo(note, err=True)
    app = App.load(list(checkpoints), device=resolved, max_chars=max_chars, eval_limit=eval_limit)
    warm_up(app)
    server = make_server(app, host, port, verbose=verbose)
    names = ", ".join(m.label for m in app.models)
    if server.allowed_hosts is None:
        click.echo(f"warning: listening on {host}: anyone who can reach this machine can use the page", err=True)
    try:
        with StopSignals():   # SIGTERM (a service manager, kill) stops it at once, as Ctrl-C does
            click.echo(f"serving {names} at {server.url} (Ctrl-C to stop)", err=True)
            server.serve_forever()
    except Interrupted as exc:
        click.echo(f"stopped by {signal_name(exc.signum)}", err=True)
    finally:
        server.server_close()
        app.close()
