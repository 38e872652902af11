"""Reproducible mini-batch order with a tiny resumable state.

Epoch ``e`` visits the ``n`` training observations in the order
``np.random.default_rng([seed, e]).permutation(n)``, cut into consecutive
batches of ``batch_size`` (the last, partial batch of an epoch is kept).  The
whole position in the stream is ``(epoch, position)``, ``position`` being how
many observations of epoch ``epoch`` were already handed out; so a run stopped
after k steps and resumed from :meth:`BatchOrder.state` sees exactly the batches
an uninterrupted run would have seen.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import MinirnnError

__all__ = ["BatchOrder", "epoch_permutation"]


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order (int64 indices into the split) of epoch ``epoch``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n)).astype(np.int64)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise MinirnnError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class BatchOrder:
    """Iterate ``(epoch, step, indices)`` over an endless sequence of seeded epochs.

    ``indices`` are positions ``0..n-1`` (int64); map them through the split,
    e.g. ``dataset.split('train')[indices]``.  ``step`` counts batches within the
    epoch, from 0 to ``steps_per_epoch - 1``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int = 0, position: int = 0):
        self.n = _check_int("the number of observations", n, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise MinirnnError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.epoch = _check_int("epoch", epoch, 0)
        self.position = _check_int("position", position, 0)
        if self.position > self.n:
            raise MinirnnError(f"batch position {position} is past the end of an epoch of {n} observations; the state does not belong to this data")
        if self.position == self.n:
            self.epoch, self.position = self.epoch + 1, 0
        self._order_epoch = -1
        self._order = None

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        """``{'epoch': e, 'position': p}``: everything needed (with n, batch_size, seed) to resume."""
        return {"epoch": self.epoch, "position": self.position}

    @classmethod
    def from_state(cls, state: dict, n: int, batch_size: int, seed: int) -> "BatchOrder":
        try:
            epoch, position = state["epoch"], state["position"]
        except (KeyError, TypeError):
            raise MinirnnError(f"batch-order state {state!r} lacks 'epoch' and 'position'; it does not come from BatchOrder.state()") from None
        return cls(n, batch_size, seed, epoch=int(epoch), position=int(position))

    # ------------------------------------------------------------------ sizes
    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n // self.batch_size)

    @property
    def step(self) -> int:
        """Index within the epoch of the next batch."""
        return -(-self.position // self.batch_size)

    @property
    def global_step(self) -> int:
        """Batches handed out so far since epoch 0 (when every batch was full-sized or last of its epoch)."""
        return self.epoch * self.steps_per_epoch + self.step

    def order(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            self._order = epoch_permutation(self.n, self.seed, epoch)
            self._order_epoch = epoch
        return self._order

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        return self

    def __next__(self) -> tuple[int, int, np.ndarray]:
        epoch, step = self.epoch, self.step
        end = min(self.position + self.batch_size, self.n)
        indices = self.order(epoch)[self.position : end].copy()
        if end == self.n:
            self.epoch, self.position = epoch + 1, 0
        else:
            self.position = end
        return epoch, step, indices

    def take(self, num_steps: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """The next ``num_steps`` batches (crossing epoch boundaries as needed)."""
        for _ in range(_check_int("num_steps", num_steps, 0)):
            yield next(self)

    def rest_of_epoch(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """The remaining batches of the current epoch."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield next(self)
