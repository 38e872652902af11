"""Bounds on the run's settings and a memory estimate made before anything large is allocated.

A typo such as ``--hidden 100000`` would otherwise ask NumPy for hundreds of
GiB and die with a traceback (or, worse, push the machine into swap).  The
estimate counts the big arrays of a training step:

- parameters, their gradients and Adam's two moments: 4 copies of every parameter;
- the recurrent layers' saved activations: ``batch * max_length`` positions, each
  holding a few vectors of ``hidden`` numbers per layer (more for deeper Nested LSTMs);
- the output layer's logits, probabilities and their gradient for one chunk of
  positions (the dense layer works on at most ``DEFAULT_CHUNK`` positions at a time).

It is a floor, not a promise (NumPy's temporaries come on top), so a run is
refused only when even the floor exceeds the memory available.
"""
from __future__ import annotations

import os

from ..errors import MinirnnError
from ..layers import DEFAULT_CHUNK
from ..units import make_unit

#: Largest accepted value of each integer setting: far above any sensible run, they stop typos whose
#: size could not even be estimated; sizes below them are judged by the memory estimate.
LIMITS = {
    "hidden": 1 << 20,
    "layers": 64,
    "depth": 64,
    "vocab_size": 1 << 24,
    "max_length": 100_000,
    "batch_size": 1 << 16,
    "steps": 10 ** 12,
    "epochs": 10 ** 6,
    "eval_every": 10 ** 12,
    "eval_batches": 10 ** 6,
    "checkpoint_every": 10 ** 12,
    "seed": 2 ** 32 - 1,
    "data_seed": 2 ** 32 - 1,
}

GIB = float(1 << 30)


def human(n: float) -> str:
    """A byte count for people: 6.1 kB, 190.3 MB, 84.1 GB."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def check_limit(name: str, value) -> None:
    limit = LIMITS.get(name)
    if limit is not None and value is not None and value > limit:
        shown = str(value) if len(str(value)) <= 20 else f"a number of {len(str(value))} digits"
        raise MinirnnError(f"{name} must be at most {limit:,}, got {shown}; give a smaller value")


def estimate(unit: str, hidden: int, layers: int, depth: int, output_vocab: int, batch_size: int,
             max_length: int, dtype: str, input_vocab: int = 28) -> dict:
    """Bytes needed by one training step: {'parameters', 'activations', 'output', 'total', 'count'}."""
    itemsize = 8 if str(dtype) == "float64" else 4
    layer = make_unit(unit, hidden, hidden, depth=depth)     # shapes only, no arrays
    recurrent = layer.num_params()
    count = (input_vocab * hidden + layers * recurrent + hidden * output_vocab + output_vocab)
    positions = batch_size * max_length
    parts = {
        "parameters": 4 * count * itemsize,
        "activations": layers * positions * layer.activation_vectors() * hidden * itemsize,
        "output": 3 * min(positions, DEFAULT_CHUNK) * output_vocab * itemsize,
    }
    parts["total"] = sum(parts.values())
    parts["count"] = count
    return parts


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a new allocation can get: the GPU's free memory, or the host's MemAvailable (None: unknown)."""
    if device == "gpu":
        try:
            import cupy

            return int(cupy.cuda.runtime.memGetInfo()[0])
        except Exception:  # no CuPy or no GPU: the device check reports that elsewhere
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(unit: str, hidden: int, layers: int, depth: int, output_vocab: int, batch_size: int,
                 max_length: int, dtype: str, device: str = "cpu", available: int | None = None) -> dict:
    """Refuse (MinirnnError, one line) a run whose estimated floor exceeds the available memory."""
    need = estimate(unit, hidden, layers, depth, output_vocab, batch_size, max_length, dtype)
    free = available_bytes(device) if available is None else available
    if free is not None and need["total"] > free:
        where = "on the GPU" if device == "gpu" else "of memory"
        raise MinirnnError(
            f"this run needs at least {need['total'] / GIB:.1f} GiB {where} ({need['count']:,} parameters: "
            f"{need['parameters'] / GIB:.1f} GiB with gradients and Adam's moments; activations "
            f"{(need['activations'] + need['output']) / GIB:.1f} GiB) but {free / GIB:.1f} GiB are available; "
            "use a smaller --hidden, --layers, --vocab-size, --batch-size or --max-length")
    return need
