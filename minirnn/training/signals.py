"""Ctrl-C (SIGINT), SIGTERM and SIGHUP during training: never lost, never raised inside a save.

Python runs a signal handler between two bytecodes of the main thread, wherever
that happens to be -- also inside h5py or inside a finalizer, where an
exception raised by the handler is printed as "Exception ignored in ..." and
dropped.  So while training runs, the handlers installed here only *record*
the signal; the loop asks :meth:`StopSignals.check` at safe points (after a
step, after a save) and stops there.  Before the loop (building the dataset,
nothing to save yet) they also raise, so a long dataset build stops at once; a
raise that a finalizer swallows is still recorded and found by the next check.

    with StopSignals() as stops:
        build_dataset()              # a signal raises Interrupted here
        with stops.deferred():       # from here on, a signal is only recorded
            for step in ...:
                ...
                stops.check()        # raises Interrupted at a safe point
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from ..errors import MinirnnError
from .atomic import writing

# SIGHUP: the terminal was closed -- a stop like SIGTERM, not a reason to lose the steps since the last save
HANDLED = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())


class Interrupted(MinirnnError):
    """A run stopped by SIGINT, SIGTERM or SIGHUP; ``exit_code`` is 128 + the signal number (130, 143, 129)."""

    def __init__(self, message: str, signum: int, raw: bool = False, rank: int = 0):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)
        self.raw = raw      # raised by the handler or check(): the caller adds where the run stopped
        self.rank = rank    # the process that received it (several MPI ranks: docs/distributed.md)


def signal_name(signum: int) -> str:
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name


class StopSignals:
    """Install SIGINT/SIGTERM/SIGHUP handlers for a ``with`` block; restore the previous ones after.

    Outside the main thread Python cannot install handlers; then nothing is
    installed and signals keep their usual effect.
    """

    def __init__(self):
        self.signum: int | None = None       # the first stop signal received
        self._deferring = False
        self._previous = {}

    # ------------------------------------------------------------------ handlers
    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        # inside a file write (e.g. the dataset cache) a raise could land in h5py or a finalizer ("Exception
        # ignored"): the write completes (or is undone) first, and the caller's next check() stops the run
        if not self._deferring and not writing():
            raise Interrupted(f"stopped by {signal_name(signum)}", signum, raw=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        return False

    # ------------------------------------------------------------------ use
    @contextmanager
    def deferred(self):
        """Within this block a stop signal is only recorded (see :meth:`check`)."""
        before, self._deferring = self._deferring, True
        try:
            yield self
        finally:
            self._deferring = before

    def hold(self) -> None:
        """Only record signals from now on (the caller checks :attr:`requested` before it returns)."""
        self._deferring = True

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise :class:`Interrupted` when a stop signal was received (a safe point)."""
        if self.signum is not None:
            raise Interrupted(f"stopped by {signal_name(self.signum)}", self.signum, raw=True)
