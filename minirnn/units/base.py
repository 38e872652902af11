"""The one interface every recurrent unit offers (reference or fast, CPU or GPU).

Shapes use time-major sequences: ``x`` is (T, B, I), outputs ``hs`` are (T, B, H),
each state tensor is (B, H).  Parameters are a dict of arrays whose names and
shapes ``param_shapes()`` lists; a kernel is stored as one matrix acting on the
concatenation [x; h] (row-vector convention: ``z = [x, h] @ W + b``), exactly as
the equations in docs/ write it, so parameter counts match the study's
(docs/study.md §2).

The array module is taken from the arrays passed in (NumPy or CuPy), so one
implementation serves both devices.

A unit must provide:

``param_shapes() -> dict[str, tuple]``
    Ordered parameter names and shapes.
``init_params(rng: numpy.random.Generator, dtype) -> dict[str, numpy.ndarray]``
    Fresh parameters (host arrays; the model moves them to its device).  Kernels
    Glorot-uniform, biases as the study states (GRU gate bias 1.0, else 0).
``state_names: tuple[str, ...]``
    Names of the state tensors, e.g. ("h", "c").
``input_kernels: tuple[str, ...]``
    The parameters whose first ``input_size`` rows multiply the layer input x
    (the model uses this to fold the embedding into the first layer, docs/layers.md).
``zero_state(xp, batch, dtype) -> tuple``
    The all-zero initial state.
``forward(params, x, state0) -> (hs, state_T, cache)``
    Runs the whole sequence; ``cache`` is whatever backward needs.
``backward(params, cache, dhs, dstate_T=None) -> (dparams, dx, dstate0)``
    Backpropagation through time.  ``dhs`` (T, B, H) is dLoss/dh_t for every t
    (outputs only; the recurrence adds the carried part).  ``dstate_T`` (a tuple
    like the state, or None for zeros) is dLoss/d(final state).  Returns the
    parameter gradients (same names), dLoss/dx (T, B, I) and dLoss/d(state0).

``tag_gradients`` (optional, default empty)
    The backward tags of the unit's page whose line computes a gradient that
    ``backward`` returns, and the names of those gradients (parameter names,
    ``"x"``, ``"state0.<state name>"``; ``*`` matches any ending).  ``minirnn read``
    checks exactly these tensors for such a tag (docs/read.md); the other
    backward tags compute an intermediate that never leaves ``backward``.

``takes_ids`` (optional, default False)
    True for a unit that also accepts one-hot inputs given as integer ids
    x (T, B) in [0, I): it then looks up rows of its input kernels instead of
    multiplying, and returns dx = None (docs/layers.md [EMB-F2]).
"""
from __future__ import annotations

import numpy as np


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int], dtype) -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def sigmoid(xp, z):
    """Logistic sigmoid, written so that exp never overflows for large |z|."""
    # 0.5 * (1 + tanh(z / 2)) is exactly sigma(z) and stable in both directions.
    return 0.5 * (1.0 + xp.tanh(0.5 * z))


class Unit:
    """Base class: shared bookkeeping.  Subclasses implement the maths."""

    name: str = ""
    state_names: tuple[str, ...] = ("h",)
    input_kernels: tuple[str, ...] = ()
    # What exports and estimates need to know about a unit (docs/export.md, minirnn/training/limits.py):
    gate_order: str = "h"                 # the column blocks of each gate kernel, in order
    forget_bias: float | None = None      # a constant the equations add to the forget gate, if any
    torch_layout: bool = False            # whether export --layout torch can express the unit
    torch_refusal: str = "PyTorch has no such module"   # why not, for the one-line refusal
    tag_gradients: dict[str, tuple[str, ...]] = {}

    def __init__(self, input_size: int, hidden_size: int):
        if input_size < 1 or hidden_size < 1:
            raise ValueError("input_size and hidden_size must be positive")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)

    def activation_vectors(self) -> int:
        """Vectors of ``hidden_size`` numbers a layer keeps per position for the backward pass
        (rounded up; the memory estimate of minirnn/training/limits.py)."""
        return 10

    # --- to be provided by each unit -------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def forward(self, params, x, state0):
        raise NotImplementedError

    def backward(self, params, cache, dhs, dstate_T=None):
        raise NotImplementedError

    # --- shared ------------------------------------------------------------
    def num_params(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.param_shapes().values()))

    def zero_state(self, xp, batch: int, dtype) -> tuple:
        return tuple(xp.zeros((batch, self.hidden_size), dtype=dtype) for _ in self.state_names)

    def config(self) -> dict:
        """Constructor arguments, enough to rebuild the unit (stored in checkpoints)."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
