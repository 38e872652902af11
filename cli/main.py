"""Entry point: the `minirnn` click group.

Commands live one per module and are imported only when invoked, so
`minirnn --help` stays instant (Numba and h5py load only when needed).  Every
MinirnnError a command raises is printed as one line, never a traceback.
"""
from __future__ import annotations

import importlib

import click

from minirnn.errors import MinirnnError
from minirnn import messages
from .console import Console

# command name -> (module inside minirnn.cli, function name, one-line help)
COMMANDS = {
    "info": ("info", "info", "Print a model's parameter table (the paper's counts for --preset paper)."),
    "gradcheck": ("gradcheck", "gradcheck", "Verify every gradient against central differences in float64."),
    "train": ("train", "train", "Train a unit on the autocomplete task (demo or paper preset)."),
    "evaluate": ("evaluate", "evaluate", "Evaluate a checkpoint with the published metrics."),
    "bench": ("bench", "bench", "Time training steps (fast vs reference path): characters/s, peak memory."),
    "complete": ("complete", "complete", "Show the top predicted words for each character of a text."),
    "connectivity": ("connectivity", "connectivity", "Show how much each earlier character drives a prediction."),
    "plot": ("plot", "plot", "Plot training curves or accuracy by letters seen (needs minirnn[plot])."),
    "study": ("study", "study", "Train and evaluate all three units and write a report."),
    "export": ("export", "export", "Write a checkpoint's model as safetensors (minirnn or PyTorch layout)."),
    "serve": ("serve", "serve", "Serve the live page: autocomplete and connectivity of several checkpoints."),
    "doctor": ("doctor", "doctor", "Check this machine (CPU and GPU) and say what to install or change."),
    "read": ("read", "read", "Read a unit's derivation beside the code that computes it, with live gradient checks."),
}


def register(name: str, module: str, function: str, short_help: str) -> None:
    """Add a command to the group (modules call nothing at import; this table is the registry)."""
    COMMANDS[name] = (module, function, short_help)


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, function, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"minirnn.cli.{module}"), function)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        previous = messages.use(Console())   # the library's messages and progress bars go to the terminal
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C before a command installed its own handling (e.g. while importing)
            error = click.ClickException("interrupted by Ctrl-C (SIGINT); no file was left half-written (files "
                                         "are only ever replaced whole): run the command again if it had not finished")
            error.exit_code = 130
            raise error from None
        except MinirnnError as exc:
            error = click.ClickException(str(exc))
            # an interrupted run exits like a process stopped by that signal would (130 SIGINT, 143 SIGTERM)
            error.exit_code = getattr(exc, "exit_code", error.exit_code)
            raise error from None
        finally:
            messages.use(previous)


@click.group(cls=LazyGroup)
@click.version_option(package_name="minirnn")
def cli():
    """minirnn: exact GRU, LSTM and Nested LSTM with hand-derived BPTT."""


def main():  # pragma: no cover - console script entry
    cli()
