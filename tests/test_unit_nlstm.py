"""Tests of the reference Nested LSTM unit (minirnn/units/nlstm.py, docs/nlstm.md).

- gradients against central differences, float64, depths 1-3, both outer-level variants;
- the forward pass against an independent, literal transcription of the study's equations (docs/study.md §2, docs/nlstm.md);
- depth 1 equals an LSTM whose candidate skips the tanh (and, with outer_tanh, a standard LSTM);
- float32 agrees with float64;
- parameter count, state names and shapes, configuration.
"""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.gradcheck import check_unit, format_report
from minirnn.units import make_unit
from minirnn.units.nlstm import NestedLSTM

TOL = 1e-6


# --- independent helpers (deliberately not sharing code with the unit) -------------

def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _random_setup(unit, T, B, seed, dtype=np.float64):
    """Parameters (biases perturbed off zero), inputs and a non-zero initial state."""
    rng = np.random.default_rng(seed)
    params = unit.init_params(rng, np.float64)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
    x = rng.standard_normal((T, B, unit.input_size))
    state0 = tuple(0.5 * rng.standard_normal((B, unit.hidden_size)) for _ in unit.state_names)
    cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    return {k: cast(v) for k, v in params.items()}, cast(x), tuple(cast(s) for s in state0)


def _lstm_forward(W, b, x, h, c, candidate_tanh):
    """A plain LSTM, written from the study's LSTM equations (docs/lstm.md); optional tanh on the candidate."""
    H = h.shape[1]
    hs = []
    for t in range(x.shape[0]):
        z = np.concatenate([x[t], h], axis=1) @ W + b
        i, j, f, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        cand = np.tanh(j) if candidate_tanh else j
        c = _sig(f + 1.0) * c + _sig(i) * cand
        h = np.tanh(c) * _sig(o)
        hs.append(h)
    return np.stack(hs), h, c


def _nested_step(params, k, a, b, cs, depth, outer_tanh):
    """One step of level k, recursively, straight from the study's equations (docs/study.md §2).

    Returns (h'_k, [c_k', ..., c_{D-1}'])."""
    H = b.shape[1]
    z = np.concatenate([a, b], axis=1) @ params[f"W{k}"] + params[f"b{k}"]
    i, j, f, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
    g = j if (k == 0 and not outer_tanh) else np.tanh(j)
    b_next = _sig(f + 1.0) * cs[k]
    a_next = _sig(i) * g
    if k == depth - 1:
        c_new, deeper = b_next + a_next, []
    else:
        h_inner, deeper = _nested_step(params, k + 1, a_next, b_next, cs, depth, outer_tanh)
        c_new = h_inner
    return np.tanh(c_new) * _sig(o), [c_new] + deeper


def _nested_forward(params, x, state0, depth, outer_tanh):
    h, cs = state0[0], list(state0[1:])
    hs = []
    for t in range(x.shape[0]):
        h, cs = _nested_step(params, 0, x[t], h, cs, depth, outer_tanh)
        hs.append(h)
    return np.stack(hs), (h, *cs)


# --- gradients ------------------------------------------------------------------------

def _assert_gradcheck(unit, T, B, seed=0):
    report = check_unit(unit, T=T, B=B, seed=seed)
    bad = [r for r in report if not r.error <= TOL]
    assert not bad, (f"{unit!r} T={T} B={B}: gradient mismatch in "
                     + ", ".join(f"{r.name} (error {r.error:.2e})" for r in bad)
                     + "\n" + format_report(report, TOL))
    assert {r.name for r in report} == (set(unit.param_shapes()) | {"x"}
                                         | {f"state0.{n}" for n in unit.state_names})
    return max(r.error for r in report)


@pytest.mark.parametrize("outer_tanh", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("I,H,T,B", [(3, 4, 4, 2), (5, 2, 3, 3)])
def test_gradcheck(depth, outer_tanh, I, H, T, B):
    _assert_gradcheck(NestedLSTM(I, H, depth=depth, outer_tanh=outer_tanh), T=T, B=B)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("I,H,T,B", [(2, 3, 1, 1), (4, 2, 3, 1), (1, 3, 1, 4)])
def test_gradcheck_edge_shapes(depth, I, H, T, B):
    """B = 1, T = 1, I different from H (both ways)."""
    _assert_gradcheck(NestedLSTM(I, H, depth=depth), T=T, B=B, seed=depth)


def test_backward_without_final_state_gradient():
    """dstate_T=None means zeros: same result as passing explicit zeros."""
    unit = NestedLSTM(3, 2, depth=2)
    params, x, state0 = _random_setup(unit, T=4, B=2, seed=5)
    hs, stT, cache = unit.forward(params, x, state0)
    dhs = np.random.default_rng(1).standard_normal(hs.shape)
    a = unit.backward(params, cache, dhs)
    b = unit.backward(params, cache, dhs, tuple(np.zeros_like(s) for s in stT))
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name], err_msg=name)
    np.testing.assert_array_equal(a[1], b[1])
    for s, t in zip(a[2], b[2]):
        np.testing.assert_array_equal(s, t)


# --- forward semantics ----------------------------------------------------------------

@pytest.mark.parametrize("outer_tanh", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_forward_matches_literal_equations(depth, outer_tanh):
    unit = NestedLSTM(3, 4, depth=depth, outer_tanh=outer_tanh)
    params, x, state0 = _random_setup(unit, T=5, B=2, seed=11 + depth)
    hs, stT, _ = unit.forward(params, x, state0)
    hs_ref, st_ref = _nested_forward(params, x, state0, depth, outer_tanh)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-12, atol=1e-14, err_msg="outputs")
    for name, s, r in zip(unit.state_names, stT, st_ref):
        np.testing.assert_allclose(s, r, rtol=1e-12, atol=1e-14, err_msg=f"state {name}")
    np.testing.assert_array_equal(stT[0], hs[-1])


@pytest.mark.parametrize("outer_tanh", [False, True])
def test_depth1_is_lstm(outer_tanh):
    """Depth 1: an LSTM without the candidate's tanh (default) or a standard LSTM (outer_tanh)."""
    unit = NestedLSTM(5, 3, depth=1, outer_tanh=outer_tanh)
    params, x, state0 = _random_setup(unit, T=6, B=2, seed=3)
    hs, (h, c), _ = unit.forward(params, x, state0)
    hs_ref, h_ref, c_ref = _lstm_forward(params["W0"], params["b0"], x, state0[0], state0[1],
                                         candidate_tanh=outer_tanh)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-12, atol=1e-14, err_msg="outputs")
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-14, err_msg="final h")
    np.testing.assert_allclose(c, c_ref, rtol=1e-12, atol=1e-14, err_msg="final c")
    # ... and the two variants really differ.
    _, _, c_other = _lstm_forward(params["W0"], params["b0"], x, state0[0], state0[1],
                                  candidate_tanh=not outer_tanh)
    assert np.max(np.abs(c - c_other)) > 1e-3


def test_outer_tanh_changes_only_level0():
    """Deeper levels always use tanh(j): with depth 2 the two variants differ."""
    a, b = NestedLSTM(3, 4, depth=2), NestedLSTM(3, 4, depth=2, outer_tanh=True)
    params, x, state0 = _random_setup(a, T=3, B=2, seed=8)
    assert np.max(np.abs(a.forward(params, x, state0)[0] - b.forward(params, x, state0)[0])) > 1e-3


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_float32_agrees_with_float64(depth):
    unit = NestedLSTM(4, 5, depth=depth)
    p64, x64, s64 = _random_setup(unit, T=6, B=3, seed=21, dtype=np.float64)
    p32, x32, s32 = _random_setup(unit, T=6, B=3, seed=21, dtype=np.float32)
    dhs = np.random.default_rng(2).standard_normal((6, 3, 5))
    dst = tuple(np.random.default_rng(3 + k).standard_normal((3, 5)) for k in range(depth + 1))

    out = {}
    for tag, (p, x, s) in {"64": (p64, x64, s64), "32": (p32, x32, s32)}.items():
        dt = x.dtype
        hs, stT, cache = unit.forward(p, x, s)
        dp, dx, ds0 = unit.backward(p, cache, dhs.astype(dt), tuple(d.astype(dt) for d in dst))
        tensors = {"hs": hs, "dx": dx, **{f"state_T.{n}": v for n, v in zip(unit.state_names, stT)},
                   **{f"d{k}": v for k, v in dp.items()},
                   **{f"dstate0.{n}": v for n, v in zip(unit.state_names, ds0)}}
        for name, v in tensors.items():
            assert v.dtype == dt, f"{name} has dtype {v.dtype} in the float{tag} run"
        out[tag] = tensors

    for name, ref in out["64"].items():
        err = np.max(np.abs(out["32"][name].astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-30)
        assert err <= 1e-4, f"depth {depth}: float32 vs float64 relative difference {err:.2e} in {name}"


# --- bookkeeping ----------------------------------------------------------------------

def test_paper_parameter_count():
    unit = NestedLSTM(600, 600, depth=2)
    assert unit.num_params() == 5_764_800
    assert unit.param_shapes() == {"W0": (1200, 2400), "b0": (2400,), "W1": (1200, 2400), "b1": (2400,)}


def test_state_names_and_shapes_depth3():
    unit = NestedLSTM(3, 4, depth=3)
    assert unit.state_names == ("h", "c0", "c1", "c2")
    assert unit.param_shapes() == {"W0": (7, 16), "b0": (16,), "W1": (8, 16), "b1": (16,),
                                   "W2": (8, 16), "b2": (16,)}
    params, x, state0 = _random_setup(unit, T=2, B=5, seed=0)
    hs, stT, cache = unit.forward(params, x, state0)
    assert hs.shape == (2, 5, 4)
    assert len(stT) == 4 and all(s.shape == (5, 4) for s in stT)
    dp, dx, ds0 = unit.backward(params, cache, np.ones_like(hs))
    assert {k: v.shape for k, v in dp.items()} == unit.param_shapes()
    assert dx.shape == x.shape
    assert len(ds0) == 4 and all(s.shape == (5, 4) for s in ds0)
    zs = unit.zero_state(np, 5, np.float32)
    assert len(zs) == 4 and all(z.shape == (5, 4) and z.dtype == np.float32 for z in zs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_params(dtype):
    unit = NestedLSTM(3, 4, depth=2)
    params = unit.init_params(np.random.default_rng(0), dtype)
    assert list(params) == list(unit.param_shapes())
    for name, v in params.items():
        assert v.shape == unit.param_shapes()[name] and v.dtype == dtype, name
        if name.startswith("b"):
            assert not np.any(v), f"{name} must start at zero"
        else:
            limit = np.sqrt(6.0 / sum(v.shape))
            assert np.all(np.abs(v) <= limit) and np.max(np.abs(v)) > 0.5 * limit, name


def test_config_and_factory():
    unit = make_unit("nlstm", 7, 5, depth=3, outer_tanh=True)
    assert isinstance(unit, NestedLSTM) and unit.name == "nlstm"
    assert unit.config() == {"input_size": 7, "hidden_size": 5, "depth": 3, "outer_tanh": True}
    assert NestedLSTM(**unit.config()).config() == unit.config()
    assert NestedLSTM(2, 2).config() == {"input_size": 2, "hidden_size": 2, "depth": 2, "outer_tanh": False}


@pytest.mark.parametrize("depth", [0, -1, 1.5])
def test_bad_depth(depth):
    with pytest.raises(ValueError):
        NestedLSTM(2, 2, depth=depth)
