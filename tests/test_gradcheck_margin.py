"""The gradient check's floor leaves a margin over the stencil's noise (docs/gradcheck.md [GC-F2])."""
import numpy as np
import pytest

import minirnn.gradcheck as gc
from minirnn.units import GRU, NestedLSTM

TOL = gc.DEFAULT_TOLERANCE
MEASURED_NOISE = 1e-12     # worst |a - n| / max(1, |f|) measured on small entries (scripts/gradcheck_noise.py)


@pytest.mark.parametrize("f_value", [0.3, 1.0, 250.0])
def test_entries_below_the_floor_are_held_to_1e_11_times_max_1_f(f_value):
    scale = max(1.0, f_value)
    tiny = np.array([3e-9 * scale, 0.0])
    # ten times the noise estimate is exactly the bound, with nothing to spare
    assert gc.FLOOR * TOL == pytest.approx(10 * MEASURED_NOISE)
    assert gc.relative_error(tiny, tiny + 5e-12 * scale, f_value) <= TOL          # 5x the noise: passes
    assert gc.relative_error(tiny, tiny - 9e-12 * scale, f_value) <= TOL
    assert gc.relative_error(tiny, tiny + 2e-11 * scale, f_value) > TOL           # 20x: a real difference
    # above the floor the comparison stays relative
    big = np.array([0.5 * scale])
    assert gc.relative_error(big, big * (1 + 5e-7), f_value) <= TOL
    assert gc.relative_error(big, big * (1 + 1e-5), f_value) > TOL


@pytest.mark.parametrize("unit", [GRU(3, 4), NestedLSTM(4, 3, depth=2)], ids=["gru", "nlstm"])
def test_a_correct_gradient_passes_with_five_times_the_noise_added(unit, monkeypatch):
    rng = np.random.default_rng(5)
    exact = gc.numeric_derivative

    def noisy(f, a, index, h=gc.DEFAULT_STEP):
        value = exact(f, a, index, h)
        return value + rng.choice([-1.0, 1.0]) * 5 * MEASURED_NOISE * max(1.0, abs(float(f())))

    clean = max(r.error for r in gc.check_unit(unit, T=3, B=2, seed=2))
    monkeypatch.setattr(gc, "numeric_derivative", noisy)
    report = gc.check_unit(unit, T=3, B=2, seed=2)
    assert clean <= TOL / 10
    # five times the noise estimate uses about half of the tolerance
    assert max(r.error for r in report) <= 0.6 * TOL, gc.format_report(report)


def test_a_relative_error_of_1e_5_fails():
    x = np.linspace(-1.0, 1.0, 7)

    def f():
        return float(np.sum(np.sin(x)) + 3.0)

    good = {"x": np.cos(x)}
    assert gc.check_tensors(f, {"x": x}, good)[0].passed()
    bad = {"x": np.cos(x) * (1 + 1e-5)}          # relative error 1e-5 on every entry
    assert not gc.check_tensors(f, {"x": x}, bad)[0].passed()
