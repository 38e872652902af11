"""Reusable scratch memory for the CPU hot loop.

Every training step needs the same large temporaries (gate activations, cell
states, pre-activation gradients: about 120 MB each at the paper's size).
Fresh allocations of that size are served by the kernel as new pages, and
first-touch page faults then cost a large share of a step (measured: 35% of a
demo step on the development machine, docs/benchmarks.md).  A ``ScratchPool``
keeps released buffers and hands them out again.

A buffer is free when nothing but the pool refers to it: every array handed out
is a view whose ``base`` is the pooled buffer, so a live view (a returned
output, a cache, a gradient) keeps the buffer busy and it is never reused under
anyone's feet.  Nothing needs to be released explicitly.

Several threads may draw from one pool (the served page computes each model's
accuracy in its own thread): finding a free buffer and taking it (making the
view) happen under one lock, or two threads could take the same buffer.
"""
from __future__ import annotations

import math
import sys
import threading

import numpy as np


def _references(buffers: list, i: int) -> int:
    """Reference count of ``buffers[i]`` as seen from here.  Every check goes
    through this one function, so the count of a free buffer is calibrated once
    below, whatever the interpreter's own bookkeeping adds to it."""
    return sys.getrefcount(buffers[i])


_FREE = _references([np.empty(1, dtype=np.uint8)], 0)  # held by the pool's list alone


class ScratchPool:
    def __init__(self):
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()

    @staticmethod
    def _capacity(nbytes: int) -> int:
        # Round up to 1/8 of the size's power of two, so that batches padded to
        # slightly different lengths reuse the same buffers.
        step = max(4096, 1 << max(0, int(math.log2(max(nbytes, 1))) - 3))
        return -(-nbytes // step) * step

    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype`` backed by pooled memory."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        with self._lock:
            best = None
            for i in range(len(self._buffers)):
                size = self._buffers[i].nbytes
                if size >= nbytes and (best is None or size < self._buffers[best].nbytes) \
                        and _references(self._buffers, i) <= _FREE:
                    best = i
            if best is None:
                # Smaller free buffers stay: later, smaller requests of the same step reuse them.
                self._buffers.append(np.empty(self._capacity(nbytes), dtype=np.uint8))
                best = len(self._buffers) - 1
            return self._buffers[best][:nbytes].view(dtype).reshape(shape)

    def zeros(self, shape, dtype) -> np.ndarray:
        a = self.empty(shape, dtype)
        a.fill(0)
        return a

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._buffers)

    def clear(self) -> None:
        with self._lock:
            self._buffers = []


POOL = ScratchPool()
