"""Reference GRU unit: exact gradients, dtypes, initialisation, parameter count, one hand step."""
from __future__ import annotations

import math

import numpy as np
import pytest

from unit_problems import assert_float32_agrees_with_float64, random_problem

from minirnn.gradcheck import DEFAULT_TOLERANCE, check_unit, format_report
from minirnn.units.gru import GRU

# (input I, hidden H, steps T, batch B): square, I != H both ways, B = 1, T = 1.
SHAPES = [(3, 4, 5, 3), (5, 2, 4, 2), (2, 5, 3, 1), (4, 3, 1, 2), (1, 1, 1, 1)]


@pytest.mark.parametrize("I,H,T,B", SHAPES)
def test_gradcheck_float64(I, H, T, B):
    report = check_unit(GRU(I, H), T=T, B=B, seed=I * 100 + H * 10 + T)
    names = {r.name for r in report}
    assert names == {"W_g", "b_g", "W_c", "b_c", "x", "state0.h"}
    for r in report:
        assert r.error <= DEFAULT_TOLERANCE, (
            f"GRU(I={I}, H={H}) T={T} B={B}: gradient of {r.name} {r.shape} is off by "
            f"relative error {r.error:.2e} > {DEFAULT_TOLERANCE:g}\n{format_report(report)}")


def test_float32_agrees_with_float64_and_stays_float32():
    assert_float32_agrees_with_float64(GRU(4, 6))


def test_dstate_none_means_zero():
    unit = GRU(3, 4)
    params, x, state0, dhs, _ = random_problem(unit, T=4, B=2, seed=3)
    _, _, cache = unit.forward(params, x, state0)
    a = unit.backward(params, cache, dhs, None)
    b = unit.backward(params, cache, dhs, (np.zeros((2, 4)),))
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2][0], b[2][0])


def test_init_and_shapes():
    I, H = 5, 3
    unit = GRU(I, H)
    assert unit.state_names == ("h",)
    assert unit.param_shapes() == {"W_g": (I + H, 2 * H), "b_g": (2 * H,), "W_c": (I + H, H), "b_c": (H,)}
    for dtype in (np.float32, np.float64):
        p = unit.init_params(np.random.default_rng(0), dtype)
        assert all(v.dtype == dtype for v in p.values())
        assert np.all(p["b_g"] == 1.0), "GRU gate bias must start at 1.0"
        assert np.all(p["b_c"] == 0.0)
        for k, (fan_in, fan_out) in (("W_g", (I + H, 2 * H)), ("W_c", (I + H, H))):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            assert np.all(np.abs(p[k]) <= limit) and np.max(np.abs(p[k])) > 0.5 * limit


def test_param_count_paper_size():
    assert GRU(600, 600).num_params() == 2_161_800
    # Two layers of it are the study's recurrent count.
    assert 2 * GRU(600, 600).num_params() == 4_323_600


def test_single_step_by_hand():
    """T = 1 against scalar loops written from the equations, gate by gate."""
    I, H, B = 2, 3, 2
    rng = np.random.default_rng(11)
    unit = GRU(I, H)
    p = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in unit.init_params(rng, np.float64).items()}
    x = rng.standard_normal((1, B, I))
    h0 = rng.standard_normal((B, H))
    hs, (hT,), _ = unit.forward(p, x, (h0,))

    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    expected = np.zeros((B, H))
    for n in range(B):
        inp = list(x[0, n]) + list(h0[n])          # [x, h]
        r = [sig(sum(inp[a] * p["W_g"][a, k] for a in range(I + H)) + p["b_g"][k]) for k in range(H)]
        u = [sig(sum(inp[a] * p["W_g"][a, H + k] for a in range(I + H)) + p["b_g"][H + k]) for k in range(H)]
        inp_r = list(x[0, n]) + [r[k] * h0[n, k] for k in range(H)]   # [x, r*h]
        for k in range(H):
            c = math.tanh(sum(inp_r[a] * p["W_c"][a, k] for a in range(I + H)) + p["b_c"][k])
            expected[n, k] = u[k] * h0[n, k] + (1.0 - u[k]) * c
    np.testing.assert_allclose(hs[0], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hT, expected, rtol=1e-12, atol=1e-12)
