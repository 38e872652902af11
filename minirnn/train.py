"""The training loop: dataset -> seeded mini-batches -> loss and gradients -> Adam -> checkpoints.

    from minirnn.train import TrainConfig, train
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
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from . import distributed
from .errors import MinirnnError

DEFAULT_DATA_SEED = 450849059

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
        from .presets import preset as preset_dict

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
    def from_checkpoint(cls, path, **overrides) -> "TrainConfig":
        """The configuration stored in a checkpoint (to resume it), with the non-None ``overrides``."""
        from .checkpoint import peek_checkpoint

        stored = peek_checkpoint(path)["config"]
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
        from .units import UNITS

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
        if not self.out:
            raise MinirnnError("give the checkpoint path (--out)")


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
    if echo is None:
        return
    try:
        echo(message, err=err)
    except TypeError:
        echo(message)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n, current_item=None):
        pass


def _progress_bar(enabled: bool, length: int, label: str):
    if not enabled or length <= 0:
        return _NoBar()
    import click

    return click.progressbar(length=length, label=label, file=click.get_text_stream("stderr"), show_eta=True,
                             show_percent=False, show_pos=True, item_show_func=lambda item: item or "")


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


def _check_resume(config: TrainConfig, stored: dict, path: Path) -> None:
    for name in RESUME_FIXED:
        if name in stored and stored[name] != getattr(config, name):
            raise MinirnnError(
                f"checkpoint {path} was trained with {name}={stored[name]!r}, this run asks for "
                f"{name}={getattr(config, name)!r}; resume with the same settings or choose another --out")


def _diverged(step: int, loss, config: TrainConfig, saved_step: int | None) -> MinirnnError:
    where = (f"the last good checkpoint (step {saved_step}) is intact at {config.out}" if saved_step
             else "no checkpoint was written")
    return MinirnnError(f"training diverged at step {step} (loss {loss}); {where}; "
                        f"try a lower --lr than {config.lr:g}")


# ----------------------------------------------------------------------------- the loop

@distributed.collective
def train(config: TrainConfig, resume: bool = False, progress: bool = True, echo=click.echo,
          overwrite: bool = False, dataset=None) -> TrainResult:
    """Train (or, with ``resume``, continue training) and return a :class:`TrainResult`.

    ``echo``: a ``click.echo``-like callable for the notes and the summary
    (None: silent).
    ``progress``: show the dataset messages and a progress bar on stderr.
    ``overwrite``: replace an existing checkpoint at ``config.out`` when not resuming.
    ``dataset``: an already built :class:`~minirnn.data.Dataset` matching the config (tests, notebooks).

    Under ``mpiexec`` every rank calls this with the same config and the ranks
    train one model data-parallel: rank 0 alone prints and writes checkpoints
    (minirnn/distributed.py, docs/distributed.md).
    """
    from .backend import resolve_device
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import BatchOrder, load_or_build_dataset
    from .model import INPUT_VOCAB, Model
    from .optim import Adam

    ctx = distributed.context()                                   # distributed: start (one process: no-op)
    ctx.handshake("configuration", {**config.to_dict(), "resume": bool(resume), "overwrite": bool(overwrite)},
                  device=config.device, nccl=True)
    if not ctx.is_root:
        progress, echo = False, None
    config.validate()
    out = Path(config.out).expanduser()
    if resume and not out.exists():
        raise MinirnnError(f"there is no checkpoint at {out} to resume; drop --resume to start a new run "
                           "or give the run's --out")
    if not resume and out.exists() and not overwrite:
        raise MinirnnError(f"{out} already exists; continue that run with --resume, replace it with --overwrite, "
                           "or choose another --out")
    stored = None
    if resume:
        from .checkpoint import peek_checkpoint

        stored = peek_checkpoint(out)
        _check_resume(config, stored["config"], out)

    device, note = resolve_device(config.device)
    if note:
        _say(echo, note, err=True)

    if dataset is None:                     # distributed: rank 0 first (a download or cache is made once)
        dataset = ctx.root_first(load_or_build_dataset, config.corpus, config.vocab_size, config.max_length,
                                 config.data_seed, progress=progress)
    elif (int(dataset.vocab_size), int(dataset.max_length), int(dataset.seed)) != (
            config.vocab_size, config.max_length, config.data_seed):
        raise MinirnnError(f"the dataset given was built with vocab_size={dataset.vocab_size}, "
                           f"max_length={dataset.max_length}, seed={dataset.seed}, but the run asks for "
                           f"{config.vocab_size}, {config.max_length}, {config.data_seed}; build it with the run's settings")
    train_idx = dataset.split("train")
    if len(train_idx) == 0:
        raise MinirnnError(f"the corpus {config.corpus!r} gives no training observations; use a larger corpus "
                           "or a smaller --max-length")

    if resume:
        ck = load_checkpoint(out, device=device, impl=config.impl)
        sha = ck.extra.get("corpus_sha256")
        if sha and sha != dataset.corpus_sha256:
            raise MinirnnError(f"checkpoint {out} was trained on another corpus ({ck.extra.get('corpus_name')}); "
                               "resume with the same --corpus or choose another --out")
        if ck.output_words != list(dataset.output_words):
            raise MinirnnError(f"checkpoint {out} was trained with another output vocabulary (a different corpus or "
                               "--vocab-size); resume with the same corpus or choose another --out")
        model = ck.model
        optimizer = Adam(model.params, lr=config.lr, fused=config.impl == "fast")
        optimizer.load_state_dict(ck.optimizer_state)
        optimizer.lr = float(config.lr)  # a resumed run may lower the learning rate
        order = BatchOrder.from_state(ck.order_state, len(train_idx), config.batch_size, config.seed)
        step = ck.step
        history = {k: list(v) for k, v in ck.history.items()}
        saved_step = step
    else:
        model = Model(config.unit, hidden=config.hidden, layers=config.layers, depth=config.depth,
                      input_vocab=INPUT_VOCAB, output_vocab=len(dataset.output_words), seed=config.seed,
                      device=device, dtype=config.dtype, impl=config.impl, outer_tanh=config.outer_tanh)
        optimizer = Adam(model.params, lr=config.lr, fused=config.impl == "fast")
        order = BatchOrder(len(train_idx), config.batch_size, config.seed)
        step = 0
        history = {}
        saved_step = None
    for key in ("train_step", "train_epoch", "train_loss", "val_step", "val_loss"):
        history.setdefault(key, [])

    total = config.steps if config.steps is not None else config.epochs * order.steps_per_epoch
    val_batches = _validation_batches(dataset, config)
    extra = {"corpus_name": dataset.corpus_name, "corpus_sha256": dataset.corpus_sha256, "device": device,
             "corpus_path": _corpus_path(config.corpus),
             "impl": config.impl, "most_frequent_target": int(dataset.most_frequent_target())}

    def snapshot():
        return {k: np.asarray(v, dtype=np.int64 if k in ("train_step", "train_epoch", "val_step") else np.float64)
                for k, v in history.items()}

    def write(order_state):
        if not _all_finite(model):
            raise _diverged(step, "finite, but the parameters are not", config, saved_step)
        save_checkpoint(out, model, optimizer, step=step, order_state=order_state, config=config.to_dict(),
                        output_words=dataset.output_words, history=snapshot(), extra=extra)

    def save(order_state):
        nonlocal saved_step
        ctx.on_root(write, order_state)                            # distributed: rank 0 writes
        saved_step = step

    ctx.started(dataset, device)              # distributed: end of the start (shared errors), same data everywhere
    _say(echo, f"training {config.unit} ({config.preset or 'custom'}): {model.parameter_counts()['total']:,} "
               f"parameters, {len(train_idx):,} training observations, {order.steps_per_epoch:,} steps per epoch, "
               f"{max(total - step, 0):,} steps to go on {device} ({config.impl}, {config.dtype})", err=True)

    start_step, chars, started = step, 0, time.perf_counter()
    done_order = order.state()
    in_update = False
    try:
        with _progress_bar(progress, max(total - step, 0), f"{config.unit}") as bar:
            while step < total:
                epoch, _, idx = next(order)
                source, target = dataset.batch(train_idx[idx])
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is caught below
                    loss, grads = ctx.loss_and_grads(model, source, target)   # distributed: summed over ranks
                if not math.isfinite(loss):
                    raise ctx.agreed(_diverged(step + 1, loss, config, saved_step))
                in_update = True
                optimizer.step(grads)
                step += 1
                done_order = order.state()
                in_update = False
                chars += int(np.count_nonzero(source))
                history["train_step"].append(step)
                history["train_epoch"].append(epoch)
                history["train_loss"].append(float(loss))
                if config.eval_every and val_batches and (step % config.eval_every == 0 or step == total):
                    v = validation_loss(model, ctx.shard(val_batches), ctx.sum)
                    if v is not None:
                        if not math.isfinite(v):
                            raise ctx.agreed(_diverged(step, f"{v} on validation", config, saved_step))
                        history["val_step"].append(step)
                        history["val_loss"].append(v)
                if step == total or (config.checkpoint_every and step % config.checkpoint_every == 0):
                    save(done_order)
                elapsed = time.perf_counter() - started
                val = f" val {history['val_loss'][-1]:.3f}" if history["val_loss"] else ""
                bar.update(1, f"step {step} loss {loss:.3f}{val} {chars / max(elapsed, 1e-9):,.0f} chars/s")
    except KeyboardInterrupt:
        if ctx.size == 1 and not in_update and step > start_step and saved_step != step:
            save(done_order)     # distributed: no save (ranks may be mid-collective); the job is aborted
        where = f"checkpoint at step {saved_step} in {out}" if saved_step else "no checkpoint was written"
        raise ctx.quiet(MinirnnError(f"interrupted at step {step}; {where}; continue with --resume")) from None
    if saved_step != step:  # nothing left to do (e.g. resuming a finished run), or total == 0
        save(order.state())
    seconds = time.perf_counter() - started

    hist = snapshot()
    recent = hist["train_loss"][-50:]
    result = TrainResult(checkpoint_path=out, history=hist, step=step,
                         train_loss=float(recent.mean()) if recent.size else None,
                         val_loss=float(hist["val_loss"][-1]) if hist["val_loss"].size else None,
                         seconds=seconds, chars_per_second=chars / seconds if seconds > 0 else 0.0,
                         device=device, config=config, dataset=dataset, model=model)
    if config.final_test and len(dataset.split("test")):
        from .evaluate import evaluate_model

        result.test = evaluate_model(model, dataset, "test", batch_size=config.batch_size, ctx=ctx)
    ctx.finish()                                                  # distributed: end of the collective part
    for line in summary_lines(result):
        _say(echo, line)
    return result


def summary_lines(result: TrainResult) -> list[str]:
    """The short report printed after training."""
    cfg = result.config
    steps_run = result.history["train_step"].size
    epochs = ""
    if result.dataset is not None:
        per_epoch = -(-len(result.dataset.split("train")) // cfg.batch_size)
        epochs = f" ({result.step / per_epoch:.2f} epochs)"
    lines = [f"{cfg.unit}: {result.step} steps{epochs}; this run: {result.seconds:.1f} s, "
             f"{result.chars_per_second:,.0f} characters/s on {result.device}"]
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
