"""Observations without a known word: the study's safe mean counts them as 0 (docs/training.md)."""
import numpy as np
import pytest

from tiny_corpus import write_tiny_corpus

from minirnn.data import load_or_build_dataset
from minirnn.evaluate import evaluate_model, format_metrics
from minirnn.model import Model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # A two-word vocabulary and short observations: many observations hold no known word.
    path = write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=2400, seed=11)
    ds = load_or_build_dataset(str(path), vocab_size=2, max_length=12)
    model = Model("lstm", hidden=6, layers=1, output_vocab=len(ds.output_words), seed=3, dtype="float64",
                  impl="reference")
    return ds, model


def study_way(model, ds, split):
    """One observation at a time; 0/0 = 0 for an observation without a known word, mean over all."""
    means = []
    for i in ds.split(split):
        source, target = ds.observation(i)
        logits = np.asarray(model.logits(source[None]))[0]
        logp = logits - logits.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        known = target >= 2
        nll = -logp[np.arange(len(target)), target]
        means.append(nll[known].sum() / known.sum() if known.any() else 0.0)
    return float(np.mean(means)), sum(1 for m in means if m == 0.0)


@pytest.mark.parametrize("split", ["test", "validation"])
def test_observations_without_known_words_count_as_zero(setup, split):
    ds, model = setup
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
