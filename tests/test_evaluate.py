"""Evaluation: the published metrics against a direct computation one observation at a time."""
import numpy as np
import pytest

from tiny_corpus import write_tiny_corpus

from minirnn.data import load_or_build_dataset
from minirnn.study.evaluate import evaluate_model, format_metrics, letters_seen
from minirnn.model import Model
from minirnn.optim import Adam


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=2400, seed=11)
    ds = load_or_build_dataset(str(path), vocab_size=12, max_length=40)
    model = Model("gru", hidden=8, layers=2, output_vocab=len(ds.output_words), seed=1, dtype="float64",
                  impl="reference")
    opt = Adam(model.params, lr=2e-2)
    train = ds.split("train")
    for start in range(0, 160, 16):       # a few steps so the predictions are not uniform
        opt.step(model.loss_and_grads(*ds.batch(train[start:start + 16]))[1])
    return ds, model


def observation_cross_entropy(model, source, target):
    """(logits, the study's cross-entropy of one observation): full softmax, the mean over its
    known-word positions -- 0 for an observation without a known word (the study's safe mean)."""
    logits = np.asarray(model.logits(source[None]))[0]
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    known = target >= 2
    return logits, (np.mean(-logp[np.arange(len(target)), target][known]) if known.any() else 0.0)


def direct(model, ds, split, k=3, cap=15):
    """The study's way: one observation at a time, full softmax, plain loops."""
    ce, pos, correct = [], 0, 0
    hits = np.zeros((k, cap + 1))
    counts = np.zeros(cap + 1)
    for i in ds.split(split):
        source, target = ds.observation(i)
        logits, observation_ce = observation_cross_entropy(model, source, target)
        ce.append(observation_ce)
        order = np.argsort(-logits, axis=1)
        letters = 0
        for t in range(len(target)):
            letters = 0 if source[t] == 1 else letters + 1
            b = min(letters, cap)
            counts[b] += 1
            for kk in range(k):
                hits[kk, b] += target[t] in order[t, :kk + 1]
            correct += order[t, 0] == target[t]
            pos += 1
    return np.mean(ce), correct / pos, pos, hits, counts


def test_letters_seen():
    source = np.array([[1, 21, 9, 6, 1, 4, 2, 21, 0, 0]])        # " the cat" + padding
    assert letters_seen(source)[0, :8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]


@pytest.mark.parametrize("split", ["test", "validation"])
def test_metrics_match_a_direct_computation_with_batches_of_one(setup, split):
    ds, model = setup
    ce, acc, pos, hits, counts = direct(model, ds, split)
    got = evaluate_model(model, ds, split, batch_size=7)
    assert got["positions"] == pos and got["observations"] == len(ds.split(split))
    assert got["cross_entropy"] == pytest.approx(ce, rel=1e-12)
    assert got["accuracy"] == pytest.approx(acc, abs=1e-15)
    table = got["by_letters"]
    assert table["positions"] == counts.astype(int).tolist()
    for kk in range(3):
        expect = [h / c if c else None for h, c in zip(hits[kk], counts)]
        assert table[f"top{kk + 1}"] == pytest.approx(expect, abs=1e-15)
    assert table["top1"][0] is not None and table["top1"][0] <= table["top3"][0]
    assert got["baseline_accuracy"] == pytest.approx(ds.baseline_accuracy(split), abs=1e-15)
    assert got["baseline_word"] == ds.output_words[ds.most_frequent_target()]


def test_batching_does_not_change_the_metrics(setup):
    ds, model = setup
    one = evaluate_model(model, ds, "test", batch_size=1)
    many = evaluate_model(model, ds, "test", batch_size=64)
    assert many["cross_entropy"] == pytest.approx(one["cross_entropy"], rel=1e-12)
    for key in ("accuracy", "accuracy_known", "positions", "counted_positions", "baseline_accuracy"):
        assert many[key] == one[key], key
    assert many["by_letters"] == one["by_letters"]


def test_limit_takes_the_first_observations(setup):
    ds, model = setup
    got = evaluate_model(model, ds, "test", limit=2)
    assert got["observations"] == 2
    assert got["positions"] == int(ds.lengths[ds.split("test")[:2]].sum())


# --- observations without a known word: the study's safe mean counts them as 0 (docs/training.md)
@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    # A two-word vocabulary and short observations: many observations hold no known word.
    path = write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=2400, seed=11)
    ds = load_or_build_dataset(str(path), vocab_size=2, max_length=12)
    model = Model("lstm", hidden=6, layers=1, output_vocab=len(ds.output_words), seed=3, dtype="float64",
                  impl="reference")
    return ds, model


def study_way(model, ds, split):
    """One observation at a time; 0/0 = 0 for an observation without a known word, mean over all."""
    means = [observation_cross_entropy(model, *ds.observation(i))[1] for i in ds.split(split)]
    return float(np.mean(means)), sum(1 for m in means if m == 0.0)


@pytest.mark.parametrize("split", ["test", "validation"])
def test_observations_without_known_words_count_as_zero(sparse, split):
    ds, model = sparse
    expect, empty = study_way(model, ds, split)
    got = evaluate_model(model, ds, split, batch_size=5)
    n = got["observations"]
    assert empty > 0 and got["observations_without_known_words"] == empty
    assert got["cross_entropy"] == pytest.approx(expect, rel=1e-12)
    # the other definition leaves them out: larger by n / (n - empty)
    assert got["cross_entropy_known_observations"] == pytest.approx(expect * n / (n - empty), rel=1e-12)
    assert got["cross_entropy"] < got["cross_entropy_known_observations"]
    text = format_metrics(got)
    assert f"{empty:,} observations without a known word count as 0" in text


def test_without_empty_observations_the_two_agree(tmp_path):
    path = write_tiny_corpus(tmp_path / "tiny.txt", words=600, seed=2)
    ds = load_or_build_dataset(str(path), vocab_size=12, max_length=40)
    model = Model("gru", hidden=4, layers=1, output_vocab=len(ds.output_words), seed=0, dtype="float64")
    got = evaluate_model(model, ds, "train")
    assert got["observations_without_known_words"] == 0
    assert got["cross_entropy"] == got["cross_entropy_known_observations"]
    assert "count as 0" not in format_metrics(got)


def test_the_report_gives_every_accuracy_in_percent(tmp_path):
    path = write_tiny_corpus(tmp_path / "tiny.txt", words=600, seed=2)
    ds = load_or_build_dataset(str(path), vocab_size=12, max_length=40)
    model = Model("gru", hidden=4, layers=1, output_vocab=len(ds.output_words), seed=0, dtype="float64")
    got = evaluate_model(model, ds, "train")
    lines = format_metrics(got).splitlines()
    assert any(line.startswith(f"accuracy       {100 * got['accuracy']:.2f}%") for line in lines)
    by = got["by_letters"]
    row = next(line for line in lines if line.startswith("      0 "))
    assert row.split()[1:] == [f"{by['positions'][0]:,}"] + [f"{100 * by[k][0]:.2f}" for k in ("top1", "top2", "top3")]
    assert "in percent" in format_metrics(got)
