"""The model: parameter names and counts, exact gradients, padding, float32 agreement."""
import numpy as np
import pytest

from minirnn.gradcheck import check_model, perturb_params, random_batch
from minirnn.model import Model
from minirnn.optim import Adam

PAPER = {  # docs/study.md §2: embedding, recurrent, dense
    "gru": ({"layers": 2}, (16_200, 4_323_600, 9_847_986)),
    "lstm": ({"layers": 2}, (16_200, 5_764_800, 9_847_986)),
    "nlstm": ({"layers": 1, "depth": 2}, (16_200, 5_764_800, 9_847_986)),
}


@pytest.mark.parametrize("unit", sorted(PAPER))
def test_paper_parameter_counts(unit):
    kwargs, (emb, rec, dense) = PAPER[unit]
    model = Model(unit=unit, hidden=600, output_vocab=16386, impl="reference", **kwargs)
    counts = model.parameter_counts()
    assert (counts["embedding"], counts["recurrent"], counts["dense"]) == (emb, rec, dense)
    # The tensors really have that many trainable entries (the padding row is fixed).
    total = sum(v.size for v in model.params.values()) - 600
    assert total == counts["total"]


def small_model(unit, layers=2, depth=2, dtype="float64", seed=0, impl="reference", outer_tanh=False):
    model = Model(unit=unit, hidden=4, layers=layers, depth=depth, output_vocab=9, embedding_size=5, seed=seed,
                  dtype=dtype, impl=impl, outer_tanh=outer_tanh)
    perturb_params(model, np.random.default_rng(seed + 7))
    return model


CASES = [("gru", 1, 1), ("gru", 2, 1), ("lstm", 1, 1), ("lstm", 2, 1)] + \
        [("nlstm", layers, depth) for layers in (1, 2) for depth in (1, 2, 3)]


@pytest.mark.parametrize("unit,layers,depth", CASES)
def test_every_gradient_matches_central_differences(unit, layers, depth):
    model = small_model(unit, layers, depth)
    rng = np.random.default_rng(1)
    source, target = random_batch(rng, 3, 5, 28, 9)
    report = check_model(model, source, target, max_entries=25)
    bad = [f"{r.name}: {r.error:.2e}" for r in report if r.error > 1e-6]
    assert not bad, "gradients disagree with central differences: " + ", ".join(bad)
    names = {r.name for r in report}
    assert set(model.params) <= names and "input.X" in names
    assert sum(n.startswith("state0.") for n in names) == sum(len(u.state_names) for u in model.units)


def test_batches_contain_padding_and_unknown_targets():
    source, target = random_batch(np.random.default_rng(1), 3, 5, 28, 9)
    assert (source == 0).any()
    assert ((target == 1) | (target == 0)).any()


@pytest.mark.parametrize("unit", ["gru", "lstm", "nlstm"])
def test_padding_row_gets_no_gradient_and_never_moves(unit):
    model = small_model(unit)
    source, target = random_batch(np.random.default_rng(2), 4, 6, 28, 9)
    opt = Adam(model.params, lr=0.05)
    for _ in range(3):
        _, grads = model.loss_and_grads(source, target)
        assert not grads["embedding"][0].any()
        opt.step(grads)
    assert not model.params["embedding"][0].any()


@pytest.mark.parametrize("unit", ["gru", "lstm", "nlstm"])
def test_float32_agrees_with_float64(unit):
    m64 = small_model(unit, dtype="float64")
    m32 = small_model(unit, dtype="float32")
    m32.load_params(m64.params)
    source, target = random_batch(np.random.default_rng(3), 3, 6, 28, 9)
    l64, g64 = m64.loss_and_grads(source, target)
    l32, g32 = m32.loss_and_grads(source, target)
    assert l32 == pytest.approx(l64, rel=1e-4)
    for k in g64:
        assert g32[k].dtype == np.float32
        scale = np.abs(g64[k]).max()
        assert np.abs(g32[k] - g64[k]).max() <= 1e-4 * scale, k


def test_loss_equals_cross_entropy_of_logits():
    model = small_model("lstm")
    source, target = random_batch(np.random.default_rng(4), 2, 5, 28, 9)
    logits = model.logits(source)
    assert logits.shape == (2, 5, 9)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    keep = target >= 2
    expected = -logp[keep, target[keep]].mean()
    assert model.loss(source, target) == pytest.approx(expected, rel=1e-12)


def test_parameter_names_and_shapes():
    model = Model(unit="nlstm", hidden=4, layers=2, depth=3, output_vocab=9, embedding_size=5, impl="reference")
    shapes = model.parameter_shapes()
    assert shapes["embedding"] == (28, 5)
    assert shapes["layer0.W0"] == (9, 16) and shapes["layer0.W1"] == (8, 16) and shapes["layer1.W2"] == (8, 16)
    assert shapes["dense.W"] == (4, 9) and shapes["dense.b"] == (9,)
    assert not model.params["embedding"][0].any()
    lim = np.sqrt(1 / 27)
    assert np.abs(model.params["embedding"][1:]).max() <= lim


def test_same_seed_same_parameters_and_different_seed_differs():
    a = Model(unit="gru", hidden=4, layers=1, output_vocab=9, seed=5, impl="reference")
    b = Model(unit="gru", hidden=4, layers=1, output_vocab=9, seed=5, impl="reference")
    c = Model(unit="gru", hidden=4, layers=1, output_vocab=9, seed=6, impl="reference")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["dense.W"], c.params["dense.W"])


def test_rejects_malformed_ids():
    model = small_model("gru", layers=1)
    with pytest.raises(ValueError, match="batch, time"):
        model.loss_and_grads(np.zeros(5, dtype=int), np.zeros(5, dtype=int))


@pytest.mark.parametrize("unit,layers,depth", [("gru", 2, 1), ("lstm", 2, 1), ("nlstm", 1, 1), ("nlstm", 2, 2),
                                               ("nlstm", 1, 3)])
def test_fast_path_equals_reference_path(unit, layers, depth):
    ref = small_model(unit, layers, depth, impl="reference")
    fast = small_model(unit, layers, depth, impl="fast")
    fast.load_params(ref.params)
    source, target = random_batch(np.random.default_rng(5), 4, 7, 28, 9)
    l_ref, g_ref = ref.loss_and_grads(source, target)
    l_fast, g_fast = fast.loss_and_grads(source, target)
    assert l_fast == pytest.approx(l_ref, rel=1e-12)
    for k in g_ref:
        scale = np.abs(g_ref[k]).max() or 1.0
        assert np.abs(g_fast[k] - g_ref[k]).max() <= 1e-12 * scale, k
