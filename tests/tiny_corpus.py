"""A tiny seeded text for training and evaluation tests: words of a 20-word
language drawn with Zipf-like frequencies, so a model can learn something fast."""
from __future__ import annotations

from pathlib import Path

import numpy as np

VOCAB = ["the", "of", "and", "cat", "sat", "on", "mat", "dog", "ran", "far", "a", "big", "red", "sun", "tree",
         "house", "river", "stone", "light", "quick"]


def write_tiny_corpus(path: Path, words: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(VOCAB) + 1)
    path.write_text(" ".join(rng.choice(VOCAB, size=words, p=p / p.sum())) + "\n")
    return path
