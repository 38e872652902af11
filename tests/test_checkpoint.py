"""Checkpoints: round trip, atomic saving, and one-line errors for bad files."""
import errno
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from minirnn.training.checkpoint import FORMAT, load_checkpoint, peek_checkpoint, save_checkpoint
from minirnn.cli.main import cli
from minirnn.errors import MinirnnError
from minirnn.model import Model
from minirnn.optim import Adam

WORDS = [f"w{c}" for c in "abcdefghij"]


def _trained(dtype="float64", unit="nlstm", steps=3):
    model = Model(unit, hidden=6, layers=2, depth=2, output_vocab=12, seed=3, dtype=dtype, impl="reference")
    opt = Adam(model.params, lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        source = rng.integers(1, 28, size=(4, 7))
        target = rng.integers(0, 12, size=(4, 7))
        _, grads = model.loss_and_grads(source, target)
        opt.step(grads)
    return model, opt


def _save(path, model, opt, step=3):
    return save_checkpoint(
        path, model, opt, step=step, order_state={"epoch": 1, "position": 8},
        config={"unit": model.config["unit"], "hidden": 6, "lr": 1e-2, "steps": None, "corpus": "builtin"},
        output_words=["<eos>", "<unknown>"] + WORDS,
        history={"train_step": np.arange(1, 4), "train_loss": np.array([3.0, 2.5, 2.25]),
                 "val_step": np.array([2], dtype=np.int64), "val_loss": np.array([2.75])},
        extra={"note": "hello"})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_keeps_every_piece(tmp_path, dtype):
    model, opt = _trained(dtype)
    path = _save(tmp_path / "run.h5", model, opt)
    assert path.is_file() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]

    ck = load_checkpoint(path, impl="reference")
    for name, value in model.params.items():
        assert ck.model.params[name].dtype == np.dtype(dtype)
        assert np.array_equal(ck.model.params[name], value), name
    state = opt.state_dict()
    assert ck.optimizer_state["t"] == state["t"] == 3
    for key in ("lr", "beta1", "beta2", "eps"):
        assert ck.optimizer_state[key] == state[key]
    for key in ("m", "v"):
        for name in model.params:
            assert np.array_equal(ck.optimizer_state[key][name], state[key][name])
    assert ck.step == 3
    assert ck.order_state == {"epoch": 1, "position": 8}
    assert ck.config["unit"] == "nlstm" and ck.config["steps"] is None and ck.config["lr"] == 1e-2
    assert ck.model.config == model.config
    assert ck.output_words == ["<eos>", "<unknown>"] + WORDS
    assert ck.extra == {"note": "hello"}
    assert np.array_equal(ck.history["train_loss"], [3.0, 2.5, 2.25])
    assert ck.history["train_step"].dtype.kind == "i" and ck.history["val_step"].tolist() == [2]

    # an optimizer restored from it continues exactly like the original
    opt2 = Adam(ck.model.params)
    opt2.load_state_dict(ck.optimizer_state)
    rng = np.random.default_rng(1)
    source, target = rng.integers(1, 28, size=(4, 7)), rng.integers(2, 12, size=(4, 7))
    for m, o in ((model, opt), (ck.model, opt2)):
        o.step(m.loss_and_grads(source, target)[1])
    for name in model.params:
        assert np.array_equal(ck.model.params[name], model.params[name])
    assert peek_checkpoint(path)["step"] == 3


def test_layout_is_readable_with_h5py_alone(tmp_path):
    model, opt = _trained("float32")
    path = _save(tmp_path / "run.h5", model, opt)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT and int(f.attrs["step"]) == 3
        assert set(f["params"]) == set(model.params)
        assert f["params/dense.W"].dtype == np.float32
        assert np.array_equal(f["params/layer1.W0"][()], model.params["layer1.W0"])
        assert int(f["optimizer"].attrs["t"]) == 3 and set(f["optimizer/m"]) == set(model.params)
        assert f["vocabulary/output_words"][()].tolist()[2] == b"wa"
        assert dict(f["order"].attrs) == {"epoch": 1, "position": 8}


def test_an_hdf5_failure_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    """HDF5 raises RuntimeError, not OSError, when it fails: still one line, and nothing is lost.
    (A real full disk: tests/test_reliability_outputs.py.)"""
    model, opt = _trained()
    path = _save(tmp_path / "run.h5", model, opt)
    before = path.read_bytes()
    opt.step(model.loss_and_grads(np.ones((1, 3), dtype=np.int64), np.full((1, 3), 5))[1])

    calls = {"n": 0}
    original = h5py.Group.create_dataset

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # part way through the parameters
            raise RuntimeError("Can't write data (file write failed)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(MinirnnError, match="could not save checkpoint .*file write failed.*intact") as info:
        _save(path, model, opt, step=4)
    assert "\n" not in str(info.value)
    assert calls["n"] == 5
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    monkeypatch.undo()
    assert load_checkpoint(path, impl="reference").step == 3


def test_a_failure_in_the_rename_also_cleans_up(tmp_path, monkeypatch):
    model, opt = _trained()
    path = _save(tmp_path / "run.h5", model, opt)
    before = path.read_bytes()

    def no_rename(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(MinirnnError, match="could not save checkpoint"):
        _save(path, model, opt, step=5)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def _bad_files(tmp_path):
    model, opt = _trained()
    good = _save(tmp_path / "good.h5", model, opt)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not an HDF5 file at all\n" * 50)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(good.read_bytes())
    with h5py.File(damaged, "a") as f:
        del f["params/dense.W"]
    return {"missing": tmp_path / "nope.h5", "garbage": garbage, "truncated": truncated,
            "foreign": foreign, "damaged": damaged, "folder": tmp_path}


def test_bad_files_raise_one_line_errors(tmp_path):
    expected = {"missing": "does not exist", "garbage": "not a readable HDF5", "truncated": "not a readable HDF5|damaged",
                "foreign": "not a minirnn checkpoint", "damaged": "damaged", "folder": "folder"}
    for kind, path in _bad_files(tmp_path).items():
        with pytest.raises(MinirnnError, match=expected[kind]) as info:
            load_checkpoint(path, impl="reference")
        assert "\n" not in str(info.value), kind
        assert str(path.name) in str(info.value), kind


def test_bad_files_through_the_cli_print_one_line_and_fail(tmp_path):
    runner = CliRunner()
    for kind, path in _bad_files(tmp_path).items():
        result = runner.invoke(cli, ["evaluate", str(path), "--impl", "reference"])
        assert result.exit_code != 0, kind
        assert "Traceback" not in result.output, kind
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), (kind, result.output)


@pytest.mark.gpu
def test_a_gpu_checkpoint_opens_on_the_cpu(tmp_path):
    model = Model("lstm", hidden=6, layers=1, output_vocab=12, seed=3, dtype="float32", device="gpu")
    opt = Adam(model.params, lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(3):  # three steps, as the history _save writes
        opt.step(model.loss_and_grads(rng.integers(1, 28, size=(4, 7)), rng.integers(0, 12, size=(4, 7)))[1])
    path = _save(tmp_path / "gpu.h5", model, opt, step=3)
    ck = load_checkpoint(path, device="cpu", impl="reference")
    for name, value in model.params.items():
        assert isinstance(ck.model.params[name], np.ndarray)
        assert np.array_equal(ck.model.params[name], value.get()), name
    assert all(isinstance(v, np.ndarray) for v in ck.optimizer_state["m"].values())
