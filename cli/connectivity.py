"""`minirnn connectivity`: how strongly each earlier character drives one prediction (docs/analysis.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .complete import SPACE_MARK, load_for_analysis
from .options import device_option
import numpy as np
from minirnn.study import analysis, connectivity as heatmap
from minirnn.training.atomic import check_output, write_file
from minirnn.errors import MinirnnError
from minirnn.study.plotting import plot_connectivity


def _describe(res) -> str:
    enc, n = res.text, res.at
    ch = "space" if enc.chars[n] == " " else repr(enc.chars[n])
    seen = enc.letters_seen(n)
    why = ("the correct word" if res.cls_source == "target"
           else f"the model's prediction: {enc.words[n]!r} is not in the vocabulary")
    return (f"output position {n} ({ch}, {seen} letter{'s' if seen != 1 else ''} of {enc.words[n]!r} seen): "
            f"gradient of the logit of {res.cls_word!r} ({why})")


def _strongest(res, count: int = 5) -> str:
    vals = res.values[: res.at + 1]
    order = np.argsort(-vals, kind="stable")[:count]
    total = float(vals.sum()) or 1.0
    parts = []
    for t in order:
        ch = SPACE_MARK if res.text.chars[t] == " " else res.text.chars[t]
        parts.append(f"{t} '{ch}' {100 * vals[t] / total:.1f}%")
    return "strongest inputs (share of the total): " + ", ".join(parts)


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("text")
@click.option("--at", "at", type=int, default=None,
              help="Output position (0 = the leading space; negative counts from the end).")
@click.option("--word", "word", default=None, help="Use the last letter of this word's occurrence in TEXT.")
@click.option("--occurrence", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --word: which occurrence of the word.")
@click.option("--scale", type=click.Choice(["linear", "log"]), default="linear", show_default=True,
              help="Colour scale relative to the largest value (log shows four decades).")
@click.option("--color/--no-color", "color", default=None,
              help="Coloured background (default: when writing to a terminal); --no-color prints level marks.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write one self-contained HTML page (every position's map, click to switch).")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the heat map as an image (needs minirnn[plot]).")
@click.option("--overwrite", is_flag=True, help="Replace existing files at --html / --png.")
@click.option("--json", "as_json", is_flag=True, help="Print the connectivity values as JSON instead of a map.")
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Predictions listed per position on the HTML page.")
@device_option
def connectivity(checkpoint, text, at, word, occurrence, scale, color, html_path, png_path, overwrite, as_json, k,
                 device):
    """Connectivity of one prediction to every earlier character of TEXT.

    For the output at position N (--at N, or the last letter of --word W), each
    input position's value is the squared norm of the gradient of one logit at N
    with respect to that position's one-hot input.  The logit is the correct
    word's; when that word is not in the model's vocabulary, the predicted word's.
    """
    if (at is None) == (word is None):
        raise click.UsageError("give exactly one of --at N or --word WORD")
    output = {"overwrite": overwrite, "inputs": (checkpoint,)}
    for path, what in ((png_path, "figure"), (html_path, "page")):
        if path:
            check_output(path, what, **output)   # before the model is loaded
    ck = load_for_analysis(checkpoint, device)
    vocab = analysis.Vocabulary(ck.output_words, int(ck.model.params["dense.b"].shape[0]))
    enc = analysis.encode_text(text)
    if at is not None and not -len(enc) <= at < len(enc):  # report the position as given, not shifted

        raise MinirnnError(f"--at {at} is outside the text: positions run from 0 (the leading space) to "
                           f"{len(enc) - 1}, or from -{len(enc)} to -1 counted from the end")
    res = analysis.connectivity(ck.model, vocab, enc, at=at, word=word, occurrence=occurrence)

    if as_json:
        click.echo(json.dumps({"text": enc.chars, "at": res.at, "class": res.cls_word, "class_source": res.cls_source,
                               "values": [float(v) for v in res.values[: res.at + 1]]}))
    else:
        use_color = sys.stdout.isatty() if color is None else color
        click.echo(_describe(res))
        click.echo(heatmap.terminal_heatmap(enc.chars, res.values, res.at, color=use_color, scale=scale),
                   color=use_color or None)
        click.echo(heatmap.legend(color=use_color, scale=scale), color=use_color or None)
        click.echo(_strongest(res))

    title = f"{ck.model.config['unit']} ({Path(checkpoint).name}, step {ck.step})"
    if png_path:
        out = plot_connectivity(enc.chars, res.values, res.at, png_path, scale=scale,
                                title=f"connectivity of position {res.at} (logit of '{res.cls_word}') - {title}",
                                **output)
        click.echo(f"wrote {out}", err=True)
    if html_path:
        data = analysis.page_data(ck.model, vocab, enc, k=k)
        page = heatmap.connectivity_html(data, title=f"minirnn connectivity - {title}", initial=res.at, scale=scale,
                                         subtitle=f"{len(enc)} characters; checkpoint {checkpoint}")
        write_file(html_path, page, "page", **output)
        click.echo(f"wrote {html_path}", err=True)
