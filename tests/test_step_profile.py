"""benchmarks/step_profile.py's product recorder: the fast path makes exactly the
matrix products it is documented to make, and only the recurrent ones inside the
time loop (issue 4, deliverable 2)."""
import importlib.util
import pathlib

import numpy as np
import pytest

from minirnn.machine.bench import StepSetup, Stepper


@pytest.fixture(scope="module")
def profile():
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "step_profile.py"
    spec = importlib.util.spec_from_file_location("step_profile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# unit, layers, depth, products per time step and level (forward + backward)
CASES = [("gru", 2, 1, 4), ("lstm", 2, 1, 2), ("nlstm", 1, 3, 2)]


@pytest.mark.parametrize("unit,layers,depth,per_step", CASES)
def test_recorded_products_are_the_counted_work(profile, unit, layers, depth, per_step):
    setup = StepSetup(unit=unit, hidden=8, layers=layers, depth=depth, classes=40, batch=3, time=5,
                      dtype="float64", counted_fraction=0.7)
    stepper = Stepper(setup, "fast")
    with profile.ProductRecorder() as products:
        stepper.step()
    assert isinstance(np.matmul, np.ufunc)   # restored on leaving

    counted = int((np.asarray(stepper.target) >= 2).sum())
    work = profile.step_gflop(unit, setup, counted)
    assert products.gflop() == pytest.approx(work["recurrent"] + work["dense"], rel=1e-12)

    # Inside the time loop only the recurrent products remain: a fixed number per
    # step and level, each with `batch` rows; every other product spans all steps.
    levels = layers * depth
    in_loop = [a for a, _, _ in products.calls if a.shape[0] == setup.batch]
    assert len(in_loop) == per_step * levels * setup.time


def test_replay_makes_the_same_products(profile):
    setup = StepSetup(unit="lstm", hidden=8, layers=1, depth=1, classes=40, batch=3, time=4, dtype="float64")
    stepper = Stepper(setup, "fast")
    with profile.ProductRecorder() as products:
        stepper.step()
    written = [(a, b, out) for a, b, out in products.calls if out is not None]
    assert written
    for _, _, out in written:
        out[...] = np.nan
    products.replay()
    # Operands may have been overwritten by later products of the replay; the last one
    # writing each buffer is the one that counts, so check the final product only.
    a, b, out = written[-1]
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
