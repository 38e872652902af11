"""Data parallel over MPI (minirnn/training/distributed.py): real `mpiexec -n 2` runs against one process.

The MPI tests skip when mpi4py or mpiexec is missing (CI: pip install mpi4py mpich).
Every run is tiny (a 6-unit model, ~100 observations) and has a timeout.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_corpus import write_tiny_corpus

from minirnn.training import distributed as D
from minirnn.training.checkpoint import load_checkpoint
from minirnn.errors import MinirnnError
from minirnn.model import Model
from minirnn.training.loop import TrainConfig, train

TIMEOUT = 120


def _mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _has_mpi4py():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(not (_has_mpi4py() and _mpiexec()),
                               reason="needs mpi4py and mpiexec (pip install 'minirnn[mpi]')")


# ----------------------------------------------------------------------------- without MPI

@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_parts_with_the_global_denominator_add_up_to_the_batch(impl):
    """[CE-F4]: rows split in parts, each normalised by the whole batch's count, sum to the batch's
    mean loss and gradients (float64, up to the order of the sums)."""
    model = Model("nlstm", hidden=5, layers=2, depth=2, output_vocab=9, seed=3, dtype="float64", impl=impl)
    rng = np.random.default_rng(0)
    source = rng.integers(1, 28, size=(7, 11))
    target = rng.integers(0, 9, size=(7, 11))
    source[5:, 8:] = 0                      # padded tails
    target[5:, 8:] = 0
    count = int(np.count_nonzero(target >= 2))
    loss, grads = model.loss_and_grads(source, target)
    parts = [model.loss_and_grads(*D.trim_padding(source[r], target[r]), denominator=count)
             for r in (D.shard_rows(7, k, 3) for k in range(3))]
    assert abs(sum(p[0] for p in parts) - loss) <= 1e-13 * abs(loss)
    for name, g in grads.items():
        total = sum(p[1][name] for p in parts)
        assert np.max(np.abs(total - g)) <= 1e-12 * max(np.max(np.abs(g)), 1e-300), name
    alone = model.loss_and_grads(source, target, denominator=count)   # the default normaliser is the count
    assert alone[0] == loss and all(np.array_equal(alone[1][k], grads[k]) for k in grads)
    with pytest.raises(ValueError, match="smaller than"):
        model.loss_and_grads(source, target, denominator=count - 1)


def test_flat_buffer_packs_and_views_every_gradient():
    model = Model("gru", hidden=4, layers=1, output_vocab=7, seed=1, dtype="float64")
    flat = D.FlatGrads(model.params)
    grads = {k: np.random.default_rng(i).normal(size=v.shape) for i, (k, v) in enumerate(model.params.items())}
    buffer = flat.pack(grads)
    assert buffer.ndim == 1 and buffer.size == sum(v.size for v in model.params.values())
    assert flat.nbytes == buffer.size * 8 and list(flat.views) == list(model.params)
    for name, g in grads.items():
        view = flat.views[name]
        assert view.flags.c_contiguous and np.shares_memory(view, buffer) and np.array_equal(view, g), name
    buffer *= 2                                        # what a sum over two equal ranks does
    assert all(np.array_equal(flat.views[k], 2 * g) for k, g in grads.items())
    assert not flat.zero().any()
    with pytest.raises(ValueError, match="shape"):
        flat.pack({**grads, "dense.b": grads["dense.b"][:-1]})


def test_shards_cover_every_row_once():
    for n in range(0, 12):
        for size in (1, 2, 3, 5):
            rows = [list(range(n))[D.shard_rows(n, r, size)] for r in range(size)]
            assert sum(rows, []) == list(range(n))
            assert max(map(len, rows)) - min(map(len, rows)) <= 1
    source = np.array([[3, 4, 0, 0, 0], [5, 0, 0, 0, 0]])
    s, t = D.trim_padding(source, source + 1)
    assert s.tolist() == [[3, 4], [5, 0]] and t.tolist() == [[4, 5], [6, 1]]


def test_launch_is_read_from_the_launchers_environment():
    assert D.launch({}) is None
    assert D.launch({"PMI_RANK": "1", "PMI_SIZE": "4"}) == (1, 4)
    assert D.launch({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}) == (0, 2)
    assert D.launch({"PMIX_RANK": "3", "SLURM_STEP_NUM_TASKS": "8"}) == (3, 8)
    assert D.launch({"PMIX_RANK": "3"}) == (3, None)
    assert isinstance(D._make_context({}), D.Single)
    assert isinstance(D._make_context({"PMI_RANK": "0", "PMI_SIZE": "1"}), D.Single)
    assert isinstance(D._make_context({"PMI_RANK": "0", "PMI_SIZE": "2", "MINIRNN_MPI": "0"}), D.Single)


def test_launched_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # import mpi4py -> ImportError
    with pytest.raises(MinirnnError, match=r"2 ranks.*mpi4py is not installed.*pip install 'minirnn\[mpi\]'") as e:
        D._make_context({"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert not isinstance(e.value, D.RankStopped) and "\n" not in str(e.value)
    with pytest.raises(D.RankStopped):
        D._make_context({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"})
    assert isinstance(D._make_context({}), D.Single)              # one plain process needs no mpi4py


def test_one_gpu_per_rank_or_one_line():
    a, b, c = "0000:01:00.0", "0000:02:00.0", "0000:03:00.0"
    assert D.assign_gpus(["n1", "n1", "n2", "n2"], [[a, b]] * 4) == [0, 1, 0, 1]
    assert D.assign_gpus(["n1", "n1"], [[a], [b]]) == [0, 0]          # per-task CUDA_VISIBLE_DEVICES
    assert D.assign_gpus(["n1", "n1", "n1"], [[a, b, c]] * 3) == [0, 1, 2]
    with pytest.raises(MinirnnError, match=r"node n1 runs 3 ranks with --device gpu but shows them 2 GPU"):
        D.assign_gpus(["n1", "n1", "n1"], [[a, b]] * 3)
    with pytest.raises(MinirnnError, match=r"ranks 0 and 1 on node n1 would share the GPU"):
        D.assign_gpus(["n1", "n1"], [[a], [a]])


def test_dataset_fingerprint_sees_the_data(tmp_path):
    from minirnn.data import load_or_build_dataset

    corpus = write_tiny_corpus(tmp_path / "c.txt", words=300, seed=1)
    ds = load_or_build_dataset(str(corpus), 12, 40, 1)
    first = D.dataset_fingerprint(ds)
    assert first == D.dataset_fingerprint(load_or_build_dataset(str(corpus), 12, 40, 1))
    ds.targets = ds.targets.copy()
    ds.targets[-1] ^= 1
    assert D.dataset_fingerprint(ds) != first


def test_one_process_never_imports_mpi4py(tmp_path):
    """Without a launcher, training (validation and the final test included) and evaluating keep the
    loop's plain functions: mpi4py is never imported (docs/distributed.md)."""
    corpus = write_tiny_corpus(tmp_path / "c.txt", words=400, seed=1)
    script = ("import sys\n"
              "from tiny_corpus import tiny_train_config\n"
              "from minirnn.training.loop import train\n"
              "from minirnn.study.evaluate import evaluate_checkpoint\n"
              f"config = tiny_train_config({str(corpus)!r}, {str(tmp_path / 'r.h5')!r}, final_test=True)\n"
              "train(config, progress=False)\n"
              "evaluate_checkpoint(config.out, split='validation', impl='reference')\n"
              "print(sorted(m for m in sys.modules if m.startswith('mpi4py')))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]"]


# ----------------------------------------------------------------------------- the GPU plumbing, on the host

class FakeComm:
    """mpi4py's lowercase collectives for rank 0 of 2, the other rank showing ``peer`` (default: the same)."""

    def __init__(self, peer=None):
        self.peer, self.calls = peer, []

    def allgather(self, obj):
        self.calls.append("allgather")
        return [obj, obj if self.peer is None else self.peer(obj)]

    def bcast(self, obj, root=0):
        self.calls.append(("bcast", obj))
        return obj


class FakeDeviceArray:
    """A host array seen the way the NCCL path sees a CuPy array: .data.ptr, .size, .dtype."""

    def __init__(self, host):
        self.host = host
        self.size, self.dtype = host.size, host.dtype
        self.data = type("Memory", (), {"ptr": host.ctypes.data})()


def fake_cupy(monkeypatch, buses=("0000:01:00.0", "0000:02:00.0"), peer_values=None, nccl_available=True,
              runtime_version=13020):
    """CuPy's runtime, Device, current stream and NCCL, on the host.  The fake allReduce adds the
    other rank's values (``peer_values``) into the receive buffer by raw address, like NCCL would."""
    import types

    record = {"device": [], "comms": [], "allreduce": []}
    nccl = types.SimpleNamespace(NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, available=nccl_available,
                                 get_unique_id=lambda: tuple(range(128)))

    class Communicator:
        def __init__(self, ndev, uid, rank):
            record["comms"].append((ndev, uid, rank))

        def allReduce(self, send, recv, count, dtype, op, stream):
            record["allreduce"].append((send, recv, count, dtype, op, stream))
            kind = {7: np.float32, 8: np.float64}[dtype]
            mine = np.ctypeslib.as_array((np.ctypeslib.as_ctypes_type(kind) * count).from_address(send))
            out = np.ctypeslib.as_array((np.ctypeslib.as_ctypes_type(kind) * count).from_address(recv))
            out[:] = mine + peer_values

    nccl.NcclCommunicator = Communicator
    runtime = types.SimpleNamespace(getDeviceCount=lambda: len(buses), deviceGetPCIBusId=lambda i: buses[i],
                                    runtimeGetVersion=lambda: runtime_version)
    device = lambda i: types.SimpleNamespace(use=lambda: record["device"].append(i))   # noqa: E731
    cuda = types.SimpleNamespace(runtime=runtime, Device=device, nccl=nccl,
                                 get_current_stream=lambda: types.SimpleNamespace(ptr=1234))
    cupy = types.SimpleNamespace(cuda=cuda)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    return record


def rank0_of_two(comm):
    ctx = D.MPIContext(0)
    ctx.comm, ctx.rank, ctx.size, ctx.is_root = comm, 0, 2, True
    return ctx


@pytest.mark.parametrize("rank,local_rank,calls_before", [(0, 0, 0), (3, 0, 1), (1, 1, 2)])
def test_data_is_made_by_rank_0_first_then_each_node_then_the_rest(rank, local_rank, calls_before):
    """root_first: three meetings of all ranks; rank 0 works before the first, the first rank of
    another node before the second, every other rank before the third.  A rank whose work fails
    leaves at once (to meet the others in fail_start)."""
    comm = FakeComm()
    ctx = rank0_of_two(comm)
    ctx.rank, ctx.is_root, ctx.local_rank = rank, rank == 0, local_rank
    seen = []
    with ctx.root_first():
        seen.append(len(comm.calls))
    assert seen == [calls_before] and comm.calls == ["allgather"] * 3 and ctx.phase != "running"
    comm.calls.clear()
    with pytest.raises(OSError, match="disk full"):
        with ctx.root_first():
            raise OSError("disk full")
    assert comm.calls == ["allgather"] * calls_before


def test_a_stop_leaving_a_collective_is_reported_by_rank_0_alone(monkeypatch):
    """@collective: an Interrupted that leaves a rank other than 0 ends it quietly (rank 0 reports the stop);
    any other error of that rank keeps its own message (its own failure, shown before the job is aborted)."""
    from minirnn.training.signals import Interrupted

    @D.collective
    def stopping(error):
        raise error

    for rank in (0, 1):
        ctx = rank0_of_two(FakeComm())
        ctx.rank, ctx.is_root, ctx.phase = rank, rank == 0, "running"
        monkeypatch.setattr(D, "_CONTEXT", ctx)
        with pytest.raises(Interrupted if rank == 0 else D.RankStopped, match="interrupted by SIGTERM at step 3"):
            stopping(Interrupted("interrupted by SIGTERM at step 3", 15))
        with pytest.raises(MinirnnError, match="a disk failed") as info:
            stopping(MinirnnError("a disk failed"))
        assert type(info.value) is MinirnnError and ctx.phase == "running"


@pytest.mark.parametrize("dtype,code", [(np.float32, 7), (np.float64, 8)])
def test_nccl_all_reduce_plumbing_on_the_host(monkeypatch, dtype, code):
    """The communicator is made once from rank 0's unique id broadcast over MPI; each step is one
    in-place allReduce of the whole flat buffer on the current stream."""
    peer = np.arange(6, dtype=dtype) * 10
    record = fake_cupy(monkeypatch, peer_values=peer)
    comm = FakeComm()
    ctx = rank0_of_two(comm)
    buffer = FakeDeviceArray(np.arange(6, dtype=dtype))
    ctx.allreduce_flat(buffer)
    ctx.allreduce_flat(buffer)
    assert np.array_equal(buffer.host, np.arange(6, dtype=dtype) + 2 * peer)
    assert record["comms"] == [(2, tuple(range(128)), 0)] and comm.calls == [("bcast", tuple(range(128)))]
    ptr = buffer.data.ptr
    assert record["allreduce"] == [(ptr, ptr, 6, code, 0, 1234)] * 2


def test_gpu_handshake_picks_one_gpu_per_rank_or_one_line(monkeypatch):
    record = fake_cupy(monkeypatch)                                   # 2 GPUs seen by both ranks of one host
    rank0_of_two(FakeComm()).handshake("configuration", {"a": 1}, device="gpu", nccl=True)
    assert record["device"] == [0]
    record = fake_cupy(monkeypatch, buses=("0000:01:00.0",))          # one GPU, the same, for both ranks
    with pytest.raises(MinirnnError, match="ranks 0 and 1 on node .* would share the GPU at 0000:01:00.0"):
        rank0_of_two(FakeComm()).handshake("configuration", {"a": 1}, device="gpu", nccl=True)
    assert record["device"] == []
    for version, wheel in ((13020, "nvidia-nccl-cu13"), (12090, "nvidia-nccl-cu12")):   # the wheel of CuPy's CUDA
        fake_cupy(monkeypatch, nccl_available=False, runtime_version=version)
        with pytest.raises(MinirnnError, match=r"rank 0: --device gpu with several ranks needs NCCL") as info:
            rank0_of_two(FakeComm()).handshake("configuration", {"a": 1}, device="gpu", nccl=True)
        assert f"pip install {wheel}" in str(info.value) and str(info.value).count("nvidia-nccl") == 1
    other = FakeComm(peer=lambda mine: ({"a": 2}, mine[1]))
    with pytest.raises(MinirnnError, match=r"rank 1 was started with another configuration than rank 0 \(a=2 there"):
        rank0_of_two(other).handshake("configuration", {"a": 1}, device="gpu", nccl=True)


# ----------------------------------------------------------------------------- real mpiexec -n 2 runs

ARGS = ["--unit", "nlstm", "--hidden", "6", "--depth", "2", "--vocab-size", "12", "--max-length", "40",
        "--batch-size", "7", "--lr", "0.01", "--seed", "5", "--dtype", "float64", "--eval-every", "4",
        "--eval-batches", "3", "--checkpoint-every", "5", "--no-progress"]
STEPS = 17          # crosses the epoch boundary: ~110 observations, 16 batches of 7 and one of 5


def _env(**more):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("MINIRNN_MPI", None)
    env.update(more)
    return env


def mpirun(*ranks, cwd, env=None, timeout=TIMEOUT):
    """``mpiexec -n 1 A : -n 1 B`` (one argv per rank; a single argv runs on 2 ranks)."""
    cmd = [_mpiexec()]
    if len(ranks) == 1:
        cmd += ["-n", "2", *ranks[0]]
    else:
        for i, argv in enumerate(ranks):
            cmd += ([":"] if i else []) + ["-n", "1", *argv]
    return subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def minirnn(*args):
    return [sys.executable, "-m", "minirnn", *args]


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One corpus; the same 17 steps in one process (in this process) and on two ranks."""
    folder = tmp_path_factory.mktemp("mpi")
    corpus = write_tiny_corpus(folder / "tiny.txt", words=1200, seed=7)
    home = tmp_path_factory.getbasetemp() / "minirnn-home"     # conftest's: every process shares the cache
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIRNN_HOME", str(home))
        one = _train_one(folder, corpus)
    two = None
    if _has_mpi4py() and _mpiexec():
        two = mpirun(minirnn("train", *ARGS, "--corpus", str(corpus), "--steps", str(STEPS),
                             "--out", str(folder / "two.h5")), cwd=folder, env=_env(MINIRNN_HOME=str(home)))
    return {"folder": folder, "corpus": str(corpus), "home": str(home), "one": one, "two": two}


def _train_one(folder, corpus):
    config = TrainConfig.from_preset("demo", "nlstm", hidden=6, depth=2, vocab_size=12, max_length=40, batch_size=7,
                                     lr=0.01, seed=5, dtype="float64", eval_every=4, eval_batches=3,
                                     checkpoint_every=5, steps=STEPS, corpus=str(corpus), out=str(folder / "one.h5"))
    return train(config, progress=False, echo=None)


@needs_mpi
def test_two_ranks_reproduce_one_process(runs):
    proc = runs["two"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("checkpoint:") == 1          # rank 0 alone reports
    a = load_checkpoint(runs["folder"] / "one.h5")
    b = load_checkpoint(runs["folder"] / "two.h5")
    assert a.step == b.step == STEPS and a.order_state == b.order_state
    assert b.history["train_epoch"].max() == 1                       # an epoch's partial last batch was seen
    for key in ("train_step", "train_epoch", "val_step"):
        assert np.array_equal(a.history[key], b.history[key]), key
    for key in ("train_loss", "val_loss"):                           # equal up to the order of the sums
        np.testing.assert_allclose(b.history[key], a.history[key], rtol=1e-12, atol=0)
    for name, p in a.model.params.items():
        q = b.model.params[name]
        assert np.max(np.abs(q - p)) <= 1e-12 * np.max(np.abs(p)), name
        np.testing.assert_allclose(b.optimizer_state["m"][name], a.optimizer_state["m"][name], rtol=0,
                                   atol=1e-12 * max(np.max(np.abs(a.optimizer_state["m"][name])), 1e-300))
    assert b.optimizer_state["t"] == STEPS
    # the demo preset's final test, sharded over the ranks, equals one process's
    line = [x for x in proc.stdout.splitlines() if x.startswith("test:")][0]
    t = runs["one"].test
    assert f"cross-entropy {t['cross_entropy']:.4f}, accuracy {100 * t['accuracy']:.2f}%" in line


@needs_mpi
def test_a_rank_with_no_rows_and_the_reference_path(runs, tmp_path):
    """Batches of 1 on 2 ranks: rank 1 never has a row and contributes zeros.  The data cache starts
    empty: rank 0 builds it, then rank 1 reads it (one file, nothing half-written)."""
    args = [a for a in ARGS]
    args[args.index("--batch-size") + 1] = "1"
    home = tmp_path / "fresh-home"
    proc = mpirun(minirnn("train", *args, "--impl", "reference", "--corpus", runs["corpus"], "--steps", "4",
                          "--out", str(tmp_path / "b1.h5")), cwd=tmp_path, env=_env(MINIRNN_HOME=str(home)))
    assert proc.returncode == 0, proc.stderr
    assert [p.suffix for p in (home / "datasets").iterdir()] == [".h5"]
    config = TrainConfig.from_preset("demo", "nlstm", hidden=6, depth=2, vocab_size=12, max_length=40, batch_size=1,
                                     lr=0.01, seed=5, dtype="float64", eval_every=4, eval_batches=3, impl="reference",
                                     checkpoint_every=5, steps=4, corpus=runs["corpus"], out=str(tmp_path / "a1.h5"))
    train(config, progress=False, echo=None)
    a, b = load_checkpoint(tmp_path / "a1.h5", impl="reference"), load_checkpoint(tmp_path / "b1.h5", impl="reference")
    np.testing.assert_allclose(b.history["train_loss"], a.history["train_loss"], rtol=1e-12, atol=0)
    for name, p in a.model.params.items():
        assert np.max(np.abs(b.model.params[name] - p)) <= 1e-12 * np.max(np.abs(p)), name


@needs_mpi
def test_resume_under_mpi_continues_exactly(runs, tmp_path):
    out = tmp_path / "resumed.h5"
    first = mpirun(minirnn("train", *ARGS, "--corpus", runs["corpus"], "--steps", "8", "--out", str(out)),
                   cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert load_checkpoint(out).step == 8     # a validation step (every 4), as in the whole run
    again = mpirun(minirnn("train", "--unit", "nlstm", "--out", str(out), "--steps", str(STEPS), "--resume",
                           "--no-progress"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    a, b = load_checkpoint(runs["folder"] / "two.h5"), load_checkpoint(out)
    assert b.step == STEPS and a.order_state == b.order_state
    for name in a.model.params:                       # the same ranks, the same sums: bit for bit
        assert np.array_equal(a.model.params[name], b.model.params[name]), name
    for key in a.history:
        assert np.array_equal(a.history[key], b.history[key]), key


@needs_mpi
def test_evaluate_sharded_equals_one_process(runs, tmp_path):
    from minirnn.study.evaluate import evaluate_checkpoint

    path = runs["folder"] / "one.h5"
    proc = mpirun(minirnn("evaluate", str(path), "--json", "--batch-size", "5", "--split", "validation"),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sharded = json.loads(proc.stdout)                     # rank 0 alone prints (one JSON document)
    whole = evaluate_checkpoint(path, split="validation", batch_size=5)
    ce = sharded.pop("cross_entropy"), whole.pop("cross_entropy")
    assert abs(ce[0] - ce[1]) <= 1e-12 * abs(ce[1])
    assert sharded == whole                               # counts, accuracies, the by-letters table


@needs_mpi
def test_a_rank_with_another_config_fails_cleanly(runs, tmp_path):
    out = tmp_path / "run.h5"
    assert mpirun(minirnn("train", *ARGS, "--corpus", runs["corpus"], "--steps", "2", "--out", str(out)),
                  cwd=tmp_path).returncode == 0
    before = out.read_bytes()
    base = ["train", "--unit", "nlstm", "--out", str(out), "--resume", "--no-progress", "--steps"]
    proc = mpirun(minirnn(*base, "4"), minirnn(*base, "5"), cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert _lines(proc.stderr) == ["Error: rank 1 was started with another configuration than rank 0 (steps=5 there, "
                                   "4 on rank 0); start every rank with the same command"]
    assert out.read_bytes() == before                    # the last good checkpoint is untouched


@needs_mpi
def test_start_errors_are_one_line_from_rank_0(runs, tmp_path):
    """An error every rank meets (an existing --out) and one that rank 1 alone meets (its data cache is
    not writable) both stop every rank with one line and write nothing."""
    out = tmp_path / "run.h5"
    out.write_bytes(b"keep me")
    args = ["train", *ARGS, "--corpus", runs["corpus"], "--steps", "2", "--out", str(out)]
    proc = mpirun(minirnn(*args), cwd=tmp_path)
    assert proc.returncode != 0
    assert _lines(proc.stderr) == [f"Error: {out} already exists; continue that run with --resume, replace it with "
                                   "--overwrite, or choose another --out"]
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    fresh = tmp_path / "fresh.h5"
    args[-1] = str(fresh)
    proc = mpirun(minirnn(*args), ["env", f"MINIRNN_HOME={blocked}", *minirnn(*args)], cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = _lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: rank 1: cannot write dataset file"), proc.stderr
    assert out.read_bytes() == b"keep me" and not fresh.exists()


@needs_mpi
def test_divergence_under_mpi_is_one_line_and_keeps_the_checkpoint(runs, tmp_path):
    """The summed loss turns infinite on every rank at the same step: all stop together (no abort),
    rank 0 says so once, and the last checkpoint written stays the good one."""
    out = tmp_path / "run.h5"
    args = [a for a in ARGS]
    args[args.index("--lr") + 1] = "1e30"
    args[args.index("--dtype") + 1] = "float32"
    args[args.index("--checkpoint-every") + 1] = "1"
    proc = mpirun(minirnn("train", *args, "--corpus", runs["corpus"], "--steps", "40", "--out", str(out)),
                  cwd=tmp_path)
    assert proc.returncode == 1 and "MPI_Abort" not in proc.stderr
    lines = _lines(proc.stderr)[1:]                      # after the "training ..." note
    errors = [ln for ln in lines if ln.startswith("Error:")]
    notes = [ln for ln in lines if not ln.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: training diverged at step"), proc.stderr
    # At most rank 0's one note that an unhealthy state was kept back (docs/reliability.md), never a rank 1 copy.
    assert len(notes) <= 1 and all("not saved because" in n for n in notes), proc.stderr
    if "the last good checkpoint (step " in errors[0]:
        good = int(errors[0].split("the last good checkpoint (step ")[1].split(",")[0].split(")")[0])
        assert load_checkpoint(out).step == good
    else:                                                # no state of the run was healthy: nothing was written
        assert "no checkpoint was written" in errors[0] and not out.exists()


@needs_mpi
def test_a_rank_that_dies_stops_the_job(runs, tmp_path):
    """Rank 1 leaves (sys.exit) in its 8th step; rank 0, waiting in the sum, is stopped by MPI_Abort
    instead of waiting forever, and the checkpoint of step 5 (every 5) stays intact."""
    out = tmp_path / "run.h5"
    script = tmp_path / "dying.py"
    script.write_text(
        "import os, sys\n"
        "from minirnn.model import Model\n"
        "if os.environ.get('PMI_RANK', os.environ.get('OMPI_COMM_WORLD_RANK')) == '1':\n"
        "    real, calls = Model.loss_and_grads, [0]\n"
        "    def dying(self, *a, **k):\n"
        "        calls[0] += 1\n"
        "        if calls[0] == 8:\n"
        "            sys.exit('rank 1 leaves')\n"
        "        return real(self, *a, **k)\n"
        "    Model.loss_and_grads = dying\n"
        "from minirnn.cli.main import cli\n"
        "cli(prog_name='minirnn')\n")
    proc = mpirun([sys.executable, str(script), "train", *ARGS, "--corpus", runs["corpus"], "--steps", "12",
                   "--out", str(out)], cwd=tmp_path)
    assert proc.returncode != 0
    assert "rank 1 leaves" in proc.stderr
    ck = load_checkpoint(out)                             # written at step 5, intact and readable
    assert ck.step == 5
    assert not list(tmp_path.glob("*.tmp-*"))


@needs_mpi
def test_a_rank_that_never_starts_is_bounded(runs, tmp_path):
    """A bad command line on rank 1 (it exits before MPI starts): rank 0 waits in MPI_Init, and the
    watchdog stops it after MINIRNN_MPI_START_TIMEOUT seconds with one line."""
    good = minirnn("train", *ARGS, "--corpus", runs["corpus"], "--steps", "2", "--out", str(tmp_path / "x.h5"))
    proc = mpirun(good, good + ["--no-such-option"], cwd=tmp_path, env=_env(MINIRNN_MPI_START_TIMEOUT="3"),
                  timeout=60)
    assert proc.returncode != 0
    assert "No such option" in proc.stderr
    assert "Error: rank 0 waited 3 s for the other ranks to start" in proc.stderr
    assert not (tmp_path / "x.h5").exists()


@needs_mpi
def test_mpiexec_without_mpi4py_says_what_to_install(runs, tmp_path):
    script = tmp_path / "no_mpi4py.py"
    script.write_text("import sys\nsys.modules['mpi4py'] = None\nfrom minirnn.cli.main import cli\n"
                      "cli(prog_name='minirnn')\n")
    proc = mpirun([sys.executable, str(script), "train", *ARGS, "--corpus", runs["corpus"], "--steps", "2",
                   "--out", str(tmp_path / "x.h5")], cwd=tmp_path)
    assert proc.returncode != 0
    assert _lines(proc.stderr) == [
        "Error: minirnn was started by an MPI launcher (2 ranks) but mpi4py is not installed; install it with "
        "pip install 'minirnn[mpi]' (or set MINIRNN_MPI=0 to run each process on its own)"]


# ----------------------------------------------------------------------------- the GPU (NCCL) path

@pytest.mark.gpu
@needs_mpi
def test_nccl_path_on_one_gpu(runs, tmp_path):
    """One rank forced through MPI (MINIRNN_MPI=1): the NCCL communicator, the device all-reduce of the
    flat buffer, a checkpoint; the run equals a plain single-GPU run (float64)."""
    check = tmp_path / "nccl_check.py"
    check.write_text(
        "import cupy, numpy as np\n"
        "from minirnn.training import distributed as D\n"
        "ctx = D.context()\n"
        "ctx.handshake('check', {}, device='gpu', nccl=True)\n"
        "buf = cupy.arange(10, dtype=cupy.float64)\n"
        "ctx.allreduce_flat(buf)\n"
        "cupy.cuda.get_current_stream().synchronize()\n"
        "assert np.array_equal(buf.get(), np.arange(10.0) * ctx.size), buf\n"
        "print('nccl ok', ctx.size, ctx.gpu)\n")
    proc = subprocess.run([_mpiexec(), "-n", "1", sys.executable, str(check)], cwd=tmp_path,
                          env=_env(MINIRNN_MPI="1"), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0 and "nccl ok 1 0" in proc.stdout, proc.stderr
    args = [*ARGS, "--corpus", runs["corpus"], "--steps", "4", "--device", "gpu"]
    proc = subprocess.run([_mpiexec(), "-n", "1", *minirnn("train", *args, "--out", str(tmp_path / "g1.h5"))],
                          cwd=tmp_path, env=_env(MINIRNN_MPI="1"), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    plain = subprocess.run(minirnn("train", *args, "--out", str(tmp_path / "g0.h5")), cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert plain.returncode == 0, plain.stderr
    a, b = load_checkpoint(tmp_path / "g0.h5"), load_checkpoint(tmp_path / "g1.h5")
    assert a.step == b.step == 4
    for name, p in a.model.params.items():
        assert np.max(np.abs(b.model.params[name] - p)) <= 1e-12 * np.max(np.abs(p)), name
