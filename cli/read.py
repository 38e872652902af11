"""`minirnn read`: a unit's derivation beside the code that computes it (docs/read.md)."""
from __future__ import annotations

import click
from minirnn.study.reader import ReaderApp, unit_view, write_static
from minirnn.study.serve import make_server


@click.command()
@click.argument("unit_name", metavar="[UNIT]", required=False, default="lstm")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write the page as a static folder (opens from disk; the checks then need the live server).")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,
              help="TCP port (0: any free port, printed at start).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default answers this machine only.")
@click.option("--verbose", is_flag=True, help="Log every request on stderr.")
def read(unit_name, out, port, host, verbose):  # UNIT is an argument: no clash with the --unit option
    """Show UNIT's derivation (default: lstm) beside the code of every tag, on every path.

    Click a tag, in the equations or in the code, or step with the arrow keys;
    a backward tag's "check" button runs a float64 gradient check of the tensor
    it computes.  Stop with Ctrl-C.
    """
    if out is not None:
        files = write_static(out, [unit_name])
        click.echo(f"wrote {len(files)} files to {out}: open {files[0]} in a browser")
        return
    unit_view(unit_name)                                   # an unknown unit is one line before the server starts
    app = ReaderApp()
    server = make_server(app, host, port, verbose=verbose)
    if server.allowed_hosts is None:
        click.echo(f"warning: listening on {host}: anyone who can reach this machine can read and run checks", err=True)
    click.echo(f"reading {unit_name} at {server.url}#{unit_name} (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
