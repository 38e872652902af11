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

from ..backend import to_numpy
from ..errors import MinirnnError
from ..data.corpora import normalize_text
from collections import OrderedDict

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
    ``word_starts[t]`` the position of that word's leading space.  ``open_from``: the
    positions from there on belong to a word still being typed (see :func:`encode_text`).
    """

    chars: str
    ids: np.ndarray
    words: list
    word_starts: list
    open_from: int | None = None

    def __len__(self) -> int:
        return len(self.chars)

    def letters_seen(self, t: int) -> int:
        """How many letters of its word position ``t`` has seen (0 = the leading space)."""
        return t - self.word_starts[t]

    def typing(self, t: int) -> bool:
        """Position ``t`` belongs to a word not finished yet: it has no correct word."""
        return self.open_from is not None and t >= self.open_from

    def word_end(self, t: int) -> int:
        """Position of the last letter of the word that position ``t`` belongs to."""
        return self.word_starts[t] + len(self.words[t])


#: the longest text read at once (complete, connectivity, serve): its activations, predictions and
#: connectivity maps grow with its length (a 200 kB line once took 5.7 GB)
MAX_TEXT_CHARS = 5000


def encode_text(text: str, typing: bool = False) -> EncodedText:
    """Normalise ``text`` (text8 style) and encode it as the model's input (at most MAX_TEXT_CHARS).

    ``typing``: the text is being typed (the live page).  A word break at its end is
    kept as a last space, the start of the next word (its predictions are the next
    word's); and the last word -- the letters after the last space, or that space
    alone -- is not finished, so it has no correct word yet (``typing(t)``).
    """
    if len(text) > MAX_TEXT_CHARS:    # before normalising it
        raise MinirnnError(f"the text has {len(text):,} characters; at most {MAX_TEXT_CHARS:,} are read at once: "
                           "give a shorter text")
    norm = normalize_text(text)
    if len(norm) > MAX_TEXT_CHARS:    # digits are spelled out
        raise MinirnnError(f"the text has {len(norm):,} characters once normalised (numbers spelled out); at most "
                           f"{MAX_TEXT_CHARS:,} are read at once: give a shorter text")
    if not norm:
        raise MinirnnError("the text has no letters a-z after normalisation; give some English words")
    chars = " " + norm
    if typing and normalize_text(text + "a").endswith(" a"):   # the text ends with a word break
        chars += " "
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
    return EncodedText(chars=chars, ids=ids, words=words, word_starts=starts,
                       open_from=chars.rfind(" ") if typing else None)


def target_of(vocab: "Vocabulary", enc: EncodedText, t: int) -> int:
    """The correct class at position ``t``: its word's, ``<unknown>`` when out of vocabulary or still typed."""
    return UNKNOWN if enc.typing(t) else vocab.class_of(enc.words[t])


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
        target = target_of(vocab, enc, t)
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
    word at ``at`` is in the vocabulary: its class), ``"predicted"`` (it is not:
    the model's most probable word at ``at``) or ``"typing"`` (the word is still
    being typed: also the most probable word).
    """

    text: EncodedText
    at: int
    cls: int
    cls_word: str
    cls_source: str
    values: np.ndarray
    extra: dict = field(default_factory=dict)


def target_class(vocab: Vocabulary, enc: EncodedText, logits_row: np.ndarray, at: int) -> tuple[int, str]:
    """The class to differentiate at position ``at``: the correct word, or the prediction when it is out of
    vocabulary (source ``"predicted"``) or not typed to its end yet (``"typing"``)."""
    cls = target_of(vocab, enc, at)
    if cls >= FIRST_WORD:
        return cls, "target"
    # <eos> and <unknown> are never targets of the loss, so their logits are not
    # predictions of anything: the predicted class is the most probable *word*.
    return FIRST_WORD + int(np.argmax(logits_row[FIRST_WORD:])), "typing" if enc.typing(at) else "predicted"


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


# ------------------------------------------------------------- live (incremental)

#: The most predictions per position a :class:`LiveModel` keeps (``k`` is at most this).
LIVE_TOP = 10


@dataclass
class _Step:
    """What a :class:`LiveModel` remembers about one prefix of an input string."""

    states: list                # per layer: the state tuple after this position (batch of 1)
    h: np.ndarray               # host (H,): the top layer's output at this position
    top: np.ndarray             # the LIVE_TOP most probable classes, best first
    top_p: np.ndarray           # their probabilities
    lse: float                  # log-sum-exp of the logits row: p(c) = exp(z_c - lse)


class LRUCache:
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, size: int):
        self.size = int(size)
        self.data = OrderedDict()

    def get(self, key):
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def __len__(self) -> int:
        return len(self.data)


class LiveModel:
    """One model answering a text that changes a character at a time (``minirnn serve``).

    The model reads left to right, so everything it computes at position t
    depends only on the input string up to t: its state, its output h_t, the
    logits and their top classes.  These are kept per *prefix* of the input
    string (a bounded cache, least recently used forgotten first), so a text that
    grows by one character costs one step of the recurrent stack and one row of
    the dense layer, and a text that shrinks (backspace) costs nothing.  What
    depends on later characters (the word a position belongs to, hence the
    correct class and its probability) is recomputed from the cached h_t, a
    product with one column of the dense layer.

    Connectivity at position N depends on the prefix up to N and the
    differentiated class; results are cached under that pair and computed by the
    same batched hand-derived backward pass as :func:`connectivity`.

    Results equal :func:`complete` and :func:`connectivity` on the whole text to
    rounding (tested).  Not thread-safe: serialise calls per instance.
    """

    def __init__(self, model, output_words, max_prefixes: int = 4096, max_maps: int = 256):
        self.model = model
        self.vocab = (output_words if isinstance(output_words, Vocabulary)
                      else Vocabulary(output_words, _num_classes(model)))
        self.W = to_numpy(model.params["dense.W"])
        self.b = to_numpy(model.params["dense.b"])
        self.prefixes = LRUCache(max_prefixes)
        self.maps = LRUCache(max_maps)
        self.steps_run = 0          # recurrent steps computed so far (what the caches saved is visible here)

    def _steps(self, enc: EncodedText) -> list:
        """The cached step of every prefix of ``enc.chars``, computing the missing ones."""
        chars = enc.chars
        T = len(chars)
        steps = []
        for t in range(T):                              # the prefixes already computed, in order
            step = self.prefixes.get(chars[:t + 1])
            if step is None:
                break
            steps.append(step)
        model = self.model
        states = steps[-1].states if steps else None
        W, b = model.params["dense.W"], model.params["dense.b"]
        for t in range(len(steps), T):
            X = model.embed(np.asarray(enc.ids[t:t + 1])[None, :])      # (1, 1, E)
            hs, _, states = model.run_layers(X, states)
            h = hs[0, 0]
            z = to_numpy(h @ W + b).astype(np.float64)                 # one row of logits
            m = float(z.max())
            lse = m + float(np.log(np.exp(z - m).sum()))                # [COMP-F1] p = exp(z - lse)
            k = min(LIVE_TOP, z.shape[0])
            top = np.argpartition(-z, k - 1)[:k]
            top = top[np.lexsort((top, -z[top]))]                       # best first; ties by class id
            step = _Step(states=states, h=to_numpy(h).astype(np.float64), top=top, top_p=np.exp(z[top] - lse),
                         lse=lse)
            self.prefixes.put(chars[:t + 1], step)
            steps.append(step)
            self.steps_run += 1
        return steps

    def logits_row(self, step: _Step) -> np.ndarray:
        """The logits at one cached position (in the model's precision)."""
        return step.h.astype(self.W.dtype) @ self.W + self.b

    def complete(self, text, k: int = 3) -> list:
        """:func:`complete` for ``text``, from the cached prefixes (``k`` <= ``LIVE_TOP``)."""
        if not 1 <= k <= LIVE_TOP:
            raise MinirnnError(f"k must be between 1 and {LIVE_TOP}")
        enc = encode_text(text) if isinstance(text, str) else text
        steps = self._steps(enc)
        targets = [target_of(self.vocab, enc, t) for t in range(len(enc))]
        H = np.stack([s.h for s in steps])
        Wc = self.W[:, targets].astype(np.float64)
        z_target = np.einsum("th,ht->t", H, Wc) + self.b[targets]
        out = []
        for t, s in enumerate(steps):
            kk = min(k, len(s.top))
            out.append(Completion(
                index=t, char=enc.chars[t], word=enc.words[t], letters_seen=enc.letters_seen(t),
                target=targets[t],
                predictions=[(self.vocab.names[c], float(p)) for c, p in zip(s.top[:kk], s.top_p[:kk])],
                target_probability=float(np.exp(z_target[t] - s.lse))))
        return out

    def connectivity(self, text, at: int) -> ConnectivityResult:
        """:func:`connectivity` at position ``at`` of ``text``, cached by (prefix, class)."""
        enc = encode_text(text) if isinstance(text, str) else text
        n = resolve_position(enc, at=at)
        step = self._steps(enc)[n]
        cls, source = target_class(self.vocab, enc, self.logits_row(step), n)
        key = (enc.chars[:n + 1], cls)
        row = self.maps.get(key)
        if row is None:
            row = _connectivity_rows(self.model, enc.ids[:n + 1], [(n, cls)])[0]
            self.maps.put(key, row)
        values = np.zeros(len(enc), dtype=np.float64)
        values[:n + 1] = row
        return ConnectivityResult(text=enc, at=n, cls=cls, cls_word=self.vocab.names[cls], cls_source=source,
                                  values=values)


def training_curves(history: dict, max_points: int = 400) -> dict:
    """A checkpoint's loss history for a chart: the training loss averaged into at most
    ``max_points`` buckets of consecutive steps (mean step, mean loss), the validation
    loss as stored.  Plain lists; non-finite values dropped."""
    def pairs(xs, ys):
        xs, ys = np.asarray(xs, dtype=np.float64).ravel(), np.asarray(ys, dtype=np.float64).ravel()
        n = min(len(xs), len(ys))
        xs, ys = xs[:n], ys[:n]
        keep = np.isfinite(xs) & np.isfinite(ys)
        return xs[keep], ys[keep]

    out = {}
    xs, ys = pairs(history.get("train_step", []), history.get("train_loss", []))
    if len(xs) > max_points:
        edges = np.linspace(0, len(xs), max_points + 1).astype(int)
        xs = np.array([xs[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
        ys = np.array([ys[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    out["train_step"], out["train_loss"] = xs.tolist(), ys.tolist()
    xs, ys = pairs(history.get("val_step", []), history.get("val_loss", []))
    out["val_step"], out["val_loss"] = xs.tolist(), ys.tolist()
    return out
