"""Named configurations.

``paper`` is the study's configuration (docs/study.md §2-3); ``demo`` is a small
model on the built-in corpus that learns visibly in about two minutes on two CPU
cores.  Every value can be overridden from the command line.
"""
from __future__ import annotations

from ..errors import MinirnnError
from ..units import UNITS

COMMON = {
    "paper": {"vocab_size": 16384, "max_length": 200, "batch_size": 64, "lr": 1e-3,
              "epochs": 2, "steps": None, "corpus": "text8",
              "eval_every": 500, "eval_batches": 20, "checkpoint_every": 500, "final_test": False},
    # demo: tuned on a two-core CPU (docs/training.md): 300 steps of 32 observations is about 2.7 epochs of
    # the built-in corpus; a high learning rate makes the small model learn visibly within the budget.
    "demo": {"vocab_size": 1024, "max_length": 100, "batch_size": 32, "lr": 2e-2,
             "epochs": None, "steps": 300, "corpus": "builtin",
             "eval_every": 50, "eval_batches": 4, "checkpoint_every": 100, "final_test": True},
}

PRESETS = ("paper", "demo")

#: The seed of the dataset's split and packing (the protocol's; docs/protocol.md), shared by training and
#: evaluation.
DEFAULT_DATA_SEED = 450849059


def preset(name: str, unit: str) -> dict:
    """The full configuration dict of a preset for one unit."""
    if name not in COMMON:
        raise MinirnnError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if unit not in UNITS:
        raise MinirnnError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    sizes = UNITS[unit].paper if name == "paper" else UNITS[unit].demo   # the unit's registry entry
    return {"unit": unit, **sizes, **COMMON[name]}
