"""Parameter counts of a configuration, without allocating the model."""
from __future__ import annotations

from .training.presets import preset
from .units import UNITS, make_unit

INPUT_SYMBOLS = 27  # trainable embedding rows: space and a..z (the padding row is fixed)


def parameter_table(unit: str, preset_name: str = "paper", overrides: dict | None = None) -> dict:
    """Counts per part for a preset (with overrides) -- the same sums Model.parameter_counts() gives."""
    cfg = {**preset(preset_name, unit), **(overrides or {})}
    hidden, classes = cfg["hidden"], cfg["vocab_size"] + 2
    recurrent = sum(make_unit(unit, hidden, hidden, depth=cfg["depth"]).num_params() for _ in range(cfg["layers"]))
    table = {"unit": unit, "hidden": hidden, "layers": cfg["layers"],
             "depth": cfg["depth"] if UNITS[unit].takes("depth") else None, "classes": classes,
             "embedding": INPUT_SYMBOLS * hidden, "recurrent": recurrent, "dense": hidden * classes + classes}
    table["total"] = table["embedding"] + table["recurrent"] + table["dense"]
    return table


def format_parameter_table(t: dict) -> str:
    depth = f", depth {t['depth']}" if t["depth"] is not None else ""
    head = f"{t['unit']}: {t['layers']} layer(s) of {t['hidden']} units{depth}, {t['classes']} output classes"
    rows = [("part", "parameters")] + [(k, f"{t[k]:,}") for k in ("embedding", "recurrent", "dense", "total")]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [head, ""] + [f"{a.ljust(w0)}  {b.rjust(w1)}" for a, b in rows]
    lines.insert(3, f"{'-' * w0}  {'-' * w1}")
    return "\n".join(lines)
