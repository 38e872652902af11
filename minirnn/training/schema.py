"""What a file may hold: the fields of checkpoints and exports, with their types and ranges.

A file can carry a valid checksum and still hold what no minirnn run writes (a
buggy writer, a hand edit, a crafted file): a configuration that is a list, a
hidden size of a million, arrays declared far larger than the file, β1 = 1.
Every field a reader takes from a file is checked here *before* it is used, and
the arrays a file declares are compared with the shapes its model configuration
implies *before* anything is allocated; a file that fails gets one line from
its reader (``ValueError`` here, ``MinirnnError`` there).
"""
from __future__ import annotations

import math

import numpy as np

from .limits import LIMITS
from ..units import UNITS, make_unit

#: the model configuration's fields: name -> (type, smallest, largest); ``embedding_size`` and
#: ``outer_tanh`` may be missing (older files)
MODEL_FIELDS = {
    "unit": (str, None, None),
    "hidden": (int, 1, LIMITS["hidden"]),
    "layers": (int, 1, LIMITS["layers"]),
    "depth": (int, 1, LIMITS["depth"]),
    "input_vocab": (int, 2, 1 << 16),
    "output_vocab": (int, 3, LIMITS["vocab_size"] + 2),
    "embedding_size": (int, 1, LIMITS["hidden"]),
    "seed": (int, 0, 2 ** 64 - 1),
    "outer_tanh": (bool, None, None),
}
OPTIONAL_MODEL_FIELDS = ("embedding_size", "outer_tanh")

#: the run configuration's fields a reader uses, when present (None allowed where a run may leave it out)
RUN_FIELDS = {name: (int, 0, limit) for name, limit in LIMITS.items()}
RUN_FIELDS.update({"lr": (float, 0.0, math.inf), "unit": (str, None, None), "corpus": (str, None, None),
                   "dtype": (str, None, None), "preset": (str, None, None), "outer_tanh": (bool, None, None)})
RUN_FIELDS["max_length"] = (int, 2, LIMITS["max_length"])


def _field(where: str, name: str, value, kind, low, high):
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"{where} field {name!r} is {value!r:.40}, not a {kind.__name__}")
    if low is not None and not low <= value <= high:
        raise ValueError(f"{where} field {name!r} is {value}, outside [{low}, {high}]")


def model_config(value, where: str = "model_config") -> dict:
    """The model configuration of a file, checked: a dict with every field typed and in range."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} is a {type(value).__name__}, not a JSON object")
    for name, (kind, low, high) in MODEL_FIELDS.items():
        if name not in value:
            if name in OPTIONAL_MODEL_FIELDS:
                continue
            raise ValueError(f"{where} has no {name!r}")
        _field(where, name, value[name], kind, low, high)
    if value["unit"] not in UNITS:
        raise ValueError(f"{where} names an unknown unit {value['unit']!r}")
    return {k: value[k] for k in MODEL_FIELDS if k in value}


def run_config(value, where: str = "config") -> dict:
    """The run configuration of a file, checked: a dict whose known fields are typed and in range."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} is a {type(value).__name__}, not a JSON object")
    for name, (kind, low, high) in RUN_FIELDS.items():
        if value.get(name) is not None:
            _field(where, name, value[name], kind, low, high)
    if value.get("lr") is not None and not value["lr"] > 0:
        raise ValueError(f"{where} field 'lr' is {value['lr']}, not positive")
    return value


def parameter_shapes(config: dict) -> dict:
    """The shape of every parameter of the model of a checked ``config``, computed without allocating."""
    hidden, emb = config["hidden"], config.get("embedding_size", config["hidden"])
    shapes = {"embedding": (config["input_vocab"], emb)}
    for layer in range(config["layers"]):
        unit = make_unit(config["unit"], emb if layer == 0 else hidden, hidden, depth=config["depth"],
                         outer_tanh=config.get("outer_tanh", False))
        shapes.update({f"layer{layer}.{name}": tuple(shape) for name, shape in unit.param_shapes().items()})
    shapes["dense.W"] = (hidden, config["output_vocab"])
    shapes["dense.b"] = (config["output_vocab"],)
    return shapes


def check_shapes(declared: dict, expected: dict, where: str) -> None:
    """The arrays a file declares must be exactly the expected ones (names and shapes)."""
    for name in sorted(set(expected) | set(declared)):
        if name not in declared:
            raise ValueError(f"{where} lacks {name}")
        if name not in expected:
            raise ValueError(f"{where} holds an unexpected {name}")
        if tuple(declared[name]) != tuple(expected[name]):
            raise ValueError(f"{where}/{name} has shape {tuple(declared[name])}, the model configuration says "
                             f"{tuple(expected[name])}")


def adam(state: dict) -> None:
    """Adam's settings as stored: a division by zero (β1 = 1) or a step of NaN are refused here."""
    for name in ("lr", "eps"):
        if not (math.isfinite(state[name]) and state[name] > 0):
            raise ValueError(f"Adam's {name} is {state[name]}, not a positive finite number")
    for name in ("beta1", "beta2"):
        if not 0 <= state[name] < 1:
            raise ValueError(f"Adam's {name} is {state[name]}, outside [0, 1)")


def history(arrays: dict) -> None:
    """Every history entry is a 1-D array of numbers."""
    for name, value in arrays.items():
        if value.ndim != 1 or value.dtype.kind not in "iuf":
            raise ValueError(f"history/{name} is not a 1-D array of numbers ({value.dtype}, {value.ndim}-D)")
    for group in (("train_step", "train_epoch", "train_loss"), ("val_step", "val_loss")):
        lengths = {len(arrays[k]) for k in group if k in arrays}
        if len(lengths) > 1:
            raise ValueError(f"history entries {', '.join(group)} differ in length")


def words(value, count: int, where: str) -> list:
    """An output vocabulary: ``count`` strings."""
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ValueError(f"{where} is not a list of words")
    if len(value) != count:
        raise ValueError(f"{where} holds {len(value)} words for {count} classes")
    return value


def finite(arrays: dict, where: str) -> None:
    for name, value in arrays.items():
        if not np.isfinite(value).all():
            raise ValueError(f"{where}{name} holds NaN or infinite values (saved from a diverged run?)")
