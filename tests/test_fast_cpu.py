"""The fast units (kernels/units.py) on the CPU backend (Numba) against the reference units.

float64: forward outputs/states and every backward gradient equal the reference's
to <= 1e-12 relative (max |fast - ref| / max |ref| per tensor), for float inputs and
for one-hot inputs given as ids; gradcheck on the fast unit itself <= 1e-6; float32
runs in float32 and agrees with float64 to 1e-4.  The same loops on the GPU backend:
tests/test_cuda_sources.py (stand-ins) and tests/test_gpu.py (a card).
Tiny sizes only: the whole file runs in seconds once Numba's cache is warm.
"""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.gradcheck import DEFAULT_TOLERANCE, check_unit, format_report
from minirnn.kernels.cpu.gates import tanh_
from minirnn.kernels.units import FastGRU, FastLSTM, FastNestedLSTM, fast_unit
from minirnn.units import GRU, LSTM, NestedLSTM

I, H, T, B = 5, 4, 6, 3

UNITS = {
    "gru": lambda: GRU(I, H),
    "lstm": lambda: LSTM(I, H),
    **{f"nlstm-d{d}{'-tanh' if o else ''}": (lambda d=d, o=o: NestedLSTM(I, H, depth=d, outer_tanh=o))
       for d in (1, 2, 3) for o in (False, True)},
}


def rel(a, b) -> float:
    """max |a - b| / max |b| (the size of the error relative to the tensor's scale)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def problem(unit, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(dtype)
              for k, v in unit.init_params(rng, np.float64).items()}
    x = rng.standard_normal((T, B, unit.input_size)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in unit.state_names)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    dstate_T = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in unit.state_names)
    return params, x, state0, dhs, dstate_T


def run(unit, params, x, state0, dhs, dstate_T):
    hs, state_T, cache = unit.forward(params, x, state0)
    hs, state_T = np.array(hs), tuple(np.array(s) for s in state_T)
    dparams, dx, dstate0 = unit.backward(params, cache, dhs, dstate_T)
    return hs, state_T, dparams, dx, dstate0


def all_diffs(a, b):
    hs1, st1, dp1, dx1, ds1 = a
    hs2, st2, dp2, dx2, ds2 = b
    assert set(dp1) == set(dp2)
    out = {"hs": rel(hs1, hs2), "dx": rel(dx1, dx2)}
    out.update({f"state_T[{i}]": rel(p, q) for i, (p, q) in enumerate(zip(st1, st2))})
    out.update({f"d{k}": rel(dp1[k], dp2[k]) for k in dp2})
    out.update({f"dstate0[{i}]": rel(p, q) for i, (p, q) in enumerate(zip(ds1, ds2))})
    return out


@pytest.mark.parametrize("name", list(UNITS))
def test_fast_unit_keeps_the_configuration(name):
    ref = UNITS[name]()
    fast = fast_unit(ref)
    assert isinstance(fast, type(ref)) and type(fast) is not type(ref)
    assert fast.config() == ref.config()
    assert fast.param_shapes() == ref.param_shapes()
    assert fast.state_names == ref.state_names
    assert fast_unit(fast) is fast


def test_fast_unit_rejects_unknown_units():
    class Other(LSTM):
        pass

    with pytest.raises(TypeError):
        fast_unit(Other(2, 3))
    assert isinstance(fast_unit(GRU(2, 3)), FastGRU)
    assert isinstance(fast_unit(LSTM(2, 3)), FastLSTM)
    assert isinstance(fast_unit(NestedLSTM(2, 3)), FastNestedLSTM)


@pytest.mark.parametrize("with_dstate", [True, False])
@pytest.mark.parametrize("name", list(UNITS))
def test_float64_matches_reference(name, with_dstate):
    ref = UNITS[name]()
    fast = fast_unit(ref)
    params, x, state0, dhs, dstate_T = problem(ref)
    if not with_dstate:
        dstate_T = None
    inputs = [np.array(a) for a in (x, dhs)] + [{k: v.copy() for k, v in params.items()}]
    got = run(fast, params, x, state0, dhs, dstate_T)
    want = run(ref, params, x, state0, dhs, dstate_T)
    diffs = all_diffs(got, want)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= 1e-12, f"{worst}: {diffs[worst]:.2e}"
    # The fast path does not modify its inputs.
    assert np.array_equal(inputs[0], x) and np.array_equal(inputs[1], dhs)
    assert all(np.array_equal(inputs[2][k], params[k]) for k in params)


@pytest.mark.parametrize("name", ["lstm", "nlstm-d2"])
def test_partial_final_state_gradient(name):
    # dstate_T with some entries None means zeros for those entries.
    ref = UNITS[name]()
    fast = fast_unit(ref)
    params, x, state0, dhs, dstate_T = problem(ref, seed=3)
    partial = (None,) + dstate_T[1:]
    diffs = all_diffs(run(fast, params, x, state0, dhs, partial), run(ref, params, x, state0, dhs, partial))
    assert max(diffs.values()) <= 1e-12


def test_non_contiguous_input():
    ref = LSTM(I, H)
    fast = fast_unit(ref)
    params, x, state0, dhs, dstate_T = problem(ref, seed=5)
    xb = np.asfortranarray(x)[:, :, :]
    dhs_b = np.asfortranarray(dhs)
    diffs = all_diffs(run(fast, params, xb, state0, dhs_b, dstate_T), run(ref, params, x, state0, dhs, dstate_T))
    assert max(diffs.values()) <= 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(UNITS))
def test_integer_ids_equal_their_one_hot_rows(name, dtype):
    # The folded first layer (docs/layers.md [EMB-F2]) hands the fast units its one-hot
    # rows as ids: the input part becomes a row lookup and its weight gradient a
    # scatter-add.  Same results as the reference on the one-hot rows; no dx.
    ref = UNITS[name]()
    fast = fast_unit(ref)
    assert fast.takes_ids and not getattr(ref, "takes_ids", False)
    params, _, state0, dhs, dstate_T = problem(ref, seed=7)
    cast = lambda a: a.astype(dtype)  # noqa: E731
    params, state0 = {k: cast(v) for k, v in params.items()}, tuple(map(cast, state0))
    dhs, dstate_T = cast(dhs), tuple(map(cast, dstate_T))
    ids = np.random.default_rng(7).integers(0, I, size=(T, B))
    ids[0, 0], ids[1, 0] = 0, I - 1                      # both ends of the table
    onehot = (ids[..., None] == np.arange(I)).astype(dtype)
    hs, st, dp, dx, ds = run(fast, params, ids, state0, dhs, dstate_T)
    want = run(ref if dtype == np.float64 else fast, params, onehot, state0, dhs, dstate_T)
    assert dx is None and hs.dtype == dtype and all(v.dtype == dtype for v in dp.values())
    limit = 1e-12 if dtype == np.float64 else 1e-5
    diffs = {"hs": rel(hs, want[0]), **{f"d{k}": rel(dp[k], want[2][k]) for k in dp},
             **{f"state_T[{i}]": rel(a, b) for i, (a, b) in enumerate(zip(st, want[1]))},
             **{f"dstate0[{i}]": rel(a, b) for i, (a, b) in enumerate(zip(ds, want[4]))}}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= limit, f"{worst}: {diffs[worst]:.2e}"


@pytest.mark.parametrize("name", list(UNITS))
def test_gradcheck_fast_unit(name):
    fast = fast_unit(UNITS[name]())
    report = check_unit(fast, T=4, B=2, seed=1)
    assert all(r.passed(DEFAULT_TOLERANCE) for r in report), "\n" + format_report(report)


@pytest.mark.parametrize("name", list(UNITS))
def test_float32_runs_in_float32_and_agrees_with_float64(name):
    fast = fast_unit(UNITS[name]())
    p64, x64, s64, dhs64, ds64 = problem(fast, np.float64, seed=2)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    p32 = {k: f32(v) for k, v in p64.items()}
    got = run(fast, p32, f32(x64), tuple(map(f32, s64)), f32(dhs64), tuple(map(f32, ds64)))
    want = run(fast, p64, x64, s64, dhs64, ds64)
    hs, st, dp, dx, ds = got
    assert hs.dtype == np.float32 and dx.dtype == np.float32
    assert all(s.dtype == np.float32 for s in st + tuple(ds))
    assert all(v.dtype == np.float32 for v in dp.values())
    diffs = all_diffs(got, want)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= 1e-4, f"{worst}: {diffs[worst]:.2e}"


@pytest.mark.parametrize("dtype,ulps", [(np.float64, 4), (np.float32, 4)])
def test_kernel_tanh_is_accurate(dtype, ulps):
    from numba import njit

    @njit
    def apply(a, out):
        for i in range(a.size):
            out[i] = tanh_(a[i])

    x = np.concatenate([np.linspace(-30, 30, 200001), np.geomspace(1e-30, 30, 20001),
                        -np.geomspace(1e-30, 30, 20001)]).astype(dtype)
    out = np.empty_like(x)
    apply(x, out)
    exact = np.tanh(x.astype(np.float64))
    err = np.abs(out.astype(np.float64) - exact) / np.maximum(np.abs(exact), np.finfo(dtype).tiny)
    assert out.dtype == dtype
    assert err.max() <= ulps * np.finfo(dtype).eps
    special = np.array([np.inf, -np.inf, np.nan, 0.0], dtype=dtype)
    res = np.empty_like(special)
    apply(special, res)
    assert res[0] == 1 and res[1] == -1 and np.isnan(res[2]) and res[3] == 0
