"""The unit registry: one entry drives the model, the fast paths, presets and gradcheck;
adding a unit (the worked example of docs/units.md) is its class plus one entry."""
import importlib.util
import logging
import pathlib

import numpy as np
import pytest

from minirnn.units import UNITS, UnitSpec, make_unit, unit_spec
from minirnn.units import registry as R

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "elman_unit.py"


def _example():
    import sys

    spec = importlib.util.spec_from_file_location("elman_unit", EXAMPLE)
    module = sys.modules["elman_unit"] = importlib.util.module_from_spec(spec)   # as an import would
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def elman():
    """The example registered without its fast kernels: it runs on its reference code."""
    entry = _example().register_elman(fast=False)
    R._NOTED.discard(("elman", "cpu"))
    yield entry
    R.unregister("elman")


@pytest.fixture
def fast_elman():
    """The example registered with its fast kernels (Numba, and elman.cu for the GPU)."""
    from minirnn.kernels.cpu import KERNELS
    from minirnn.kernels.cuda import _source

    entry = _example().register_elman()
    yield entry
    R.unregister("elman")
    for name in ("elman_fwd_step", "elman_bwd_step"):
        KERNELS.pop(name)
    _source.EXTRA_FILES.clear()
    _source._KERNELS = None


def test_builtin_entries_are_complete():
    assert list(UNITS) == ["gru", "lstm", "nlstm"]
    for name, spec in UNITS.items():
        assert spec.name == name and spec.fast
        assert spec.fast_class("cpu") is spec.fast_class("gpu") and spec.fast_class("cpu").__name__.startswith("Fast")
        assert make_unit(name, 3, 4).name == name
    assert unit_spec("nlstm").takes("depth") and not unit_spec("lstm").takes("depth")
    assert make_unit("nlstm", 3, 4, depth=3, outer_tanh=True).config() == \
        {"input_size": 3, "hidden_size": 4, "depth": 3, "outer_tanh": True}
    assert unit_spec("nlstm").describe(depth=2, outer_tanh=True) == ", depth 2, outer tanh"
    assert unit_spec("gru").describe(depth=2, outer_tanh=True) == ""


def test_presets_take_sizes_from_the_registry():
    from minirnn.training.presets import preset

    for name, spec in UNITS.items():
        for p, sizes in (("paper", spec.paper), ("demo", spec.demo)):
            cfg = preset(p, name)
            assert {k: cfg[k] for k in sizes} == sizes


def test_bad_entries_and_names_are_refused():
    with pytest.raises(ValueError, match="unknown options"):
        UnitSpec("x", "X", object, options=("width",))
    with pytest.raises(ValueError, match="unknown unit 'nope'"):
        unit_spec("nope")


def test_a_new_unit_is_one_entry_and_runs_on_its_reference_code(elman, caplog):
    from minirnn.model import Model
    from minirnn.optim import Adam

    assert "elman" in UNITS
    with caplog.at_level(logging.WARNING, logger="minirnn"):
        model = Model(unit="elman", hidden=6, layers=2, depth=5, output_vocab=20, seed=0, dtype="float64")
        Model(unit="elman", hidden=6, layers=1, output_vocab=20, seed=1, dtype="float64")
    notes = [r.message for r in caplog.records if "no fast CPU kernels" in r.message]
    assert len(notes) == 1 and "elman" in notes[0]            # one line, once per process
    assert all(type(u).__name__ == "Elman" for u in model.units)
    rng = np.random.default_rng(0)
    source, target = rng.integers(1, 28, (4, 9)), rng.integers(0, 20, (4, 9))
    opt = Adam(model.params, lr=1e-2)
    losses = []
    for _ in range(15):
        loss, grads = model.loss_and_grads(source, target)
        opt.step(grads)
        losses.append(loss)
    assert losses[-1] < 0.9 * losses[0]                        # it learns


def test_a_new_unit_passes_the_gradient_check(elman):
    from minirnn.gradcheck import check_model_config

    report, description = check_model_config("elman", layers=2, hidden=4)
    assert description.startswith("gradcheck elman: 2 layer(s)")
    names = [r.name for r in report]
    assert names == ["embedding", "layer0.W", "layer0.b", "layer1.W", "layer1.b", "dense.W", "dense.b", "input.X",
                     "state0.layer0.h", "state0.layer1.h"]
    assert all(r.passed() for r in report), [(r.name, r.error) for r in report]


def test_info_counts_a_new_unit(elman):
    from minirnn.info import parameter_table

    t = parameter_table("elman", "demo")
    assert t["recurrent"] == (128 + 128) * 128 + 128 and t["depth"] is None


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def _elman_agrees(fast, ref, ids: bool):
    rng = np.random.default_rng(0)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in ref.init_params(rng, np.float64).items()}
    T, B, I, H = 6, 3, ref.input_size, ref.hidden_size
    x = rng.standard_normal((T, B, I))
    if ids:
        x = rng.integers(0, I, (T, B))
    onehot = (x[..., None] == np.arange(I)).astype(float) if ids else x
    state0, dstate_T = (rng.standard_normal((B, H)),), (rng.standard_normal((B, H)),)
    dhs = rng.standard_normal((T, B, H))
    hs_r, st_r, c_r = ref.forward(params, onehot, state0)
    dp_r, dx_r, ds_r = ref.backward(params, c_r, dhs, dstate_T)
    for _ in range(3):    # the GPU's recorded loops are captured and replayed from the second call on
        hs, st, cache = fast.forward(params, x, state0)
        dp, dx, ds = fast.backward(params, cache, dhs, dstate_T)
        del cache
        errors = [_rel(hs, hs_r), _rel(st[0], st_r[0]), _rel(ds[0], ds_r[0])] + [_rel(dp[k], dp_r[k]) for k in dp_r]
        assert max(errors) <= 1e-12 and (dx is None if ids else _rel(dx, dx_r) <= 1e-12)


@pytest.mark.parametrize("ids", [False, True])
def test_the_example_with_fast_kernels_agrees_with_its_reference(fast_elman, ids):
    from minirnn.kernels.units import FastUnit, fast_unit

    ref = make_unit("elman", 5, 4)
    fast = fast_unit(ref)
    assert isinstance(fast, FastUnit) and fast.takes_ids
    _elman_agrees(fast, ref, ids)


def test_the_example_runs_the_same_loop_on_the_gpu_stand_in(fast_elman, tmp_path):
    import cuda_standin
    from minirnn.kernels.units import fast_unit

    if cuda_standin.harness_command(tmp_path / "x.cpp", tmp_path / "x.so") is None:
        pytest.skip("no C++ compiler to build the host harness")
    backend = cuda_standin.HostBackend(cuda_standin.build_harness(tmp_path))   # with elman.cu's bodies
    ref = make_unit("elman", 5, 4)
    _elman_agrees(fast_unit(ref, "gpu", backend), ref, ids=False)


def test_memory_estimate_and_export_work_for_the_example(fast_elman, tmp_path):
    from minirnn.study.export import _read, export_model, read_export
    from minirnn.training.limits import estimate
    from minirnn.model import Model

    est = estimate("elman", hidden=8, layers=2, depth=1, output_vocab=10, batch_size=4, max_length=5,
                   dtype="float32")
    assert est["activations"] == 2 * 4 * 5 * 10 * 8 * 4       # the base unit's 10 vectors per position
    model = Model(unit="elman", hidden=8, layers=2, output_vocab=10, seed=0)
    path = export_model(tmp_path / "elman.safetensors", model, [f"w{i}" for i in range(10)])
    meta, tensors = _read(path)
    assert meta["unit"] == "elman" and meta["gate_order"] == "h" and meta["forget_bias"] == "none"
    assert all(np.array_equal(tensors[k], model.params[k]) for k in model.params)
    back = read_export(path).model
    ids = np.array([[3, 4, 5]])
    assert back.units[0].name == "elman" and np.array_equal(back.logits(ids), model.logits(ids))


def test_train_a_unit_registered_through_an_entry_point(tmp_path):
    """A package offering a unit (entry point group minirnn.units) makes it a --unit of every
    command: a real `minirnn train --unit elman` process, with the example as that package."""
    import os
    import subprocess

    from tiny_corpus import tiny_train_command, write_tiny_corpus

    dist = tmp_path / "site" / "elman_example-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: elman-example\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[minirnn.units]\nelman = elman_unit:register_elman\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(EXAMPLE.parent)]))
    corpus = write_tiny_corpus(tmp_path / "corpus.txt", 3000, seed=1)
    command = tiny_train_command(str(corpus), tmp_path / "elman.h5", "--steps", "3")
    command[command.index("gru")] = "elman"
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "elman.h5").is_file() and "no fast" not in proc.stderr
    bare = subprocess.run(command, capture_output=True, text=True, timeout=600)   # without the package
    assert bare.returncode == 2 and "'elman' is not one of" in bare.stderr
