"""The GPU path on a real GPU (skipped without cupy and a CUDA device).

What these add to tests/test_cuda_sources.py (which runs everywhere): the NVRTC
compile of every module, the __global__ wrappers, cuBLAS through cupy.dot, CUDA
graph capture and replay, and the model end to end on the device.
"""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.units import make_unit

pytestmark = pytest.mark.gpu

UNIT_CASES = [("gru", 1, False), ("lstm", 1, False), ("nlstm", 1, False), ("nlstm", 2, False),
              ("nlstm", 3, False), ("nlstm", 2, True)]
TOL = {np.float64: 1e-9, np.float32: 1e-4}


@pytest.fixture(scope="module")
def cp():
    cupy = pytest.importorskip("cupy")
    from minirnn.backend import gpu_available

    if not gpu_available():
        pytest.skip("no CUDA GPU")
    return cupy


@pytest.fixture
def graphs():
    """Yields the graph switch; restores 'on' afterwards."""
    from minirnn.kernels.cuda import set_graphs

    yield set_graphs
    set_graphs(True)


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b))))


def _problem(unit, T, B, seed):
    rng = np.random.default_rng(seed)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in unit.init_params(rng, np.float64).items()}
    x = rng.standard_normal((T, B, unit.input_size))
    state0 = tuple(0.5 * rng.standard_normal((B, unit.hidden_size)) for _ in unit.state_names)
    dhs = rng.standard_normal((T, B, unit.hidden_size))
    dstate_T = tuple(rng.standard_normal((B, unit.hidden_size)) for _ in unit.state_names)
    return params, x, state0, dhs, dstate_T


@pytest.mark.parametrize("use_graphs", [True, False], ids=["graphs", "eager"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,depth,outer_tanh", UNIT_CASES)
def test_cuda_unit_matches_cpu_reference(cp, graphs, name, depth, outer_tanh, dtype, use_graphs):
    from minirnn.kernels.units import fast_unit

    graphs(use_graphs)
    ref = make_unit(name, 24, 32, depth=depth, outer_tanh=outer_tanh)
    fast = fast_unit(ref, "gpu")
    params, x, state0, dhs, dstate_T = _problem(ref, T=13, B=5, seed=7)
    hs_r, st_r, cache_r = ref.forward(params, x, state0)
    dp_r, dx_r, ds_r = ref.backward(params, cache_r, dhs, dstate_T)

    g = lambda a: cp.asarray(a.astype(dtype))  # noqa: E731
    gp = {k: g(v) for k, v in params.items()}
    tol = TOL[dtype]
    from minirnn.kernels.cuda import graph_status

    before = graph_status()
    # Three rounds: eager, then capture (+ checked replay), then replay.
    for _ in range(3):
        hs, st, cache = fast.forward(gp, g(x), tuple(g(s) for s in state0))
        assert _rel(hs.get(), hs_r) <= tol
        for a, b in zip(st, st_r):
            assert _rel(a.get(), b) <= tol
        dp, dx, ds = fast.backward(gp, cache, g(dhs), tuple(g(s) for s in dstate_T))
        for k in dp_r:
            assert dp[k].dtype == dtype
            assert _rel(dp[k].get(), dp_r[k]) <= tol, k
        assert _rel(dx.get(), dx_r) <= tol
        for a, b in zip(ds, ds_r):
            assert _rel(a.get(), b) <= tol
        del cache  # as the model does: the workspace (and its graphs) is reused next round
    after = graph_status()
    if use_graphs:   # the graph variant must really have captured and replayed both loops
        assert after["fallback_reason"] is None, after["fallback_reason"]
        assert after["captured"] - before["captured"] == 2
        assert after["replayed"] - before["replayed"] == 2
    else:
        assert after["captured"] == before["captured"] and after["replayed"] == before["replayed"]


def test_cuda_graphs_are_captured_and_replayed(cp, graphs):
    """Fails (with the reason) if capture fell back to eager launches on this GPU."""
    from minirnn.kernels.cuda import graph_status
    from minirnn.kernels.units import fast_unit

    graphs(True)
    ref = make_unit("nlstm", 16, 16, depth=2)
    fast = fast_unit(ref, "gpu")
    params, x, state0, dhs, _ = _problem(ref, T=9, B=3, seed=3)
    gp = {k: cp.asarray(v) for k, v in params.items()}
    before = graph_status()
    for _ in range(4):
        _, _, cache = fast.forward(gp, cp.asarray(x), tuple(cp.asarray(s) for s in state0))
        fast.backward(gp, cache, cp.asarray(dhs))
        del cache
    after = graph_status()
    assert after["fallback_reason"] is None, after["fallback_reason"]
    assert after["captured"] >= before["captured"] + 2
    assert after["replayed"] >= before["replayed"] + 4


def test_new_weight_arrays_are_picked_up_by_graphs(cp, graphs):
    """A graph bakes in addresses: replacing the parameter arrays must not reuse stale ones."""
    from minirnn.kernels.units import fast_unit

    graphs(True)
    ref = make_unit("lstm", 8, 8)
    fast = fast_unit(ref, "gpu")
    params, x, state0, _, _ = _problem(ref, T=6, B=2, seed=5)
    gx, gs = cp.asarray(x), tuple(cp.asarray(s) for s in state0)
    gp = {k: cp.asarray(v) for k, v in params.items()}
    for _ in range(3):
        fast.forward(gp, gx, gs)
    params2 = {k: v * 0.5 for k, v in params.items()}
    hs2, _, _ = fast.forward({k: cp.asarray(v) for k, v in params2.items()}, gx, gs)
    hs_r, _, _ = ref.forward(params2, x, state0)
    assert _rel(hs2.get(), hs_r) <= 1e-9


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_kernel_matches_numpy(cp, dtype):
    from minirnn.kernels.cuda.adam import adam_step

    rng = np.random.default_rng(0)
    p = rng.standard_normal((37, 53)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    gp, gm, gv = cp.asarray(p), cp.asarray(m), cp.asarray(v)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    for t in range(1, 6):
        g = rng.standard_normal(p.shape).astype(dtype)
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        adam_step(gp, cp.asarray(g), gm, gv, lr_t, b1, b2, eps)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr_t * m / (np.sqrt(v) + eps)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert _rel(gp.get(), p) <= tol and _rel(gm.get(), m) <= tol and _rel(gv.get(), v) <= tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_xent_chunk_matches_numpy(cp, dtype):
    from minirnn.kernels.cuda.xent import softmax_xent_chunk

    rng = np.random.default_rng(1)
    rows, V = 37, 1003
    logits = (3 * rng.standard_normal((rows, V))).astype(dtype)
    targets = rng.integers(0, V, rows)
    weight = (rng.random(rows) > 0.3).astype(dtype) / 10.0
    g = cp.asarray(logits)
    loss, dl = softmax_xent_chunk(g, cp.asarray(targets), cp.asarray(weight))
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    ref_loss = float(np.sum(weight * (lse - z[np.arange(rows), targets])))
    ref_d = np.exp(z - lse[:, None])
    ref_d[np.arange(rows), targets] -= 1
    ref_d *= weight[:, None]
    tol = TOL[dtype]
    assert abs(float(loss) - ref_loss) <= tol * max(1.0, abs(ref_loss))
    assert dl is g and _rel(g.get(), ref_d) <= tol


# --- model level -------------------------------------------------------------------
MODEL_CASES = [("gru", 2, 1), ("lstm", 2, 1), ("nlstm", 1, 2)]


def _batch(rng, B, T, V):
    source = rng.integers(1, 28, (B, T))
    target = rng.integers(0, V, (B, T))
    return source, target


@pytest.mark.parametrize("unit,layers,depth", MODEL_CASES)
def test_model_gradients_gpu_match_cpu(cp, unit, layers, depth):
    from minirnn.model import Model

    kw = dict(unit=unit, hidden=16, layers=layers, depth=depth, input_vocab=28, output_vocab=50, seed=0,
              dtype="float64")
    cpu = Model(device="cpu", impl="reference", **kw)
    gpu = Model(device="gpu", impl="fast", **kw)
    source, target = _batch(np.random.default_rng(0), 4, 11, 50)
    loss_c, grads_c = cpu.loss_and_grads(source, target)
    loss_g, grads_g = gpu.loss_and_grads(source, target)
    assert abs(float(loss_g) - float(loss_c)) <= 1e-9 * max(1.0, abs(float(loss_c)))
    for k, gc in grads_c.items():
        assert _rel(cp.asnumpy(grads_g[k]), gc) <= 1e-9, k


@pytest.mark.parametrize("unit,layers,depth", MODEL_CASES)
def test_short_training_run_follows_the_cpu_loss_curve(cp, unit, layers, depth):
    from minirnn.model import Model
    from minirnn.optim import Adam

    kw = dict(unit=unit, hidden=16, layers=layers, depth=depth, input_vocab=28, output_vocab=40, seed=1,
              dtype="float64")
    curves = []
    for device, impl in (("cpu", "reference"), ("gpu", "fast")):
        model = Model(device=device, impl=impl, **kw)
        opt = Adam(model.params)
        rng = np.random.default_rng(2)
        losses = []
        for _ in range(6):
            source, target = _batch(rng, 4, 9, 40)
            loss, grads = model.loss_and_grads(source, target)
            opt.step(grads)
            losses.append(float(loss))
        curves.append(losses)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-8)


def test_training_replays_graphs_in_every_layer(cp, graphs):
    """Model-level: after two steps every loop (the folded first layer's included) replays."""
    from minirnn.kernels.cuda import graph_status
    from minirnn.model import Model
    from minirnn.optim import Adam

    graphs(True)
    model = Model(unit="lstm", hidden=16, layers=2, input_vocab=28, output_vocab=40, seed=0, device="gpu",
                  dtype="float32")
    opt = Adam(model.params)
    source, target = _batch(np.random.default_rng(3), 4, 9, 40)
    for _ in range(2):
        opt.step(model.loss_and_grads(source, target)[1])
    before = graph_status()
    for _ in range(3):
        opt.step(model.loss_and_grads(source, target)[1])
    after = graph_status()
    assert after["fallback_reason"] is None, after["fallback_reason"]
    assert after["replayed"] - before["replayed"] == 3 * 2 * 2   # 3 steps x 2 layers x (fwd, bwd)
    assert after["eager_loops"] == before["eager_loops"]


def test_tf32_products_change_the_loss_only_slightly(cp):
    from minirnn.kernels.cuda import set_precision
    from minirnn.model import Model

    source, target = _batch(np.random.default_rng(4), 8, 20, 300)
    losses = {}
    try:
        for precision in ("fp32", "tf32"):
            set_precision(precision)
            model = Model(unit="lstm", hidden=64, layers=1, input_vocab=28, output_vocab=300, seed=0,
                          device="gpu", dtype="float32")
            losses[precision] = float(model.loss_and_grads(source, target)[0])
    finally:
        set_precision("fp32")
    assert abs(losses["tf32"] - losses["fp32"]) <= 1e-2 * abs(losses["fp32"])


def test_checkpoint_moves_between_gpu_and_cpu(cp, tmp_path):
    """Written on the GPU, loaded on the CPU (same loss), and back."""
    from minirnn.training.checkpoint import load_checkpoint, save_checkpoint
    from minirnn.model import Model
    from minirnn.optim import Adam

    kw = dict(unit="nlstm", hidden=16, layers=1, depth=2, input_vocab=28, output_vocab=40, seed=5,
              dtype="float64")
    gpu = Model(device="gpu", **kw)
    opt = Adam(gpu.params)
    source, target = _batch(np.random.default_rng(6), 4, 9, 40)
    for _ in range(3):
        opt.step(gpu.loss_and_grads(source, target)[1])
    loss_gpu = float(gpu.loss(source, target))
    path = tmp_path / "gpu.h5"
    save_checkpoint(path, gpu, opt, step=3, order_state={"epoch": 0, "position": 0}, config={},
                    output_words=[f"w{i}" for i in range(40)], history={"train_loss": [1.0, 0.5, 0.25]})
    on_cpu = load_checkpoint(path, device="cpu")
    assert abs(float(on_cpu.model.loss(source, target)) - loss_gpu) <= 1e-12 * max(1.0, loss_gpu)
    back = load_checkpoint(path, device="gpu")
    assert abs(float(back.model.loss(source, target)) - loss_gpu) <= 1e-12 * max(1.0, loss_gpu)
    for k, v in on_cpu.model.params.items():
        np.testing.assert_array_equal(cp.asnumpy(back.model.params[k]), v)
