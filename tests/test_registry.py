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


@pytest.fixture
def elman():
    spec = importlib.util.spec_from_file_location("elman_unit", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = module.register_elman()
    R._NOTED.discard(("elman", "cpu"))
    yield entry
    R.unregister("elman")


def test_builtin_entries_are_complete():
    assert list(UNITS) == ["gru", "lstm", "nlstm"]
    for name, spec in UNITS.items():
        assert spec.name == name and spec.cpu and spec.cuda
        assert spec.fast_class("cpu").__name__.startswith("Fast")
        assert make_unit(name, 3, 4).name == name
    assert unit_spec("nlstm").takes("depth") and not unit_spec("lstm").takes("depth")
    assert make_unit("nlstm", 3, 4, depth=3, outer_tanh=True).config() == \
        {"input_size": 3, "hidden_size": 4, "depth": 3, "outer_tanh": True}
    assert unit_spec("nlstm").describe(depth=2, outer_tanh=True) == ", depth 2, outer tanh"
    assert unit_spec("gru").describe(depth=2, outer_tanh=True) == ""


def test_presets_take_sizes_from_the_registry():
    from minirnn.presets import preset

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
