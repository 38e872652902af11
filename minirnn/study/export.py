"""Exporting a trained model to safetensors, and loading a model from either kind of file.

Layout and conventions: docs/export.md.  In short, one ``.safetensors`` file
holds every parameter, in the trained dtype, and string metadata that rebuilds
the model (``format``, ``format_version``, ``layout``, ``model_config``,
``dtype``, ``gate_order``, ``forget_bias``, ``forget_bias_in``, ``convention``,
``input_symbols``, ``output_words``, ``config``, ``extra``, ``step``).

- ``layout="minirnn"``: the tensors are ``Model.params`` under their own names
  (docs/model.md), unchanged.
- ``layout="torch"`` (LSTM only): PyTorch's state_dict names and layouts for
  ``embedding = nn.Embedding(28, E, padding_idx=0)``, ``lstm = nn.LSTM(E, H, L,
  batch_first=True)`` and ``dense = nn.Linear(H, V)``: the gate blocks of each
  kernel reordered from minirnn's [i, j, f, o] to PyTorch's [i, f, g, o],
  kernels transposed, the trained bias in ``bias_hh_l{l}`` and the forget gate's
  constant +1 in ``bias_ih_l{l}`` (1 on the f block, 0 elsewhere), so that the
  pre-activations are the same sums and the file converts back without loss.

The safetensors package is optional (``pip install 'minirnn[export]'``) and is
imported only when a safetensors file is written or read.  This module never
imports torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..training.atomic import DIGEST_MAGIC, HDF5_SIGNATURE, USERBLOCK, write_file, check_output
from ..training.checkpoint import Checkpoint, json_default, load_checkpoint
from ..training import schema
from ..errors import MinirnnError
from ..training.limits import LIMITS
import hashlib
from .. import __version__
from ..data import INPUT_SYMBOLS
from ..units import unit_spec
from ..model import Model

FORMAT = "minirnn-export"
FORMAT_VERSION = 1
LAYOUTS = ("minirnn", "torch")
SUFFIX = ".safetensors"

#: PyTorch's nn.LSTM gate blocks (its g is minirnn's candidate j).  minirnn's own order
#: and forget bias are each unit's (``gate_order``, ``forget_bias``: minirnn/units/base.py).
TORCH_GATE_ORDER = "i,f,g,o"
CONVENTION = {"minirnn": "row vectors: z = [x, h] W + b with W (inputs + hidden, gates x hidden)",
              "torch": "PyTorch: gates = x W_ih^T + b_ih + h W_hh^T + b_hh with W_ih (4H, inputs), W_hh (4H, H)"}

__all__ = ["FORMAT", "FORMAT_VERSION", "LAYOUTS", "export_model", "export_file", "read_export",
           "load_model_file", "is_safetensors", "torch_state_dict", "from_torch_state_dict"]

INSTALL = "pip install 'minirnn[export]'"


def _safetensors():
    """The safetensors package (imported lazily: it is an optional extra)."""
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise MinirnnError(f"safetensors files need the safetensors package; install it with: {INSTALL}") from None
    return safetensors


# ----------------------------------------------------------------------------- the torch layout (LSTM)

def _swap_middle_blocks(a, axis: int = -1):
    """[i, j, f, o] <-> [i, f, j, o] along ``axis`` (the permutation is its own inverse)."""
    i, j, f, o = np.split(np.asarray(a), 4, axis=axis)
    return np.ascontiguousarray(np.concatenate([i, f, j, o], axis=axis))


def _forget_constant(hidden: int, dtype) -> np.ndarray:
    """PyTorch's bias_ih of an exported layer: the forget gate's +1, 0 elsewhere ([i, f, g, o] blocks)."""
    c = np.zeros(4 * hidden, dtype=dtype)
    c[hidden:2 * hidden] = _unit_class("lstm").forget_bias
    return c


def torch_state_dict(params: dict, config: dict) -> dict:
    """The LSTM model's parameters under PyTorch's names and layouts (NumPy arrays).

    For layer l with minirnn kernel W (I+H, 4H) and bias b (4H,), blocks [i, j, f, o]:
    ``lstm.weight_ih_l{l}`` = P(W[:I])ᵀ (4H, I), ``lstm.weight_hh_l{l}`` = P(W[I:])ᵀ (4H, H),
    ``lstm.bias_hh_l{l}`` = P(b), ``lstm.bias_ih_l{l}`` = the +1 on the f block, where P
    reorders the column blocks to [i, f, g, o]; ``embedding.weight`` = E,
    ``dense.weight`` = dense.Wᵀ (V, H), ``dense.bias`` = dense.b.
    """
    if config["unit"] != "lstm":
        raise ValueError("the torch layout exists for the LSTM only")
    H = int(config["hidden"])
    out = {"embedding.weight": np.ascontiguousarray(params["embedding"])}
    for layer in range(int(config["layers"])):
        W, b = np.asarray(params[f"layer{layer}.W"]), np.asarray(params[f"layer{layer}.b"])
        inputs = W.shape[0] - H
        out[f"lstm.weight_ih_l{layer}"] = np.ascontiguousarray(_swap_middle_blocks(W[:inputs]).T)
        out[f"lstm.weight_hh_l{layer}"] = np.ascontiguousarray(_swap_middle_blocks(W[inputs:]).T)
        out[f"lstm.bias_ih_l{layer}"] = _forget_constant(H, b.dtype)
        out[f"lstm.bias_hh_l{layer}"] = _swap_middle_blocks(b)
    out["dense.weight"] = np.ascontiguousarray(np.asarray(params["dense.W"]).T)
    out["dense.bias"] = np.ascontiguousarray(params["dense.b"])
    return out


def from_torch_state_dict(tensors: dict, config: dict) -> dict:
    """The inverse of :func:`torch_state_dict`: minirnn's parameters from PyTorch's.

    The bias is P(bias_hh + (bias_ih − the +1 constant)), which is bias_hh exactly
    for a file written by minirnn (and still right after PyTorch trained both biases).
    """
    H = int(config["hidden"])
    params = {"embedding": tensors["embedding.weight"]}
    for layer in range(int(config["layers"])):
        w_ih, w_hh = tensors[f"lstm.weight_ih_l{layer}"], tensors[f"lstm.weight_hh_l{layer}"]
        b_ih, b_hh = tensors[f"lstm.bias_ih_l{layer}"], tensors[f"lstm.bias_hh_l{layer}"]
        if w_ih.ndim != 2 or w_hh.shape != (4 * H, H) or b_ih.shape != (4 * H,) or b_hh.shape != (4 * H,):
            raise ValueError(f"layer {layer} of the LSTM does not have PyTorch's shapes for hidden size {H}")
        params[f"layer{layer}.W"] = np.concatenate([_swap_middle_blocks(w_ih.T), _swap_middle_blocks(w_hh.T)], axis=0)
        params[f"layer{layer}.b"] = _swap_middle_blocks(b_hh + (b_ih - _forget_constant(H, b_ih.dtype)))
    params["dense.W"] = np.ascontiguousarray(tensors["dense.weight"].T)
    params["dense.b"] = tensors["dense.bias"]
    unexpected = sorted(set(tensors) - set(torch_state_dict(params, config)))
    if unexpected:
        raise ValueError(f"unexpected tensor {unexpected[0]!r}")
    return params


# ----------------------------------------------------------------------------- writing

def _metadata(model_config: dict, dtype: str, layout: str, output_words, config, extra, step) -> dict:
    unit = model_config["unit"]
    cls = _unit_class(unit)
    torch = layout == "torch"
    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "minirnn_version": __version__,
        "layout": layout,
        "unit": unit,
        "model_config": json.dumps({k: model_config[k] for k in schema.MODEL_FIELDS if k in model_config}, sort_keys=True),
        "dtype": dtype,
        "gate_order": TORCH_GATE_ORDER if torch else cls.gate_order,
        "forget_bias": "none" if cls.forget_bias is None else repr(cls.forget_bias),
        "forget_bias_in": "none" if cls.forget_bias is None else ("bias_ih" if torch else "equations"),
        "convention": CONVENTION[layout],
        "input_symbols": json.dumps(list(INPUT_SYMBOLS)),
        "output_words": json.dumps(list(output_words)),
        "config": json.dumps(dict(config or {}), sort_keys=True, default=json_default),
        "extra": json.dumps(dict(extra or {}), sort_keys=True, default=json_default),
        "step": str(int(step)),
    }


def _digest(meta: dict, tensors: dict) -> str:
    """The SHA-256 of an export's content: every metadata entry but the digest, and every tensor's
    name, dtype, shape and bytes (so a flipped bit anywhere is found before a value is used)."""
    h = hashlib.sha256()
    for key in sorted(k for k in meta if k != "sha256"):
        h.update(json.dumps([key, meta[key]]).encode("utf-8"))
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name])
        h.update(json.dumps([name, str(value.dtype), list(value.shape)]).encode("utf-8"))
        h.update(value.reshape(-1).view(np.uint8))
    return h.hexdigest()


OLD_FILE_NOTE = ("{path} was written without a checksum (by an older minirnn), so damage to it cannot be "
                 "detected; export it again to add one")


def _unit_class(unit: str):
    return unit_spec(unit).reference


def refuse_layout(unit: str, layout: str) -> None:
    """Raise the one-line refusal when ``layout`` cannot express ``unit``."""
    if layout not in LAYOUTS:
        raise MinirnnError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout != "torch" or _unit_class(unit).torch_layout:
        return

    raise MinirnnError(f"--layout torch is refused for the {unit_spec(unit).label}: "
                       f"{_unit_class(unit).torch_refusal}; export with --layout minirnn and use the module of "
                       f"docs/export.md (examples/torch_{unit}.py)")


def export_model(path, model, output_words, *, layout: str = "minirnn", config: dict | None = None,
                 extra: dict | None = None, step: int = 0, overwrite: bool = False, inputs=()) -> Path:
    """Write ``model`` to ``path`` as safetensors (atomically) and return the path.

    ``output_words`` is the output vocabulary (id order); ``config``, ``extra``
    and ``step`` are the run's settings as in a checkpoint (``minirnn evaluate``
    needs ``config``'s data settings: corpus, vocab_size, max_length, data_seed).
    An existing file is replaced only with ``overwrite``, an HDF5 file and the
    ``inputs`` (the file exported from) never (minirnn/training/atomic.py).
    """
    unit = model.config["unit"]
    refuse_layout(unit, layout)
    _refuse_hdf5(Path(path).expanduser())
    output_words = list(output_words)
    if len(output_words) != model.config["output_vocab"]:
        raise MinirnnError(f"{len(output_words)} output words for a model with {model.config['output_vocab']} "
                           "classes; give the vocabulary the model was trained with")
    params = model.host_params()
    dtype = str(next(iter(params.values())).dtype)
    tensors = torch_state_dict(params, model.config) if layout == "torch" else params
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = _metadata(model.config, dtype, layout, output_words, config, extra, step)
    meta["sha256"] = _digest(meta, tensors)
    data = _safetensors().numpy.save(tensors, metadata=meta)

    if Path(path).expanduser().is_dir():
        raise MinirnnError(f"export path {path} is a folder; give a file name such as {Path(path) / ('model' + SUFFIX)}")
    return write_file(path, data, "export", overwrite=overwrite, inputs=inputs)


def _refuse_hdf5(path: Path) -> None:
    """Never replace an HDF5 file (a checkpoint, with its training state) by an export."""
    try:
        with open(path, "rb") as f:
            head = f.read(USERBLOCK + len(HDF5_SIGNATURE))
    except OSError:
        return
    # plain HDF5, or a checkpoint with its digest in the user block (HDF5 then starts at byte 512)
    is_hdf5 = head.startswith((HDF5_SIGNATURE, DIGEST_MAGIC)) or head[USERBLOCK:].startswith(HDF5_SIGNATURE)
    if is_hdf5:
        raise MinirnnError(f"{path} is an HDF5 file (a checkpoint?); exporting over it would lose it: give the "
                           f"export another name, such as {path.with_suffix(SUFFIX).name}")


def export_file(source, out, layout: str = "minirnn", overwrite: bool = False) -> Path:
    """Export the model of ``source`` (a checkpoint, or an export) to ``out`` (never over ``source``)."""
    _refuse_hdf5(Path(out).expanduser())
    check_output(out, "export", overwrite=overwrite, inputs=(source,))   # before the model is loaded
    ck = load_model_file(source, device="cpu", impl="reference")
    return export_model(out, ck.model, ck.output_words, layout=layout, config=ck.config, extra=ck.extra,
                        step=ck.step, overwrite=overwrite, inputs=(source,))


# ----------------------------------------------------------------------------- reading

def is_safetensors(path) -> bool:
    """True for a path named ``*.safetensors`` or a file that starts like one (not HDF5)."""
    path = Path(path).expanduser()
    if path.suffix == SUFFIX:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and not head.startswith(HDF5_SIGNATURE) and head[8:9] == b"{"


def _fix(path: Path) -> str:
    return f"export it again with 'minirnn export CHECKPOINT {path.name}'"


def _damaged(path: Path, exc: BaseException) -> MinirnnError:
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return MinirnnError(f"export {path} is damaged ({why}); {_fix(path)}")


def _read(path: Path):
    """(metadata, tensors) of a safetensors file; every failure is one line."""
    if not path.exists():
        raise MinirnnError(f"export {path} does not exist; check the path or write it with 'minirnn export'")
    if path.is_dir():
        raise MinirnnError(f"export {path} is a folder; give the {SUFFIX} file written by 'minirnn export'")
    st = _safetensors()
    try:
        with st.safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (st.SafetensorError, OSError, ValueError, TypeError, RuntimeError, MemoryError):
        raise MinirnnError(f"{path} is not a readable safetensors file (corrupt, truncated or another kind of "
                           f"file); {_fix(path)}") from None
    if meta.get("format") != FORMAT:
        raise MinirnnError(f"{path} is a safetensors file but not a minirnn export (no minirnn metadata); "
                           f"{_fix(path)}")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise MinirnnError(f"{path} has export format version {meta.get('format_version')}, this minirnn reads "
                           f"{FORMAT_VERSION}; use the minirnn version that wrote it")
    return meta, tensors


def read_export(path, device: str = "cpu", impl: str = "fast") -> Checkpoint:
    """Rebuild the model of an export (either layout) on ``device``.

    Returns a :class:`~minirnn.training.checkpoint.Checkpoint` with ``model``,
    ``output_words``, ``config``, ``extra``, ``step``, ``path`` and
    ``model_config`` (no optimizer state, batch order or history: an export has none).
    """
    path = Path(path).expanduser()
    meta, tensors = _read(path)
    notes = []
    if "sha256" not in meta:
        notes.append(OLD_FILE_NOTE.format(path=path))
    elif meta["sha256"] != _digest(meta, tensors):   # before a value of the file is used
        raise MinirnnError(f"export {path} is damaged (its SHA-256 does not match its content: changed or "
                           f"corrupted after it was written); {_fix(path)}")
    try:
        layout = meta["layout"]
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r:.40}")
        model_config = schema.model_config(json.loads(meta["model_config"]))
        dtype = meta["dtype"]
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype {dtype!r:.40} is neither float32 nor float64")
        output_words = schema.words(json.loads(meta["output_words"]), model_config["output_vocab"], "output_words")
        config = schema.run_config(json.loads(meta.get("config", "{}")))
        extra = json.loads(meta.get("extra", "{}"))
        if not isinstance(extra, dict):
            raise ValueError("extra is not a JSON object")
        step = int(meta.get("step", 0))
        if not 0 <= step <= LIMITS["steps"]:
            raise ValueError(f"step {step} is not a step count")
        symbols = json.loads(meta["input_symbols"])
        if layout == "torch" and model_config["unit"] != "lstm":
            raise ValueError(f"the torch layout holds an LSTM, not a {model_config['unit']}")
        bad = sorted(k for k, v in tensors.items() if str(v.dtype) != dtype)
        if bad:
            raise ValueError(f"tensor {bad[0]} is {tensors[bad[0]].dtype}, the metadata says {dtype}")
        params = from_torch_state_dict(tensors, model_config) if layout == "torch" else tensors
        # before the model allocates anything: exactly the parameters its configuration implies, all finite
        schema.check_shapes({k: v.shape for k, v in params.items()}, schema.parameter_shapes(model_config), "export")
        schema.finite(params, "parameter ")
        model = Model(**model_config, device=device, dtype=dtype, impl=impl)
        model.load_params(params)
    except MinirnnError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as exc:   # json.JSONDecodeError is a ValueError
        raise _damaged(path, exc) from None
    if not isinstance(symbols, list) or list(symbols) != list(INPUT_SYMBOLS):
        raise MinirnnError(f"export {path} encodes its inputs with other symbols than this minirnn; use the "
                           "minirnn version that wrote it")
    return Checkpoint(model=model, optimizer_state={}, step=step, order_state={}, config=config,
                      output_words=output_words, history={}, extra=extra, path=path, model_config=model_config,
                      notes=notes)


def load_model_file(path, device: str = "cpu", impl: str = "fast") -> Checkpoint:
    """A model from a checkpoint (``.h5``) or an export (``.safetensors``, either layout).

    The kind is told by the file's name and first bytes; both give a
    :class:`~minirnn.training.checkpoint.Checkpoint` (an export's has no optimizer state
    or history).
    """
    if is_safetensors(path):
        return read_export(path, device=device, impl=impl)

    return load_checkpoint(path, device=device, impl=impl)
