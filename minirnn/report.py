"""How the library talks: through one reporter that its caller supplies.

minirnn computes; it does not print.  Its messages (one-line notes, a run's
summary) and progress bars go to the *current reporter*, which is silent unless
someone installs another: the command line installs one that writes to the
terminal (cli/console.py).  A Python user can install their own with ``use``,
or pass an ``echo`` callable to the functions that take one (``train``, ``run_study``).

A reporter has two methods:

``say(message, err=False)``
    one line for the user (``err``: a note or warning, rather than a result);
``progress(length, label, steps=False)``
    a context manager with ``update(n, text=None)``: a progress bar over ``length``
    units (``steps``: they are training steps; ``text`` is shown beside the bar).
"""
from __future__ import annotations


class NoBar:
    """A progress bar that shows nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n, text=None):
        pass


class Silent:
    """The default reporter: says nothing, draws nothing."""

    def say(self, message: str, err: bool = False) -> None:
        pass

    def progress(self, length: int, label: str, steps: bool = False):
        return NoBar()


_current = Silent()


def current():
    """The reporter in use."""
    return _current


def use(reporter):
    """Install ``reporter`` (None: silent) for the process; returns the previous one."""
    global _current
    previous, _current = _current, (reporter if reporter is not None else Silent())
    return previous


def say(message: str, err: bool = False, echo=None) -> None:
    """Say ``message`` through ``echo`` (a ``click.echo``-like callable) when given, else the current reporter."""
    if echo is None:
        _current.say(message, err=err)
        return
    try:
        echo(message, err=err)
    except TypeError:     # a plain callable such as print or list.append
        echo(message)


def progress(enabled: bool, length: int, label: str, steps: bool = False):
    """The current reporter's progress bar, or one that shows nothing when not ``enabled``."""
    if not enabled or length <= 0:
        return NoBar()
    return _current.progress(length, label, steps=steps)


def quiet(*args, **kwargs) -> None:
    """An ``echo`` that says nothing (e.g. for the ranks other than 0 of a distributed run)."""
