"""The unit registry: one entry per recurrent unit, and everything the rest of
minirnn needs to know about it.

The model, the fast paths, the presets, ``info``, ``gradcheck``, ``bench``, the
study and the command line all look units up here, so adding a unit is: its
reference class (the interface of ``base.py``), optionally its fast class (one
time loop for both devices, kernels/units.py), and one ``register(UnitSpec(...))`` call (docs/units.md walks through
an example).  A unit without fast kernels runs on its reference code.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from .gru import GRU
from .lstm import LSTM
from .nlstm import NestedLSTM

log = logging.getLogger("minirnn")

OPTIONS = ("depth", "outer_tanh")   # constructor options a unit may take, beyond its sizes


@dataclass(frozen=True)
class UnitSpec:
    """What minirnn knows about one unit.

    ``reference``: the reference class, built as ``reference(input_size, hidden_size, **options)``.
    ``fast``: "module:Class" of the fast unit (built from the reference's ``config()``;
    one class serves the CPU and the GPU), imported on first use, so that Numba and
    CuPy load only when needed (or the class itself).  None: no fast kernels.
    ``options``: the constructor options the unit takes (a subset of ``OPTIONS``).
    ``paper`` / ``demo``: hidden, layers and depth of the study's and the demo's configuration.
    """

    name: str
    label: str
    reference: type
    fast: str | type | None = None
    options: tuple[str, ...] = ()
    paper: dict = field(default_factory=lambda: {"hidden": 600, "layers": 1, "depth": 1})
    demo: dict = field(default_factory=lambda: {"hidden": 128, "layers": 1, "depth": 1})

    def __post_init__(self):
        unknown = set(self.options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unit {self.name!r}: unknown options {sorted(unknown)}; known: {', '.join(OPTIONS)}")

    def build(self, input_size: int, hidden_size: int, **options):
        """The reference unit; options it does not take (e.g. depth for an LSTM) are ignored."""
        return self.reference(input_size, hidden_size, **{k: v for k, v in options.items() if k in self.options})

    def describe(self, **options) -> str:
        """The unit's options in words, for headers: ", depth 2, outer tanh" (empty when it takes none)."""
        parts = []
        if "depth" in self.options and options.get("depth") is not None:
            parts.append(f"depth {options['depth']}")
        if "outer_tanh" in self.options and options.get("outer_tanh"):
            parts.append("outer tanh")
        return "".join(f", {p}" for p in parts)

    def takes(self, option: str) -> bool:
        return option in self.options

    def fast_class(self, device: str):
        """The fast class (for 'cpu' or 'gpu': the same), or None when the unit has none (logged once)."""
        path = self.fast
        if path is None:
            if (self.name, device) not in _NOTED:
                _NOTED.add((self.name, device))
                log.warning("minirnn: unit %s has no fast %s kernels; it runs on its reference code",
                            self.name, device.upper())
            return None
        if not isinstance(path, str):
            return path
        module, _, cls = path.partition(":")
        return getattr(importlib.import_module(module), cls)


_NOTED: set = set()
REGISTRY: dict[str, UnitSpec] = {}


def register(spec: UnitSpec) -> UnitSpec:
    """Add (or replace) a unit under ``spec.name``."""
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def unit_spec(name: str) -> UnitSpec:
    if name not in REGISTRY:
        load_entry_points()
    if name not in REGISTRY:
        raise ValueError(f"unknown unit {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


ENTRY_POINTS = "minirnn.units"
_LOADED: list = []


def load_entry_points() -> None:
    """Register the units installed packages offer (once per process): each entry point of the
    group ``minirnn.units`` names a function that registers its unit (e.g. ``register_elman``)."""
    if _LOADED:
        return
    _LOADED.append(True)

    for ep in entry_points(group=ENTRY_POINTS):
        ep.load()()


def _builtin() -> None:
    register(UnitSpec("gru", "GRU", GRU, fast="minirnn.kernels.units:FastGRU",
                      paper={"hidden": 600, "layers": 2, "depth": 1}, demo={"hidden": 128, "layers": 1, "depth": 1}))
    register(UnitSpec("lstm", "LSTM", LSTM, fast="minirnn.kernels.units:FastLSTM",
                      paper={"hidden": 600, "layers": 2, "depth": 1}, demo={"hidden": 128, "layers": 1, "depth": 1}))
    register(UnitSpec("nlstm", "Nested LSTM", NestedLSTM, fast="minirnn.kernels.units:FastNestedLSTM",
                      options=("depth", "outer_tanh"),
                      paper={"hidden": 600, "layers": 1, "depth": 2}, demo={"hidden": 128, "layers": 1, "depth": 2}))


_builtin()
