"""`minirnn complete`: the top-k predicted words at every character of a text."""
from __future__ import annotations

import json
import sys

import click

from .options import device_option
from minirnn.backend import resolve_device
from minirnn.study.export import load_model_file
from minirnn.study.analysis import MAX_TEXT_CHARS, complete as complete_text, encode_text
from minirnn.errors import MinirnnError

SPACE_MARK = "\u2423"  # the visible space shown in tables


def load_for_analysis(path: str, device: str):
    """Load a checkpoint on the resolved device with the reference units (no JIT warm-up for short texts)."""
    device, note = resolve_device(device)
    if note:
        click.echo(note, err=True)
    return load_model_file(path, device=device, impl="reference")


def format_completions(rows, k: int) -> str:
    """A fixed-width table: position, character, letters seen, the word, then the k predictions."""
    word_w = max([4] + [len(r.word) for r in rows])
    pred_w = max([8] + [len(w) for r in rows for w, _ in r.predictions])
    head = f"{'pos':>4}  chr  {'seen':>4}  {'word':<{word_w}}"
    for i in range(1, k + 1):
        head += f"  {'#' + str(i):<{pred_w}} {'prob':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ch = SPACE_MARK if r.char == " " else r.char
        word = r.word if r.target >= 2 else r.word + "?"
        line = f"{r.index:>4}   {ch}   {r.letters_seen:>4}  {word:<{word_w}}"
        for w, p in r.predictions:
            mark = "*" if w == r.word else " "
            line += f"  {w + mark:<{pred_w}} {100 * p:5.1f}%"
        lines.append(line.rstrip())
    lines.append(f"* = the correct word; ? = a word outside the model's vocabulary ({SPACE_MARK} = space, "
                 "seen = letters of the word seen)")
    return "\n".join(lines)


def _answer(ck, text: str, k: int, as_json: bool) -> str:
    enc = encode_text(text)
    rows = complete_text(ck.model, ck.output_words, enc, k=k)
    if as_json:
        return json.dumps({"text": enc.chars, "k": k, "positions": [r.to_dict() for r in rows]})
    return format_completions(rows, min(k, len(rows[0].predictions)))


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("text", required=False)
@click.option("-k", "k", type=click.IntRange(min=1), default=3, show_default=True, help="Predictions per character.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per text) instead of a table.")
@click.option("--interactive", is_flag=True, help="Read texts from stdin, one per line, and answer each until EOF.")
@device_option
def complete(checkpoint, text, k, as_json, interactive, device):
    """Show the top predicted words at every character of TEXT.

    TEXT is normalised the text8 way (lowercase, digits spelled out, anything
    but a-z becomes a space) and read as the model reads a training text: a
    space, then each word's letters.  Position 0 is that leading space.
    """
    if text is None and not interactive:
        raise click.UsageError("give a TEXT, or --interactive to read texts from stdin")
    if text is not None and interactive:
        raise click.UsageError("give either a TEXT or --interactive, not both")
    ck = load_for_analysis(checkpoint, device)
    if not interactive:
        click.echo(_answer(ck, text, k, as_json))
        return
    stdin = sys.stdin
    prompt = stdin.isatty() and sys.stdout.isatty()
    while True:
        if prompt:
            click.echo("text> ", nl=False)
        line = stdin.readline(MAX_TEXT_CHARS + 1)   # never more than a text's limit in memory
        if not line:
            break
        if len(line) > MAX_TEXT_CHARS and not line.endswith("\n"):
            _skip_rest_of_line(stdin)
            click.echo(f"Error: a line of more than {MAX_TEXT_CHARS:,} characters; at most {MAX_TEXT_CHARS:,} are "
                       "read at once: give a shorter text", err=True)
            continue
        line = line.strip()
        if not line:
            continue
        try:
            click.echo(_answer(ck, line, k, as_json))
        except MinirnnError as exc:  # one bad line does not end the session
            click.echo(f"Error: {exc}", err=True)


def _skip_rest_of_line(stdin) -> None:
    """Read past the end of an overlong line in bounded pieces (the next line is answered as usual)."""
    while True:
        piece = stdin.readline(1 << 16)
        if not piece or piece.endswith("\n"):
            return
