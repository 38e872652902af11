"""Data: corpora (text8, built-in, files), the autocomplete protocol, batch order.

The data flows one way: text -> normalised words (:mod:`.corpora`) -> dataset
file (:mod:`.autocomplete`, HDF5) -> integer batches (:mod:`.batches`).
"""
from .autocomplete import (  # noqa: F401
    DEFAULT_MAX_LENGTH,
    DEFAULT_SEED,
    DEFAULT_VOCAB_SIZE,
    EOS,
    INPUT_SYMBOLS,
    PAD,
    SPACE,
    SPLITS,
    UNKNOWN,
    Dataset,
    build_dataset,
    cached_dataset,
    dataset_cache_path,
    load_or_build_dataset,
    output_vocabulary,
)
from .batches import BatchOrder, epoch_permutation  # noqa: F401
from .corpora import (  # noqa: F401
    TEXT8_SIZE,
    TEXT8_URL,
    Corpus,
    builtin_corpus,
    corpus_from_text,
    data_home,
    download_text8,
    load_corpus,
    normalize_text,
)
