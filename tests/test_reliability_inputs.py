"""What `evaluate` and the export reader accept: a rewritten corpus, damaged and crafted exports.

Each case once gave a number with exit status 0 (a different corpus, a NaN weight, a flipped exponent
bit) or a traceback (crafted metadata); now each is one line, or the right dataset.
"""
import json
import random
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tiny_corpus import one_line, tiny_train_config, write_tiny_corpus

from minirnn.cli.main import cli
from minirnn.errors import MinirnnError
from minirnn.study.evaluate import evaluate_checkpoint
from minirnn.model import Model
from minirnn.training.loop import train

safetensors = pytest.importorskip("safetensors")
import safetensors.numpy  # noqa: E402

from minirnn.study.export import _digest, export_model, read_export  # noqa: E402

NAMES = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "mat", "a", "dog"]


def evaluate(path, *more):
    return CliRunner().invoke(cli, ["evaluate", str(path), "--impl", "reference", "--no-progress", "--json", *more])


# ----------------------------------------------------------------------------- a rewritten corpus

def test_evaluate_never_uses_a_rewritten_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_HOME", str(tmp_path / "home"))
    corpus = write_tiny_corpus(tmp_path / "corpus.txt", words=1200, seed=7)
    out = tmp_path / "run.h5"
    train(tiny_train_config(str(corpus), out), progress=False, echo=None)
    first = json.loads(evaluate(out).output)

    words = corpus.read_text().split()
    random.Random(1).shuffle(words)                  # the same words in another order: another dataset
    corpus.write_text(" ".join(words) + "\n")
    again = evaluate(out)                            # the dataset cached for the recorded checksum serves
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["cross_entropy"] == first["cross_entropy"]

    shutil.rmtree(tmp_path / "home")                 # no cache: refused, never computed on the other text
    line = one_line(evaluate(out))
    assert "has changed since checkpoint" in line and "--corpus" in line
    with pytest.raises(MinirnnError, match="is not the text"):
        evaluate_checkpoint(out, corpus=str(corpus), impl="reference")


# ----------------------------------------------------------------------------- exports

def small_model():
    model = Model("lstm", hidden=4, layers=1, output_vocab=len(NAMES), seed=3, dtype="float64", impl="reference")
    model.params = {k: v + 0.01 * np.arange(v.size).reshape(v.shape) for k, v in model.params.items()}
    return model


@pytest.fixture
def exported(tmp_path):
    return export_model(tmp_path / "m.safetensors", small_model(), NAMES)


def crafted(path, out, change_meta=None, change_tensors=None, sign=True):
    """A copy of an export with its metadata or tensors changed; ``sign``: with a valid digest."""
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if change_meta:
        meta.update(change_meta)
    if change_tensors:
        change_tensors(tensors)
    if sign:
        meta["sha256"] = _digest(meta, tensors)
    safetensors.numpy.save_file(tensors, str(out), metadata=meta)
    return out


def nan_weight(tensors):
    tensors["dense.W"] = tensors["dense.W"].copy()
    tensors["dense.W"][0, 0] = np.nan


def test_a_damaged_export_is_refused(exported, tmp_path):
    assert read_export(exported).notes == []
    data = bytearray(exported.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    flipped = tmp_path / "flipped.safetensors"
    data[header + 7] ^= 0x40                          # the exponent of the first float64 weight
    flipped.write_bytes(bytes(data))
    unsigned = crafted(exported, tmp_path / "nan.safetensors", change_tensors=nan_weight, sign=False)
    for path in (flipped, unsigned):
        assert "SHA-256 does not match" in one_line(evaluate(path)), path
    # a NaN weight behind a valid digest (a buggy writer) is refused too
    signed = crafted(exported, tmp_path / "signed.safetensors", change_tensors=nan_weight)
    with pytest.raises(MinirnnError, match="dense.W holds NaN"):
        read_export(signed)


@pytest.mark.parametrize("meta, why", [
    ({"model_config": json.dumps({"unit": "lstm", "hidden": 10 ** 6, "layers": 1, "depth": 2, "input_vocab": 28,
                                  "output_vocab": 9, "seed": 3})}, "the model configuration says"),
    ({"model_config": "[1,2]"}, "model_config is a list"),
    ({"output_words": "7"}, "output_words is not a list of words"),
    ({"output_words": json.dumps(NAMES[:4])}, "holds 4 words for 9 classes"),
    ({"step": "-5"}, "step -5 is not a step count"),
    ({"dtype": "int8"}, "neither float32 nor float64"),
])
def test_crafted_export_metadata_is_one_line(exported, tmp_path, meta, why):
    path = crafted(exported, tmp_path / "crafted.safetensors", change_meta=meta)
    with pytest.raises(MinirnnError, match="is damaged") as info:
        read_export(path)
    assert why in str(info.value) and "\n" not in str(info.value)
    one_line(CliRunner().invoke(cli, ["complete", str(path), "the cat"]))


def test_an_export_without_a_digest_loads_with_a_note(exported, tmp_path):
    with safetensors.safe_open(str(exported), framework="numpy") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "sha256"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    old = tmp_path / "old.safetensors"
    safetensors.numpy.save_file(tensors, str(old), metadata=meta)
    ck = read_export(old)
    assert len(ck.notes) == 1 and "without a checksum" in ck.notes[0]
    with pytest.raises(MinirnnError, match="holds NaN"):       # its values are still checked
        read_export(crafted(old, tmp_path / "old-nan.safetensors", change_tensors=nan_weight, sign=False))
