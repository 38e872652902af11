"""The published metrics of a trained model (docs/study.md §1, docs/training.md).

- **cross-entropy**: for each observation, the mean of -log p(target) over its
  positions whose target is a known word (id >= 2); then the mean of those
  per-observation means over *all* the observations, as the study computed it
  (one observation at a time).  An observation with no known word has nothing to
  average; like the study's code (TensorFlow's safe division, 0/0 = 0) it counts
  as 0 in the mean.  ``cross_entropy_known_observations`` is the mean over the
  observations that do have a known word (those without are counted in
  ``observations_without_known_words``); the two differ by the factor
  (observations - without) / observations.  On the text8 excerpt with the
  paper's settings no observation lacks a known word and they are equal
  (measured; docs/training.md).
- **accuracy**: argmax == target over *every* character position of the
  observations, positions whose target is ``<unknown>`` included (correct only
  when ``<unknown>`` is predicted).  ``accuracy_known`` is the same over the
  known-word positions only.
- **top-k accuracy by letters seen**: position 0 of a word is its leading space
  (0 letters seen), position k has seen k letters; counted like ``accuracy``,
  a position being correct when the target is among the k most probable ids.
  The last bucket collects ``max_letters`` letters or more.
- **baseline**: always predicting the most frequent known word of the training
  split, counted like ``accuracy``.

Observations are evaluated in batches padded to the longest one.  A recurrent
network reads left to right and padding only ever *follows* an observation's
real characters, so every real position sees exactly the inputs it sees in a
batch of one; padded positions are dropped before any metric is computed.  The
per-observation means are therefore those of batches of 1 (up to floating-point
rounding of the matrix products; tests compare with a batch size of 1).
"""
from __future__ import annotations

import numpy as np

from ..training import distributed

from .. import messages
from ..errors import MinirnnError
from ..layers import dense_scores
from ..backend import resolve_device
from .export import load_model_file
from pathlib import Path
from ..data import cached_dataset, load_corpus, load_or_build_dataset
from ..training.presets import DEFAULT_DATA_SEED

PAD, SPACE = 0, 1
FIRST_WORD = 2
MAX_LETTERS = 15


def letters_seen(source: np.ndarray) -> np.ndarray:
    """For ids (B, T): how many letters of the current word precede each position (0 at a space)."""
    source = np.asarray(source)
    pos = np.broadcast_to(np.arange(source.shape[1]), source.shape)
    last_space = np.maximum.accumulate(np.where(source == SPACE, pos, 0), axis=1)
    return pos - last_space


def evaluate_model(model, dataset, split: str = "test", batch_size: int = 64, limit: int | None = None,
                   max_k: int = 3, max_letters: int = MAX_LETTERS, progress: bool = False, shard=list,
                   reduce=None) -> dict:
    """Metrics of ``model`` on ``split`` of ``dataset`` (the first ``limit`` observations when given).

    Returns a JSON-serialisable dict; see the module docstring for the definitions.
    ``shard`` and ``reduce``: this process's share of the batches and the sum of counts over processes
    (under MPI, :class:`~minirnn.training.distributed.MPIContext`'s ``shard`` and ``sum``: each rank
    evaluates every size-th batch and the counts are summed -- the same batches as one process, so the
    same numbers up to the order of the final sums).
    """
    if batch_size < 1:
        raise MinirnnError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(dataset.output_words) != model.config["output_vocab"]:
        raise MinirnnError(f"the model predicts {model.config['output_vocab']} classes but the dataset has "
                           f"{len(dataset.output_words)}; evaluate with the dataset the model was trained on")
    indices = dataset.split(split)
    if limit is not None:
        if limit < 1:
            raise MinirnnError(f"--limit must be a positive number of observations, got {limit}")
        indices = indices[:limit]
    if len(indices) == 0:
        raise MinirnnError(f"the {split} split has no observations; use a larger corpus or another --split")
    xp = model.xp
    W, b = model.params["dense.W"], model.params["dense.b"]
    baseline_id = int(dataset.most_frequent_target())

    n_buckets = max_letters + 1
    bucket_positions = np.zeros(n_buckets, dtype=np.int64)
    bucket_hits = np.zeros((max_k, n_buckets), dtype=np.int64)
    positions = counted_positions = correct = correct_known = baseline_correct = 0
    ce_sum, ce_observations, no_known = 0.0, 0, 0

    starts = shard(range(0, len(indices), batch_size))            # under MPI: whole batches per rank
    total = sum(len(indices[s:s + batch_size]) for s in starts)
    with messages.progress(progress, total, f"evaluating {split}") as bar:
        for start in starts:
            source, target = dataset.batch(indices[start:start + batch_size])
            mask = source != PAD
            Hs = model.hidden_outputs(source)                       # (B, T, H)
            flat_target = target[mask]
            nll, topk = dense_scores(Hs[xp.asarray(mask)], xp.asarray(flat_target), W, b, k=max_k,
                                     chunk=model.chunk_size)
            rows = np.nonzero(mask)[0]                              # observation of each real position
            known = flat_target >= FIRST_WORD

            # cross-entropy: per-observation masked means, then their mean
            sums = np.bincount(rows[known], weights=nll[known], minlength=source.shape[0])
            counts = np.bincount(rows[known], minlength=source.shape[0])
            has = counts > 0
            ce_sum += float(np.sum(sums[has] / counts[has]))   # an observation without one adds 0
            ce_observations += int(np.count_nonzero(has))
            no_known += int(np.count_nonzero(~has))

            # accuracy over every real position (unknown targets included)
            hits = topk == flat_target[:, None]
            top1 = hits[:, 0]
            positions += flat_target.size
            counted_positions += int(np.count_nonzero(known))
            correct += int(np.count_nonzero(top1))
            correct_known += int(np.count_nonzero(top1 & known))
            baseline_correct += int(np.count_nonzero(flat_target == baseline_id))

            # top-k accuracy by letters seen
            letters = np.minimum(letters_seen(source)[mask], max_letters)
            bucket_positions += np.bincount(letters, minlength=n_buckets)
            cumulative = np.logical_or.accumulate(hits, axis=1)
            for k in range(max_k):
                bucket_hits[k] += np.bincount(letters[cumulative[:, k]], minlength=n_buckets)
            bar.update(source.shape[0])

    if reduce is not None:                                        # under MPI: sum the counts over ranks
        counts = reduce(np.concatenate([[positions, counted_positions, correct, correct_known, baseline_correct,
                                         ce_observations, no_known], bucket_positions, bucket_hits.ravel()]
                                       ).astype(np.int64))
        (positions, counted_positions, correct, correct_known, baseline_correct, ce_observations,
         no_known) = (int(v) for v in counts[:7])
        bucket_positions = counts[7:7 + n_buckets]
        bucket_hits = counts[7 + n_buckets:].reshape(bucket_hits.shape)
        ce_sum = float(reduce(np.array([ce_sum], dtype=np.float64))[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = bucket_hits / bucket_positions
    by_letters = {"letters": list(range(n_buckets)), "last_is_at_least": True,
                  "positions": bucket_positions.tolist()}
    for k in range(max_k):
        by_letters[f"top{k + 1}"] = [None if not np.isfinite(r) else float(r) for r in rates[k]]
    return {
        "split": split,
        "observations": int(len(indices)),
        "positions": int(positions),
        "counted_positions": int(counted_positions),
        "cross_entropy": ce_sum / len(indices),                   # the study's mean over all observations
        "cross_entropy_known_observations": ce_sum / ce_observations if ce_observations else float("nan"),
        "accuracy": correct / positions,
        "accuracy_known": correct_known / counted_positions if counted_positions else float("nan"),
        "baseline_accuracy": baseline_correct / positions,
        "baseline_word": dataset.output_words[baseline_id],
        "observations_without_known_words": int(no_known),
        "by_letters": by_letters,
    }


@distributed.collective
def evaluate_checkpoint(path, split: str = "test", device: str = "cpu", limit: int | None = None,
                        batch_size: int = 64, impl: str = "fast", progress: bool = False, dataset=None,
                        corpus=None) -> dict:
    """Load a checkpoint (or an export: docs/export.md), rebuild (or load from the cache) its
    dataset and evaluate it.

    ``device`` may be 'cpu', 'gpu' or 'auto'; when 'auto' falls back to the CPU
    the result holds the reason under ``note``; remarks about the file itself (an
    older file without checksums) are under ``notes``.  ``corpus``: the training
    text at its new place, when its file has moved (see dataset_of_checkpoint).
    Under ``mpiexec`` the ranks share out the batches and every rank returns the
    whole result.
    """
    ctx = distributed.context()                                   # distributed: start (one process: no-op)
    ctx.handshake("evaluation", {"checkpoint": str(path), "split": split, "device": device, "limit": limit,
                                 "batch_size": batch_size, "impl": impl}, device=device)
    if not ctx.is_root:
        progress = False

    resolved, note = resolve_device(device)
    ck = load_model_file(path, device=resolved, impl=impl)
    if dataset is None:
        with ctx.root_first():              # distributed: rank 0 first (a download or cache is made once)
            dataset = dataset_of_checkpoint(ck, progress=progress, corpus=corpus)
    if list(dataset.output_words) != ck.output_words:
        raise MinirnnError(f"the dataset rebuilt from corpus {ck.config.get('corpus')!r} has another output "
                           f"vocabulary than checkpoint {ck.path}; the corpus file changed since training")
    ctx.started(dataset, resolved)                                # distributed: same data on every rank
    shares = {"shard": ctx.shard, "reduce": ctx.sum} if ctx.size > 1 else {}   # distributed: batches shared out
    result = evaluate_model(ck.model, dataset, split=split, batch_size=batch_size, limit=limit, progress=progress,
                            **shares)
    ctx.finish()
    result.update({"checkpoint": str(ck.path), "unit": ck.config.get("unit", ck.model.config["unit"]), "step": ck.step,
                   "preset": ck.config.get("preset"), "device": resolved})
    if note:
        result["note"] = note
    if ck.notes:
        result["notes"] = list(ck.notes)
    return result


def dataset_of_checkpoint(ck, progress: bool = False, corpus=None):
    """The dataset a checkpoint (or an export) was trained on, from the cache when possible.

    The text is ``corpus`` when given, else the corpus the run names, else the
    absolute path it recorded; each must be the very text of the run (its
    checksum is compared before anything is built).  When that file has moved or
    was rewritten, the dataset cached for the run's checksum still serves; else
    the evaluation is refused (never computed on another text).
    """
    cfg, extra = ck.config, ck.extra
    try:
        sizes = (int(cfg["vocab_size"]), int(cfg["max_length"]), int(cfg.get("data_seed", DEFAULT_DATA_SEED)))
    except KeyError as exc:
        raise MinirnnError(f"checkpoint {ck.path} lacks the data setting {exc}; it was not written by 'minirnn train'") from None
    sha = extra.get("corpus_sha256")

    def matching(spec):
        """The dataset of ``spec`` when its text is the run's (same checksum), else None."""
        text = load_corpus(str(spec), progress=progress)
        if sha and text.sha256 != sha:
            return None
        return load_or_build_dataset(text, *sizes, progress=progress)

    if corpus is not None:
        dataset = matching(corpus)
        if dataset is None:
            raise MinirnnError(f"corpus {corpus} is not the text checkpoint {ck.path} was trained on (its "
                               f"checksum differs); give the training corpus with --corpus")
        return dataset
    named = cfg.get("corpus", "builtin")
    if named in ("builtin", "text8"):
        candidates = [named]
    else:
        paths = [Path(named).expanduser()] + ([Path(extra["corpus_path"])] if extra.get("corpus_path") else [])
        candidates = [path for path in paths if path.exists()]
    for spec in candidates:
        dataset = matching(spec)
        if dataset is not None:
            return dataset
    # the recorded text is gone or was rewritten: the dataset cached for its checksum still serves
    dataset = cached_dataset(sha, *sizes) if sha else None
    if dataset is not None:
        return dataset
    if candidates:
        raise MinirnnError(f"the corpus {candidates[0]} has changed since checkpoint {ck.path} was trained on it "
                           "(its checksum differs) and no dataset of the original text is cached; give the "
                           "original text with --corpus PATH")
    raise MinirnnError(f"the corpus file {paths[-1]} that checkpoint {ck.path} was trained on no longer "
                       "exists; give its new location with --corpus PATH")


def format_metrics(result: dict) -> str:
    """The human-readable report of ``minirnn evaluate``."""
    lines = []
    if result.get("checkpoint"):
        lines.append(f"{result['checkpoint']}: {result.get('unit')} after {result.get('step')} steps")
    lines.append(f"{result['split']} split: {result['observations']:,} observations, "
                 f"{result['positions']:,} characters ({result['counted_positions']:,} of known words)")
    lines.append(f"cross-entropy  {result['cross_entropy']:.4f}")
    if result.get("observations_without_known_words"):
        lines.append(f"               ({result['observations_without_known_words']:,} observations without a known word "
                     f"count as 0, as in the study; leaving them out: "
                     f"{result['cross_entropy_known_observations']:.4f})")
    lines.append(f"accuracy       {100 * result['accuracy']:.2f}%   (known words only: "
                 f"{100 * result['accuracy_known']:.2f}%)")
    lines.append(f"baseline       {100 * result['baseline_accuracy']:.2f}%   (always '{result['baseline_word']}')")
    table = result["by_letters"]
    ks = [key for key in table if key.startswith("top")]
    last = table["letters"][-1]
    lines.append("")
    lines.append("accuracy by letters seen (0 = the leading space), in percent as above")
    lines.append("letters " + " ".join([f"{'positions':>9}"] + [f"{k:>6}" for k in ks]))
    for i, letters in enumerate(table["letters"]):
        if table["positions"][i] == 0:
            continue
        label = f"{letters}+" if letters == last and table.get("last_is_at_least") else str(letters)
        cells = [f"{table['positions'][i]:>9,}"] + [f"{100 * table[k][i]:>6.2f}" for k in ks]
        lines.append(f"{label:>7} " + " ".join(cells))
    return "\n".join(lines)
