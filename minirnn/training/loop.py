"""The training loop: dataset -> seeded mini-batches -> loss and gradients -> Adam -> checkpoints.

    from minirnn.training.loop import TrainConfig, train
    config = TrainConfig.from_preset("demo", "nlstm", steps=200)
    result = train(config)              # writes runs/nlstm-demo.h5
    result.history["val_loss"]

One step takes the next batch of the seeded :class:`~minirnn.data.BatchOrder`
(reshuffled every epoch, padded to its longest observation), computes the masked
cross-entropy and every gradient, and applies one Adam update.  The validation
loss on a fixed subset of the validation split is recorded every
``eval_every`` steps; a checkpoint is written (atomically) every
``checkpoint_every`` steps and at the end.  ``train(config, resume=True)``
continues from the checkpoint at ``config.out``: k steps, a resume and n - k
more steps give the parameters of n uninterrupted steps, bit for bit on the CPU
(docs/training.md).

Around the loop (docs/reliability.md): the checkpoint is locked for the run
(:mod:`.runlock`), SIGINT/SIGTERM are recorded and acted on at safe points
(:mod:`.signals`), a state is saved only when its loss is healthy
(:mod:`.health`), and sizes are bounded and estimated before allocation
(:mod:`.memory`).

Under ``mpiexec`` every rank runs ``train`` and the ranks train one model data
parallel (:mod:`.distributed`, docs/distributed.md): the start is shared (lines
marked ``# distributed:``), and the loop's parts -- its gradient function, its
validation shards, its stop check, its checkpoint writer -- are wrapped once
before it runs; the loop itself is the same for one process and for many.
Rank 0 alone holds the lock, prints and writes checkpoints.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import distributed

from .. import messages
from ..errors import MinirnnError
from .presets import DEFAULT_DATA_SEED, preset as preset_dict
import shutil
import signal
from .checkpoint import peek_checkpoint, load_checkpoint, save_checkpoint
from ..units import UNITS
from .limits import LIMITS, check_limit, human, check_memory
from .atomic import check_output
from .runlock import RunLock, remove_stale_temps
from .signals import Interrupted, StopSignals, signal_name
from ..backend import resolve_device
from ..data import BatchOrder, load_or_build_dataset
from .save_watch import LossWatch
from ..model import INPUT_VOCAB, Model
from ..optim import Adam
from ..study.evaluate import evaluate_model

# settings a resumed run must share with its checkpoint (the model, the data and the batch order)
RESUME_FIXED = ("unit", "hidden", "layers", "depth", "vocab_size", "max_length", "batch_size", "seed",
                "data_seed", "dtype", "outer_tanh")


@dataclass
class TrainConfig:
    """Everything a training run needs.  ``steps`` (total optimizer steps) wins over ``epochs``."""

    unit: str
    hidden: int
    layers: int
    depth: int
    vocab_size: int
    max_length: int
    batch_size: int
    lr: float
    epochs: int | None = None
    steps: int | None = None
    seed: int = 0
    corpus: str = "builtin"
    device: str = "cpu"
    dtype: str = "float32"
    impl: str = "fast"
    outer_tanh: bool = False
    out: str | None = None
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 500
    final_test: bool = False
    data_seed: int = DEFAULT_DATA_SEED
    preset: str | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_preset(cls, preset: str, unit: str, **overrides) -> "TrainConfig":
        """A preset (``paper`` or ``demo``) for one unit, with the non-None ``overrides`` applied.

        Giving ``epochs`` without ``steps`` trains for those epochs (and vice versa),
        whatever the preset says.
        """
        values = {**preset_dict(preset, unit), "preset": preset}
        given = {k: v for k, v in overrides.items() if v is not None}
        _check_names(given)
        if "epochs" in given and "steps" not in given:
            values["steps"] = None
        if "steps" in given and "epochs" not in given:
            values["epochs"] = None
        values.update(given)
        if values.get("out") is None:
            values["out"] = default_out(unit, preset)
        return cls(**{k: v for k, v in values.items() if k in _FIELDS})

    @classmethod
    def from_checkpoint(cls, path, preset: str | None = None, **overrides) -> "TrainConfig":
        """The configuration stored in a checkpoint (to resume it), with the non-None ``overrides``.

        ``preset``, when given, must be the run's own (a resume cannot change it)."""
        _require_checkpoint(Path(path).expanduser())
        stored = peek_checkpoint(path)["config"]
        if preset is not None and stored.get("preset") not in (None, preset):
            raise MinirnnError(f"checkpoint {path} is a {stored.get('preset')} run, not {preset}; drop --preset "
                               "to resume it")
        given = {k: v for k, v in overrides.items() if v is not None}
        _check_names(given)
        values = {k: v for k, v in stored.items() if k in _FIELDS}
        if "epochs" in given and "steps" not in given:
            values["steps"] = None
        if "steps" in given and "epochs" not in given:
            values["epochs"] = None
        values.update(given)
        values["out"] = str(path)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        if self.unit not in UNITS:
            raise MinirnnError(f"unknown unit {self.unit!r}; choose one of {', '.join(UNITS)}")
        for name in ("hidden", "layers", "depth", "vocab_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise MinirnnError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise MinirnnError(f"the learning rate must be a positive number, got {self.lr!r}; the study uses 1e-3")
        if self.steps is None and self.epochs is None:
            raise MinirnnError("give the length of the run: --steps N or --epochs N")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
                raise MinirnnError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("eval_every", "eval_batches", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise MinirnnError(f"{name} must be a non-negative integer (0 turns it off), got {value!r}")
        if self.dtype not in ("float32", "float64"):
            raise MinirnnError(f"unknown dtype {self.dtype!r}; choose float32 or float64")
        if self.impl not in ("fast", "reference"):
            raise MinirnnError(f"unknown implementation {self.impl!r}; choose fast or reference")
        if self.out is None or not str(self.out).strip():
            raise MinirnnError("give the checkpoint path (--out), e.g. --out runs/my-run.h5")
        for name in ("seed", "data_seed", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise MinirnnError(f"{name} must be a non-negative integer, got {value!r}")

        for name in LIMITS:
            if hasattr(self, name):
                check_limit(name, getattr(self, name))


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _check_names(given: dict) -> None:
    unknown = sorted(set(given) - _FIELDS)
    if unknown:
        raise TypeError(f"unknown TrainConfig field(s): {', '.join(unknown)}")


def default_out(unit: str, preset: str | None) -> str:
    """Where a run's checkpoint goes when no --out is given: runs/<unit>-<preset>.h5."""
    return str(Path("runs") / f"{unit}-{preset or 'custom'}.h5")


@dataclass
class TrainResult:
    checkpoint_path: Path
    history: dict                      # name -> 1-D NumPy array (see docs/training.md)
    step: int                          # optimizer steps taken in total
    train_loss: float | None           # mean loss of the last (up to) 50 steps
    val_loss: float | None             # last validation loss
    test: dict | None = None           # evaluate_model() on the test split (when config.final_test)
    seconds: float = 0.0               # wall time of this call's steps
    chars_per_second: float = 0.0
    device: str = "cpu"
    config: TrainConfig | None = None
    dataset: object = field(default=None, repr=False)
    model: object = field(default=None, repr=False)


# ----------------------------------------------------------------------------- helpers

def _say(echo, message: str, err: bool = False) -> None:
    messages.say(message, err=err, echo=echo)


def _validation_batches(dataset, config: TrainConfig) -> list:
    """A fixed subset of the validation split: its first eval_batches * batch_size observations."""
    if not config.eval_batches:
        return []
    idx = dataset.split("validation")[: config.eval_batches * config.batch_size]
    return [dataset.batch(idx[i:i + config.batch_size]) for i in range(0, len(idx), config.batch_size)]


def validation_loss(model, batches, reduce=None) -> float | None:
    """Masked cross-entropy over every counted position of the batches (not a mean of batch means).

    ``reduce``: sums ``[total, count]`` over data-parallel ranks that each got some of the batches."""
    total, count = 0.0, 0
    for source, target in batches:
        n = int(np.count_nonzero(target >= 2))
        if n == 0:
            continue
        loss = model.forward_backward(model.embed(source), target, need_grads=False)[0]
        total += float(loss) * n
        count += n
    if reduce is not None:
        total, count = (float(v) for v in reduce(np.array([total, count], dtype=np.float64)))
    return total / count if count else None


def _corpus_path(spec) -> str | None:
    """The absolute path of a file corpus (so evaluation finds it from another folder)."""
    if not isinstance(spec, (str, Path)) or str(spec) in ("builtin", "text8"):
        return None
    return str(Path(spec).expanduser().resolve())


def _all_finite(model) -> bool:
    return all(bool(model.xp.isfinite(p).all()) for p in model.params.values())


def _require_checkpoint(out: Path) -> None:
    """A resume needs the checkpoint it continues."""
    if not out.exists():
        raise MinirnnError(f"there is no checkpoint at {out} to resume; drop --resume to start a new run "
                           "or give the run's --out")


def _check_resume(config: TrainConfig, stored: dict, path: Path) -> None:
    for name in RESUME_FIXED:
        if name in stored and stored[name] != getattr(config, name):
            raise MinirnnError(
                f"checkpoint {path} was trained with {name}={stored[name]!r}, this run asks for "
                f"{name}={getattr(config, name)!r}; resume with the same settings or choose another --out")


def _last_good(config: TrainConfig, out: Path, saved: tuple | None) -> str:
    """What is left after a run went bad, and what to do: the last good checkpoint, if any."""
    lower = f"{config.lr / 10:g}"
    if saved:
        return (f"the last good checkpoint (step {saved[0]}, loss {saved[1]:.4g}) is intact at {out}: continue it "
                f"with --resume --lr {lower}, or start again with a lower --lr")
    return f"no checkpoint was written; start again with a lower --lr (e.g. {lower})"


class _BadLoss(MinirnnError):
    """The run's loss went bad (not finite, or far worse at the end than its best).  It is judged from the
    loss of the whole batch, which every rank has, so every rank raises it at the same step."""


def _diverged(step: int, loss, config: TrainConfig, out: Path, saved: tuple | None) -> MinirnnError:
    return _BadLoss(f"training diverged at step {step} (loss {loss}); {_last_good(config, out, saved)}")


def _as_it_is(exc: BaseException) -> BaseException:
    return exc


def _resume_hint(config: TrainConfig, out: Path) -> str:
    return f"minirnn train --unit {config.unit} --out {out} --resume"


# ----------------------------------------------------------------------------- the loop

@distributed.collective
def train(config: TrainConfig, resume: bool = False, progress: bool = True, echo=None,
          overwrite: bool = False, dataset=None) -> TrainResult:
    """Train (or, with ``resume``, continue training) and return a :class:`TrainResult`.

    ``echo``: a ``click.echo``-like callable for the notes and the summary
    (None: the current reporter, minirnn/messages.py, silent unless the caller installed one).
    ``progress``: show the dataset messages and a progress bar (through the reporter).
    ``overwrite``: replace an existing checkpoint at ``config.out`` when not resuming.
    ``dataset``: an already built :class:`~minirnn.data.Dataset` matching the config (tests, notebooks).

    The checkpoint is locked for the whole call (a second run on it is refused,
    docs/reliability.md).  SIGINT and SIGTERM stop the run at the next safe
    point: the last completed step is saved and :class:`~minirnn.training.signals.Interrupted`
    (a MinirnnError with ``exit_code`` 130 or 143) says how to resume.

    Under ``mpiexec`` every rank calls this with the same config and the ranks
    train one model data-parallel: rank 0 alone locks, prints and writes
    checkpoints (minirnn/training/distributed.py, docs/distributed.md).
    """
    config.validate()
    ctx = distributed.context()                                   # distributed: start (one process: no-op)
    ctx.handshake("configuration", {**config.to_dict(), "resume": bool(resume), "overwrite": bool(overwrite)},
                  device=config.device, nccl=True)
    if not ctx.is_root:
        progress, echo = False, messages.quiet
    # never a device, never the corpus (also not with --overwrite); an existing file is judged below
    out = check_output(config.out, "checkpoint", overwrite=True, inputs=(_corpus_path(config.corpus),))
    with StopSignals() as stops:
        try:
            # distributed: rank 0 alone writes the checkpoint, so it alone holds the lock
            with RunLock(out, what="checkpoint") if ctx.is_root else contextlib.nullcontext():
                removed, freed = remove_stale_temps(out) if ctx.is_root else (0, 0)
                if removed:
                    _say(echo, f"removed {removed} temporary file(s) ({human(freed)}) left by an interrupted "
                               f"save of {out}", err=True)
                result = _train_locked(config, out, stops, resume, progress, echo, overwrite, dataset, ctx)
        except Interrupted as exc:
            if not exc.raw:   # already says where the run stopped and what to do
                raise
            # raised by the handler itself: only before the steps begin, when nothing can be lost
            raise Interrupted(f"interrupted by {signal_name(exc.signum)} before the first step; nothing was saved "
                              "(there is nothing to resume): run the same command again to start",
                              exc.signum) from None
        if stops.requested:  # arrived while the finished run released its lock: report it, lose nothing
            raise Interrupted(_after_last_step(stops.signum, result.step, out), stops.signum)
    ctx.finish()                                                  # distributed: end of the collective part
    return result


def _after_last_step(signum: int, step: int, out: Path) -> str:
    return (f"interrupted by {signal_name(signum)} after the last step; the checkpoint at step {step} in {out} "
            f"is complete: evaluate it with 'minirnn evaluate {out}'")


def _train_locked(config: TrainConfig, out: Path, stops, resume: bool, progress: bool, echo, overwrite: bool,
                  dataset, ctx) -> TrainResult:
    if resume:
        _require_checkpoint(out)
    if not resume and out.exists() and not overwrite:
        raise MinirnnError(f"{out} already exists; continue that run with --resume, replace it with --overwrite, "
                           "or choose another --out")
    stored = None
    if resume:
        stored = peek_checkpoint(out)
        _check_resume(config, stored["config"], out)

    device, note = resolve_device(config.device)
    if note:
        _say(echo, note, err=True)
    # the recurrent part alone already tells a typo such as --hidden 100000 (before a long dataset build)
    check_memory(config.unit, config.hidden, config.layers, config.depth, 3, config.batch_size,
                 config.max_length, config.dtype, device)

    if dataset is None:
        with ctx.root_first():              # distributed: rank 0 first (a download or cache is made once)
            dataset = load_or_build_dataset(config.corpus, config.vocab_size, config.max_length, config.data_seed,
                                            progress=progress)
    stops.check()  # a signal whose exception a finalizer swallowed during the build
    if (int(dataset.vocab_size), int(dataset.max_length), int(dataset.seed)) != (
            config.vocab_size, config.max_length, config.data_seed):
        raise MinirnnError(f"the dataset given was built with vocab_size={dataset.vocab_size}, "
                           f"max_length={dataset.max_length}, seed={dataset.seed}, but the run asks for "
                           f"{config.vocab_size}, {config.max_length}, {config.data_seed}; build it with the run's settings")
    train_idx = dataset.split("train")
    if len(train_idx) == 0:
        raise MinirnnError(f"the corpus {config.corpus!r} gives no training observations; use a larger corpus "
                           "or a smaller --max-length")
    need = check_memory(config.unit, config.hidden, config.layers, config.depth, len(dataset.output_words),
                        config.batch_size, config.max_length, config.dtype, device)
    _check_disk(out, need["count"], config.dtype)

    with stops.deferred():  # from here on a signal is only recorded; the loop stops at a safe point
        if resume:
            ck = load_checkpoint(out, device=device, impl=config.impl)
            for line in ck.notes:
                _say(echo, line, err=True)
            sha = ck.extra.get("corpus_sha256")
            if sha and sha != dataset.corpus_sha256:
                raise MinirnnError(f"checkpoint {out} was trained on another corpus ({ck.extra.get('corpus_name')}); "
                                   "resume with the same --corpus or choose another --out")
            if ck.output_words != list(dataset.output_words):
                raise MinirnnError(f"checkpoint {out} was trained with another output vocabulary (a different "
                                   "corpus or --vocab-size); resume with the same corpus or choose another --out")
            model = ck.model
            optimizer = Adam(model.params, lr=config.lr, fused=config.impl == "fast")
            optimizer.load_state_dict(ck.optimizer_state)
            if optimizer.lr != float(config.lr):   # a resumed run may lower the learning rate: say so
                _say(echo, f"learning rate {config.lr:g} from step {ck.step + 1} on (until now {optimizer.lr:g})",
                     err=True)
            optimizer.lr = float(config.lr)
            order = BatchOrder.from_state(ck.order_state, len(train_idx), config.batch_size, config.seed)
            step = ck.step
            history = {k: list(v) for k, v in ck.history.items()}
        else:
            model = Model(config.unit, hidden=config.hidden, layers=config.layers, depth=config.depth,
                          input_vocab=INPUT_VOCAB, output_vocab=len(dataset.output_words), seed=config.seed,
                          device=device, dtype=config.dtype, impl=config.impl, outer_tanh=config.outer_tanh)
            optimizer = Adam(model.params, lr=config.lr, fused=config.impl == "fast")
            order = BatchOrder(len(train_idx), config.batch_size, config.seed)
            step = 0
            history = {}
        for key in ("train_step", "train_epoch", "train_loss", "val_step", "val_loss"):
            history.setdefault(key, [])
        loop = _Loop(config, out, model, optimizer, order, dataset, train_idx, step, history, device, echo, stops)
        if loop.total < step:   # a run cannot go back; saving would only rewrite the stored settings
            raise MinirnnError(f"checkpoint {out} is at step {step}, past the {loop.total} steps asked for; give "
                               f"--steps above {step} to continue it, or evaluate it with 'minirnn evaluate {out}'")
        if resume and loop.total == step:
            _say(echo, f"nothing to train: {out} has already done the run's {step:,} steps; to train it further, "
                       f"resume with a larger --steps (e.g. --steps {2 * step}) or --epochs", err=True)
        reference = loop.probe(quick=True)
        loop.watch.judge(reference)   # the loss of the initial (or loaded) parameters is the first reference
        if resume:
            loop.saved = (step, _nan_if_none(reference))
        ctx.started(dataset, device)          # distributed: end of the start (shared errors), same data everywhere
        ctx.share(loop)                       # distributed: the loop's parts wrapped (one process: as they are)
        chars, seconds = loop.run(progress)
    # the checkpoint is complete: a signal may now stop the final evaluation at once
    try:
        stops.check()
        result = loop.result(chars, seconds)
        stops.hold()  # from here to the end of train() a signal is recorded, and train() reports it
    except Interrupted as exc:
        raise Interrupted(_after_last_step(exc.signum, loop.step, out), exc.signum) from None
    return result


def _nan_if_none(value) -> float:
    return float("nan") if value is None else float(value)


def _check_disk(out: Path, count: int, dtype: str) -> None:
    """Refuse a run whose checkpoint (parameters and Adam's two moments) cannot fit on the disk."""
    size = 3 * count * (8 if dtype == "float64" else 4)
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        return
    if size > free:
        raise MinirnnError(f"the checkpoint {out} will take about {human(size)} but its disk has "
                           f"{human(free)} free; free some space or choose another --out")


class _Loop:
    """The step loop of one run: steps, validation, healthy saves, safe stops.

    The parts that distribution changes are plain attributes, set here for one process and wrapped once by
    :meth:`.distributed.MPIContext.share` before the loop runs (docs/distributed.md); :meth:`steps` reads the
    same for one process and for many.
    """

    def __init__(self, config, out, model, optimizer, order, dataset, train_idx, step, history, device, echo,
                 stops):
        self.config, self.out, self.model, self.optimizer, self.order = config, out, model, optimizer, order
        self.dataset, self.train_idx, self.step, self.history = dataset, train_idx, step, history
        self.device, self.echo, self.stops, self.watch = device, echo, stops, LossWatch()
        self.saved: tuple | None = None     # (step, probe loss) of the checkpoint on disk from this run
        self.attempted: int | None = None   # the step of the last save attempted (kept back or not)
        self.kept_back = False              # the last attempt was refused (its note already shown)
        self.done_order = order.state()     # the batch order after the last completed step
        self.in_update = False              # inside Adam's update: the parameters are half-changed
        self.total = config.steps if config.steps is not None else config.epochs * order.steps_per_epoch
        self.val_batches = _validation_batches(dataset, config)
        # the batches that judge a state before it is saved: the validation subset, or one fixed training batch
        self.probe_batches = self.val_batches or [dataset.batch(train_idx[: config.batch_size])]
        self.extra = {"corpus_name": dataset.corpus_name, "corpus_sha256": dataset.corpus_sha256, "device": device,
                      "corpus_path": _corpus_path(config.corpus), "impl": config.impl,
                      "most_frequent_target": int(dataset.most_frequent_target())}
        # one process: the plain functions (under MPI, distributed.py's share() wraps each of them)
        self.gradients = model.loss_and_grads   # (source, target) -> the batch's mean loss and its gradients
        self.shard, self.reduce = list, None    # this process's share of whole batches; the sum over processes
        self.check_stop = stops.check           # a safe point: Interrupted when a stop signal was received
        self.write = save_checkpoint
        self.agreed = _as_it_is                 # an error raised at the same step by every process
        self.alone = True                       # a stop this process meets on its own may still save

    def run(self, progress: bool) -> tuple[int, float]:
        """The run's steps (:meth:`steps`) and how they end: a stop signal saves the last completed step
        and says how to resume; a loss gone bad keeps the last good checkpoint.  Returns (characters read,
        seconds)."""
        try:
            return self.steps(progress)
        except Interrupted as exc:   # at a safe point: every process stops at this step
            raise self.agreed(self.stopped(exc.signum, can_save=True, rank=exc.rank)) from None
        except _BadLoss as exc:
            raise self.agreed(exc) from None
        except KeyboardInterrupt:  # raised by code other than our handlers (none installed: not the main thread)
            raise self.stopped(signal.SIGINT, can_save=self.alone and not self.in_update) from None

    def steps(self, progress: bool) -> tuple[int, float]:
        """The study's algorithm: the next batch -> its loss and gradients -> one Adam step -> the history
        (and the validation loss every ``eval_every`` steps) -> a safe point -> a checkpoint when due."""
        config, total = self.config, self.total
        self._announce()
        start_step, chars, started = self.step, 0, time.perf_counter()
        self.check_stop()
        speed = messages.RecentRate(total)
        with messages.progress(progress, max(total - self.step, 0), f"{config.unit}", steps=True) as bar:
            while self.step < total:
                epoch, _, idx = next(self.order)
                source, target = self.dataset.batch(self.train_idx[idx])
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is caught below
                    loss, grads = self.gradients(source, target)
                if not math.isfinite(loss):
                    raise _diverged(self.step + 1, loss, config, self.out, self.saved)
                self._update(grads)
                chars += int(np.count_nonzero(source))
                self._record(epoch, float(loss))
                if self.val_batches and self._due(config.eval_every):
                    self._validate()
                self.check_stop()   # the step is complete: a safe point
                if self.step == total or self._due(config.checkpoint_every):
                    self.save(self.done_order)
                    self.check_stop()   # the save is complete
                speed.update(self.step, chars)
                bar.update(1, self._progress(loss, speed))
        if self.attempted != self.step:  # e.g. resuming a finished run, or total == 0
            self.save(self.order.state())
        if (self.saved is None or self.saved[0] != self.step) and self.step > start_step:
            raise self._ended_badly()
        return chars, time.perf_counter() - started

    def _announce(self) -> None:
        config, order = self.config, self.order
        _say(self.echo, f"training {config.unit} ({config.preset or 'custom'}): "
                        f"{self.model.parameter_counts()['total']:,} parameters, {len(self.train_idx):,} training "
                        f"observations, {order.steps_per_epoch:,} steps per epoch, "
                        f"{max(self.total - self.step, 0):,} steps to go on {self.device} "
                        f"({config.impl}, {config.dtype})", err=True)

    def _due(self, every: int) -> bool:
        """Every ``every`` steps (0: never), and at the run's last step."""
        return bool(every) and (self.step % every == 0 or self.step == self.total)

    def _progress(self, loss: float, speed) -> str:
        h = self.history
        val = f" val {h['val_loss'][-1]:.3f} (step {h['val_step'][-1]})" if h["val_loss"] else ""
        return f"step {self.step} loss {loss:.3f}{val} {speed.describe('chars/s')}"

    def _update(self, grads) -> None:
        """One Adam step; ``in_update`` marks the half-changed parameters that a stop must not save."""
        self.in_update = True
        self.optimizer.step(grads)
        self.step += 1
        self.done_order = self.order.state()
        self.in_update = False

    def _record(self, epoch: int, loss: float) -> None:
        history = self.history
        history["train_step"].append(self.step)
        history["train_epoch"].append(epoch)
        history["train_loss"].append(loss)
        warning = self.watch.step(self.step, loss)
        if warning:
            _say(self.echo, warning, err=True)

    def _validate(self) -> None:
        """The validation loss of the current parameters, into the history (none without validation batches)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            v = validation_loss(self.model, self.shard(self.val_batches), self.reduce)
        if v is None:
            return
        if not math.isfinite(v):
            raise _diverged(self.step, f"{v} on validation", self.config, self.out, self.saved)
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(v)

    def snapshot(self) -> dict:
        return {k: np.asarray(v, dtype=np.int64 if k in ("train_step", "train_epoch", "val_step") else np.float64)
                for k, v in self.history.items()}

    def probe(self, quick: bool = False) -> float | None:
        """The loss of the current parameters on the probe batches (the validation loss if just measured).

        ``quick``: on the first probe batch only -- for the run's starting reference and for the save
        after a signal, which must not keep a stopping job waiting (a paper-size validation takes long
        on a CPU).
        """
        h = self.history
        if h["val_step"] and h["val_step"][-1] == self.step and self.probe_batches is self.val_batches:
            return h["val_loss"][-1]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return validation_loss(self.model, self.probe_batches[:1] if quick else self.probe_batches)

    def save(self, order_state, quick: bool = False) -> bool:
        """Write the checkpoint when the state is good (docs/reliability.md); False when it was kept back."""
        self.attempted = self.step
        loss = self.probe(quick)
        good, why = self.watch.judge(loss)
        if good and not _all_finite(self.model):
            good, why = False, "its parameters are not finite"
        if not good:
            if not self.kept_back:  # once per bad stretch, not at every save
                kept = (f"the checkpoint at step {self.saved[0]} stays" if self.saved
                        else "no checkpoint is written")
                _say(self.echo, f"step {self.step}: not saved because {why}; {kept} until the loss recovers",
                     err=True)
            self.kept_back = True
            return False
        self.kept_back = False
        # every process judged the same state (identical parameters); under MPI rank 0 alone writes
        self.write(self.out, self.model, self.optimizer, step=self.step, order_state=order_state,
                   config=self.config.to_dict(), output_words=self.dataset.output_words, history=self.snapshot(),
                   extra=self.extra)
        self.saved = (self.step, _nan_if_none(loss))
        return True

    def stopped(self, signum: int, can_save: bool, rank: int = 0) -> Interrupted:
        """The Interrupted error of a stop at ``self.step`` (``rank``: the process the signal was sent to),
        after saving that step when it can."""
        on_disk = self.saved is not None and self.saved[0] == self.step
        if can_save and self.step > 0 and self.attempted != self.step and not on_disk:
            self.save(self.done_order, quick=True)
        if self.saved is None and self.step == 0:
            where = "nothing was saved (there is nothing to resume): run the same command again to start"
        elif self.saved is None:
            where = (f"nothing was saved (no state of this run was good enough to keep); start again, "
                     f"e.g. with a lower --lr than {self.config.lr:g}")
        else:
            where = (f"checkpoint at step {self.saved[0]} in {self.out}; continue with: "
                     f"{_resume_hint(self.config, self.out)}")
        sent = f" (sent to rank {rank})" if rank else ""
        return Interrupted(f"interrupted by {signal_name(signum)}{sent} at step {self.step}; {where}", signum)

    def _ended_badly(self) -> MinirnnError:
        where = _last_good(self.config, self.out, self.saved)
        last, best = _nan_if_none(self.watch.last), _nan_if_none(self.watch.best)
        return _BadLoss(f"training ended at step {self.step} in a state far worse than the best of the run "
                        f"(its loss {last:.4g}, best {best:.4g}), so it was not saved; {where}")

    def result(self, chars: int, seconds: float) -> TrainResult:
        config, model = self.config, self.model
        hist = self.snapshot()
        recent = hist["train_loss"][-50:]
        result = TrainResult(checkpoint_path=self.out, history=hist, step=self.step,
                             train_loss=float(recent.mean()) if recent.size else None,
                             val_loss=float(hist["val_loss"][-1]) if hist["val_loss"].size else None,
                             seconds=seconds, chars_per_second=chars / seconds if seconds > 0 else 0.0,
                             device=self.device, config=config, dataset=self.dataset, model=model)
        if config.final_test and len(self.dataset.split("test")):
            result.test = evaluate_model(model, self.dataset, "test", batch_size=config.batch_size, shard=self.shard,
                                         reduce=self.reduce)
        for line in summary_lines(result):
            _say(self.echo, line)
        return result


def summary_lines(result: TrainResult) -> list[str]:
    """The short report printed after training."""
    cfg = result.config
    steps_run = result.history["train_step"].size
    epochs = ""
    if result.dataset is not None:
        per_epoch = -(-len(result.dataset.split("train")) // cfg.batch_size)
        epochs = f" ({result.step / per_epoch:.2f} epochs)"
    this_run = (f"{result.seconds:.1f} s, {result.chars_per_second:,.0f} characters/s" if result.chars_per_second
                else "no training steps")
    lines = [f"{cfg.unit}: {result.step} steps{epochs}; this run: {this_run} on {result.device}"]
    losses = []
    if result.train_loss is not None and steps_run:
        losses.append(f"train loss {result.train_loss:.4f} (mean of the last {min(50, steps_run)} steps)")
    if result.val_loss is not None:
        losses.append(f"validation loss {result.val_loss:.4f}")
    if losses:
        lines.append("; ".join(losses))
    if result.test is not None:
        t = result.test
        lines.append(f"test: cross-entropy {t['cross_entropy']:.4f}, accuracy {100 * t['accuracy']:.2f}% "
                     f"(always '{t['baseline_word']}': {100 * t['baseline_accuracy']:.2f}%)")
    lines.append(f"checkpoint: {result.checkpoint_path}")
    return lines
