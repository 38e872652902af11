"""A random problem for one unit and a runner that collects every output and gradient
(shared by the unit tests)."""
from __future__ import annotations

import numpy as np


def random_problem(unit, T, B, seed):
    rng = np.random.default_rng(seed)
    params = unit.init_params(rng, np.float64)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    x = rng.standard_normal((T, B, unit.input_size))
    state0 = tuple(0.5 * rng.standard_normal((B, unit.hidden_size)) for _ in unit.state_names)
    dhs = rng.standard_normal((T, B, unit.hidden_size))
    dstate = tuple(rng.standard_normal((B, unit.hidden_size)) for _ in unit.state_names)
    return params, x, state0, dhs, dstate


def run_unit(unit, params, x, state0, dhs, dstate, dtype):
    cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    p = {k: cast(v) for k, v in params.items()}
    hs, stT, cache = unit.forward(p, cast(x), tuple(cast(s) for s in state0))
    dp, dx, ds0 = unit.backward(p, cache, cast(dhs), tuple(cast(s) for s in dstate))
    out = {"hs": hs, "dx": dx}
    out.update({f"state_T.{n}": s for n, s in zip(unit.state_names, stT)})
    out.update({f"d{k}": v for k, v in dp.items()})
    out.update({f"dstate0.{n}": s for n, s in zip(unit.state_names, ds0)})
    return out


def assert_float32_agrees_with_float64(unit, tolerance=1e-4):
    """Every output and gradient: float32 within ``tolerance`` (relative to the largest
    float64 value) of float64, and no silent upcast of float32 inputs."""
    problem = random_problem(unit, T=6, B=3, seed=7)
    r64 = run_unit(unit, *problem, np.float64)
    r32 = run_unit(unit, *problem, np.float32)
    for name, a64 in r64.items():
        a32 = r32[name]
        assert a64.dtype == np.float64, f"{name} came back as {a64.dtype} from float64 inputs"
        assert a32.dtype == np.float32, f"{name} came back as {a32.dtype} from float32 inputs (silent upcast?)"
        rel = float(np.max(np.abs(a32 - a64)) / max(float(np.max(np.abs(a64))), 1e-30))
        assert rel <= tolerance, f"{name}: float32 differs from float64 by relative {rel:.2e}"
