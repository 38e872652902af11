"""Training checkpoints: one HDF5 file per run, written atomically.

The layout is documented field by field in ``docs/checkpoint-format.md``; in short::

    /                      attrs: format, format_version, minirnn_version, step,
                                  config (JSON), model_config (JSON), dtype, extra (JSON)
    /params/<name>         every model parameter (float32 or float64)
    /optimizer             attrs: t, lr, beta1, beta2, eps
    /optimizer/m/<name>    Adam's first moments
    /optimizer/v/<name>    Adam's second moments
    /order                 attrs: epoch, position (the BatchOrder state)
    /vocabulary/output_words   the output words, id order (ASCII bytes)
    /history/<key>         1-D arrays (train_step, train_loss, val_step, val_loss, ...)

Only NumPy arrays are written (device arrays are copied to the host first), so
a checkpoint written on a GPU opens on a machine without one.  Saving writes a
temporary file ``<name>.tmp-XXXX`` in the same folder, flushes and fsyncs it,
then renames it over the old file with ``os.replace``: a crash or a full disk
never leaves a half-written checkpoint under the real name.

The file's first 512 bytes (an HDF5 user block) hold the SHA-256 of the rest of
the file, and every dataset carries an HDF5 Fletcher-32 checksum; loading
verifies both (the digest before HDF5 reads a byte) and also refuses non-finite
parameters or moments, a parameter of the wrong dtype and an inconsistent step,
so damaged content is never used silently.  Checkpoints written before the
checksums existed still load, with a note (``Checkpoint.notes``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import CHECKED, atomic_hdf5, check_digest
from . import schema
from ..errors import MinirnnError
from .limits import LIMITS
import h5py
from .. import __version__
from ..model import Model

FORMAT = "minirnn-checkpoint"
FORMAT_VERSION = 1
# the groups holding datasets, in the order they are created
DATA_GROUPS = ("params", "optimizer", "optimizer/m", "optimizer/v", "vocabulary", "history")

__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint", "peek_checkpoint"]


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    model: object                      # a minirnn.model.Model with the saved parameters
    optimizer_state: dict              # Adam.state_dict() form: t, lr, beta1, beta2, eps, m, v
    step: int                          # optimizer steps taken so far
    order_state: dict                  # BatchOrder.state(): {'epoch': e, 'position': p}
    config: dict                       # the TrainConfig of the run, as a dict
    output_words: list                 # output vocabulary, id order
    history: dict                      # name -> 1-D NumPy array
    extra: dict = field(default_factory=dict)
    path: Path | None = None
    model_config: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)   # one-line remarks for the user (e.g. no checksums)


OLD_FILE_NOTE = ("{path} was written without checksums (by an older minirnn), so damage to it cannot be "
                 "detected; save it again (e.g. resume it) to add them")


# ----------------------------------------------------------------------------- saving

def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=json_default)


def json_default(value):
    """JSON for the NumPy scalars and arrays and the paths that settings and results carry
    (``json.dumps(..., default=json_default)``); anything else is refused, not stringified."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _write(f, model, optimizer, step, order_state, config, output_words, history, extra) -> None:
    params = model.host_params()
    dtype = next(iter(params.values())).dtype
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["minirnn_version"] = __version__
    f.attrs["step"] = np.int64(step)
    f.attrs["config"] = _json(dict(config))
    f.attrs["model_config"] = _json(dict(model.config))
    f.attrs["dtype"] = str(dtype)
    f.attrs["extra"] = _json(dict(extra or {}))

    state = optimizer.state_dict()
    arrays = {f"params/{name}": value for name, value in params.items()}
    for key in ("m", "v"):
        arrays.update({f"optimizer/{key}/{name}": value for name, value in state[key].items()})
    arrays["vocabulary/output_words"] = np.array([w.encode("ascii") for w in output_words], dtype=bytes)
    arrays.update({f"history/{key}": np.asarray(values) for key, values in dict(history).items()})
    for group in DATA_GROUPS:
        f.create_group(group)
    for name, value in arrays.items():
        f.create_dataset(name, data=value, **CHECKED)

    opt = f["optimizer"]
    opt.attrs["t"] = np.int64(state["t"])
    for key in ("lr", "beta1", "beta2", "eps"):
        opt.attrs[key] = np.float64(state[key])
    order = f.create_group("order")
    for key, value in dict(order_state).items():
        order.attrs[key] = np.int64(value)


def save_checkpoint(path, model, optimizer, *, step: int, order_state: dict, config: dict, output_words,
                    history: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically and return its path.

    ``config`` is a plain dict (e.g. ``dataclasses.asdict(TrainConfig)``),
    ``history`` maps names to 1-D sequences.  On any failure (a full disk, a
    folder without write permission) the temporary file is removed, a file
    already at ``path`` is left untouched, and :class:`MinirnnError` is raised.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise MinirnnError(f"checkpoint path {path} is a folder; give a file name such as {path / 'run.h5'}")
    # the run owns its checkpoint: `minirnn train` decided at its start whether it may replace it
    with atomic_hdf5(path, "checkpoint", when_full="free some space and resume with --resume", overwrite=True) as f:
        _write(f, model, optimizer, step, order_state, config, output_words, history, extra)
    return path


# ----------------------------------------------------------------------------- loading

def _fix(path: Path) -> str:
    return f"give the .h5 file written by 'minirnn train' (--out), or train again to recreate {path.name}"


def _open(path):
    """Open a checkpoint for reading, turning every way it can fail into one line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise MinirnnError(f"checkpoint {path} does not exist; check the path or train a model first with 'minirnn train'")
    if path.is_dir():
        raise MinirnnError(f"checkpoint {path} is a folder; give the .h5 file written by 'minirnn train'")
    try:
        digest = check_digest(path)
    except OSError as exc:
        raise MinirnnError(f"cannot read checkpoint {path} ({exc.strerror or exc}); check its "
                           "permissions") from None
    if digest == "bad":  # checked before HDF5 parses a byte: a damaged file must not reach it
        raise MinirnnError(f"checkpoint {path} is damaged (its SHA-256 does not match its content: changed or "
                           f"corrupted after it was written); {_fix(path)}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise MinirnnError(f"{path} is not a readable HDF5 file (corrupt, truncated or another kind of file); "
                           f"{_fix(path)}") from None
    try:
        fmt = f.attrs.get("format")
        version = int(f.attrs.get("format_version", -1))
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        f.close()
        raise _damaged(path, exc) from None
    if isinstance(fmt, bytes):
        fmt = fmt.decode("ascii", "replace")
    if fmt != FORMAT:
        f.close()
        raise MinirnnError(f"{path} is an HDF5 file but not a minirnn checkpoint; {_fix(path)}")
    if version != FORMAT_VERSION:
        f.close()
        raise MinirnnError(f"{path} has checkpoint format version {version}, this minirnn reads {FORMAT_VERSION}; "
                           "use the minirnn version that wrote it")
    return path, f, digest == "ok"


def _damaged(path: Path, exc: BaseException) -> MinirnnError:
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return MinirnnError(f"checkpoint {path} is damaged ({why}); {_fix(path)}")


def _str_attr(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def peek_checkpoint(path) -> dict:
    """The run configuration, model configuration, step and extra of a checkpoint, without loading arrays.

    ``checksums`` says whether the file carries checksums (older files do not).
    """
    path, f, checked = _open(path)
    try:
        with f:
            return {**_settings(f), "checksums": checked}
    except MinirnnError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
        raise _damaged(path, exc) from None


def _settings(f) -> dict:
    """The checked attributes of an open checkpoint: config, model_config, step, dtype, extra."""
    step = f.attrs["step"]
    if not (np.ndim(step) == 0 and np.issubdtype(np.asarray(step).dtype, np.integer)
            and int(step) <= LIMITS["steps"]):   # a negative one is named by _check_counters
        raise ValueError(f"step {str(step):.40} is not a step count")
    extra = json.loads(_str_attr(f.attrs.get("extra", "{}")))
    if not isinstance(extra, dict):
        raise ValueError("extra is not a JSON object")
    dtype = _str_attr(f.attrs["dtype"])
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype attribute {dtype!r:.40} is neither float32 nor float64")
    return {"config": schema.run_config(json.loads(_str_attr(f.attrs["config"]))),
            "model_config": schema.model_config(json.loads(_str_attr(f.attrs["model_config"]))),
            "step": int(step), "dtype": dtype, "extra": extra}


def _read_group(path: Path, group, checked: bool, size: int, expected: dict | None = None) -> dict:
    """Every dataset of a group; with ``checked``, each must carry its checksum (HDF5 verifies it on read).

    Before anything is read, the declared shapes must be ``expected`` (when given) and no dataset may
    declare more bytes than the file has (``size``): a crafted shape never becomes an allocation."""
    datasets = {}
    for name in group:
        dataset = group[name]
        if not isinstance(dataset, h5py.Dataset):
            if isinstance(dataset, h5py.Group):
                continue   # a subgroup (optimizer/m, optimizer/v): read on its own
            raise _damaged(path, ValueError(f"{group.name}/{name} is not a dataset"))
        if checked and not dataset.fletcher32:
            raise _damaged(path, ValueError(f"{dataset.name} has no checksum"))
        if dataset.size * dataset.dtype.itemsize > size:
            raise _damaged(path, ValueError(f"{dataset.name} declares {dataset.shape}, more than the file holds"))
        datasets[name] = dataset
    if expected is not None:
        schema.check_shapes({k: d.shape for k, d in datasets.items()}, expected, group.name)
    out = {}
    for name, dataset in datasets.items():
        try:
            out[name] = np.array(dataset[()])
        except OSError:
            raise _damaged(path, ValueError(f"{dataset.name} fails its checksum or cannot be read")) from None
    return out


def _check_arrays(path: Path, dtype: str, params: dict, optimizer_state: dict) -> None:
    """Refuse what a damaged or hand-edited file could hold: another dtype, NaN or infinity."""
    for where, arrays in (("params", params), ("optimizer/m", optimizer_state["m"]),
                          ("optimizer/v", optimizer_state["v"])):
        for name, value in arrays.items():
            if value.dtype != np.dtype(dtype):
                raise _damaged(path, ValueError(f"{where}/{name} has dtype {value.dtype}, expected {dtype}"))
            if not np.isfinite(value).all():
                raise _damaged(path, ValueError(f"{where}/{name} holds NaN or infinite values (saved from a "
                                                "diverged run?)"))


def _check_counters(path: Path, step: int, optimizer_state: dict, order_state: dict, history: dict) -> None:
    t = optimizer_state["t"]
    if step < 0 or t < 0:
        raise _damaged(path, ValueError(f"negative step ({step}) or optimizer step ({t})"))
    if t > step:  # minirnn train saves t == step; other writers may save an untrained optimizer (t = 0)
        raise _damaged(path, ValueError(f"step {step} but the optimizer took {t} steps"))
    steps = history.get("train_step")
    if steps is not None and steps.size and int(steps[-1]) != step:
        raise _damaged(path, ValueError(f"step {step} but the history ends at step {int(steps[-1])}"))
    if any(int(v) < 0 for v in order_state.values()):
        raise _damaged(path, ValueError("negative batch order state"))
    if order_state.get("epoch", 0) > step:   # every epoch takes at least one step
        raise _damaged(path, ValueError(f"epoch {order_state['epoch']} after only {step} steps"))


def load_checkpoint(path, device: str = "cpu", impl: str = "fast") -> Checkpoint:
    """Read a checkpoint and rebuild its model on ``device`` ('cpu' or 'gpu').

    Raises :class:`MinirnnError` (one line) for a missing, corrupt, truncated or
    foreign file, a failed checksum, non-finite or mistyped arrays and an
    inconsistent step.
    """
    path, f, checked = _open(path)
    notes = []
    try:
        size = path.stat().st_size
        with f:
            if not checked:
                notes.append(OLD_FILE_NOTE.format(path=path))
            settings = _settings(f)
            step, config, model_config = settings["step"], settings["config"], settings["model_config"]
            extra, dtype = settings["extra"], settings["dtype"]
            shapes = schema.parameter_shapes(model_config)
            params = _read_group(path, f["params"], checked, size, shapes)
            opt = f["optimizer"]
            optimizer_state = {"t": int(opt.attrs["t"]),
                               **{k: float(opt.attrs[k]) for k in ("lr", "beta1", "beta2", "eps")},
                               "m": _read_group(path, opt["m"], checked, size, shapes),
                               "v": _read_group(path, opt["v"], checked, size, shapes)}
            schema.adam(optimizer_state)
            order_state = {k: int(v) for k, v in f["order"].attrs.items()}
            words = _read_group(path, f["vocabulary"], checked, size,
                                {"output_words": (model_config["output_vocab"],)})["output_words"]
            output_words = [w.decode("ascii") for w in words]
            history = _read_group(path, f["history"], checked, size)
            schema.history(history)
    except MinirnnError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError, AttributeError,
            OverflowError) as exc:
        raise _damaged(path, exc) from None

    _check_arrays(path, dtype, params, optimizer_state)
    _check_counters(path, step, optimizer_state, order_state, history)
    try:   # the shapes were checked against model_config (schema.py): this allocates what the file holds
        model = Model(**model_config, device=device, dtype=dtype, impl=impl)
        model.load_params(params)
    except (ValueError, TypeError) as exc:
        raise _damaged(path, exc) from None
    if "epoch" not in order_state or "position" not in order_state:
        raise _damaged(path, KeyError("batch order state"))
    order_state = {"epoch": order_state["epoch"], "position": order_state["position"]}
    return Checkpoint(model=model, optimizer_state=optimizer_state, step=step, order_state=order_state,
                      config=config, output_words=output_words, history=history, extra=extra, path=path,
                      model_config=model_config, notes=notes)
