"""Adam against the equations of docs/adam.md, written out independently."""
import math

import numpy as np
import pytest

from minirnn.optim import Adam


@pytest.mark.parametrize("fused", [True, False])
def test_adam_matches_scalar_equations(fused):
    rng = np.random.default_rng(1)
    p = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    params = {"p": p.copy()}
    opt = Adam(params, lr=0.01, fused=fused)
    ref, m, v = p.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        opt.step({"p": g})
        for i in range(5):
            m[i] = 0.9 * m[i] + 0.1 * g[i]
            v[i] = 0.999 * v[i] + 0.001 * g[i] ** 2
            a_t = 0.01 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            ref[i] -= a_t * m[i] / (math.sqrt(v[i]) + 1e-8)
        np.testing.assert_allclose(params["p"], ref, rtol=1e-14)


def test_first_step_moves_each_parameter_by_about_lr():
    # With bias correction, the first step is lr * g / (|g| + eps') ~ lr * sign(g).
    params = {"p": np.zeros(3)}
    Adam(params, lr=1e-3).step({"p": np.array([2.0, -0.5, 0.1])})
    np.testing.assert_allclose(params["p"], [-1e-3, 1e-3, -1e-3], rtol=1e-5)


def test_zero_gradient_never_moves_a_parameter():
    params = {"p": np.ones(4)}
    opt = Adam(params)
    for _ in range(3):
        opt.step({"p": np.zeros(4)})
    assert np.all(params["p"] == 1.0)


def test_minimises_a_quadratic():
    params = {"p": np.array([3.0, -2.0])}
    opt = Adam(params, lr=0.1)
    for _ in range(500):
        opt.step({"p": 2 * params["p"]})
    assert np.abs(params["p"]).max() < 1e-2


def test_state_round_trip():
    params = {"p": np.arange(3.0)}
    opt = Adam(params)
    opt.step({"p": np.ones(3)})
    state = opt.state_dict()
    twin_params = {"p": params["p"].copy()}
    twin = Adam(twin_params)
    twin.load_state_dict(state)
    opt.step({"p": np.full(3, 0.5)})
    twin.step({"p": np.full(3, 0.5)})
    np.testing.assert_array_equal(params["p"], twin_params["p"])


def test_rejects_bad_hyperparameters():
    with pytest.raises(ValueError):
        Adam({"p": np.zeros(1)}, lr=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_kernel_equals_the_numpy_lines(dtype):
    rng = np.random.default_rng(4)
    start = {"W": rng.standard_normal((7, 5)).astype(dtype), "b": rng.standard_normal(5).astype(dtype)}
    a = {k: v.copy() for k, v in start.items()}
    b = {k: v.copy() for k, v in start.items()}
    fa, fb = Adam(a, lr=0.01, fused=True), Adam(b, lr=0.01, fused=False)
    for _ in range(5):
        g = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in start.items()}
        fa.step(g)
        fb.step(g)
    for k in start:
        assert a[k].dtype == dtype
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6 if dtype == np.float32 else 1e-15)
        np.testing.assert_allclose(fa.m[k], fb.m[k], rtol=1e-6 if dtype == np.float32 else 1e-15)
