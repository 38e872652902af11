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
    units (``steps``: they are training steps; ``text`` is shown beside the bar and
    carries its own rate and ETA, see :class:`RecentRate`).
"""
from __future__ import annotations

import time
from collections import deque


class NoBar:
    """A progress bar that shows nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n, text=None):
        pass


class RecentRate:
    """A loop's speed and time left from its last ``window`` updates, not from its start.

    A run's first step includes compiling the kernels: an average from the start
    carries it for a long time (an ETA of 22 min at step 1 of a 4-minute run, a
    rate that climbs for minutes).  Measuring from the end of the first update on,
    over a sliding window, shows the current speed.
    """

    def __init__(self, total: int, window: int = 20, clock=time.perf_counter):
        self.total, self.clock = total, clock
        self.points = deque(maxlen=window + 1)   # (time, units done, amount done)

    def update(self, done: int, amount: float) -> None:
        """``done`` units (steps) finished so far, and the running ``amount`` (characters) so far."""
        self.points.append((self.clock(), done, amount))

    def describe(self, unit: str) -> str:
        """E.g. ``"12,345 chars/s, ETA 3:20"``; no numbers until two updates have been timed."""
        if len(self.points) < 2:
            return "timing..."
        (t0, done0, amount0), (t1, done1, amount1) = self.points[0], self.points[-1]
        seconds = max(t1 - t0, 1e-9)
        left = max(self.total - done1, 0) * seconds / max(done1 - done0, 1)
        return f"{(amount1 - amount0) / seconds:,.0f} {unit}, ETA {clock_time(left)}"


def clock_time(seconds: float) -> str:
    """``"3:20"``, or ``"1:02:03"`` from an hour on."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
