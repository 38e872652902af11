"""`minirnn export` and safetensors files: exact round trips, the PyTorch layout of the LSTM,
the PyTorch modules of docs/export.md (examples/), the commands that read the files, and
one-line errors."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from minirnn.training.checkpoint import save_checkpoint
from minirnn.cli.main import cli
from minirnn.errors import MinirnnError
from minirnn.model import Model
from minirnn.optim import Adam

safetensors = pytest.importorskip("safetensors")
from minirnn.study.export import (export_model, is_safetensors, load_model_file, read_export,  # noqa: E402
                            torch_state_dict)

REPO = Path(__file__).resolve().parents[1]
NAMES = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "mat", "a", "dog"]
IDS = np.array([[1, 21, 9, 6, 1, 4, 2, 21, 1, 20, 15, 0, 0],       # " the cat so" + padding
                [1, 14, 2, 21, 1, 16, 15, 1, 21, 9, 6, 1, 15]])     # " mat on the m"
# unit, layers, depth, outer_tanh, embedding_size
CASES = [("gru", 2, 1, False, 5), ("lstm", 2, 1, False, 5), ("nlstm", 1, 2, False, None),
         ("nlstm", 2, 3, True, 5), ("nlstm", 1, 1, False, None)]


def perturbed(unit, layers=2, depth=2, outer_tanh=False, embedding_size=None, dtype="float64", seed=0):
    """A tiny model whose every parameter (biases included) holds a random value."""
    model = Model(unit=unit, hidden=4, layers=layers, depth=depth, outer_tanh=outer_tanh, output_vocab=len(NAMES),
                  embedding_size=embedding_size, seed=seed, dtype=dtype, impl="reference")
    rng = np.random.default_rng(seed + 100)
    params = {k: rng.normal(0, 0.7, size=v.shape) for k, v in model.host_params().items()}
    params["embedding"][0] = 0                      # the padding row, as training keeps it
    model.load_params(params)
    return model


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def write_checkpoint(path, model, config=None):
    save_checkpoint(path, model, Adam(model.params), step=7, order_state={"epoch": 0, "position": 7},
                    config=config or {"unit": model.config["unit"], "preset": "demo"}, output_words=NAMES,
                    history={"train_step": np.arange(1, 8)}, extra={"corpus_name": "test"})
    return path


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("unit,layers,depth,outer_tanh,emb", CASES)
def test_minirnn_layout_round_trip_is_exact(tmp_path, unit, layers, depth, outer_tanh, emb, dtype):
    model = perturbed(unit, layers, depth, outer_tanh, emb, dtype)
    path = export_model(tmp_path / "m.safetensors", model, NAMES, config={"unit": unit}, step=3)
    back = read_export(path, impl="reference").model
    assert back.config == model.config and back.dtype == model.dtype
    assert set(back.params) == set(model.params)
    for k, v in model.params.items():
        assert back.params[k].dtype == v.dtype and np.array_equal(back.params[k], v), k
    assert np.array_equal(back.logits(IDS), model.logits(IDS))
    ck = read_export(path)
    assert ck.output_words == NAMES and ck.step == 3 and ck.config == {"unit": unit}
    # plain safetensors sees minirnn's names, the trained dtype and the metadata
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        assert sorted(f.keys()) == sorted(model.params) and f.get_tensor("dense.W").dtype == np.dtype(dtype)
    assert meta["layout"] == "minirnn" and meta["unit"] == unit and meta["dtype"] == dtype
    assert meta["gate_order"] == ("r,u" if unit == "gru" else "i,j,f,o")
    assert meta["forget_bias"] == ("none" if unit == "gru" else "1.0")
    assert json.loads(meta["input_symbols"])[:3] == ["<pad>", " ", "a"] and json.loads(meta["output_words"]) == NAMES
    cfg = json.loads(meta["model_config"])
    assert (cfg["depth"], cfg["outer_tanh"], cfg["layers"]) == (depth, outer_tanh, layers)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_layout_names_shapes_and_exact_round_trip(tmp_path, dtype):
    model = perturbed("lstm", layers=2, embedding_size=5, dtype=dtype)
    path = export_model(tmp_path / "t.safetensors", model, NAMES, layout="torch")
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    H, V = 4, len(NAMES)
    assert {k: v.shape for k, v in tensors.items()} == {
        "embedding.weight": (28, 5), "dense.weight": (V, H), "dense.bias": (V,),
        "lstm.weight_ih_l0": (4 * H, 5), "lstm.weight_hh_l0": (4 * H, H), "lstm.bias_ih_l0": (4 * H,),
        "lstm.bias_hh_l0": (4 * H,), "lstm.weight_ih_l1": (4 * H, H), "lstm.weight_hh_l1": (4 * H, H),
        "lstm.bias_ih_l1": (4 * H,), "lstm.bias_hh_l1": (4 * H,)}
    assert meta["gate_order"] == "i,f,g,o" and meta["forget_bias_in"] == "bias_ih"
    # [i, j, f, o] -> [i, f, g, o]: PyTorch's f block is minirnn's third, its g block minirnn's second
    W, b = model.params["layer1.W"], model.params["layer1.b"]
    assert np.array_equal(tensors["lstm.weight_hh_l1"][H:2 * H], W[H:, 2 * H:3 * H].T)
    assert np.array_equal(tensors["lstm.weight_ih_l1"][2 * H:3 * H], W[:H, H:2 * H].T)
    assert np.array_equal(tensors["lstm.bias_hh_l1"][3 * H:], b[3 * H:])
    assert tensors["lstm.bias_ih_l1"].tolist() == [0.0] * H + [1.0] * H + [0.0] * (2 * H)   # the forget +1
    back = read_export(path, impl="reference").model
    for k, v in model.params.items():
        assert back.params[k].dtype == v.dtype and np.array_equal(back.params[k], v), k


# ----------------------------------------------------------------------------- PyTorch oracles

def _example(name):
    spec = importlib.util.spec_from_file_location(f"minirnn_example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_logits(module, ids):
    import torch

    with torch.no_grad():
        return module(torch.as_tensor(ids)).numpy()


@pytest.mark.torch
def test_torch_layout_loads_into_pytorchs_own_modules(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    from torch import nn

    model = perturbed("lstm", layers=2, embedding_size=5)
    path = tmp_path / "lstm.safetensors"
    assert run("export", write_checkpoint(tmp_path / "lstm.h5", model), path, "--layout", "torch").exit_code == 0
    expect = model.logits(IDS)

    net, words = _example("torch_lstm").load(str(path))       # the module of docs/export.md
    assert words == NAMES and isinstance(net.lstm, nn.LSTM)
    assert np.abs(_torch_logits(net, IDS) - expect).max() <= 1e-10

    # the bare modules the issue names, built by hand, load the same tensors
    state = load_file(str(path))
    emb = nn.Embedding(28, 5, padding_idx=0).double()
    lstm = nn.LSTM(5, 4, 2, batch_first=True).double()
    dense = nn.Linear(4, len(NAMES)).double()
    for prefix, module in (("embedding.", emb), ("lstm.", lstm), ("dense.", dense)):
        module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    with torch.no_grad():
        got = dense(lstm(emb(torch.as_tensor(IDS)))[0]).numpy()
    assert np.abs(got - expect).max() <= 1e-10


@pytest.mark.torch
@pytest.mark.parametrize("unit,layers,depth,outer_tanh,emb", [c for c in CASES if c[0] != "lstm"])
def test_examples_reproduce_gru_and_nested_lstm_logits(tmp_path, unit, layers, depth, outer_tanh, emb):
    pytest.importorskip("torch")
    model = perturbed(unit, layers, depth, outer_tanh, emb)
    path = tmp_path / f"{unit}.safetensors"
    assert run("export", write_checkpoint(tmp_path / f"{unit}.h5", model), path).exit_code == 0
    net, words = _example("torch_gru" if unit == "gru" else "torch_nlstm").load(str(path))
    assert words == NAMES
    assert np.abs(_torch_logits(net, IDS) - model.logits(IDS)).max() <= 1e-10


# ----------------------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A float64 LSTM trained for two steps on the built-in corpus, and its two exports."""
    with pytest.MonkeyPatch.context() as mp:      # conftest's isolated home, which starts after this fixture
        mp.setenv("MINIRNN_HOME", str(tmp_path_factory.getbasetemp() / "minirnn-home"))
        return _train_and_export(tmp_path_factory.mktemp("trained"))


def _train_and_export(folder):
    h5 = folder / "lstm.h5"
    result = CliRunner().invoke(cli, [
        "train", "--unit", "lstm", "--corpus", "builtin", "--out", str(h5), "--hidden", "5", "--layers", "2",
        "--vocab-size", "12", "--max-length", "40", "--batch-size", "16", "--impl", "reference", "--steps", "2",
        "--eval-every", "0", "--dtype", "float64", "--no-progress"])
    assert result.exit_code == 0, result.output
    paths = {"h5": h5}
    for layout in ("minirnn", "torch"):
        paths[layout] = folder / f"lstm-{layout}.safetensors"
        r = CliRunner().invoke(cli, ["export", str(h5), str(paths[layout]), "--layout", layout])
        assert r.exit_code == 0, r.output
        assert f"layout {layout}" in r.output and "float64" in r.output
        # the same count as training's, and the stored extras named (issue 19: 267,522 values vs 267,394)
        trained = re.search(r"([\d,]+) parameters", result.output).group(1)
        assert f"{trained} parameters in float64" in r.output and "padding row" in r.output, r.output
        assert ("second bias" in r.output) == (layout == "torch")
    return paths


def test_export_keeps_the_data_settings_and_evaluate_gives_the_same_metrics(trained):
    ck = load_model_file(trained["h5"])
    expect = json.loads(run("evaluate", trained["h5"], "--json", "--impl", "reference", "--limit", "12").output)
    for layout in ("minirnn", "torch"):
        ex = read_export(trained[layout])
        assert ex.config == ck.config and ex.extra == ck.extra and ex.step == ck.step == 2
        r = run("evaluate", trained[layout], "--json", "--impl", "reference", "--limit", "12")
        assert r.exit_code == 0, r.output
        got = json.loads(r.output)
        assert got.pop("checkpoint") == str(trained[layout])
        assert got["observations"] == 12 and got["step"] == 2
        assert got["cross_entropy"] == pytest.approx(expect["cross_entropy"], rel=1e-12)
        for key in ("accuracy", "accuracy_known", "positions", "baseline_word", "by_letters", "unit"):
            assert got[key] == expect[key], key
    text = run("evaluate", trained["minirnn"], "--impl", "reference", "--limit", "3", "--no-progress")
    assert text.exit_code == 0 and "lstm after 2 steps" in text.output and "cross-entropy" in text.output


@pytest.mark.parametrize("layout", ["minirnn", "torch"])
def test_complete_and_connectivity_read_exports(trained, layout):
    for args in (["complete", "{}", "the function returns", "--json", "-k", "3"],
                 ["connectivity", "{}", "the function returns", "--word", "returns", "--json"]):
        expect = run(*[a.format(trained["h5"]) for a in args])
        got = run(*[a.format(trained[layout]) for a in args])
        assert expect.exit_code == 0 and got.exit_code == 0, got.output
        a, b = json.loads(expect.output), json.loads(got.output)
        if args[0] == "complete":
            pa, pb = ([q for p in d["positions"] for q in p["predictions"]] for d in (a, b))
            assert [q["word"] for q in pa] == [q["word"] for q in pb]
            assert np.allclose([q["probability"] for q in pb], [q["probability"] for q in pa], rtol=1e-10, atol=0)
        else:
            assert b["class"] == a["class"] and np.allclose(b["values"], a["values"], rtol=1e-10, atol=0)


def test_export_of_an_export_converts_layouts_exactly(trained, tmp_path):
    again = tmp_path / "again.safetensors"
    assert run("export", trained["torch"], again).exit_code == 0     # torch -> minirnn layout
    a, b = load_model_file(trained["h5"]).model, read_export(again).model
    for k, v in a.params.items():
        assert np.array_equal(b.params[k], v), k


def test_the_kind_of_file_is_told_by_its_bytes(trained, tmp_path):
    renamed = tmp_path / "renamed.bin"
    renamed.write_bytes(trained["minirnn"].read_bytes())
    assert is_safetensors(renamed) and not is_safetensors(trained["h5"])
    assert load_model_file(renamed).model.config == load_model_file(trained["h5"]).model.config


# ----------------------------------------------------------------------------- refusals and errors

@pytest.mark.parametrize("unit,why", [("gru", "reset gate after the recurrent product"),
                                      ("nlstm", "no Nested LSTM module")])
def test_torch_layout_is_refused_for_gru_and_nested_lstm(tmp_path, unit, why):
    h5 = write_checkpoint(tmp_path / "m.h5", perturbed(unit))
    out = tmp_path / "m.safetensors"
    line = one_line_error(run("export", h5, out, "--layout", "torch"))
    assert why in line and "--layout minirnn" in line and f"examples/torch_{unit}.py" in line
    assert not out.exists() and list(tmp_path.iterdir()) == [h5]


def _bad_exports(tmp_path, good: Path) -> dict:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"definitely not safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-40])
    foreign = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"x": np.arange(3.0)}, str(foreign))
    with safetensors.safe_open(str(good), framework="numpy") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    damaged = tmp_path / "damaged.safetensors"
    safetensors.numpy.save_file({k: v for k, v in tensors.items() if k != "dense.W"}, str(damaged), metadata=meta)
    future = tmp_path / "future.safetensors"
    safetensors.numpy.save_file(tensors, str(future), metadata={**meta, "format_version": "2"})
    return {"does not exist": tmp_path / "nope.safetensors", "is a folder": tmp_path,
            "not a readable safetensors": garbage, "readable safetensors|damaged": truncated,
            "not a minirnn export": foreign, "damaged": damaged, "format version 2": future}


def test_export_never_replaces_a_checkpoint(tmp_path):
    h5 = write_checkpoint(tmp_path / "m.h5", perturbed("lstm"))
    before = h5.read_bytes()
    line = one_line_error(run("export", h5, h5))
    assert "is an HDF5 file" in line and "m.safetensors" in line
    assert h5.read_bytes() == before and list(tmp_path.iterdir()) == [h5]


def test_refusal_is_one_line_in_a_real_process(tmp_path):
    h5 = write_checkpoint(tmp_path / "m.h5", perturbed("nlstm"))
    proc = subprocess.run([sys.executable, "-m", "minirnn", "export", str(h5), str(tmp_path / "m.safetensors"),
                           "--layout", "torch"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "no Nested LSTM module" in proc.stderr


def test_bad_exports_are_one_line_errors(tmp_path):
    good = export_model(tmp_path / "good.safetensors", perturbed("lstm"), NAMES)
    for expected, path in _bad_exports(tmp_path, good).items():
        with pytest.raises(MinirnnError, match=expected) as info:
            read_export(path)
        assert "\n" not in str(info.value) and path.name in str(info.value), expected
        for command in (["evaluate", path], ["complete", path, "the cat"], ["export", path, tmp_path / "x.st"]):
            if expected == "is a folder" and command[0] == "complete":
                continue   # click refuses the folder itself (dir_okay=False), also in one line
            line = one_line_error(run(*command))
            assert path.name in line, (expected, command[0], line)
    assert not (tmp_path / "x.st").exists()


def test_evaluate_says_when_an_export_lacks_data_settings(tmp_path):
    h5 = write_checkpoint(tmp_path / "m.h5", perturbed("gru"))      # config without corpus settings
    out = tmp_path / "m.safetensors"
    assert run("export", h5, out).exit_code == 0
    assert "lacks the data setting" in one_line_error(run("evaluate", out))


def test_writing_is_atomic(tmp_path, monkeypatch):
    model = perturbed("lstm")
    out = export_model(tmp_path / "m.safetensors", model, NAMES)
    before = out.read_bytes()
    line = one_line_error(run("export", write_checkpoint(tmp_path / "m.h5", model), tmp_path))
    assert "is a folder" in line

    def refuse(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(MinirnnError, match="could not save export .*intact"):
        export_model(out, perturbed("lstm", seed=5), NAMES, overwrite=True)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5", "m.safetensors"]   # no temporary file left


def test_without_safetensors_the_error_names_the_extra(tmp_path, monkeypatch):
    model = perturbed("lstm")
    h5 = write_checkpoint(tmp_path / "m.h5", model)
    out = export_model(tmp_path / "m.safetensors", model, NAMES)
    for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "safetensors", None)           # import safetensors -> ImportError
    for command in (["export", h5, tmp_path / "n.safetensors"], ["evaluate", out], ["complete", out, "the cat"]):
        assert "pip install 'minirnn[export]'" in one_line_error(run(*command))
    assert load_model_file(h5).model.config == model.config           # checkpoints need no safetensors
    assert not (tmp_path / "n.safetensors").exists()


def test_torch_state_dict_is_for_the_lstm_only():
    with pytest.raises(ValueError):
        torch_state_dict(perturbed("gru").host_params(), perturbed("gru").config)


def test_the_docs_show_the_example_code_verbatim():
    page = (REPO / "docs" / "export.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- excerpt: (\S+) -->\n```python\n(.*?)```", page, flags=re.S)
    assert sorted(name for name, _ in blocks) == ["examples/torch_gru.py", "examples/torch_lstm.py",
                                                   "examples/torch_nlstm.py"]
    for name, code in blocks:
        assert code in (REPO / name).read_text(encoding="utf-8"), name
