"""Figures (matplotlib, an optional dependency: ``pip install 'minirnn[plot]'``).

Every function writes one PNG (or any format matplotlib infers from the file
name) and returns its path; ``**output`` (``overwrite``, ``inputs``) goes to the
one atomic writer, which refuses to replace an existing file without ``overwrite``.  Matplotlib is imported only here, with the
non-interactive Agg backend, so the rest of minirnn never needs it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MinirnnError
from ..units import UNITS
import io
from ..training.atomic import write_file
from .connectivity import _lines, relative, rgb

PLOT_FIX = "pip install 'minirnn[plot]'"

#: docs/study.md §4: published top-1 accuracy given k letters of the word seen (k = 0..7).
PUBLISHED_TOP1_BY_LETTERS = {
    "gru": (0.165, 0.383, 0.556, 0.658, 0.678, 0.673, 0.660, 0.665),
    "lstm": (0.167, 0.376, 0.539, 0.641, 0.670, 0.670, 0.659, 0.669),
    "nlstm": (0.137, 0.326, 0.492, 0.591, 0.622, 0.626, 0.619, 0.635),
}
UNIT_LABELS = {name: spec.label for name, spec in UNITS.items()}


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a one-line MinirnnError naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise MinirnnError(f"plotting needs matplotlib, which is not installed; {PLOT_FIX}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out, overwrite: bool = False, inputs=()) -> Path:
    """Render the figure in memory, then write it with the one atomic writer (minirnn/training/atomic.py)."""
    plt = pyplot()
    out = Path(out).expanduser()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=out.suffix[1:].lower() or "png", dpi=110, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise MinirnnError(f"cannot write figure {out} ({exc}); choose a writable path ending in .png") from None
    finally:
        plt.close(fig)
    return write_file(out, buffer.getvalue(), "figure", overwrite=overwrite, inputs=inputs)


def plot_loss_curves(runs, out, **output) -> Path:
    """Training and validation loss against steps; ``runs`` = [(label, history dict)].

    The history holds ``train_step``/``train_loss`` and ``val_step``/``val_loss``
    (either pair may be missing).  Training loss is drawn as a thin line with a
    moving average, validation loss as markers joined by a thicker line, one
    colour per run.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    drawn = 0
    for i, (label, hist) in enumerate(runs):
        color = f"C{i % 10}"
        ts, tl = np.asarray(hist.get("train_step", [])), np.asarray(hist.get("train_loss", []))
        if ts.size and tl.size:
            n = min(ts.size, tl.size)
            w = max(1, n // 50)
            ax.plot(ts[:n], tl[:n], color=color, alpha=0.3 if w > 1 else 1.0, linewidth=0.8 if w > 1 else 1.4)
            if w > 1:
                smooth = np.convolve(tl[:n], np.ones(w) / w, mode="valid")
                ax.plot(ts[w - 1:n], smooth, color=color, linewidth=1.4, label=f"{label} train")
            else:
                ax.plot([], [], color=color, linewidth=1.4, label=f"{label} train")
            drawn += 1
        vs, vl = np.asarray(hist.get("val_step", [])), np.asarray(hist.get("val_loss", []))
        if vs.size and vl.size:
            n = min(vs.size, vl.size)
            ax.plot(vs[:n], vl[:n], color=color, linewidth=2.2, marker="o", markersize=4, linestyle="--",
                    label=f"{label} validation")
            drawn += 1
    if not drawn:
        plt.close(fig)
        raise MinirnnError("the checkpoint(s) hold no loss history to plot; train for a few steps first")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("cross-entropy")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, **output)


#: A bucket of letters seen with fewer positions than this is not drawn: its accuracy could be off
#: by up to 5 points (one standard error, sqrt(0.25 / 100)), and a tail of such points looks like a
#: trend.  The plot says what it left out.
MIN_POSITIONS = 100


def letters_curves(evaluation: dict, min_positions: int = 1) -> dict:
    """{"top1": array, ...} from an evaluation dict (``by_letters``); the buckets at the end with fewer
    than ``min_positions`` positions (by default: the empty ones) are dropped."""
    by = evaluation.get("by_letters") or evaluation.get("accuracy_by_letters") or {}
    positions = np.asarray(by.get("positions", []), dtype=np.int64)
    curves = {}
    for key in ("top1", "top2", "top3"):
        if key not in by:
            continue
        ys = np.asarray([np.nan if v is None else v for v in by[key]], dtype=float)
        if positions.size == ys.size:
            enough = np.nonzero(positions >= min_positions)[0]
            ys = ys[: enough[-1] + 1] if enough.size else ys[:0]
        curves[key] = ys
    return curves


def _left_out(evaluation: dict, drawn: int) -> str:
    """What the plot of ``evaluation`` leaves out after its first ``drawn`` buckets, or ""."""
    by = evaluation.get("by_letters") or evaluation.get("accuracy_by_letters") or {}
    positions = np.asarray(by.get("positions", []), dtype=np.int64)
    rest = int(positions[drawn:].sum())
    if not rest:
        return ""
    return (f"not drawn: {drawn}+ letters seen, {rest:,} position{'s' * (rest != 1)} in all\n"
            f"(fewer than {MIN_POSITIONS} per point)")


def plot_accuracy_by_letters(results, out, published: bool = True, max_letters: int | None = None,
                             **output) -> Path:
    """Top-1/2/3 accuracy against letters seen, one panel per model, side by side.

    ``results`` = [(label, evaluation dict, unit or None)]; the dict is
    :func:`minirnn.study.evaluate.evaluate_model`'s (``by_letters`` with ``top1``,
    ``top2``, ``top3``).  The last bucket collects that many letters or more.
    With ``published`` and a known unit, the published top-1 curve is drawn too.
    """
    plt = pyplot()
    if not results:
        raise MinirnnError("nothing to plot: give at least one checkpoint")
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4), sharey=True, squeeze=False)
    for ax, (label, ev, unit) in zip(axes[0], results):
        if not letters_curves(ev):
            plt.close(fig)
            raise MinirnnError(f"{label}: the evaluation holds no accuracy by letters seen; evaluate it again")
        curves = letters_curves(ev, MIN_POSITIONS)
        note = _left_out(ev, len(curves["top1"]) if "top1" in curves else 0)
        if note:
            ax.text(0.02, 0.98, note, transform=ax.transAxes, ha="left", va="top", fontsize=7, color="0.35")
        for i, key in enumerate(("top1", "top2", "top3")):
            ys = curves.get(key, np.zeros(0))
            if max_letters is not None:
                ys = ys[: max_letters + 1]
            if ys.size:
                ax.plot(np.arange(ys.size), ys, marker="o", markersize=3, color=f"C{i}", label=f"top-{i + 1}")
        if published and unit in PUBLISHED_TOP1_BY_LETTERS:
            pub = PUBLISHED_TOP1_BY_LETTERS[unit]
            ax.plot(np.arange(len(pub)), pub, color="k", linestyle=":", marker="x", markersize=4,
                    label="top-1 published")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("letters of the word seen")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Accuracy given the letters of the word seen")
    return _save(fig, out, **output)


def plot_connectivity(chars: str, values, at: int, out, title: str = "", scale: str = "linear",
                      width: int = 60, **output) -> Path:
    """The connectivity heat map as an image: one cell per character, coloured like the terminal map."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    rel = relative(values, scale=scale)
    lines = _lines(chars, width)
    ncols = max(e - s for s, e in lines)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.2 * ncols + 0.6), 0.42 * len(lines) + 0.9))
    for row, (s, e) in enumerate(lines):
        for col, t in enumerate(range(s, e)):
            face = tuple(c / 255 for c in rgb(rel[t]))
            ax.add_patch(Rectangle((col, -row - 1), 1, 1, facecolor=face,
                                   edgecolor="#1040c0" if t == at else "none", linewidth=1.6 if t == at else 0))
            ax.text(col + 0.5, -row - 0.5, chars[t] if chars[t] != " " else "\u2423" if t == at else "",
                    ha="center", va="center", fontsize=10, family="monospace",
                    fontweight="bold" if t == at else "normal")
    ax.set_xlim(0, ncols)
    ax.set_ylim(-len(lines), 0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, out, **output)
