"""Looking inside a trained model: top-k word completion and connectivity.

Both work on a short text given by the user, normalised the text8 way and fed to
the model exactly as the autocomplete protocol feeds a training observation:
each word is a space followed by its letters, so the model's input string is
``" " + normalize_text(text)`` and position 0 is the leading space (docs/analysis.md).

- :func:`complete` gives, for every input position, the ``k`` most probable
  output words (softmax of the logits, [COMP-F1]).
- :func:`connectivity` gives, for one output position ``N`` and every input
  position ``tau``, the squared norm of the gradient of one logit at ``N`` with
  respect to the one-hot input at ``tau`` [CONN-F1], computed with the units'
  hand-derived backward pass [CONN-B1]..[CONN-B4].  :func:`connectivity_matrix`
  does it for every ``N`` at once (batched).

Nothing here trains or changes the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import to_numpy
from .errors import MinirnnError

SPECIALS = ("<eos>", "<unknown>")
UNKNOWN = 1
FIRST_WORD = 2
#: Elements (time x batch x hidden) one batched backward pass may hold per cached tensor.
_BATCH_BUDGET = 1 << 22


# --------------------------------------------------------------------------- text

@dataclass
class EncodedText:
    """A text as the model sees it.

    ``chars`` is the input string (a leading space, then the normalised text);
    ``ids`` (T,) the input ids (1 space, 2..27 a..z); ``words[t]`` the word that
    position ``t`` belongs to (a space belongs to the word that follows it);
    ``word_starts[t]`` the position of that word's leading space.
    """

    chars: str
    ids: np.ndarray
    words: list
    word_starts: list

    def __len__(self) -> int:
        return len(self.chars)

    def letters_seen(self, t: int) -> int:
        """How many letters of its word position ``t`` has seen (0 = the leading space)."""
        return t - self.word_starts[t]

    def word_end(self, t: int) -> int:
        """Position of the last letter of the word that position ``t`` belongs to."""
        return self.word_starts[t] + len(self.words[t])


def encode_text(text: str) -> EncodedText:
    """Normalise ``text`` (text8 style) and encode it as the model's input."""
    from .data.corpora import normalize_text

    norm = normalize_text(text)
    if not norm:
        raise MinirnnError("the text has no letters a-z after normalisation; give some English words")
    chars = " " + norm
    ids = np.array([1 if c == " " else ord(c) - ord("a") + 2 for c in chars], dtype=np.int64)
    words, starts = [], []
    start = 0
    for t, c in enumerate(chars):
        if c == " ":
            start = t
        starts.append(start)
    for t in range(len(chars)):
        s = starts[t]
        end = chars.find(" ", s + 1)
        words.append(chars[s + 1: end if end >= 0 else len(chars)])
    return EncodedText(chars=chars, ids=ids, words=words, word_starts=starts)


# --------------------------------------------------------------------- vocabulary

class Vocabulary:
    """Output classes: names by id and ids by word.

    Accepts the checkpoint's word list either with the two special symbols
    (``<eos>``, ``<unknown>``) first, or without them; ``num_classes`` (the
    model's output size) decides which.
    """

    def __init__(self, output_words, num_classes: int | None = None):
        words = [str(w) for w in output_words]
        if num_classes is None:
            num_classes = len(words) if tuple(words[:2]) == SPECIALS else len(words) + 2
        if len(words) == num_classes:
            names = words
        elif len(words) == num_classes - 2:
            names = list(SPECIALS) + words
        else:
            raise MinirnnError(f"the checkpoint's vocabulary has {len(words)} words but its model has "
                               f"{num_classes} output classes; the checkpoint is inconsistent, retrain it")
        self.names = names
        self.ids = {w: i for i, w in enumerate(names) if i >= FIRST_WORD}

    def __len__(self) -> int:
        return len(self.names)

    def class_of(self, word: str) -> int:
        """The class id of ``word`` (``<unknown>`` = 1 when not in the vocabulary)."""
        return self.ids.get(word, UNKNOWN)


# --------------------------------------------------------------------- completion

def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)                                   # [COMP-F1]


def position_logits(model, ids: np.ndarray) -> np.ndarray:
    """Host logits (T, V) for one encoded text."""
    return to_numpy(model.logits(np.asarray(ids)[None, :]))[0]


@dataclass
class Completion:
    """The model's view of one input position."""

    index: int
    char: str
    word: str                   # the word this position belongs to (the target word)
    letters_seen: int
    target: int                 # its class id (1 = <unknown>: not in the vocabulary)
    predictions: list           # [(word, probability)], best first
    target_probability: float

    def to_dict(self) -> dict:
        return {"index": self.index, "char": self.char, "word": self.word, "letters_seen": self.letters_seen,
                "in_vocabulary": self.target >= FIRST_WORD, "target_probability": self.target_probability,
                "predictions": [{"word": w, "probability": p} for w, p in self.predictions]}


def complete(model, output_words, text: str, k: int = 3, probabilities: np.ndarray | None = None) -> list:
    """For each input position of ``text``, the ``k`` most probable words (see module doc)."""
    if k < 1:
        raise MinirnnError("-k must be at least 1")
    vocab = output_words if isinstance(output_words, Vocabulary) else Vocabulary(output_words, _num_classes(model))
    enc = encode_text(text) if isinstance(text, str) else text
    probs = _softmax_rows(position_logits(model, enc.ids)) if probabilities is None else probabilities
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = []
    for t in range(len(enc)):
        target = vocab.class_of(enc.words[t])
        out.append(Completion(
            index=t, char=enc.chars[t], word=enc.words[t], letters_seen=enc.letters_seen(t), target=target,
            predictions=[(vocab.names[c], float(probs[t, c])) for c in top[t]],
            target_probability=float(probs[t, target])))
    return out


def _num_classes(model) -> int:
    return int(model.params["dense.b"].shape[0])


# ------------------------------------------------------------------- connectivity

@dataclass
class ConnectivityResult:
    """Connectivity of one output position ``at`` to every input position.

    ``values[tau]`` is the connectivity of position ``tau`` (exactly 0 for
    ``tau > at``: the model is causal).  ``cls`` is the class whose logit was
    differentiated and ``cls_source`` says why it was chosen: ``"target"`` (the
    word at ``at`` is in the vocabulary: its class) or ``"predicted"`` (it is not:
    the model's most probable class at ``at``).
    """

    text: EncodedText
    at: int
    cls: int
    cls_word: str
    cls_source: str
    values: np.ndarray
    extra: dict = field(default_factory=dict)


def target_class(vocab: Vocabulary, enc: EncodedText, logits_row: np.ndarray, at: int) -> tuple[int, str]:
    """The class to differentiate at position ``at``: the correct word, or the prediction when out of vocabulary."""
    cls = vocab.class_of(enc.words[at])
    if cls >= FIRST_WORD:
        return cls, "target"
    # <eos> and <unknown> are never targets of the loss, so their logits are not
    # predictions of anything: the predicted class is the most probable *word*.
    return FIRST_WORD + int(np.argmax(logits_row[FIRST_WORD:])), "predicted"


def _connectivity_rows(model, ids: np.ndarray, requests) -> np.ndarray:
    """Connectivity rows for ``requests`` = [(N, class)], as a host array (len(requests), T).

    The requests are processed in batches: batch element j is the text truncated
    after its own N_j (later inputs cannot influence position N_j), the backward
    seed is nonzero only at (N_j, j).
    """
    xp = model.xp
    ids = np.asarray(ids, dtype=np.int64)
    T = ids.shape[0]
    H = int(model.params["dense.W"].shape[0])
    E = model.params["embedding"]
    W = model.params["dense.W"]
    out = np.zeros((len(requests), T), dtype=np.float64)
    order = sorted(range(len(requests)), key=lambda j: requests[j][0])
    width = max(H, int(E.shape[1]))
    pos = 0
    while pos < len(order):
        # Grow the batch while (time x batch x width) stays under the budget.
        end = pos + 1
        while end < len(order) and (requests[order[end]][0] + 1) * (end - pos + 1) * width <= _BATCH_BUDGET:
            end += 1
        batch = order[pos:end]
        steps = requests[batch[-1]][0] + 1
        B = len(batch)
        X = model.embed(np.tile(ids[:steps], (B, 1)))                          # [CONN-F2] X_tau = onehot_tau E
        hs, caches, _ = model.run_layers(X)
        dhs = xp.zeros((steps, B, H), dtype=hs.dtype)
        for j, r in enumerate(batch):
            n, c = requests[r]
            dhs[n, j] = W[:, c]                                                # [CONN-B1] dz_c/dh_N = W[:, c]
        for layer in reversed(range(len(model.units))):                        # [CONN-B2] through every layer
            _, dhs, _ = model.units[layer].backward(model.layer_params(layer), caches[layer], dhs)
        G = dhs @ E.T                                                          # [CONN-B3] g_tau = E dX_tau
        conn = to_numpy((G.astype(np.float64) ** 2).sum(axis=-1))              # [CONN-B4] sum over the one-hot
        for j, r in enumerate(batch):
            n = requests[r][0]
            out[r, :n + 1] = conn[:n + 1, j]
        pos = end
    return out


def resolve_position(enc: EncodedText, at: int | None = None, word: str | None = None, occurrence: int = 1) -> int:
    """The output position chosen by ``--at N`` or ``--word W`` (last letter of W's ``occurrence``-th use)."""
    if (at is None) == (word is None):
        raise MinirnnError("give exactly one of --at N (a character position) or --word WORD")
    if at is not None:
        if at < 0:
            at += len(enc)
        if not 0 <= at < len(enc):
            raise MinirnnError(f"--at {at} is outside the text: positions run from 0 (the leading space) "
                               f"to {len(enc) - 1}")
        return at
    from .data.corpora import normalize_text

    w = normalize_text(word)
    if not w or " " in w:
        raise MinirnnError(f"--word {word!r} must be a single word of letters a-z")
    seen = 0
    for t in range(len(enc)):
        if enc.chars[t] == " " and enc.words[t] == w:
            seen += 1
            if seen == occurrence:
                return enc.word_end(t)
    uses = seen
    raise MinirnnError(f"the word {w!r} occurs {uses} time(s) in the text; "
                       + ("pick another word or position" if uses == 0 else f"--occurrence must be 1..{uses}"))


def connectivity(model, output_words, text, at: int | None = None, word: str | None = None,
                 occurrence: int = 1) -> ConnectivityResult:
    """Connectivity of the output at position ``at`` (or at the end of ``word``) to every input."""
    vocab = output_words if isinstance(output_words, Vocabulary) else Vocabulary(output_words, _num_classes(model))
    enc = encode_text(text) if isinstance(text, str) else text
    n = resolve_position(enc, at, word, occurrence)
    logits = position_logits(model, enc.ids[: n + 1])
    cls, source = target_class(vocab, enc, logits[n], n)
    values = _connectivity_rows(model, enc.ids, [(n, cls)])[0]
    return ConnectivityResult(text=enc, at=n, cls=cls, cls_word=vocab.names[cls], cls_source=source, values=values)


def connectivity_matrix(model, output_words, text, logits: np.ndarray | None = None):
    """Connectivity for every output position: (matrix (T, T), classes (T,), sources (T,)).

    Row N is the connectivity of output N to inputs 0..N (zeros after N), each
    computed for the class that :func:`target_class` picks at N.
    """
    vocab = output_words if isinstance(output_words, Vocabulary) else Vocabulary(output_words, _num_classes(model))
    enc = encode_text(text) if isinstance(text, str) else text
    logits = position_logits(model, enc.ids) if logits is None else logits
    picks = [target_class(vocab, enc, logits[n], n) for n in range(len(enc))]
    matrix = _connectivity_rows(model, enc.ids, [(n, c) for n, (c, _) in enumerate(picks)])
    return matrix, [c for c, _ in picks], [s for _, s in picks]


def page_data(model, output_words, text, k: int = 5) -> dict:
    """Everything the HTML page shows: chars, connectivity rows, classes, top-k per position."""
    vocab = output_words if isinstance(output_words, Vocabulary) else Vocabulary(output_words, _num_classes(model))
    enc = encode_text(text) if isinstance(text, str) else text
    logits = position_logits(model, enc.ids)
    probs = _softmax_rows(logits)
    comps = complete(model, vocab, enc, k=k, probabilities=probs)
    matrix, classes, sources = connectivity_matrix(model, vocab, enc, logits=logits)
    return {"chars": enc.chars, "matrix": matrix, "classes": [vocab.names[c] for c in classes],
            "sources": sources, "completions": [c.to_dict() for c in comps]}
