"""The command line's reporter (minirnn/messages.py): messages and progress bars on the terminal."""
from __future__ import annotations

import click


class Console:
    def say(self, message: str, err: bool = False) -> None:
        click.echo(message, err=err)

    def progress(self, length: int, label: str, steps: bool = False):
        stderr = click.get_text_stream("stderr")
        if steps:   # training: "step k/n" and the step's text, which carries a recent rate and ETA (click's
            # own ETA averages from the start, first steps' compilation included)
            return click.progressbar(length=length, label=label, file=stderr, show_eta=False, show_percent=False,
                                     show_pos=True, item_show_func=lambda text: text or "")
        return click.progressbar(length=length, label=label, file=stderr, show_eta=True)
