"""One definition per shared CLI option: every command offering --device, --impl or --outer-tanh
offers the same choices and default (they come from cli/options.py)."""
import importlib

import pytest

from minirnn.cli.main import COMMANDS


def _params(name):
    module, function, _ = COMMANDS[name]
    command = getattr(importlib.import_module(f"minirnn.cli.{module}"), function)
    return {p.name: p for p in command.params}


# Deliberate differences: bench's --impl adds "both"; gradcheck checks a tiny model by default; doctor's
# --device says which checks must pass (auto: the GPU's are reported, not required).
OWN = {("bench", "impl"), ("gradcheck", "hidden"), ("gradcheck", "layers"), ("doctor", "device")}


@pytest.mark.parametrize("option", ["device", "impl", "outer_tanh", "unit", "depth", "hidden", "layers", "precision"])
def test_shared_options_agree_across_commands(option):
    seen = {}
    for name in COMMANDS:
        p = _params(name).get(option)
        if p is None or (name, option) in OWN:
            continue
        seen[name] = (getattr(p.type, "choices", None), p.default, p.help)
    assert len(seen) >= 2, seen
    assert len(set(seen.values())) == 1, seen
