"""The autocomplete protocol: ids, alignment, packing, split, HDF5 file and cache."""
from __future__ import annotations


import h5py
import numpy as np
import pytest

from minirnn.data import autocomplete
from minirnn.data.autocomplete import (
    INPUT_SYMBOLS,
    Dataset,
    build_dataset,
    dataset_cache_path,
    load_or_build_dataset,
    output_vocabulary,
)
from minirnn.data.corpora import corpus_from_text, load_corpus
from minirnn.errors import MinirnnError
from conftest import text8_excerpt

SEED = 450849059


# ------------------------------------------------------------------ independent re-implementation
# A few lines written straight from docs/study.md §1 and docs/protocol.md, sharing no code with minirnn.


def ref_vocabulary(text, vocab_size, seed=SEED):
    words = text.strip().split(" ")
    unique, counts = np.unique(words, return_counts=True)
    top = unique[np.argsort(counts)[::-1]][:vocab_size]
    np.random.RandomState(seed).shuffle(top)
    return ["<eos>", "<unknown>"] + list(top)


def ref_observations(text, vocab, max_length):
    ids = {w: i for i, w in enumerate(vocab) if i >= 2}
    observations, src, tgt = [], [], []
    for w in text.strip().split(" "):
        chars = " " + w
        if len(src) + len(chars) > max_length:
            observations.append((src, tgt))
            src, tgt = [], []
        src += [1 if c == " " else ord(c) - ord("a") + 2 for c in chars]
        tgt += [ids.get(w, 1)] * len(chars)
    observations.append((src, tgt))
    return observations


def ref_split(n, seed=SEED):
    perm = np.random.RandomState(seed).permutation(n)
    a, b = int(n * 0.9), int(n * 0.05)
    return perm[:a], perm[a : a + b], perm[a + b :]


def random_corpus(num_words=6000, distinct=400, seed=0):
    """Zipf-like text with many tied counts (so tie-breaking matters)."""
    rng = np.random.RandomState(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, rng.randint(1, 9))) for _ in range(distinct * 2)}
    words = sorted(words)[:distinct]
    p = 1.0 / np.arange(1, len(words) + 1)
    draws = rng.choice(len(words), size=num_words, p=p / p.sum())
    return " ".join(words[i] for i in draws)


# ------------------------------------------------------------------ the worked example


def test_the_cat_example():
    ds = build_dataset(corpus_from_text("the cat"), vocab_size=16384)
    assert ds.output_words[:2] == ["<eos>", "<unknown>"]
    assert sorted(ds.output_words[2:]) == ["cat", "the"]
    assert ds.output_words == ref_vocabulary("the cat", 16384)
    the, cat = ds.output_words.index("the"), ds.output_words.index("cat")
    assert ds.num_observations == 1
    source, target = ds.observation(0)
    # " the cat": space=1, a=2, ..., t=21, h=9, e=6, c=4
    assert source.tolist() == [1, 21, 9, 6, 1, 4, 2, 21]
    assert target.tolist() == [the] * 4 + [cat] * 4
    assert ds.text(0) == " the cat"
    assert ds.target_words(0) == ["the", "cat"]
    assert source.dtype == np.int64 and target.dtype == np.int64


def test_input_symbols():
    assert INPUT_SYMBOLS[0] == "<pad>" and INPUT_SYMBOLS[1] == " "
    assert "".join(INPUT_SYMBOLS[2:]) == "abcdefghijklmnopqrstuvwxyz"
    assert len(INPUT_SYMBOLS) == 28


def test_unknown_words():
    text = "a a a b b c d"
    ds = build_dataset(corpus_from_text(text), vocab_size=2)
    assert sorted(ds.output_words[2:]) == ["a", "b"]
    assert ds.target_words(0) == ["a", "a", "a", "b", "b", "<unknown>", "<unknown>"]
    _, target = ds.observation(0)
    assert (target[-4:] == 1).all()
    assert ds.output_counts[1] == 2  # unknown occurrences
    assert ds.output_counts[ds.output_words.index("a")] == 3


# ------------------------------------------------------------------ against the reference recipe


@pytest.mark.parametrize("vocab_size", [1, 7, 50, 399, 400, 1000])
def test_vocabulary_matches_reference_recipe(vocab_size):
    text = random_corpus()
    assert output_vocabulary(text, vocab_size) == ref_vocabulary(text, vocab_size)


@pytest.mark.parametrize("max_length", [9, 10, 30, 200])  # words have <= 8 letters
def test_observations_match_reference(max_length):
    text = random_corpus(num_words=3000, seed=1)
    vocab = ref_vocabulary(text, 60)
    ds = build_dataset(corpus_from_text(text), vocab_size=60, max_length=max_length)
    assert ds.output_words == vocab
    expected = ref_observations(text, vocab, max_length)
    assert ds.num_observations == len(expected)
    for i, (src, tgt) in enumerate(expected):
        s, t = ds.observation(i)
        assert s.tolist() == src and t.tolist() == tgt
    train, val, test = ref_split(len(expected))
    assert ds.split("train").tolist() == train.tolist()
    assert ds.split("validation").tolist() == val.tolist()
    assert ds.split("test").tolist() == test.tolist()


def test_packing_limit_no_partial_words_and_roundtrip():
    text = random_corpus(num_words=5000, seed=2)
    ds = build_dataset(corpus_from_text(text), vocab_size=100, max_length=40)
    lengths = ds.lengths
    assert lengths.max() <= 40 and lengths.min() >= 2
    words = []
    for i in range(ds.num_observations):
        s = ds.text(i)
        assert s.startswith(" ") and not s.endswith(" ")
        obs_words = s[1:].split(" ")
        # greedy: the next observation's first word would not have fitted
        if i + 1 < ds.num_observations:
            nxt = ds.text(i + 1)[1:].split(" ")[0]
            assert len(s) + 1 + len(nxt) > 40
        # each word's characters share one target
        _, t = ds.observation(i)
        bounds = np.flatnonzero(ds.observation(i)[0] == 1).tolist() + [len(t)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            assert len(set(t[a:b].tolist())) == 1
        words += obs_words
    assert words == text.split(" ")


def test_long_words_are_skipped_and_counted():
    text = "ab " + "x" * 12 + " cd ef " + "y" * 9 + " gh"
    ds = build_dataset(corpus_from_text(text), vocab_size=10, max_length=10)
    # "y"*9 needs 10 characters (fits); "x"*12 needs 13 (skipped)
    assert ds.num_skipped_words == 1
    assert ds.num_words == 6
    assert [ds.text(i) for i in range(ds.num_observations)] == [" ab cd ef", " " + "y" * 9, " gh"]
    assert "x" * 12 in ds.output_words  # still part of the vocabulary


def test_split_sizes_and_partition():
    text = random_corpus(num_words=20000, seed=3)
    ds = build_dataset(corpus_from_text(text), vocab_size=100, max_length=30)
    n = ds.num_observations
    sizes = [len(ds.split(k)) for k in ("train", "validation", "test")]
    assert sizes[0] == n * 9 // 10 and sizes[1] == n // 20 and sum(sizes) == n
    allidx = np.concatenate([ds.split(k) for k in ("train", "validation", "test")])
    assert np.array_equal(np.sort(allidx), np.arange(n))
    assert all(ds.split(k).dtype == np.int64 for k in ("train", "validation", "test"))
    with pytest.raises(MinirnnError, match="unknown split"):
        ds.split("dev")


def test_determinism_and_seed():
    text = random_corpus(seed=4)
    a = build_dataset(corpus_from_text(text), vocab_size=50, max_length=30)
    b = build_dataset(corpus_from_text(text), vocab_size=50, max_length=30)
    c = build_dataset(corpus_from_text(text), vocab_size=50, max_length=30, seed=1)
    assert a.output_words == b.output_words
    assert np.array_equal(a.targets, b.targets) and np.array_equal(a.split("train"), b.split("train"))
    assert a.output_words != c.output_words
    assert not np.array_equal(a.split("train"), c.split("train"))


def test_batch_padding():
    ds = build_dataset(corpus_from_text(random_corpus(seed=5)), vocab_size=50, max_length=25)
    idx = ds.split("train")[:7]
    source, target = ds.batch(idx)
    lengths = ds.lengths[idx]
    assert source.shape == target.shape == (7, lengths.max())
    assert source.dtype == np.int64 and target.dtype == np.int64
    for row, i in enumerate(idx):
        s, t = ds.observation(i)
        L = len(s)
        assert np.array_equal(source[row, :L], s) and np.array_equal(target[row, :L], t)
        assert (source[row, L:] == 0).all() and (target[row, L:] == 0).all()
    with pytest.raises(MinirnnError):
        ds.batch([ds.num_observations])


def test_most_frequent_baseline():
    text = "the cat and the dog and the bird " * 50 + "zebra"
    ds = build_dataset(corpus_from_text(text.strip()), vocab_size=4, max_length=20)
    the = ds.output_words.index("the")
    assert ds.most_frequent_target() == the
    for split in ("train", "validation", "test"):
        idx = ds.split(split)
        _, t = ds.batch(idx)
        real = t[ds.batch(idx)[0] != 0]  # every character position (no padding)
        assert ds.baseline_accuracy(split) == pytest.approx(np.mean(real == the))


def test_bad_parameters():
    c = corpus_from_text("the cat")
    for kw in (dict(vocab_size=0), dict(max_length=1), dict(seed=-1), dict(seed=2**32), dict(vocab_size=2.5)):
        with pytest.raises(MinirnnError):
            build_dataset(c, **kw)


def test_all_words_too_long():
    with pytest.raises(MinirnnError, match="max_length"):
        build_dataset(corpus_from_text("abcdefgh ijklmnop"), max_length=5)


# ------------------------------------------------------------------ HDF5 file and cache


def test_hdf5_roundtrip(tmp_path):
    ds = build_dataset(corpus_from_text(random_corpus(seed=6)), vocab_size=80, max_length=30)
    path = ds.save(tmp_path / "sub" / "d.h5")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    back = Dataset.load(path)
    for name in ("chars", "targets", "offsets", "output_counts"):
        assert np.array_equal(getattr(back, name), getattr(ds, name))
        assert getattr(back, name).dtype == getattr(ds, name).dtype
    for k in ("train", "validation", "test"):
        assert np.array_equal(back.split(k), ds.split(k))
    assert back.output_words == ds.output_words
    assert back.parameters() == ds.parameters() == dict(vocab_size=80, max_length=30, seed=SEED)
    assert back.corpus_sha256 == ds.corpus_sha256 and back.num_words == ds.num_words
    assert ds.chars.dtype == np.uint8 and ds.targets.dtype == np.uint16 and ds.offsets.dtype == np.int64
    # readable with h5py alone, as docs/data.md describes
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "minirnn-autocomplete"
        assert [s.decode() for s in f["input_symbols"][()]] == list(INPUT_SYMBOLS)
        off = f["offsets"][()]
        assert bytes(f["chars"][off[0] : off[1]]) == bytes(ds.observation(0)[0].astype(np.uint8))


def test_load_errors(tmp_path):
    with pytest.raises(MinirnnError, match="does not exist"):
        Dataset.load(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(MinirnnError, match="cannot read"):
        Dataset.load(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(MinirnnError, match="not a minirnn"):
        Dataset.load(other)
    ds = build_dataset(corpus_from_text(random_corpus(seed=7)), vocab_size=20, max_length=30)
    good = ds.save(tmp_path / "good.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MinirnnError) as info:
        Dataset.load(truncated)
    assert "\n" not in str(info.value)
    missing = tmp_path / "missing.h5"
    missing.write_bytes(good.read_bytes())
    with h5py.File(missing, "a") as f:
        del f["targets"]
    with pytest.raises(MinirnnError, match="damaged"):   # its checksum no longer matches
        Dataset.load(missing)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(good.read_bytes())
    with h5py.File(damaged, "a") as f:
        f["offsets"][-1] = 1
    with pytest.raises(MinirnnError, match="damaged"):
        Dataset.load(damaged)


def test_cache_reuse(tmp_path, monkeypatch):
    src = tmp_path / "corpus.txt"
    src.write_text(random_corpus(seed=8))
    cache = tmp_path / "cache"
    first = load_or_build_dataset(src, vocab_size=30, max_length=40, cache_dir=cache)
    path = dataset_cache_path(load_corpus(src), 30, 40, SEED, cache)
    assert first.path == path and path.is_file()
    mtime = path.stat().st_mtime_ns

    def no_build(*args, **kwargs):
        raise AssertionError("the cached dataset should have been reused")

    monkeypatch.setattr(autocomplete, "build_dataset", no_build)
    second = load_or_build_dataset(src, vocab_size=30, max_length=40, cache_dir=cache)
    assert path.stat().st_mtime_ns == mtime
    assert np.array_equal(second.targets, first.targets) and second.output_words == first.output_words
    monkeypatch.undo()

    # other parameters: another file
    third = load_or_build_dataset(src, vocab_size=31, max_length=40, cache_dir=cache)
    assert third.path != path and len(list(cache.glob("*.h5"))) == 2
    # a damaged cache file is rebuilt
    path.write_bytes(b"broken")
    again = load_or_build_dataset(src, vocab_size=30, max_length=40, cache_dir=cache)
    assert np.array_equal(again.targets, first.targets)
    # a cache file whose stored parameters disagree is rebuilt too
    with h5py.File(path, "a") as f:
        f.attrs["seed"] = 1
    again = load_or_build_dataset(src, vocab_size=30, max_length=40, cache_dir=cache)
    assert again.seed == SEED and Dataset.load(path).seed == SEED


def test_cache_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_HOME", str(tmp_path))
    ds = load_or_build_dataset(corpus_from_text("the cat sat"), vocab_size=5)
    assert ds.path.parent == tmp_path / "datasets"


# ------------------------------------------------------------------ the text8 excerpt


excerpt_path = text8_excerpt  # the one lookup, shared with the other tests (conftest.py)


@pytest.mark.skipif(excerpt_path() is None, reason="text8 excerpt not found (set MINIRNN_TEXT8_EXCERPT)")
def test_text8_excerpt(tmp_path):
    corpus = load_corpus(excerpt_path())
    ds = load_or_build_dataset(corpus, vocab_size=16384, max_length=200, cache_dir=tmp_path)
    n = ds.num_observations
    assert ds.lengths.max() <= 200
    assert len(ds.split("train")) == n * 9 // 10
    assert len(ds.split("validation")) == n // 20
    assert ds.num_words == len(corpus.text.split(" "))
    assert ds.num_skipped_words == 0
    assert ds.num_output_classes == min(16384, len(set(corpus.text.split(" ")))) + 2
    assert "".join(ds.text(i) for i in range(n))[1:] == corpus.text
    assert ds.output_words[ds.most_frequent_target()] == "the"
    assert ds.output_words == ref_vocabulary(corpus.text, 16384)
    # numbers seen on the text8 excerpt beside the checkout (942,050 bytes; docs/data.md)
    if corpus.sha256 == "397b8542895bace58ca0b0f94bb38d7c0467be650307c881589f6e45e8a4ff9b":
        assert (ds.num_words, n) == (164020, 4783)
        assert [len(ds.split(k)) for k in ("train", "validation", "test")] == [4304, 239, 240]
