"""Every file reader against randomly damaged and crafted files (property-style, seeded, a few seconds).

The readers: checkpoints (evaluate, complete, connectivity, plot, serve, export, train --resume), exports
and dataset files.  Each case is a good file with flipped bytes, cut short, replaced by random bytes, or
edited and *signed again* (a valid digest around content no minirnn writes: the checks behind the
digest must hold on their own).  The property: the reader raises MinirnnError with one line, or what it
returns holds only finite numbers -- never another exception (a traceback), never a silent NaN.  A
sample of the cases also goes through the real command line in one process each.
"""
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from tiny_corpus import tiny_train_config, write_tiny_corpus

from minirnn.training.atomic import CHECKED, stamp_digest
from minirnn.training.checkpoint import load_checkpoint
from minirnn.data import Dataset
from minirnn.errors import MinirnnError
from minirnn.training.loop import train

CASES = 120          # per reader and kind of damage: a few hundred files in all

# values a crafted field may take: wrong types, huge, negative, not finite, empty
POOL = [None, True, -1, 0, 1, 2, 2 ** 62, 10 ** 30, 1e308, float("nan"), float("inf"), -0.5, 0.5, 1.0, "7", "",
        "gru", [1, 2], [], {}, {"a": 1}]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    corpus = write_tiny_corpus(folder / "tiny.txt", words=1200, seed=7)
    result = train(tiny_train_config(str(corpus), folder / "run.h5", steps=3), progress=False, echo=None)
    found = {"checkpoint": folder / "run.h5", "dataset": result.dataset.path}
    if _has_safetensors():
        from minirnn.study.export import export_file

        found["export"] = export_file(folder / "run.h5", folder / "run.safetensors")
    return found


def _has_safetensors() -> bool:
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return False
    return True


def read(kind, path):
    """The reader of ``kind``; returns the arrays it produced."""
    if kind == "dataset":
        ds = Dataset.load(path)
        return [ds.chars, ds.targets]
    if kind == "export":
        from minirnn.study.export import read_export

        ck = read_export(path, impl="reference")
    else:
        ck = load_checkpoint(path, impl="reference")
        arrays = list(ck.optimizer_state["m"].values()) + list(ck.optimizer_state["v"].values())
        assert all(0 <= ck.optimizer_state[k] < 1 for k in ("beta1", "beta2")) and ck.optimizer_state["eps"] > 0
        return list(ck.model.params.values()) + arrays
    return list(ck.model.params.values())


def holds(kind, path, case):
    """The property, for one file."""
    try:
        arrays = read(kind, path)
    except MinirnnError as exc:
        assert "\n" not in str(exc), (case, str(exc))
        return "refused"
    for a in arrays:
        assert a.dtype.kind not in "fc" or np.isfinite(a).all(), case
    return "read"


# ----------------------------------------------------------------------------- kinds of damage

def flipped(data: bytes, rng) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        out[int(rng.integers(len(out)))] ^= int(rng.integers(1, 256))
    return bytes(out)


def cut(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(len(data)))]


def noise(data: bytes, rng) -> bytes:
    head = data[: int(rng.integers(0, 600))] if rng.random() < 0.5 else b""   # sometimes a valid start
    return head + rng.integers(0, 256, size=int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()


def _random_value(rng):
    return POOL[int(rng.integers(len(POOL)))]


def _random_array(rng, text: bool = True):
    return np.asarray(_random_values(rng, text))       # NumPy makes 0-d results scalars


def _random_values(rng, text):
    shape = tuple(int(n) for n in rng.integers(0, 5, size=int(rng.integers(0, 3))))
    kind = int(rng.integers(4 if text else 3))
    if kind == 0:
        return np.full(shape, [np.nan, np.inf, 1e308, -1.0, 0.0][int(rng.integers(5))], dtype=np.float64)
    if kind == 1:
        return np.zeros(shape, dtype=np.int32) - 3
    if kind == 2:
        return rng.normal(size=shape).astype(np.float32) * 1e3
    return np.full(shape, b"x", dtype="S3")


def edit_hdf5(path, rng) -> str:
    """Change one field of an HDF5 file (an attribute, a JSON field, a dataset) and sign it again."""
    with h5py.File(path, "a") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        holders = [f] + [f[n] for n in ("optimizer", "order") if n in f]
        choice = rng.random()
        if choice < 0.4:
            holder = holders[int(rng.integers(len(holders)))]
            key = list(holder.attrs)[int(rng.integers(len(holder.attrs)))]
            value = holder.attrs[key]
            text = value.decode() if isinstance(value, bytes) else value
            if isinstance(text, str) and text.startswith("{"):       # a JSON field: change one of its entries
                decoded = json.loads(text)
                field = list(decoded)[int(rng.integers(len(decoded)))] if decoded else "hidden"
                decoded[field] = _random_value(rng)
                holder.attrs[key] = json.dumps(decoded)
                what = f"{key}.{field} = {decoded[field]!r}"
            else:
                new = _random_value(rng)
                storable = isinstance(new, (bool, float, str)) or (isinstance(new, int) and abs(new) < 2 ** 63)
                holder.attrs[key] = new if storable else json.dumps(new)    # HDF5 has no list or huge int
                what = f"{key} = {new!r}"
        elif choice < 0.8:
            name = names[int(rng.integers(len(names)))]
            new = _random_array(rng)
            del f[name]
            f.create_dataset(name, data=new, **(CHECKED if new.ndim and new.size else {}))   # HDF5 filters need data
            what = f"{name} -> {new.dtype} {new.shape}"
        else:                                                         # the same shape and dtype, one bad value
            name = names[int(rng.integers(len(names)))]
            data = f[name][()]
            if data.dtype.kind != "f" or data.size == 0:
                return edit_hdf5(path, rng) if rng.random() < 0.9 else "nothing"
            data.flat[int(rng.integers(data.size))] = [np.nan, np.inf, -np.inf, 1e38][int(rng.integers(4))]
            f[name][...] = data
            what = f"{name} holds a non-finite or huge value"
    stamp_digest(path)
    return what


def edit_export(path, rng) -> str:
    """Change one metadata entry or one tensor of an export and sign it again (a valid digest)."""
    import safetensors
    import safetensors.numpy

    from minirnn.study.export import _digest

    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if rng.random() < 0.5:
        key = sorted(meta)[int(rng.integers(len(meta)))]
        value = _random_value(rng)
        if rng.random() < 0.5 and meta[key].startswith("{"):
            decoded = json.loads(meta[key])
            field = list(decoded)[int(rng.integers(len(decoded)))] if decoded else "x"
            decoded[field] = value
            meta[key] = json.dumps(decoded)
            what = f"{key}.{field} = {value!r}"
        else:
            meta[key] = json.dumps(value) if rng.random() < 0.7 else str(value)
            what = f"{key} = {meta[key]!r}"
    else:
        name = sorted(tensors)[int(rng.integers(len(tensors)))]
        tensors[name] = _random_array(rng, text=False) if rng.random() < 0.5 else np.where(
            rng.random(tensors[name].shape) < 0.1, np.nan, tensors[name]).astype(tensors[name].dtype)
        what = f"tensor {name} changed"
    meta["sha256"] = _digest(meta, tensors)
    safetensors.numpy.save_file(tensors, str(path), metadata=meta)
    return what


@pytest.mark.parametrize("kind", ["checkpoint", "export", "dataset"])
def test_every_reader_refuses_in_one_line_or_reads_finite_numbers(files, kind, tmp_path):
    if kind not in files:
        pytest.skip("exports need the safetensors package")
    good = files[kind]
    data = good.read_bytes()
    rng = np.random.default_rng(20)
    path = tmp_path / good.name
    outcomes = {"refused": 0, "read": 0}
    for i in range(CASES):
        damage = (flipped, cut, noise)[i % 3]
        path.write_bytes(damage(data, rng))
        outcomes[holds(kind, path, (kind, damage.__name__, i))] += 1
        shutil.copy(good, path)
        what = edit_export(path, rng) if kind == "export" else edit_hdf5(path, rng)
        outcomes[holds(kind, path, (kind, what))] += 1
    assert outcomes["refused"] >= CASES        # far most damage is refused; what is read was checked above


def test_the_command_line_gives_one_line_for_damaged_files(files, tmp_path):
    """A sample through real processes: exit 1, one line, no traceback; or exit 0 with finite numbers."""
    rng = np.random.default_rng(21)
    good = files["checkpoint"]
    for i in range(4):
        path = tmp_path / f"case{i}.h5"
        shutil.copy(good, path)
        edit_hdf5(path, rng) if i % 2 else path.write_bytes(flipped(good.read_bytes(), rng))
        proc = subprocess.run([sys.executable, "-m", "minirnn", "evaluate", str(path), "--impl", "reference",
                               "--no-progress", "--json"], capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 0:
            result = json.loads(proc.stdout)
            assert np.isfinite(result["cross_entropy"]) and np.isfinite(result["accuracy"]), result
        else:
            assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
