"""Which state is worth a checkpoint, and when a finite loss is exploding.

A finite training loss is not enough to call a state good: a step's loss is
measured *before* its update, so after one step at ``--lr 1e30`` the loss is
fine and the parameters are ~1e30.  A checkpoint is therefore written only
when the loss of the very parameters being saved (measured on the fixed
validation subset, or on a fixed training batch when validation is off) is

- finite, and
- at most ``SAVE_FACTOR`` times the best such loss seen so far in this run
  (the loss of the initial parameters counts: no run should be much worse than
  where it started).

Otherwise the checkpoint on disk stays the last good one, and the user is told.
Separately, a training loss above ``EXPLODE_FACTOR`` times the run's first loss
for ``EXPLODE_STEPS`` consecutive steps prints one warning even while it stays finite.
"""
from __future__ import annotations

import math

SAVE_FACTOR = 2.0
EXPLODE_FACTOR = 10.0
EXPLODE_STEPS = 5


class LossWatch:
    """Tracks the run's reference losses; the loop asks it before each save and after each step."""

    def __init__(self, best: float | None = None):
        self.best = best               # the lowest probe loss of a state judged good
        self.first: float | None = None
        self.last: float | None = None    # the probe loss last judged
        self._high = 0
        self._warned = False

    def judge(self, probe_loss: float | None) -> tuple[bool, str]:
        """(worth saving, why not).  ``probe_loss``: the loss of the parameters about to be saved."""
        self.last = probe_loss
        if probe_loss is None:
            return True, ""
        if not math.isfinite(probe_loss):
            return False, f"its loss is {probe_loss}"
        if self.best is not None and probe_loss > SAVE_FACTOR * self.best:
            return False, (f"its loss {probe_loss:.4g} is more than {SAVE_FACTOR:g}x the best of this run "
                           f"({self.best:.4g})")
        self.best = probe_loss if self.best is None else min(self.best, probe_loss)
        return True, ""

    def step(self, step: int, loss: float) -> str | None:
        """Record a step's training loss; returns a one-line warning the first time it explodes."""
        if self.first is None:
            self.first = loss
            return None
        self._high = self._high + 1 if loss > EXPLODE_FACTOR * self.first else 0
        if self._high >= EXPLODE_STEPS and not self._warned:
            self._warned = True
            return (f"warning: the training loss has been above {EXPLODE_FACTOR:g}x its first value "
                    f"({self.first:.4g}) for {EXPLODE_STEPS} steps (now {loss:.4g} at step {step}); the run is "
                    "probably diverging: stop it (Ctrl-C) and resume the last good checkpoint with a lower --lr")
        return None
