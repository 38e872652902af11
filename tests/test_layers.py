"""Embedding, dense layer and masked softmax cross-entropy against direct formulas."""
import numpy as np
import pytest

from minirnn import layers as L
from minirnn.gradcheck import check_tensors


def direct_loss(H, target, W, b):
    logits = H @ W + b
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    keep = target >= 2
    if not keep.any():
        return 0.0
    return float(-logp[keep, target[keep]].mean())


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    N, Hd, V = 17, 4, 9
    H = rng.standard_normal((N, Hd))
    W = rng.standard_normal((Hd, V))
    b = rng.standard_normal(V)
    target = rng.integers(0, V, size=N)
    target[:3] = [0, 1, 0]  # padding and unknown must cost nothing
    return H, target, W, b


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_loss_matches_direct_formula_for_any_chunk(batch, chunk):
    H, target, W, b = batch
    loss, count, *_ = L.dense_xent_forward_backward(H, target, W, b, chunk=chunk)
    assert count == int((target >= 2).sum())
    assert loss == pytest.approx(direct_loss(H, target, W, b), rel=1e-13)


def test_chunking_does_not_change_gradients(batch):
    H, target, W, b = batch
    _, _, dH1, dW1, db1 = L.dense_xent_forward_backward(H, target, W, b, chunk=1)
    _, _, dH2, dW2, db2 = L.dense_xent_forward_backward(H, target, W, b, chunk=1000)
    for a, c in ((dH1, dH2), (dW1, dW2), (db1, db2)):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)


def test_gradients_match_central_differences(batch):
    H, target, W, b = batch
    _, _, dH, dW, db = L.dense_xent_forward_backward(H, target, W, b, chunk=5)
    report = check_tensors(lambda: direct_loss(H, target, W, b), {"H": H, "W": W, "b": b},
                           {"H": dH, "W": dW, "b": db})
    for r in report:
        assert r.error <= 1e-6, f"{r.name}: {r.error:.2e}"


def test_uncounted_positions_get_no_gradient(batch):
    H, target, W, b = batch
    _, _, dH, _, _ = L.dense_xent_forward_backward(H, target, W, b)
    assert np.all(dH[:3] == 0)


def test_no_counted_position_gives_zero_loss_and_gradients(batch):
    H, _, W, b = batch
    target = np.array([0, 1] * 8 + [0])
    loss, count, dH, dW, db = L.dense_xent_forward_backward(H, target, W, b)
    assert (loss, count) == (0.0, 0)
    assert not dH.any() and not dW.any() and not db.any()


def test_dense_scores_nll_and_topk(batch):
    H, target, W, b = batch
    nll, top = L.dense_scores(H, target, W, b, k=3, chunk=4)
    logits = H @ W + b
    ref = -(logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
            - logits.max(1, keepdims=True))[np.arange(len(target)), target]
    np.testing.assert_allclose(nll, ref, rtol=1e-12)
    np.testing.assert_array_equal(top, np.argsort(-logits, axis=1)[:, :3])


def test_embedding_lookup_and_gradient():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((6, 3))
    E[0] = 0
    source = np.array([[1, 2, 2, 0], [5, 1, 0, 0]])
    X = L.embed(E, source)
    assert X.shape == (4, 2, 3)
    np.testing.assert_array_equal(X[1, 0], E[2])
    dX = rng.standard_normal(X.shape)
    dE = L.embedding_grad(E, source, dX)
    expected = np.zeros_like(E)
    for b in range(2):
        for t in range(4):
            expected[source[b, t]] += dX[t, b]
    expected[0] = 0
    np.testing.assert_allclose(dE, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("chunk", [1, 5, 1000])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_fused_kernel_matches_the_readable_path(batch, chunk, dtype, tol):
    H, target, W, b = (a.astype(dtype) if a.dtype.kind == "f" else a for a in batch)
    ref = L.dense_xent_forward_backward(H, target, W, b, chunk=chunk)
    fused = L.dense_xent_forward_backward(H, target, W, b, chunk=chunk, fused=True)
    assert fused[0] == pytest.approx(ref[0], rel=tol) and fused[1] == ref[1]
    for a, c in zip(fused[2:], ref[2:]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol * np.abs(c).max())


def test_fused_kernel_handles_extreme_logits():
    # Logits far apart: the shifted exponentials underflow to zero instead of overflowing.
    H = np.array([[1.0, 0.0], [0.0, 1.0]])
    W = np.array([[800.0, -800.0, 0.0], [0.0, 0.0, 0.0]])
    b = np.zeros(3)
    target = np.array([2, 2])
    loss, _, dH, dW, db = L.dense_xent_forward_backward(H, target, W, b, fused=True)
    assert np.isfinite(loss) and np.all(np.isfinite(dW))
    assert loss == pytest.approx((800.0 + np.log(3.0)) / 2, rel=1e-14)
    assert loss == pytest.approx(direct_loss(H, target, W, b), rel=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernels_row_maximum_is_the_float_maximum(dtype):
    # The fused kernel's maximum compares the floats' bits as integers: signs, zeros, infinities and
    # subnormals must order as floats do.
    from numba import njit
    from minirnn.kernels.cpu.gates import row_max as row_max_in_kernels

    row_max = njit(lambda row: row_max_in_kernels(row))   # an overload: callable from compiled code only
    rng = np.random.default_rng(5)
    tiny = np.finfo(dtype).smallest_subnormal
    rows = [rng.standard_normal(37).astype(dtype), -rng.random(37).astype(dtype) - 1,
            np.array([-0.0, -tiny, -3.0], dtype), np.array([-np.inf, -1e30, -2.0], dtype),
            np.array([tiny, 0.0, -0.0], dtype), np.array([1.0, np.inf, 2.0], dtype), np.array([-5.0], dtype)]
    for row in rows:
        assert row_max(row) == row.max()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_nan_logit_makes_its_rows_loss_nan_in_the_fused_kernel(sign):
    rng = np.random.default_rng(6)
    H, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 6)), np.zeros(6)
    H[1, 0] = np.copysign(np.nan, sign)            # a NaN of either sign bit (they order differently as integers)
    loss, _, dH, _, _ = L.dense_xent_forward_backward(H, np.array([2, 3, 4, 5]), W, b, fused=True)
    assert np.isnan(loss) and np.isnan(dH[1]).all() and np.isfinite(dH[[0, 2, 3]]).all()
