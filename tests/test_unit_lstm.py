"""Reference LSTM unit: exact gradients, dtypes, initialisation, parameter count, one hand step,
and (when torch is installed) torch.nn.LSTMCell as an independent oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest

from unit_problems import assert_float32_agrees_with_float64, random_problem

from minirnn.gradcheck import DEFAULT_TOLERANCE, check_unit, format_report
from minirnn.units.lstm import LSTM

# (input I, hidden H, steps T, batch B): square, I != H both ways, B = 1, T = 1.
SHAPES = [(3, 4, 5, 3), (5, 2, 4, 2), (2, 5, 3, 1), (4, 3, 1, 2), (1, 1, 1, 1)]


@pytest.mark.parametrize("I,H,T,B", SHAPES)
def test_gradcheck_float64(I, H, T, B):
    report = check_unit(LSTM(I, H), T=T, B=B, seed=I * 100 + H * 10 + T)
    names = {r.name for r in report}
    assert names == {"W", "b", "x", "state0.h", "state0.c"}
    for r in report:
        assert r.error <= DEFAULT_TOLERANCE, (
            f"LSTM(I={I}, H={H}) T={T} B={B}: gradient of {r.name} {r.shape} is off by "
            f"relative error {r.error:.2e} > {DEFAULT_TOLERANCE:g}\n{format_report(report)}")


def test_float32_agrees_with_float64_and_stays_float32():
    assert_float32_agrees_with_float64(LSTM(4, 6))


def test_dstate_none_means_zero():
    unit = LSTM(3, 4)
    params, x, state0, dhs, _ = random_problem(unit, T=4, B=2, seed=3)
    _, _, cache = unit.forward(params, x, state0)
    a = unit.backward(params, cache, dhs, None)
    b = unit.backward(params, cache, dhs, (np.zeros((2, 4)), np.zeros((2, 4))))
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    np.testing.assert_array_equal(a[1], b[1])
    for s, t in zip(a[2], b[2]):
        np.testing.assert_array_equal(s, t)


def test_init_and_shapes():
    I, H = 5, 3
    unit = LSTM(I, H)
    assert unit.state_names == ("h", "c")
    assert unit.param_shapes() == {"W": (I + H, 4 * H), "b": (4 * H,)}
    for dtype in (np.float32, np.float64):
        p = unit.init_params(np.random.default_rng(0), dtype)
        assert all(v.dtype == dtype for v in p.values())
        assert np.all(p["b"] == 0.0), "LSTM bias must start at 0 (the forget +1 is not stored in b)"
        limit = math.sqrt(6.0 / (I + H + 4 * H))
        assert np.all(np.abs(p["W"]) <= limit) and np.max(np.abs(p["W"])) > 0.5 * limit


def test_param_count_paper_size():
    assert LSTM(600, 600).num_params() == 2_882_400
    # Two layers of it are the study's recurrent count.
    assert 2 * LSTM(600, 600).num_params() == 5_764_800


def test_single_step_by_hand():
    """T = 1 against scalar loops written from the equations, gate by gate (order i, j, f, o)."""
    I, H, B = 2, 3, 2
    rng = np.random.default_rng(11)
    unit = LSTM(I, H)
    p = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in unit.init_params(rng, np.float64).items()}
    x = rng.standard_normal((1, B, I))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H))
    hs, (hT, cT), _ = unit.forward(p, x, (h0, c0))

    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    exp_h = np.zeros((B, H))
    exp_c = np.zeros((B, H))
    for n in range(B):
        inp = list(x[0, n]) + list(h0[n])

        def pre(block, k):
            col = block * H + k
            return sum(inp[a] * p["W"][a, col] for a in range(I + H)) + p["b"][col]

        for k in range(H):
            i, j, f, o = pre(0, k), pre(1, k), pre(2, k), pre(3, k)
            exp_c[n, k] = sig(f + 1.0) * c0[n, k] + sig(i) * math.tanh(j)
            exp_h[n, k] = math.tanh(exp_c[n, k]) * sig(o)
    np.testing.assert_allclose(hs[0], exp_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hT, exp_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cT, exp_c, rtol=1e-12, atol=1e-12)


def test_matches_torch_lstmcell():
    torch = pytest.importorskip("torch")
    I, H, T, B = 3, 4, 5, 2
    unit = LSTM(I, H)
    rng = np.random.default_rng(5)
    p = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in unit.init_params(rng, np.float64).items()}
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H))
    hs, (hT, cT), _ = unit.forward(p, x, (h0, c0))

    # Ours: column blocks [i, j, f, o] of W acting on [x, h].  Torch: row blocks
    # [i, f, g, o] of weight_ih (on x) and weight_hh (on h), g being our j.
    blk = lambda a, k: a[..., k * H:(k + 1) * H]  # noqa: E731
    order = (0, 2, 1, 3)  # torch's i, f, g, o as our block numbers
    W, b = p["W"], p["b"]
    w_ih = np.concatenate([blk(W[:I], k).T for k in order], axis=0)
    w_hh = np.concatenate([blk(W[I:], k).T for k in order], axis=0)
    bias = np.concatenate([blk(b, k) + (1.0 if k == 2 else 0.0) for k in order])
    cell = torch.nn.LSTMCell(I, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(w_ih))
        cell.weight_hh.copy_(torch.from_numpy(w_hh))
        cell.bias_ih.copy_(torch.from_numpy(bias))
        cell.bias_hh.zero_()
        h, c = torch.from_numpy(h0), torch.from_numpy(c0)
        for t in range(T):
            h, c = cell(torch.from_numpy(x[t]), (h, c))
            np.testing.assert_allclose(hs[t], h.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hT, h.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cT, c.numpy(), rtol=1e-10, atol=1e-12)
