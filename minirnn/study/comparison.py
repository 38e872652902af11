"""The whole comparison in one call: train GRU, LSTM and Nested LSTM, evaluate them, write a report.

    from minirnn.study.comparison import run_study
    summary = run_study("demo", out="study-demo")      # study-demo/report.md

Every unit is trained on the same dataset with the same seed (the preset's
settings, plus any overrides), then evaluated on the test split.  The folder
holds, per unit, its checkpoint ``<unit>.h5`` and its evaluation
``<unit>.evaluation.json``; the study's settings and times live in
``study.json``; the report is ``report.md`` with the figures ``loss.png`` and
``accuracy_by_letters.png`` (when matplotlib is installed).

Running the same study again resumes it: a unit whose evaluation matches its
checkpoint is skipped, a unit whose checkpoint is short of the planned steps
continues from that checkpoint (bit for bit as if never interrupted, on the
CPU), a unit without a checkpoint starts.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import time
from pathlib import Path


from .. import messages, __version__
from ..errors import MinirnnError
from ..units import UNITS as UNITS_REGISTRY
from .evaluate import evaluate_checkpoint
from ..training.atomic import write_file
from ..backend import resolve_device
from ..training.checkpoint import json_default, load_checkpoint, peek_checkpoint
from ..data import load_or_build_dataset
from ..training.presets import PRESETS
from ..training.loop import TrainConfig, train
from .plotting import PUBLISHED_TOP1_BY_LETTERS, UNIT_LABELS, have_matplotlib, letters_curves
from .plotting import plot_accuracy_by_letters, plot_loss_curves

UNITS = ("gru", "lstm", "nlstm")
#: docs/study.md §4: published test cross-entropy and accuracy after two epochs.
PUBLISHED = {"gru": (2.1170, 0.5201), "lstm": (2.1713, 0.5140), "nlstm": (2.4950, 0.4710)}
#: The earlier draft, after one epoch.
PUBLISHED_ONE_EPOCH = {"gru": (2.1497, 0.5161), "lstm": (2.2899, 0.4990), "nlstm": (2.6051, 0.4547)}
STATE_FILE = "study.json"
REPORT_FILE = "report.md"
LOSS_FIGURE = "loss.png"
ACCURACY_FIGURE = "accuracy_by_letters.png"
# settings that must not change between the sessions of one study folder
_FIXED = ("preset", "corpus", "seed", "overrides")


def parse_units(text: str | None) -> tuple[str, ...]:
    """'gru,lstm' -> ('gru', 'lstm'), in the order given, without repeats."""
    if not text:
        return UNITS
    units = []
    for part in text.split(","):
        u = part.strip().lower()
        if not u:
            continue
        if u not in UNITS:
            raise MinirnnError(f"unknown unit {u!r} in --units; choose from {', '.join(UNITS)} (comma-separated)")
        if u not in units:
            units.append(u)
    if not units:
        raise MinirnnError(f"--units names no unit; choose from {', '.join(UNITS)} (comma-separated)")
    return tuple(units)


# ----------------------------------------------------------------------- evaluations

def evaluation_sidecar(checkpoint) -> Path:
    """Where the evaluation of a checkpoint is stored: ``run.h5`` -> ``run.evaluation.json``."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".evaluation.json")


def _matches(ev, split: str, step: int | None) -> bool:
    return (isinstance(ev, dict) and ev.get("split", split) == split and "by_letters" in ev
            and (step is None or ev.get("step") in (None, step)))


def stored_evaluation(checkpoint, ck=None, split: str = "test") -> dict | None:
    """An evaluation of this checkpoint at its current step, if one is stored.

    Looked up in the checkpoint's ``extra`` (under ``evaluation`` or ``test``,
    either one result or a dict of results by split), then in the sidecar file
    :func:`evaluation_sidecar`.
    """
    step = getattr(ck, "step", None)
    extra = getattr(ck, "extra", None) or {}
    for key in ("evaluation", "test"):
        ev = extra.get(key)
        if isinstance(ev, dict) and split in ev and isinstance(ev[split], dict):
            ev = ev[split]
        if _matches(ev, split, step):
            return ev
    side = evaluation_sidecar(checkpoint)
    if side.is_file():
        try:
            ev = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if _matches(ev, split, step) and ev.get("step") is not None:
            return ev
    return None


def evaluation_for(checkpoint, ck=None, split: str = "test", device: str = "cpu", limit: int | None = None,
                   dataset=None) -> tuple[dict, str]:
    """(evaluation dict, where it came from): the stored one when present, else a fresh evaluation."""
    if limit is None:
        ev = stored_evaluation(checkpoint, ck, split)
        if ev is not None:
            return ev, "stored evaluation"

    ev = evaluate_checkpoint(checkpoint, split=split, device=device, limit=limit, dataset=dataset)
    return ev, f"evaluated on the {split} split" + (f" (first {limit} observations)" if limit else "")


def _write_json(path: Path, data) -> None:
    # the study's own files in its own folder: a rerun (a resume) replaces them
    write_file(path, json.dumps(data, indent=2, sort_keys=True, default=json_default), "study file", overwrite=True)


# ------------------------------------------------------------------------- the study

def _load_state(folder: Path, settings: dict) -> dict:
    path = folder / STATE_FILE
    if not path.is_file():
        return {"settings": settings, "units": {}, "started": _now()}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise MinirnnError(f"{path} is unreadable; remove it (the checkpoints are kept) or choose another --out") \
            from None
    old = state.get("settings", {})
    for key in _FIXED:
        if key in old and old[key] != settings[key]:
            raise MinirnnError(f"{folder} holds a study with {key}={old[key]!r}, this one asks for "
                               f"{key}={settings[key]!r}; rerun with the same settings or choose another --out")
    state["settings"] = {**old, **settings}
    state.setdefault("units", {})
    return state


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def run_study(preset: str = "demo", out=None, units=UNITS, steps: int | None = None, epochs: int | None = None,
              device: str = "cpu", seed: int = 0, corpus: str | None = None, limit: int | None = None,
              impl: str | None = None, overrides: dict | None = None, progress: bool = True, echo=None) -> dict:
    """Train and evaluate ``units`` and write the report; returns the study state (see ``study.json``).

    ``steps``/``epochs`` override the preset's run length (``steps`` for quick runs);
    ``limit`` evaluates only the first observations of the test split;
    ``impl`` picks the fast (default) or reference units;
    ``overrides`` are further :class:`~minirnn.training.loop.TrainConfig` fields (e.g. ``hidden``).
    """
    if preset not in PRESETS:
        raise MinirnnError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    units = parse_units(",".join(units) if not isinstance(units, str) else units)
    folder = Path(out if out is not None else f"study-{preset}").expanduser()
    if folder.exists() and not folder.is_dir():
        raise MinirnnError(f"{folder} is a file; give a folder for --out")
    folder.mkdir(parents=True, exist_ok=True)
    resolved, note = resolve_device(device)
    if note:
        _say(echo, note)
    overrides = dict(overrides or {})
    for key in ("out", "unit", "preset", "impl"):
        overrides.pop(key, None)
    common = {"steps": steps, "epochs": epochs, "device": resolved, "seed": seed, "corpus": corpus, "impl": impl,
              **overrides}
    configs = {u: TrainConfig.from_preset(preset, u, **{**common, "out": str(folder / f"{u}.h5")}) for u in units}
    first = configs[units[0]]
    settings = {"preset": preset, "corpus": first.corpus, "seed": first.seed,
                "overrides": {k: v for k, v in sorted(overrides.items()) if v is not None},
                "steps": steps, "epochs": epochs, "device": resolved, "limit": limit, "units": list(units)}
    state = _load_state(folder, settings)
    state_path = folder / STATE_FILE

    def save_state():
        _write_json(state_path, state)

    save_state()
    dataset = None
    for unit in units:
        cfg = configs[unit]
        entry = state["units"].setdefault(unit, {"train_seconds": 0.0, "eval_seconds": 0.0, "sessions": 0})
        entry["config"] = cfg.to_dict()
        ck_path = Path(cfg.out)
        planned = cfg.steps
        done_step = peek_checkpoint(ck_path)["step"] if ck_path.exists() else None
        side = evaluation_sidecar(ck_path)
        if done_step is not None and (planned is None or done_step >= planned) and side.is_file():
            ev = _read_json(side)
            if ev and ev.get("step") == done_step and ev.get("limit") == limit:
                _say(echo, f"{unit}: finished earlier (step {done_step}); skipped")
                entry["evaluation"] = _brief(ev)
                continue
        if dataset is None:
            dataset = load_or_build_dataset(first.corpus, first.vocab_size, first.max_length, first.data_seed,
                                            progress=progress)
        resume = done_step is not None
        if resume:
            _say(echo, f"{unit}: resuming from its checkpoint at step {done_step}")
        try:
            result = train(cfg, resume=resume, progress=progress, echo=echo, dataset=dataset)
        except MinirnnError as exc:
            save_state()
            raise MinirnnError(f"{unit}: {exc}; run the same 'minirnn study' command again to resume the study") \
                from None
        entry["train_seconds"] += float(result.seconds)
        entry["sessions"] += 1
        entry["steps"] = int(result.step)
        save_state()
        t0 = time.perf_counter()

        ev = evaluate_checkpoint(ck_path, split="test", device=resolved, limit=limit, impl=cfg.impl,
                                 dataset=dataset, progress=progress)
        ev["limit"] = limit
        entry["eval_seconds"] += time.perf_counter() - t0
        _write_json(side, ev)
        entry["evaluation"] = _brief(ev)
        entry["finished"] = _now()
        save_state()
        _say(echo, f"{unit}: test cross-entropy {ev['cross_entropy']:.4f}, accuracy {100 * ev['accuracy']:.2f}%")

    state["finished"] = _now()
    write_report(folder, state, units)
    save_state()
    _say(echo, f"report: {folder / REPORT_FILE}")
    return state


def _brief(ev: dict) -> dict:
    return {k: ev.get(k) for k in ("cross_entropy", "accuracy", "baseline_accuracy", "baseline_word", "step",
                                   "observations")}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _say(echo, message: str) -> None:
    messages.say(message, err=True, echo=echo)


# -------------------------------------------------------------------------- report

def _fmt(x, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100 * x:.2f}%" if pct else f"{x:.4f}"


def write_report(folder, state: dict, units) -> Path:
    """``report.md`` (and the figures, when matplotlib is installed) from the finished units' files."""
    folder = Path(folder)
    evals = {}
    for u in units:
        ev = _read_json(evaluation_sidecar(folder / f"{u}.h5"))
        if ev:
            evals[u] = ev
    st = state["settings"]
    cfg0 = next((state["units"][u]["config"] for u in units if u in state["units"]), {})
    lines = [f"# minirnn study: {st['preset']} preset", ""]
    lines.append(f"GRU, LSTM and Nested LSTM trained on the same data with the same seed, then evaluated on the "
                 f"test split{' (first %d observations)' % st['limit'] if st.get('limit') else ''}. "
                 "Written by `minirnn study`; rerunning the same command resumes or skips finished units.")
    lines += ["", "## Results (test split)", "",
              "| model | steps | cross-entropy | accuracy | published cross-entropy | published accuracy |",
              "|---|---|---|---|---|---|"]
    for u in units:
        ev = evals.get(u)
        pub = PUBLISHED[u]
        if ev:
            lines.append(f"| {UNIT_LABELS[u]} | {ev.get('step', '–')} | {_fmt(ev['cross_entropy'])} | "
                         f"{_fmt(ev['accuracy'], True)} | {pub[0]:.4f} | {100 * pub[1]:.2f}% |")
        else:
            lines.append(f"| {UNIT_LABELS[u]} | not finished | – | – | {pub[0]:.4f} | {100 * pub[1]:.2f}% |")
    base = next((ev for ev in evals.values()), None)
    if base:
        lines += ["", f"Baseline (always predicting '{base.get('baseline_word')}', the most frequent training word): "
                      f"{_fmt(base.get('baseline_accuracy'), True)} accuracy."]
    lines += ["", "Published: the paper configuration (600 units; GRU and LSTM 2 layers, Nested LSTM 1 layer of "
                  "depth 2) after two epochs on the full text8 (docs/study.md §4). "
                  + ("This run is the paper preset: its numbers should land near them."
                     if st["preset"] == "paper" and not st.get("steps") and not st.get("overrides") else
                     "This run is smaller or shorter, so its numbers are not expected to match; the published "
                     "*ordering* (GRU ≈ LSTM better than Nested LSTM) is what to compare.")]

    # accuracy by letters seen
    if evals:
        curves = {u: letters_curves(ev).get("top1") for u, ev in evals.items()}
        width = max(8, max((len(c) for c in curves.values() if c is not None), default=0))
        width = min(width, 12)
        head = "| model | " + " | ".join(str(k) for k in range(width)) + " |"
        lines += ["", "## Top-1 accuracy by letters seen", "",
                  "Letters of the word seen before the prediction (0 = only the leading space); the published rows "
                  "are docs/study.md §4.", "", head, "|---" * (width + 1) + "|"]
        for u in units:
            c = curves.get(u)
            if c is None:
                continue
            cells = [("–" if i >= len(c) or not math.isfinite(c[i]) else f"{c[i]:.3f}") for i in range(width)]
            lines.append(f"| {UNIT_LABELS[u]} | " + " | ".join(cells) + " |")
        for u in units:
            pub = PUBLISHED_TOP1_BY_LETTERS[u]
            cells = [f"{pub[i]:.3f}" if i < len(pub) else "–" for i in range(width)]
            lines.append(f"| {UNIT_LABELS[u]} (published) | " + " | ".join(cells) + " |")

    # figures
    lines += ["", "## Figures", ""]
    if have_matplotlib() and evals:
        runs = []
        for u in units:
            p = folder / f"{u}.h5"
            if p.exists():
                runs.append((UNIT_LABELS[u], load_checkpoint(p, impl="reference").history))
        plot_loss_curves(runs, folder / LOSS_FIGURE, overwrite=True)
        plot_accuracy_by_letters([(UNIT_LABELS[u], evals[u], u) for u in units if u in evals],
                                 folder / ACCURACY_FIGURE, overwrite=True)
        lines += [f"![Training and validation loss]({LOSS_FIGURE})", "",
                  f"![Top-1/2/3 accuracy by letters seen]({ACCURACY_FIGURE})"]
    elif not evals:
        lines.append("No unit has finished yet.")
    else:
        lines.append("matplotlib is not installed, so no figures were drawn: `pip install 'minirnn[plot]'` and run "
                     "the same `minirnn study` command again (finished units are skipped; only the report is redone).")

    # settings and times
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    shown = ("corpus", "vocab_size", "max_length", "batch_size", "lr", "epochs", "steps", "seed", "data_seed",
             "dtype", "impl", "device", "outer_tanh", "eval_every", "eval_batches")
    for key in shown:
        if key in cfg0:
            lines.append(f"| {key} | {cfg0[key]} |")
    for u in units:
        c = state["units"].get(u, {}).get("config")
        if c:
            lines.append(f"| {UNIT_LABELS[u]} | hidden {c['hidden']}, layers {c['layers']}"
                         + UNITS_REGISTRY[u].describe(depth=c["depth"], outer_tanh=c.get("outer_tanh")) + " |")

    lines.append(f"| minirnn | {__version__} (Python {platform.python_version()}, {platform.machine()}) |")
    lines += ["", "## Times", "", "| model | training (s) | sessions | evaluation (s) |", "|---|---|---|---|"]
    for u in units:
        e = state["units"].get(u)
        if e:
            lines.append(f"| {UNIT_LABELS[u]} | {e.get('train_seconds', 0.0):.1f} | {e.get('sessions', 0)} | "
                         f"{e.get('eval_seconds', 0.0):.1f} |")
    lines += ["", f"Started {state.get('started', '–')}; report written {_now()}.", ""]
    path = folder / REPORT_FILE

    return write_file(path, "\n".join(lines), "report", overwrite=True)
