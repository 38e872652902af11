"""Numerical gradient verification (central differences in float64).

Derivative estimate: the fourth-order central stencil

    f'(x) ~ [f(x - 2h) - 8 f(x - h) + 8 f(x + h) - f(x + 2h)] / (12 h)      [GC-F1]

whose truncation error is O(h^4); with h = 1e-3 in float64 the numerical
noise is about 1e-12 * max(1, |f|) for entries below 0.01 (measured worst
8.9e-13; scripts/gradcheck_noise.py, docs/gradcheck.md).

Error measure, per tensor (docs/gradcheck.md):

    err = max_i |a_i - n_i| / max(|a_i|, |n_i|, floor),  floor = 1e-5 * max(1, |f|)   [GC-F2]

i.e. entries are compared relatively, except entries so small that no float64
finite difference can resolve them relatively: with the default tolerance 1e-6
those are held to an absolute error of 1e-11 * max(1, |f|), ten times the noise
estimate above (a margin, so that noise alone never fails a check).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import array_module, to_numpy, resolve_device
from .model import Model
from .units import unit_spec

DEFAULT_STEP = 1e-3
DEFAULT_TOLERANCE = 1e-6
#: The floor of [GC-F2], relative to max(1, |f|).  Entries below it are held to an
#: absolute error of tolerance * FLOOR * max(1, |f|) = 1e-11 * max(1, |f|) by default:
#: ten times the estimated noise of the numerical derivative (docs/gradcheck.md).
FLOOR = 1e-5


def numeric_derivative(f, a, index, h: float = DEFAULT_STEP) -> float:
    """d f() / d a[index] by the fourth-order central stencil [GC-F1].

    ``a`` is modified in place during the evaluation and restored afterwards.
    """
    orig = a[index].item() if hasattr(a[index], "item") else float(a[index])
    vals = []
    for k in (-2, -1, 1, 2):
        a[index] = orig + k * h
        vals.append(float(f()))
    a[index] = orig
    return (vals[0] - 8.0 * vals[1] + 8.0 * vals[2] - vals[3]) / (12.0 * h)


def sample_indices(shape: tuple[int, ...], max_entries: int | None, rng: np.random.Generator) -> list[tuple]:
    """All indices of a tensor, or ``max_entries`` of them drawn without replacement."""
    size = int(np.prod(shape)) if shape else 1
    if max_entries is None or size <= max_entries:
        flat = np.arange(size)
    else:
        flat = np.sort(rng.choice(size, size=max_entries, replace=False))
    return [np.unravel_index(int(i), shape) for i in flat]


def relative_error(analytic, numeric, f_value: float) -> float:
    """Worst per-entry relative error with the floor of [GC-F2]."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.size == 0:
        return 0.0
    floor = FLOOR * max(1.0, abs(float(f_value)))
    denom = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    return float(np.max(np.abs(a - n) / denom))


@dataclass
class TensorCheck:
    name: str
    shape: tuple
    checked: int
    max_abs_grad: float
    error: float

    def passed(self, tolerance: float = DEFAULT_TOLERANCE) -> bool:
        return self.error <= tolerance


def check_tensors(f, tensors: dict, grads: dict, max_entries: int | None = None, seed: int = 0,
                  h: float = DEFAULT_STEP) -> list[TensorCheck]:
    """Compare analytic ``grads[name]`` with numerical derivatives of ``f()`` w.r.t. ``tensors[name]``.

    ``f`` is a closure evaluating the scalar loss from the *current* contents of the
    tensors (they are perturbed in place).  Large tensors are sampled
    (``max_entries`` entries each, seeded).
    """
    rng = np.random.default_rng(seed)
    f0 = float(f())
    report = []
    for name, arr in tensors.items():
        idx = sample_indices(tuple(arr.shape), max_entries, rng)
        g = to_numpy(grads[name])
        analytic = np.array([g[i] for i in idx], dtype=np.float64)
        numeric = np.array([numeric_derivative(f, arr, i, h) for i in idx], dtype=np.float64)
        report.append(TensorCheck(name, tuple(arr.shape), len(idx),
                                  float(np.max(np.abs(analytic))) if len(idx) else 0.0,
                                  relative_error(analytic, numeric, f0)))
    return report


def random_projection_loss(xp, rng: np.random.Generator, hs_shape, state_shapes, dtype):
    """Weights for the test loss L = sum(R * hs) + sum_k sum(S_k * state_T[k]).

    A random linear functional of every output gives O(1) gradients everywhere and
    exercises both the per-step output gradients and the final-state gradients.
    """
    R = xp.asarray(rng.standard_normal(hs_shape), dtype=dtype)
    S = tuple(xp.asarray(rng.standard_normal(s), dtype=dtype) for s in state_shapes)
    return R, S


def check_unit(unit, T: int = 5, B: int = 3, seed: int = 0, max_entries: int | None = None,
               h: float = DEFAULT_STEP, xp=np) -> list[TensorCheck]:
    """Gradient-check one unit in float64 on random data: every parameter, x, state0.

    The loss is a random linear functional of all outputs and the final state, so
    ``dhs`` and ``dstate_T`` are both non-zero.
    """
    rng = np.random.default_rng(seed)
    dtype = np.float64
    params = {k: xp.asarray(v) for k, v in unit.init_params(rng, dtype).items()}
    # Perturb biases away from their constant initial values so every term matters.
    for k, v in params.items():
        params[k] = v + xp.asarray(0.1 * rng.standard_normal(v.shape))
    x = xp.asarray(rng.standard_normal((T, B, unit.input_size)))
    state0 = tuple(xp.asarray(0.5 * rng.standard_normal((B, unit.hidden_size))) for _ in unit.state_names)
    R, S = random_projection_loss(xp, rng, (T, B, unit.hidden_size), [(B, unit.hidden_size)] * len(state0), dtype)

    def loss():
        hs, stT, _ = unit.forward(params, x, state0)
        total = xp.sum(R * hs)
        for s, w in zip(stT, S):
            total = total + xp.sum(w * s)
        return float(total)

    hs, stT, cache = unit.forward(params, x, state0)
    dparams, dx, dstate0 = unit.backward(params, cache, R, S)
    tensors = dict(params)
    grads = dict(dparams)
    tensors["x"], grads["x"] = x, dx
    for name, s, ds in zip(unit.state_names, state0, dstate0):
        tensors[f"state0.{name}"], grads[f"state0.{name}"] = s, ds
    return check_tensors(loss, tensors, grads, max_entries=max_entries, seed=seed, h=h)


def random_batch(rng: np.random.Generator, batch: int, time: int, input_vocab: int, output_vocab: int):
    """A batch like real data: sequences of different lengths padded with 0, and
    some targets <unknown> (1), so masking is exercised."""
    lengths = rng.integers(max(1, time // 2), time + 1, size=batch)
    lengths[0] = time
    source = np.zeros((batch, time), dtype=np.int64)
    target = np.zeros((batch, time), dtype=np.int64)
    for b, n in enumerate(lengths):
        source[b, :n] = rng.integers(1, input_vocab, size=n)
        target[b, :n] = rng.integers(1, output_vocab, size=n)
    return source, target


def check_model(model, source, target, max_entries: int | None = 30, seed: int = 0, random_states: bool = True,
                h: float = DEFAULT_STEP) -> list[TensorCheck]:
    """Gradient-check a float64 model on one batch: every parameter tensor (sampled
    entries where large) as ``loss_and_grads`` computes it, the embedded inputs and
    every layer's initial state."""
    if model.dtype != np.float64:
        raise ValueError("gradient checks need a float64 model")
    xp = model.xp
    rng = np.random.default_rng(seed)
    source = xp.asarray(source)
    target = xp.asarray(target)
    B = source.shape[0]
    states0 = model.zero_states(B)
    if random_states:
        states0 = [tuple(xp.asarray(0.5 * rng.standard_normal(s.shape)) for s in st) for st in states0]
    X = model.embed(source)
    _, _, dX, dstates0 = model.forward_backward(X, target, states0)
    _, full_grads = model.loss_and_grads(source, target, states0)

    def from_embedded():
        return model.forward_backward(X, target, states0, need_grads=False)[0]

    def from_ids():
        return model.loss(source, target, states0)

    # Every parameter against the gradients training uses (loss_and_grads, which on
    # the fast path folds the embedding into the first layer) ...
    report = check_tensors(from_ids, dict(model.params), full_grads, max_entries=max_entries, seed=seed, h=h)
    # ... and the embedded inputs and initial states through forward_backward.
    tensors, grads_ = {"input.X": X}, {"input.X": dX}
    for layer, (st, dst) in enumerate(zip(states0, dstates0)):
        for name, s, ds in zip(model.units[layer].state_names, st, dst):
            key = f"state0.layer{layer}.{name}"
            tensors[key], grads_[key] = s, ds
    report += check_tensors(from_embedded, tensors, grads_, max_entries=max_entries, seed=seed, h=h)
    return report


def perturb_params(model, rng: np.random.Generator, scale: float = 0.1) -> None:
    """Move every parameter off its special initial value (zero or one biases would
    hide terms of the gradient); the embedding's padding row stays zero, as in training."""
    for name, p in model.params.items():
        noise = scale * rng.standard_normal(p.shape)
        if name == "embedding":
            noise[0] = 0.0
        model.params[name] = p + model.xp.asarray(noise, dtype=p.dtype)


def check_model_config(unit: str, depth: int = 2, layers: int = 2, hidden: int = 5, batch: int = 3, time: int = 6,
                       vocab: int = 11, max_entries: int | None = 40, impl: str = "fast", device: str = "cpu",
                       outer_tanh: bool = False, seed: int = 0):
    """Build a small float64 model and a padded batch, and check it.  Returns (report, description)."""
    device, _ = resolve_device(device)
    model = Model(unit=unit, hidden=hidden, layers=layers, depth=depth, output_vocab=vocab, embedding_size=hidden + 1,
                  seed=seed, device=device, dtype="float64", impl=impl, outer_tanh=outer_tanh)
    rng = np.random.default_rng(seed + 1)
    perturb_params(model, rng)
    source, target = random_batch(rng, batch, time, model.config["input_vocab"], vocab)

    depth_txt = unit_spec(unit).describe(depth=depth, outer_tanh=outer_tanh)
    description = (f"gradcheck {unit}{depth_txt}: {layers} layer(s) of {hidden} units, embedding {hidden + 1}, "
                   f"{vocab} classes, batch {batch} x {time} steps (padded, with <unknown> targets), "
                   f"{impl} path on {device}, float64, 4th-order central differences h={DEFAULT_STEP:g}")
    return check_model(model, source, target, max_entries=max_entries, seed=seed), description


def format_report(report: list[TensorCheck], tolerance: float = DEFAULT_TOLERANCE) -> str:
    """A plain-text table: tensor, shape, entries checked, max |grad|, worst relative error, verdict."""
    rows = [("tensor", "shape", "checked", "max|grad|", "rel. error", "")]
    for r in report:
        rows.append((r.name, "x".join(map(str, r.shape)) or "scalar", str(r.checked),
                     f"{r.max_abs_grad:.3e}", f"{r.error:.2e}", "ok" if r.passed(tolerance) else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["numeric_derivative", "check_tensors", "check_unit", "relative_error", "format_report",
           "TensorCheck", "DEFAULT_TOLERANCE", "FLOOR", "array_module"]
