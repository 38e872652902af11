"""Data-parallel training and sharded evaluation over MPI, with NCCL on GPUs (docs/distributed.md).

    mpiexec -n 4 minirnn train --unit lstm --preset paper       # 4 ranks, one global batch of 64
    mpiexec -n 4 minirnn evaluate runs/lstm-paper.h5           # the observations shared out

:func:`context` says how this process was started.  Outside a launcher (or
with one rank) it is a :class:`Single` context: the start has nothing to compare
or wait for, the training loop keeps its plain functions, and ``mpi4py`` is
never imported.  Under ``mpiexec`` (the launcher's environment says so:
``PMI_RANK``/``PMI_SIZE`` for MPICH/Hydra, ``OMPI_COMM_WORLD_*`` for Open MPI,
``PMIX_RANK`` for PMIx/Slurm) it is an :class:`MPIContext`, and
:meth:`MPIContext.share` wraps the loop's parts once, before it runs; the loop
itself never asks how many ranks there are:

* every rank builds the same seeded global batch and takes a contiguous share of
  its rows; it computes the *sums* of its counted positions' losses and
  gradients divided by the global batch's count (``denominator``, [CE-F4]), so
  that the sum over ranks is the one-process mean and its gradients;
* the gradients are packed into one flat buffer (:class:`FlatGrads`) and summed
  with one ``MPI Allreduce`` on the CPU or one NCCL ``allReduce`` on the GPU (no
  host round trip); the float64 loss travels in a non-blocking ``Iallreduce``
  beside it; every rank then applies the same Adam step;
* validation and evaluation batches are shared out whole and their sums added
  up; a stop signal is compared at every safe point, so all ranks stop at the
  same step; rank 0 alone writes the checkpoint;
* at start the ranks compare their configuration and take one GPU each
  (:meth:`MPIContext.handshake`), prepare the data rank 0 first
  (:meth:`MPIContext.root_first`: one download, one cache), then compare their
  dataset's fingerprint and device (:meth:`MPIContext.started`); an error that
  any rank meets before that point is shared, so rank 0 prints one line and
  every rank stops (:func:`collective`);
* after that point a rank that fails alone aborts the job when it exits
  (``MPI_Abort`` from an ``atexit`` hook), so the others never wait forever; a rank
  killed by a signal is cleaned up by the launcher; and a rank that never reaches
  the first handshake (a bad command line on one rank) is caught by a watchdog
  process after ``MINIRNN_MPI_START_TIMEOUT`` seconds (default 120).

``MINIRNN_MPI=0`` runs every launched process as an independent single process;
``MINIRNN_MPI=1`` uses MPI even with one rank (tests, the GPU check).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import os
import socket
import sys
import time

import numpy as np

from ..errors import MinirnnError
from .. import __version__
from ..layers import counted_positions
from .signals import Interrupted, signal_name
import select
import signal

INSTALL = "pip install 'minirnn[mpi]'"
START_TIMEOUT = 120.0
_ABORT_GRACE = 0.5   # seconds a rank leaving mid-run waits before MPI_Abort, so its last output is forwarded

# (rank variable, size variables) of the launchers we know
_LAUNCH_VARS = (
    ("PMI_RANK", ("PMI_SIZE",)),                                   # MPICH / Intel MPI (Hydra), Slurm pmi2
    ("OMPI_COMM_WORLD_RANK", ("OMPI_COMM_WORLD_SIZE",)),           # Open MPI
    ("PMIX_RANK", ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")),       # PMIx (srun --mpi=pmix, prterun)
)


class RankStopped(MinirnnError):
    """Raised on ranks other than 0 when the run stops for an error that rank 0 reports.

    The command line exits with status 1 without printing it (rank 0 prints the one line)."""


def launch(environ=None) -> tuple[int, int | None] | None:
    """``(rank, size)`` from the launcher's environment (size None when only the rank is known),
    or None when this process was not started by an MPI launcher."""
    env = os.environ if environ is None else environ
    for rank_var, size_vars in _LAUNCH_VARS:
        if rank_var in env:
            try:
                rank = int(env[rank_var])
            except ValueError:
                continue
            for size_var in size_vars:
                try:
                    return rank, int(env[size_var])
                except (KeyError, ValueError):
                    pass
            return rank, None
    return None


_CONTEXT = None


def context():
    """The process's :class:`Single` or :class:`MPIContext` (made once, on first use).

    Under a launcher with more than one rank and without ``mpi4py`` it raises
    one line saying what to install (rank 0) or :class:`RankStopped` (others)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = _make_context(os.environ)
    return _CONTEXT


def _make_context(env):
    mode = env.get("MINIRNN_MPI", "").strip()
    if mode == "0":
        return Single()
    found = launch(env)
    if mode != "1" and (found is None or found[1] == 1):
        return Single()
    rank, size = found if found else (0, 1)
    try:
        import mpi4py  # noqa: F401  (optional dependency: the [mpi] extra)
    except ImportError:
        ranks = f"{size} ranks" if size else "several ranks"
        message = (f"minirnn was started by an MPI launcher ({ranks}) but mpi4py is not installed; install it with "
                   f"{INSTALL} (or set MINIRNN_MPI=0 to run each process on its own)")
        raise (MinirnnError(message) if rank == 0 else RankStopped(message)) from None
    return MPIContext(rank)


def collective(fn):
    """Decorate a function that every rank calls together (``train``, ``evaluate_checkpoint``).

    An exception raised between the function's ``handshake`` and its ``started``
    is shared with the other ranks, which are waiting in ``started``: all stop
    with the error of the lowest failing rank (rank 0 raises it, the others
    raise :class:`RankStopped`).  A stop signal (:class:`Interrupted`) leaving a
    rank other than 0 ends it as :class:`RankStopped` too: rank 0 reports the stop."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            ctx = _CONTEXT
            if isinstance(ctx, MPIContext):
                if ctx.phase == "start":
                    ctx.fail_start(exc)
                if isinstance(exc, Interrupted) and not ctx.is_root:
                    raise RankStopped(str(exc)) from None
            raise

    return wrapper


# ----------------------------------------------------------------------------- pieces shared by both contexts

def shard_rows(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` rows: the first ``n % size`` ranks take one more."""
    base, extra = divmod(int(n), int(size))
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def trim_padding(source, target):
    """Drop the trailing columns that are padding in every row (a shard of a batch padded to the
    global longest observation); positions that remain are unchanged."""
    real = np.flatnonzero((np.asarray(source) != 0).any(axis=0))
    width = int(real[-1]) + 1 if real.size else 0
    return source[:, :width], target[:, :width]


def dataset_fingerprint(dataset) -> str:
    """sha256 of what training and evaluation read from a dataset: characters, targets, offsets,
    splits and output words."""
    h = hashlib.sha256()
    for a in (dataset.chars, dataset.targets, dataset.offsets, *(dataset.splits[k] for k in sorted(dataset.splits))):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps(list(dataset.output_words)).encode())
    return h.hexdigest()


def assign_gpus(hosts: list, gpus: list) -> list[int]:
    """One GPU per rank from every rank's host name and PCI bus ids of its visible GPUs.

    The ranks of one host take devices 0, 1, ... in rank order (their local rank)
    when the host shows them enough GPUs; a rank that sees a single GPU (a
    scheduler's per-task ``CUDA_VISIBLE_DEVICES``) takes it.  Two ranks of a host
    on the same GPU, or a host with fewer GPUs than ranks, raise one line."""
    chosen = []
    for rank, (host, buses) in enumerate(zip(hosts, gpus)):
        members = [r for r, h in enumerate(hosts) if h == host]
        index = members.index(rank)
        count = len(buses)
        if count >= len(members):
            chosen.append(index)
        elif count == 1:
            chosen.append(0)
        else:
            raise MinirnnError(f"node {host} runs {len(members)} ranks with --device gpu but shows them {count} "
                               f"GPU(s); start at most {max(count, 1)} rank(s) per node (one GPU each), "
                               "or use --device cpu")
    seen: dict = {}
    for rank, (host, buses) in enumerate(zip(hosts, gpus)):
        key = (host, buses[chosen[rank]])
        if key in seen:
            raise MinirnnError(f"ranks {seen[key]} and {rank} on node {host} would share the GPU at {key[1]} "
                               f"(node {host} shows them fewer GPUs than it runs ranks); start at most one rank per "
                               "GPU, or use --device cpu")
        seen[key] = rank
    return chosen


class FlatGrads:
    """One flat buffer holding every gradient back to back (parameter order), with a view per name.

    ``pack(grads)`` copies a model's gradients in and returns the flat buffer (the
    one array a collective reduces); ``views`` then reads the summed gradients
    without a copy (contiguous, as the fused Adam wants)."""

    def __init__(self, params: dict, xp=np):
        dtypes = {np.dtype(v.dtype) for v in params.values()}
        if len(dtypes) != 1:
            raise ValueError(f"parameters of one dtype expected, got {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop()
        self.names = list(params)
        self.shapes = {k: tuple(v.shape) for k, v in params.items()}
        sizes = [int(np.prod(self.shapes[k], dtype=np.int64)) for k in self.names]
        self.size = int(sum(sizes))
        self.flat = xp.empty(self.size, dtype=self.dtype)
        self.views, offset = {}, 0
        for name, n in zip(self.names, sizes):
            self.views[name] = self.flat[offset:offset + n].reshape(self.shapes[name])
            offset += n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def pack(self, grads: dict):
        for name in self.names:
            g = grads[name]
            if tuple(g.shape) != self.shapes[name]:
                raise ValueError(f"gradient {name} has shape {tuple(g.shape)}, expected {self.shapes[name]}")
            self.views[name][...] = g
        return self.flat

    def zero(self):
        self.flat[...] = 0
        return self.flat


# ----------------------------------------------------------------------------- one process

class Single:
    """One process: the start has no one to compare with or wait for, and the training loop keeps its
    plain functions (nothing to share out, sum or agree on)."""

    rank, size, is_root, phase = 0, 1, True, "idle"

    def handshake(self, what: str, payload: dict, device: str = "cpu", nccl: bool = False) -> None:
        """No other rank to compare with."""

    def root_first(self):
        return contextlib.nullcontext()         # no other rank to go before

    def started(self, dataset, device: str) -> None:
        """No other rank to compare with."""

    def share(self, loop) -> None:
        """Nothing to share: the loop's own functions stand."""

    def finish(self) -> None:
        """Nothing to release."""


# ----------------------------------------------------------------------------- several processes

class MPIContext:
    """Ranks started by an MPI launcher (see the module docstring).

    ``phase``: ``idle`` (between runs), ``start`` (from ``handshake`` to
    ``started``: errors are shared), ``running`` (a rank that exits now aborts
    the job)."""

    def __init__(self, rank_hint: int = 0):
        self.rank, self.size, self.is_root = rank_hint, None, rank_hint == 0
        self.phase = "idle"
        self.comm = None
        self.device = "cpu"
        self.gpu = None
        self.local_rank = 0
        self._flat = None
        self._nccl = None

    # --- start ------------------------------------------------------------------
    def _init(self):
        """Initialise MPI (under the watchdog: MPI_Init waits for every rank)."""
        import mpi4py

        mpi4py.rc.threads = False           # one thread per rank talks to MPI
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        atexit.register(self._abort_if_running)

    def handshake(self, what: str, payload: dict, device: str = "cpu", nccl: bool = False) -> None:
        """Every rank shows the others its ``payload`` (a JSON-able dict); any difference stops all
        ranks with one line naming the first differing setting.  For ``device`` gpu or auto, each
        rank then takes its own GPU (:func:`assign_gpus`) before anything touches CUDA; ``nccl``:
        the run will sum gradients with NCCL (checked here)."""
        payload = {**payload, "minirnn version": __version__}     # the same code everywhere, too
        watchdog = None
        if self.comm is None:
            if "mpi4py.MPI" not in sys.modules:      # MPI_Init still to come (never fork an MPI process)
                watchdog = _Watchdog(_start_timeout(), self.rank)
            self._init()
        try:
            mine = {"host": socket.gethostname(), **(_gpu_facts(self.size, nccl) if device != "cpu" else {})}
            gathered = self.comm.allgather((payload, mine))
        finally:
            if watchdog is not None:
                watchdog.stop()
        self.phase = "start"
        first = gathered[0][0]
        for rank, (other, _) in enumerate(gathered):
            if other != first:
                key = next((k for k in sorted(set(other) | set(first)) if other.get(k) != first.get(k)), "?")
                raise self._stop(f"rank {rank} was started with another {what} than rank 0 ({key}={other.get(key)!r} "
                                 f"there, {first.get(key)!r} on rank 0); start every rank with the same command")
        facts = [f for _, f in gathered]
        hosts = [f["host"] for f in facts]
        self.local_rank = hosts[:self.rank].count(hosts[self.rank])
        self.gpu = None
        if device == "cpu" or any(not f.get("gpus") for f in facts):
            return                      # no GPU somewhere: resolve_device says so (gpu) or falls back (auto)
        for rank, f in enumerate(facts):
            if f.get("error"):
                raise self._stop(f"rank {rank}: {f['error']}")
        try:
            chosen = assign_gpus([f["host"] for f in facts], [f["gpus"] for f in facts])
        except MinirnnError as exc:
            raise self._stop(str(exc)) from None
        import cupy

        self.gpu = chosen[self.rank]
        cupy.cuda.Device(self.gpu).use()

    def started(self, dataset, device: str) -> None:
        """End of the start phase: share any rank's error, compare datasets and devices."""
        self._gather_start(None, {"dataset": dataset_fingerprint(dataset), "device": device})

    @contextlib.contextmanager
    def root_first(self):
        """In the start phase, ``with ctx.root_first(): ...`` runs the block on rank 0 first, then on the
        first rank of every other node, then on the rest, each wave ending in a meeting of all ranks.  For
        the data: a download or a dataset cache is then made once per filesystem (shared or per node) and
        read by the ranks after it.  A block that raises meets the others in :meth:`fail_start`."""
        wave = 0 if self.is_root else (1 if self.local_rank == 0 else 2)
        for _ in range(wave):
            self._gather_start(None, None)
        yield
        for _ in range(wave, 3):
            self._gather_start(None, None)

    def fail_start(self, exc: BaseException) -> None:
        """A rank's error in the start phase: meet the others in their next start gather (every rank
        makes the same ones, in the same order), then stop all."""
        if isinstance(exc, RankStopped):
            return
        message = str(exc) if isinstance(exc, MinirnnError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted before training started"
        self._gather_start(message or type(exc).__name__, None, own=exc)

    def _gather_start(self, error, facts, own=None):
        gathered = self.comm.allgather((error, facts))
        failed = [(rank, e) for rank, (e, _) in enumerate(gathered) if e is not None]
        if failed:
            rank, message = failed[0]
            if own is not None and rank == self.rank and self.is_root:
                self.phase = "idle"
                raise own                       # rank 0's own error, traceback and all
            raise self._stop(message if rank == 0 else f"rank {rank}: {message}")
        if facts is None:
            return                              # an intermediate meeting (root_first)
        first = gathered[0][1]
        for rank, (_, f) in enumerate(gathered):
            if f["dataset"] != first["dataset"]:
                raise self._stop(f"rank {rank} built another dataset than rank 0 (fingerprint {f['dataset'][:12]} "
                                 f"there, {first['dataset'][:12]} on rank 0); give every rank the same corpus file "
                                 "(on a shared filesystem) and the same settings")
            if f["device"] != first["device"]:
                raise self._stop(f"rank {rank} runs on the {f['device']} and rank 0 on the {first['device']}; "
                                 "give every rank a GPU, or use --device cpu")
        self.device = first["device"]
        self.phase = "running"

    def finish(self) -> None:
        self.phase = "idle"
        self._flat = None

    # --- errors -----------------------------------------------------------------
    def _stop(self, message: str) -> MinirnnError:
        """An error every rank meets together: rank 0 reports it, the others stop quietly."""
        self.phase = "idle"
        return MinirnnError(message) if self.is_root else RankStopped(message)

    def check_stops(self, stops) -> None:
        """:meth:`StopSignals.check <minirnn.training.signals.StopSignals.check>` over all ranks: raise
        :class:`Interrupted` on every rank when any rank received a stop signal (the first such rank's).
        Every rank asks at the same safe points of the loop, so a signal sent to any one rank stops all of
        them at the same step (a rank stopping alone took the job down with MPI_Abort)."""
        got = self.comm.allgather(int(stops.signum or 0))
        for rank, signum in enumerate(got):
            if signum:
                raise Interrupted(f"stopped by {signal_name(signum)}", signum, raw=True, rank=rank)

    def agreed(self, exc: BaseException) -> BaseException:
        """``exc`` is raised on every rank at the same point (e.g. a divergence seen in the summed loss):
        no rank aborts the job, and rank 0 alone reports it."""
        self.phase = "idle"
        if self.is_root or isinstance(exc, RankStopped):
            return exc
        return RankStopped(str(exc))

    def _abort_if_running(self) -> None:
        """atexit: a rank leaving in the middle of a run takes the job down instead of leaving the others
        waiting in a collective."""
        if self.phase == "running" and self.comm is not None:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            # The launcher forwards a rank's output from a pipe, and MPI_Abort tears the launcher
            # down: without a moment to read the pipe it lost this rank's last line (why it left)
            # in about one job of 25.
            time.sleep(_ABORT_GRACE)
            self.comm.Abort(1)

    # --- training ---------------------------------------------------------------
    def _flat_grads(self, model) -> FlatGrads:
        if self._flat is None or self._flat.names != list(model.params) or \
                self._flat.flat.dtype != model.dtype or type(self._flat.flat) is not type(model.params["dense.b"]):
            self._flat = FlatGrads(model.params, model.xp)
        return self._flat

    def loss_and_grads(self, model, source, target):
        """The global batch's mean loss and gradients: this rank's share of the rows, normalised by the
        whole batch's counted positions [CE-F4], summed over ranks (one flat buffer)."""
        count = int(np.count_nonzero(counted_positions(np.asarray(target))))
        rows = shard_rows(source.shape[0], self.rank, self.size)
        src, tgt = trim_padding(source[rows], target[rows])
        flat = self._flat_grads(model)
        if src.shape[0] and src.shape[1] and count:
            loss, grads = model.loss_and_grads(src, tgt, denominator=count)
            buffer = flat.pack(grads)
        else:                                      # nothing of the batch here: contribute zeros
            loss, buffer = 0.0, flat.zero()
        total = np.array([loss], dtype=np.float64)
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM)
        self.allreduce_flat(buffer)
        request.Wait()
        return float(total[0]), flat.views

    def allreduce_flat(self, buffer) -> None:
        """Sum ``buffer`` (one flat array) over the ranks, in place: MPI on the host, NCCL on the GPU."""
        if isinstance(buffer, np.ndarray):
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
            return
        comm = self.nccl()
        from cupy.cuda import nccl
        import cupy

        kinds = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        kind = kinds[np.dtype(buffer.dtype)]
        comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, kind, nccl.NCCL_SUM,
                       cupy.cuda.get_current_stream().ptr)

    def nccl(self):
        """The NCCL communicator of the ranks (made on first use: rank 0's unique id broadcast over MPI)."""
        if self._nccl is None:
            from cupy.cuda import nccl

            uid = nccl.get_unique_id() if self.is_root else None
            uid = self.comm.bcast(uid, root=0)
            self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        return self._nccl

    # --- the training loop's parts ------------------------------------------------
    def share(self, loop) -> None:
        """Make one training loop (:class:`minirnn.training.loop._Loop`) data parallel by wrapping its
        parts, once, before it runs."""
        loop.gradients = functools.partial(self.loss_and_grads, loop.model)   # this rank's rows, summed
        loop.shard, loop.reduce = self.shard, self.sum      # validation and the final test: whole batches
        loop.check_stop = functools.partial(self.check_stops, loop.stops)      # all ranks stop at one step
        loop.write = self.root_only(loop.write)             # rank 0 writes; every rank learns if it failed
        loop.agreed = self.agreed                           # a stop or bad loss seen by all: rank 0 reports
        # a save is collective: a rank stopping on its own (the others may be mid-collective; the job is
        # aborted) cannot save
        loop.alone = self.size == 1

    # --- validation, evaluation, checkpoints --------------------------------------
    def shard(self, items) -> list:
        """Every size-th item, starting at this rank's (whole batches stay whole)."""
        return list(items)[self.rank::self.size]

    def sum(self, values):
        """Element-wise sum over ranks of a host array (int64 or float64), returned as a new array."""
        values = np.ascontiguousarray(values)
        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=self.MPI.SUM)
        return out

    def root_only(self, fn):
        """``fn`` (a checkpoint write) run by rank 0 alone; if it fails, every rank stops with its error."""

        @functools.wraps(fn)
        def on_root(*args, **kwargs):
            error, result = None, None
            if self.is_root:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:      # noqa: BLE001 (shared, then re-raised)
                    error = exc
            message = None if error is None else (str(error) if isinstance(error, MinirnnError)
                                                  else f"{type(error).__name__}: {error}")
            message = self.comm.bcast(message, root=0)
            if message is not None:
                self.phase = "idle"
                if self.is_root:
                    raise error
                raise RankStopped(message)
            return result

        return on_root


def _gpu_facts(size: int, nccl: bool) -> dict:
    """This rank's visible GPUs (PCI bus ids; none without CuPy or a GPU) and, when ``nccl``, whether
    NCCL is usable, for :func:`assign_gpus`."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        buses = [cupy.cuda.runtime.deviceGetPCIBusId(i) for i in range(count)]
    except Exception:                  # no CuPy or no GPU: resolve_device gives the one line later
        return {"gpus": []}
    if nccl and size > 1:
        try:
            from cupy.cuda import nccl

            if not getattr(nccl, "available", True):
                raise ImportError("libnccl not found")
        except Exception as exc:
            from minirnn.kernels.cuda import wheels

            return {"gpus": buses, "error": f"--device gpu with several ranks needs NCCL in CuPy ({exc}); "
                                            f"install it with pip install {wheels.wheel('nccl', wheels.cuda_major(cupy))}"}
    return {"gpus": buses}


def _start_timeout() -> float:
    value = os.environ.get("MINIRNN_MPI_START_TIMEOUT", "")
    try:
        return float(value) if value else START_TIMEOUT
    except ValueError:
        return START_TIMEOUT


class _Watchdog:
    """A forked process that, unless stopped within ``seconds``, prints one line and kills this
    rank, so that the launcher stops the job.  A process, not a thread: MPI_Init blocks with
    Python's lock held until every rank arrives, so no thread of this process could run."""

    def __init__(self, seconds: float, rank: int):
        self.pid = None
        if not hasattr(os, "fork") or seconds <= 0:
            return
        read, self.write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:                                     # the watchdog
            try:
                os.close(self.write)
                ready, _, _ = select.select([read], [], [], seconds)
                if not ready:
                    os.write(2, (f"Error: rank {rank} waited {seconds:g} s for the other ranks to start; one of them "
                                 "failed before starting (see its message) or was not started by the same mpiexec; "
                                 "stopping the job (MINIRNN_MPI_START_TIMEOUT sets the wait)\n").encode())
                    os.kill(parent, signal.SIGKILL)
            finally:
                os._exit(0)
        os.close(read)
        self.pid = pid

    def stop(self) -> None:
        if self.pid is None:
            return
        os.close(self.write)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None
