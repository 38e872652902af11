"""The word-autocomplete protocol: vocabularies, alignment, packing, split, HDF5 file.

The protocol is described in ``docs/protocol.md`` and the file layout in
``docs/data.md``.  In short, for a normalised corpus (``a``-``z`` and single
spaces):

- output ids: 0 ``<eos>`` (padding), 1 ``<unknown>``, 2.. the ``vocab_size``
  most frequent words in a seeded shuffled order;
- input ids: 0 padding, 1 space, 2..27 ``a``..``z``;
- each word is a space followed by its letters, every one of those characters
  having the word's output id as target;
- words are packed greedily, in corpus order, into observations of at most
  ``max_length`` characters (no partial words);
- a seeded permutation of the observations gives train (first floor 90%),
  validation (next floor 5%) and test (the rest).
"""
from __future__ import annotations

import os
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..training.atomic import CHECKED, atomic_hdf5, check_digest
from ..errors import MinirnnError
from .corpora import Corpus, corpus_from_text, data_home, load_corpus
import h5py
from .. import __version__
from ..training.runlock import RunLock, check_writable_folder, remove_stale_temps
from ..messages import say

__all__ = [
    "DEFAULT_VOCAB_SIZE",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_SEED",
    "EOS",
    "UNKNOWN",
    "PAD",
    "SPACE",
    "INPUT_SYMBOLS",
    "SPLITS",
    "Dataset",
    "output_vocabulary",
    "build_dataset",
    "load_or_build_dataset",
    "dataset_cache_path",
    "cached_dataset",
]

DEFAULT_VOCAB_SIZE = 16384
DEFAULT_MAX_LENGTH = 200
DEFAULT_SEED = 450849059

#: Output ids of the two special symbols.
EOS, UNKNOWN = 0, 1
OUTPUT_SPECIALS = ("<eos>", "<unknown>")
#: Input ids: 0 padding, 1 space, 2..27 the letters a..z.
PAD, SPACE = 0, 1
INPUT_SYMBOLS = ("<pad>", " ") + tuple(string.ascii_lowercase)
SPLITS = ("train", "validation", "test")

FORMAT = "minirnn-autocomplete"
FORMAT_VERSION = 1

# byte -> input id (only ' ' and a-z occur in a normalised corpus)
_BYTE_TO_INPUT = np.zeros(256, dtype=np.uint8)
_BYTE_TO_INPUT[ord(" ")] = SPACE
_BYTE_TO_INPUT[ord("a") : ord("z") + 1] = np.arange(2, 28, dtype=np.uint8)
# input id -> byte (padding decodes as nothing; callers slice it away)
_INPUT_TO_BYTE = np.frombuffer(b"\x00 " + string.ascii_lowercase.encode("ascii"), dtype=np.uint8)

_CHUNK_CHARS = 1 << 24  # words are split in ~16 MB pieces to bound memory on text8


def _say(progress: bool, message: str) -> None:
    if progress:
        say(message, err=True)


def _check_params(vocab_size: int, max_length: int, seed: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise MinirnnError(f"vocab_size must be a positive integer, got {vocab_size!r}; the study uses 16384")
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 2:
        raise MinirnnError(f"max_length must be an integer of at least 2, got {max_length!r}; the study uses 200")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise MinirnnError(f"seed must be an integer in [0, 2**32), got {seed!r}; the study uses 450849059")


def _text_chunks(text: str, size: int = _CHUNK_CHARS) -> Iterator[str]:
    """Pieces of ``text`` cut at spaces (the spaces themselves dropped)."""
    start, n = 0, len(text)
    while start < n:
        cut = text.find(" ", start + size)
        if cut < 0:
            yield text[start:]
            return
        yield text[start:cut]
        start = cut + 1


def _count_words(text: str) -> Counter:
    counter: Counter = Counter()
    for chunk in _text_chunks(text):
        counter.update(chunk.split(" "))
    return counter


def _top_words(counter: Counter, vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference recipe, without building a fixed-width array of every word.

    The reference does ``unique, counts = np.unique(words, return_counts=True)``,
    ``top = unique[np.argsort(counts)[::-1]][:vocab_size]`` and then
    ``np.random.RandomState(seed).shuffle(top)``.  ``sorted(counter)`` is the same
    order as ``np.unique`` (code-point order) and ``counts`` has ``np.unique``'s
    dtype (``intp``), so ``np.argsort`` sees the same input and breaks ties the
    same way.  Returns the shuffled words and their counts.
    """
    unique = sorted(counter)
    counts = np.fromiter((counter[w] for w in unique), dtype=np.intp, count=len(unique))
    order = np.argsort(counts)[::-1][:vocab_size]
    top = np.array([unique[i] for i in order], dtype=str)
    top_counts = counts[order].astype(np.int64)
    # shuffle the words exactly as the reference does; carry the counts along
    positions = np.arange(len(top))
    np.random.RandomState(seed).shuffle(top)
    np.random.RandomState(seed).shuffle(positions)
    return top, top_counts[positions]


def output_vocabulary(text: "str | Corpus", vocab_size: int = DEFAULT_VOCAB_SIZE, seed: int = DEFAULT_SEED) -> list[str]:
    """``['<eos>', '<unknown>', w_2, w_3, ...]``: the output vocabulary of a corpus."""
    _check_params(vocab_size, DEFAULT_MAX_LENGTH, seed)
    corpus = text if isinstance(text, Corpus) else corpus_from_text(text)
    top, _ = _top_words(_count_words(corpus.text), vocab_size, seed)
    return list(OUTPUT_SPECIALS) + top.tolist()


@dataclass(eq=False)
class Dataset:
    """Observations of the autocomplete task, stored ragged.

    ``chars`` (uint8 input ids) and ``targets`` (output ids, uint16 when the
    output vocabulary fits, else uint32) hold every observation back to back;
    observation ``i`` is ``[offsets[i], offsets[i + 1])``.  ``splits`` maps
    ``'train'``, ``'validation'``, ``'test'`` to int64 observation indices.
    """

    chars: np.ndarray
    targets: np.ndarray
    offsets: np.ndarray
    output_words: list[str]
    output_counts: np.ndarray
    splits: dict[str, np.ndarray]
    vocab_size: int
    max_length: int
    seed: int
    corpus_sha256: str
    corpus_name: str
    num_words: int
    num_skipped_words: int
    path: Path | None = field(default=None, compare=False)
    _most_frequent: int | None = field(default=None, init=False, repr=False, compare=False)

    # ---------------------------------------------------------------- shape
    @property
    def num_observations(self) -> int:
        return int(len(self.offsets) - 1)

    def __len__(self) -> int:
        return self.num_observations

    @property
    def lengths(self) -> np.ndarray:
        """Characters per observation (int64)."""
        return np.diff(self.offsets)

    @property
    def input_symbols(self) -> list[str]:
        return list(INPUT_SYMBOLS)

    @property
    def num_input_symbols(self) -> int:
        return len(INPUT_SYMBOLS)

    @property
    def num_output_classes(self) -> int:
        return len(self.output_words)

    # ---------------------------------------------------------------- access
    def split(self, name: str) -> np.ndarray:
        """Observation indices (int64) of ``'train'``, ``'validation'`` or ``'test'``."""
        if name not in self.splits:
            raise MinirnnError(f"unknown split {name!r}; choose one of train, validation, test")
        return self.splits[name]

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_observations):
            raise MinirnnError(
                f"observation index out of range [0, {self.num_observations}); use indices from Dataset.split()"
            )
        return idx

    def batch(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source, target)``, int64 arrays of shape (B, L), padded with 0 to the longest observation."""
        idx = self._check_indices(indices)
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        width = int(lengths.max()) if idx.size else 0
        cols = np.arange(width, dtype=np.int64)
        inside = cols[None, :] < lengths[:, None]
        pos = np.where(inside, starts[:, None] + cols[None, :], 0)
        source = np.where(inside, self.chars[pos], 0).astype(np.int64)
        target = np.where(inside, self.targets[pos], 0).astype(np.int64)
        return source, target

    def observation(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source, target)`` of observation ``i``, 1-D int64 arrays, no padding."""
        (i,) = self._check_indices([i])
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.chars[a:b].astype(np.int64), self.targets[a:b].astype(np.int64)

    def decode_source(self, source: np.ndarray) -> str:
        """Input ids -> text (padding dropped)."""
        ids = np.asarray(source)
        ids = ids[ids != PAD].astype(np.intp)
        return _INPUT_TO_BYTE[ids].tobytes().decode("ascii")

    def text(self, i: int) -> str:
        """The characters of observation ``i`` (it starts with a space)."""
        return self.decode_source(self.observation(i)[0])

    def target_words(self, i: int) -> list[str]:
        """One output word per word of observation ``i`` (``'<unknown>'`` for unknown words)."""
        source, target = self.observation(i)
        return [self.output_words[t] for t in target[source == SPACE]]

    # ---------------------------------------------------------------- baseline
    def _split_mask(self, name: str) -> np.ndarray:
        """Per character: does it belong to an observation of split ``name``?"""
        member = np.zeros(self.num_observations, dtype=bool)
        member[self.split(name)] = True
        return np.repeat(member, self.lengths)

    def most_frequent_target(self) -> int:
        """The most frequent target id (counted per character) in train, among ids >= 2.

        Ties go to the smallest id.  The result is remembered.
        """
        if self._most_frequent is None:
            counts = np.bincount(self.targets[self._split_mask("train")], minlength=self.num_output_classes)
            counts[:2] = -1
            self._most_frequent = int(np.argmax(counts))
        return self._most_frequent

    def baseline_accuracy(self, split: str = "test", target_id: int | None = None) -> float:
        """Accuracy of always predicting ``target_id`` (default: :meth:`most_frequent_target`).

        Counted as the published accuracy is: over every character position of
        the split's observations, ``<unknown>`` positions included.
        """
        if target_id is None:
            target_id = self.most_frequent_target()
        targets = self.targets[self._split_mask(split)]
        if targets.size == 0:
            return float("nan")
        return float(np.count_nonzero(targets == target_id) / targets.size)

    # ---------------------------------------------------------------- files
    def parameters(self) -> dict:
        return dict(vocab_size=int(self.vocab_size), max_length=int(self.max_length), seed=int(self.seed))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset to an HDF5 file atomically (temp file in the same folder, then rename)."""
        path = Path(path).expanduser()
        with atomic_hdf5(path, "dataset file", overwrite=True) as f:   # a cache: rebuilt when it does not match
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["minirnn_version"] = __version__
            f.attrs["corpus_name"] = self.corpus_name
            f.attrs["corpus_sha256"] = self.corpus_sha256
            f.attrs["vocab_size"] = int(self.vocab_size)
            f.attrs["max_length"] = int(self.max_length)
            f.attrs["seed"] = int(self.seed)
            f.attrs["num_words"] = int(self.num_words)
            f.attrs["num_skipped_words"] = int(self.num_skipped_words)
            f.create_dataset("chars", data=self.chars, **CHECKED)
            f.create_dataset("targets", data=self.targets, **CHECKED)
            f.create_dataset("offsets", data=self.offsets.astype(np.int64), **CHECKED)
            f.create_dataset("output_words", data=np.array([w.encode("ascii") for w in self.output_words]),
                             **CHECKED)
            f.create_dataset("output_counts", data=self.output_counts.astype(np.int64), **CHECKED)
            f.create_dataset("input_symbols", data=np.array([s.encode("ascii") for s in INPUT_SYMBOLS]), **CHECKED)
            group = f.create_group("split")
            for name in SPLITS:
                group.create_dataset(name, data=self.splits[name].astype(np.int64), **CHECKED)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Dataset":
        """Read a file written by :meth:`save`; a missing or damaged file raises :class:`MinirnnError`."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise MinirnnError(f"dataset file {path} does not exist; build it first (load_or_build_dataset or the CLI)")
        fix = "delete it and build the dataset again"
        try:
            digest = check_digest(path)
        except OSError as exc:
            raise MinirnnError(f"cannot read dataset file {path} ({exc.strerror or exc}); {fix}") from None
        if digest == "bad":  # checked before HDF5 reads a byte of a damaged file
            raise MinirnnError(f"dataset file {path} is damaged (its checksum does not match its content); {fix}")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise MinirnnError(f"{path} is not a minirnn autocomplete dataset file; {fix}")
                if digest != "ok":  # an older minirnn wrote it without checksums: damage would go unseen
                    raise MinirnnError(f"dataset file {path} has no checksum (an older minirnn wrote it); {fix}")
                version = int(f.attrs.get("format_version", -1))
                if version != FORMAT_VERSION:
                    raise MinirnnError(f"{path} has dataset format version {version}, this minirnn reads {FORMAT_VERSION}; {fix}")
                a = f.attrs
                size = path.stat().st_size

                def ints(name):
                    """A 1-D integer array, checked before it is read (a crafted shape is no allocation)."""
                    d = f[name]
                    if d.ndim != 1 or d.dtype.kind not in "iu" or d.size * d.dtype.itemsize > size:
                        raise ValueError(f"{name} is not a 1-D array of integers the file can hold")
                    return d[()]

                ds = cls(
                    chars=ints("chars"),
                    targets=ints("targets"),
                    offsets=ints("offsets").astype(np.int64),
                    output_words=[w.decode("ascii") for w in f["output_words"][()]],
                    output_counts=ints("output_counts").astype(np.int64),
                    splits={name: ints(f"split/{name}").astype(np.int64) for name in SPLITS},
                    vocab_size=int(a["vocab_size"]),
                    max_length=int(a["max_length"]),
                    seed=int(a["seed"]),
                    corpus_sha256=str(a["corpus_sha256"]),
                    corpus_name=str(a["corpus_name"]),
                    num_words=int(a["num_words"]),
                    num_skipped_words=int(a["num_skipped_words"]),
                    path=path,
                )
        except MinirnnError:
            raise
        except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError, AttributeError, OverflowError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MinirnnError(f"cannot read dataset file {path} ({reason}); {fix}") from None
        ds._validate(path, fix)
        return ds

    def _validate(self, path: Path, fix: str) -> None:
        """Cheap consistency checks of a loaded file, in order (each relies on the ones before)."""
        n_chars, off = len(self.chars), self.offsets
        lengths = np.diff(off)
        checks = (
            ("offsets do not cover the characters", lambda: len(off) >= 1 and off[0] == 0 and off[-1] == n_chars),
            ("an observation has a bad length",
             lambda: not lengths.size or (lengths.min() >= 1 and lengths.max() <= self.max_length)),
            ("chars and targets differ in length", lambda: len(self.targets) == n_chars),
            ("a count per output word is missing", lambda: len(self.output_counts) == len(self.output_words)),
            ("ids out of range", lambda: not n_chars or (
                0 <= int(self.chars.min()) and int(self.chars.max()) < len(INPUT_SYMBOLS)
                and 0 <= int(self.targets.min()) and int(self.targets.max()) < len(self.output_words))),
            ("the splits do not partition the observations", lambda: np.array_equal(
                np.sort(np.concatenate([self.splits[name] for name in SPLITS])), np.arange(self.num_observations))),
        )
        for problem, holds in checks:
            if not holds():
                raise MinirnnError(f"dataset file {path} is damaged ({problem}); {fix}")


# ---------------------------------------------------------------------- building


def build_dataset(
    corpus: "Corpus | str",
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> Dataset:
    """Apply the protocol to a corpus (a :class:`Corpus`, or text that is normalised first).

    A word of more than ``max_length - 1`` letters cannot fit in any observation;
    it is left out of the observations (packing goes on as if it were not there)
    and counted in ``Dataset.num_skipped_words``.  It still counts towards the
    vocabulary, which is computed on all words as the reference does.
    """
    _check_params(vocab_size, max_length, seed)
    if not isinstance(corpus, Corpus):
        corpus = corpus_from_text(corpus)
    text = corpus.text
    if not text:
        raise MinirnnError(f"corpus {corpus.name} is empty; give a corpus with English text")

    # 1. output vocabulary (reference recipe)
    _say(progress, f"counting the words of {corpus.name}")
    counter = _count_words(text)
    top, top_counts = _top_words(counter, vocab_size, seed)
    output_words = list(OUTPUT_SPECIALS) + top.tolist()
    n_classes = len(output_words)
    target_dtype = np.uint16 if n_classes <= np.iinfo(np.uint16).max + 1 else np.uint32

    # 2. one output id per word, in corpus order
    _say(progress, "assigning word ids")
    lookup = dict.fromkeys(counter, UNKNOWN)
    lookup.update((w, i) for i, w in enumerate(output_words[2:], start=2))
    num_words = sum(counter.values())
    word_ids = np.empty(num_words, dtype=target_dtype)
    at = 0
    for chunk in _text_chunks(text):
        words = chunk.split(" ")
        word_ids[at : at + len(words)] = np.fromiter(map(lookup.__getitem__, words), dtype=target_dtype, count=len(words))
        at += len(words)
    assert at == num_words
    output_counts = np.zeros(n_classes, dtype=np.int64)
    output_counts[2:] = top_counts
    output_counts[UNKNOWN] = num_words - int(top_counts.sum())
    del lookup, counter

    # 3. alignment: the character stream is " w1 w2 w3 ..." (each word: a space then its letters)
    _say(progress, "aligning characters and packing observations")
    stream = np.frombuffer((" " + text).encode("ascii"), dtype=np.uint8)
    word_starts = np.flatnonzero(stream == ord(" "))
    assert len(word_starts) == num_words
    span = np.diff(word_starts, append=len(stream))  # characters per word, its space included
    keep = span <= max_length
    num_skipped = int(num_words - np.count_nonzero(keep))
    if num_skipped:
        stream = stream[np.repeat(keep, span)]
        span = span[keep]
        word_ids = word_ids[keep]
    if span.size == 0:
        raise MinirnnError(
            f"every word of corpus {corpus.name} is longer than max_length - 1 = {max_length - 1} letters; raise max_length"
        )
    chars = _BYTE_TO_INPUT[stream]
    targets = np.repeat(word_ids, span)

    # 4. greedy packing: from first word s, take words s..j-1 with the largest j whose
    #    characters fit, i.e. bounds[j] - bounds[s] <= max_length
    bounds = np.zeros(len(span) + 1, dtype=np.int64)
    np.cumsum(span, out=bounds[1:])
    nxt = np.searchsorted(bounds, bounds[:-1] + max_length, side="right") - 1
    first_words = []
    s, n_fit = 0, len(span)
    while s < n_fit:
        first_words.append(s)
        s = int(nxt[s])
    offsets = np.append(bounds[first_words], bounds[-1]).astype(np.int64)

    # 5. seeded split
    n = len(offsets) - 1
    perm = np.random.RandomState(seed).permutation(n).astype(np.int64)
    n_train, n_val = n * 90 // 100, n * 5 // 100  # == int(n * 0.9), int(n * 0.05)
    splits = {
        "train": perm[:n_train],
        "validation": perm[n_train : n_train + n_val],
        "test": perm[n_train + n_val :],
    }
    _say(progress, f"{n} observations: {n_train} train, {n_val} validation, {n - n_train - n_val} test")
    return Dataset(
        chars=chars,
        targets=targets,
        offsets=offsets,
        output_words=output_words,
        output_counts=output_counts,
        splits=splits,
        vocab_size=int(vocab_size),
        max_length=int(max_length),
        seed=int(seed),
        corpus_sha256=corpus.sha256,
        corpus_name=corpus.name,
        num_words=int(num_words),
        num_skipped_words=num_skipped,
    )


def dataset_cache_path(
    corpus: Corpus,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = DEFAULT_SEED,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Where :func:`load_or_build_dataset` keeps the file for these inputs."""
    return _cache_file(corpus.sha256, vocab_size, max_length, seed, cache_dir)


def _cache_file(corpus_sha256: str, vocab_size: int, max_length: int, seed: int, cache_dir) -> Path:
    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_home() / "datasets"
    return folder / f"autocomplete-{corpus_sha256[:16]}-v{int(vocab_size)}-l{int(max_length)}-s{int(seed)}.h5"


def cached_dataset(corpus_sha256: str, vocab_size: int, max_length: int, seed: int,
                   cache_dir: str | os.PathLike | None = None) -> "Dataset | None":
    """The cached dataset of a corpus known only by its checksum (e.g. a corpus file since moved), or None."""
    path = _cache_file(corpus_sha256, vocab_size, max_length, seed, cache_dir)
    if not path.is_file():
        return None
    try:
        ds = Dataset.load(path)
    except MinirnnError:
        return None
    if ds.corpus_sha256 != corpus_sha256 or ds.parameters() != dict(vocab_size=int(vocab_size),
                                                                     max_length=int(max_length), seed=int(seed)):
        return None
    return ds


def load_or_build_dataset(
    corpus_spec: "str | os.PathLike | Corpus",
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = DEFAULT_SEED,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Dataset:
    """The dataset of a corpus, from the cache when the same corpus and parameters were built before.

    The cache file name holds the corpus checksum and the parameters; the
    parameters and full checksum stored in the file are checked on load.  A
    cached file that is unreadable or does not match is rebuilt.
    """
    _check_params(vocab_size, max_length, seed)
    corpus = load_corpus(corpus_spec, progress=progress)
    path = dataset_cache_path(corpus, vocab_size, max_length, seed, cache_dir)
    # one builder per cache file: a second run needing the same dataset waits, then reuses it
    lock = RunLock(path, what="dataset file", wait=True)
    try:
        check_writable_folder(path, "dataset file")
        lock.acquire()
    except MinirnnError as exc:
        if path.is_file():  # a read-only cache still serves the files it has
            return _cached_or_built(path, corpus, vocab_size, max_length, seed, progress)
        raise MinirnnError(f"{exc}; or set MINIRNN_HOME to a writable folder") from None
    try:
        remove_stale_temps(path)   # left by a builder that was killed while saving
        return _cached_or_built(path, corpus, vocab_size, max_length, seed, progress)
    finally:
        lock.release()


def _cached_or_built(path: Path, corpus: Corpus, vocab_size: int, max_length: int, seed: int,
                     progress: bool) -> Dataset:
    if path.is_file():
        try:
            ds = Dataset.load(path)
        except MinirnnError:
            ds = None
        if ds is not None and ds.corpus_sha256 == corpus.sha256 and ds.parameters() == dict(
            vocab_size=int(vocab_size), max_length=int(max_length), seed=int(seed)
        ):
            _say(progress, f"using cached dataset {path}")
            return ds
        _say(progress, f"cached dataset {path} does not match; rebuilding it")
    ds = build_dataset(corpus, vocab_size, max_length, seed, progress=progress)
    ds.save(path)
    _say(progress, f"dataset written to {path}")
    return ds
