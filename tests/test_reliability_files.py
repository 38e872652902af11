"""Damaged, hand-edited and old files; bad --out paths; permissions (real HDF5 files, real runs)."""
import os
import shutil
import stat

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tiny_corpus import tiny_train_config, write_tiny_corpus

from minirnn.training.atomic import CHECKED, USERBLOCK, check_digest, stamp_digest
from minirnn.training.checkpoint import load_checkpoint
from minirnn.cli.main import cli
from minirnn.data import load_or_build_dataset
from minirnn.errors import MinirnnError
from minirnn.training.loop import train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=1200, seed=7))


tiny = tiny_train_config


@pytest.fixture(scope="module")
def good(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run.h5"
    train(tiny(corpus, out), progress=False, echo=None)
    return out


def same_content(a, b) -> bool:
    def eq(x, y):
        return set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)

    return (eq(a.model.params, b.model.params) and eq(a.optimizer_state["m"], b.optimizer_state["m"])
            and eq(a.optimizer_state["v"], b.optimizer_state["v"]) and eq(a.history, b.history)
            and (a.step, a.config, a.output_words, a.extra, a.order_state, a.model_config)
            == (b.step, b.config, b.output_words, b.extra, b.order_state, b.model_config))


# ----------------------------------------------------------------------------- checksums

def test_a_flipped_byte_anywhere_is_refused_or_harmless(good, tmp_path):
    """200 single-byte flips spread over the whole file: each is refused with one line, or (in the user
    block's padding) changes nothing.  Before checksums, flips gave other losses silently."""
    original = load_checkpoint(good, impl="reference")
    data = good.read_bytes()
    flipped = tmp_path / "flipped.h5"
    refused = 0
    for offset in np.linspace(0, len(data) - 1, 200).astype(int):
        damaged = bytearray(data)
        damaged[offset] ^= 0x5A
        flipped.write_bytes(bytes(damaged))
        try:
            ck = load_checkpoint(flipped, impl="reference")
        except MinirnnError as exc:
            assert "\n" not in str(exc)
            refused += 1
            continue
        assert offset < USERBLOCK and same_content(ck, original), offset
    assert refused >= 195

    middle = bytearray(data)
    middle[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(middle))
    result = CliRunner().invoke(cli, ["evaluate", str(flipped), "--impl", "reference", "--no-progress"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "is damaged (its SHA-256 does not match" in result.output


def test_every_dataset_has_a_fletcher32_checksum_and_h5py_alone_reads_it(good, corpus, tmp_path):
    dataset = load_or_build_dataset(corpus, 12, 40, cache_dir=tmp_path)
    for path in (good, dataset.path):
        assert check_digest(path) == "ok"
        with h5py.File(path, "r") as f:
            names = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            assert names and all(f[name].fletcher32 for name in names), path
            assert f.userblock_size == USERBLOCK


def edited(good, tmp_path, edit):
    """A copy of the good checkpoint changed with h5py, its digest stamped again (a consistent file whose
    content is wrong, as a buggy writer or a hand edit would leave it)."""
    path = tmp_path / "edited.h5"
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        edit(f)
    stamp_digest(path)
    return path


def _set(name, value):
    def edit(f):
        data = f[name][()]
        data.flat[0] = value
        f[name][...] = data
    return edit


def _retype(f):
    value = f["params/embedding"][()]
    del f["params/embedding"]
    f["params"].create_dataset("embedding", data=(value * 100).astype(np.int32), **CHECKED)


def _attr(group, key, value):
    def edit(f):
        f[group].attrs[key] = np.int64(value)
    return edit


def _json_attr(key, change):
    """Rewrite a JSON attribute (``change`` maps the decoded value to the new one)."""
    import json

    def edit(f):
        f.attrs[key] = json.dumps(change(json.loads(f.attrs[key])))
    return edit


def _float_attr(group, key, value):
    def edit(f):
        f[group].attrs[key] = np.float64(value)
    return edit


def _replace(name, **dataset):
    """Replace a dataset by another one (``dataset``: create_dataset's arguments)."""
    def edit(f):
        del f[name]
        f.create_dataset(name, **dataset)
    return edit


def _without(key):
    return lambda config: {k: v for k, v in config.items() if k != key}


@pytest.mark.parametrize("edit, why", [
    # crafted files with a valid digest (each gave a traceback, a huge allocation or a wrong run before)
    (_json_attr("config", lambda c: [1, 2]), "config is a list, not a JSON object"),
    (_json_attr("model_config", _without("hidden")), "model_config has no 'hidden'"),
    (_json_attr("model_config", lambda c: {**c, "hidden": 10 ** 6}), "the model configuration says"),
    (_json_attr("model_config", lambda c: {**c, "hidden": "6"}), "model_config field 'hidden' is '6', not a int"),
    (_json_attr("config", lambda c: {**c, "vocab_size": 10 ** 30}), "config field 'vocab_size'"),
    (_replace("params/dense.W", shape=(10 ** 7, 10 ** 7), dtype="f4", chunks=(64, 64), **CHECKED),
     "declares (10000000, 10000000), more than the file holds"),
    (_replace("history/train_loss", data=np.zeros((4, 2)), **CHECKED), "history/train_loss is not a 1-D array"),
    (_replace("history/train_loss", data=np.array([b"a", b"b", b"c", b"d"]), **CHECKED),
     "history/train_loss is not a 1-D array of numbers"),
    (_float_attr("optimizer", "beta1", 1.0), "Adam's beta1 is 1.0, outside [0, 1)"),
    (_float_attr("optimizer", "beta2", 2.5), "Adam's beta2 is 2.5, outside [0, 1)"),
    (_float_attr("optimizer", "eps", 0.0), "Adam's eps is 0.0, not a positive finite number"),
    (_attr("order", "epoch", 2 ** 62), "epoch 4611686018427387904 after only 4 steps"),
    (_set("params/dense.W", np.nan), "params/dense.W holds NaN or infinite"),
    (_set("optimizer/v/layer0.W_g", np.inf), "optimizer/v/layer0.W_g holds NaN or infinite"),
    (_retype, "params/embedding has dtype int32, expected float32"),
    (_attr("/", "step", -1), "negative step"),
    (_attr("optimizer", "t", 9), "step 4 but the optimizer took 9 steps"),
    (_attr("/", "step", 7), "the history ends at step 4"),
    (_attr("order", "position", -3), "negative batch order"),
])
def test_wrong_but_consistent_content_is_refused(good, corpus, tmp_path, edit, why):
    path = edited(good, tmp_path, edit)
    before = path.read_bytes()
    with pytest.raises(MinirnnError, match="is damaged") as info:
        load_checkpoint(path, impl="reference")
    assert why in str(info.value) and "\n" not in str(info.value)
    # resuming it is refused too, and the file is left as it was (an int32 parameter was once cast and rewritten)
    with pytest.raises(MinirnnError, match="is damaged"):
        train(tiny(corpus, path, steps=6), resume=True, progress=False, echo=None)
    assert path.read_bytes() == before


def old_style_copy(good, path):
    """The checkpoint as minirnn wrote it before checksums: plain HDF5, no user block, no Fletcher-32."""
    with h5py.File(good, "r") as src, h5py.File(path, "w") as dst:
        dst.attrs.update(src.attrs)

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                dst.require_group(name).attrs.update(obj.attrs)
            else:
                dst.create_dataset(name, data=obj[()])
        src.visititems(copy)
    return path


def test_an_old_checkpoint_without_checksums_loads_with_a_note_and_resuming_adds_them(good, corpus, tmp_path):
    old = old_style_copy(good, tmp_path / "old.h5")
    assert check_digest(old) == "none"
    ck = load_checkpoint(old, impl="reference")
    assert same_content(ck, load_checkpoint(good, impl="reference"))
    assert len(ck.notes) == 1 and "without checksums" in ck.notes[0]
    result = CliRunner().invoke(cli, ["evaluate", str(old), "--impl", "reference", "--no-progress"])
    assert result.exit_code == 0 and "without checksums" in result.output, result.output
    notes = []
    train(tiny(corpus, old, steps=5), resume=True, progress=False, echo=lambda m, err=False: notes.append(m))
    assert any("without checksums" in n for n in notes)
    assert check_digest(old) == "ok" and load_checkpoint(old, impl="reference").notes == []


def test_zeroing_the_digest_does_not_switch_the_checks_off(good, corpus, tmp_path):
    """Zeroing the first 512 bytes once made a file an "older file": loaded with a note, trained and re-signed."""
    path = tmp_path / "zeroed.h5"
    data = bytearray(good.read_bytes())
    data[:USERBLOCK] = bytes(USERBLOCK)
    path.write_bytes(bytes(data))
    assert check_digest(path) == "bad"
    with pytest.raises(MinirnnError, match="is damaged .*SHA-256"):
        load_checkpoint(path, impl="reference")
    with pytest.raises(MinirnnError, match="is damaged"):
        train(tiny(corpus, path, steps=6), resume=True, progress=False, echo=None)
    assert path.read_bytes() == bytes(data)


def test_an_old_checkpoint_is_still_checked_and_never_re_signed_unverified(good, corpus, tmp_path):
    old = old_style_copy(good, tmp_path / "old.h5")
    with h5py.File(old, "a") as f:
        f["optimizer"].attrs["beta2"] = np.float64(1.5)   # no digest can find this: the range check does
    before = old.read_bytes()
    with pytest.raises(MinirnnError, match="Adam's beta2 is 1.5"):
        load_checkpoint(old, impl="reference")
    with pytest.raises(MinirnnError, match="Adam's beta2 is 1.5"):
        train(tiny(corpus, old, steps=6), resume=True, progress=False, echo=None)
    assert old.read_bytes() == before and check_digest(old) == "none"


def test_a_damaged_dataset_cache_is_rebuilt(corpus, tmp_path, capsys, console):
    first = load_or_build_dataset(corpus, 12, 40, cache_dir=tmp_path)
    data = bytearray(first.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.path.write_bytes(bytes(data))
    again = load_or_build_dataset(corpus, 12, 40, cache_dir=tmp_path, progress=True)
    assert "does not match; rebuilding" in capsys.readouterr().err
    assert np.array_equal(again.chars, first.chars) and check_digest(again.path) == "ok"


# ----------------------------------------------------------------------------- paths and permissions

def test_checkpoints_and_caches_follow_the_umask(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_HOME", str(tmp_path / "home"))
    previous = os.umask(0o027)
    try:
        result = train(tiny(corpus, tmp_path / "run.h5"), progress=False, echo=None)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "run.h5").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(result.dataset.path).st_mode) == 0o640


def _train_args(corpus, out):
    return ["train", "--unit", "gru", "--corpus", corpus, "--out", out, "--hidden", "6", "--vocab-size", "12",
            "--max-length", "40", "--batch-size", "16", "--steps", "3", "--no-progress"]


def test_a_bad_out_is_refused_before_the_first_step(corpus, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {str(a_file / "sub" / "run.h5"): f"{a_file} is a file, not a folder",
             "": "--out is empty",
             # fits 255 bytes, but its temporary name does not: once found only at the first save
             str(tmp_path / ("r" * 245 + ".h5")): "choose a shorter name"}
    # a folder that cannot be written (the reason varies: permission denied, read-only file system)
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o555)
        cases[str(locked / "run.h5")] = "choose a writable folder"
    elif os.path.isdir("/sys"):   # root writes into any read-only folder, but not into sysfs
        cases["/sys/run.h5"] = "choose a writable folder"
    for out, message in cases.items():
        result = CliRunner().invoke(cli, _train_args(corpus, out))
        assert result.exit_code == 1, (out, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
        assert message in result.output and "training gru" not in result.output, result.output


def test_the_library_checks_the_checkpoint_path_too(corpus, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(MinirnnError, match="is a file, not a folder") as info:
        train(tiny(corpus, tmp_path / "f" / "a" / "b.h5"), progress=False, echo=None)
    assert "File exists" not in str(info.value)
    with pytest.raises(MinirnnError, match="is a folder, not a file"):
        train(tiny(corpus, tmp_path), progress=False, echo=None)
    with pytest.raises(MinirnnError, match="give the checkpoint path"):
        train(tiny(corpus, " "), progress=False, echo=None)
