"""Corpora: text8 (downloaded and cached), a built-in offline corpus, local files.

Every corpus ends up as *normalised* text in the text8 style: only the letters
``a``-``z`` and single spaces, digits spelled out one word per digit, no leading
or trailing space.  See ``docs/data.md``.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MinirnnError
from ..messages import progress as reporter_progress

__all__ = [
    "TEXT8_URL",
    "TEXT8_SIZE",
    "Corpus",
    "data_home",
    "normalize_text",
    "builtin_corpus",
    "download_text8",
    "load_corpus",
    "corpus_from_text",
]

#: Canonical text8 download (a zip holding one member named ``text8``).
TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
#: Size in bytes of the canonical ``text8.zip``.
TEXT8_SIZE = 31_344_016
#: Name of the member inside ``text8.zip``.
TEXT8_MEMBER = "text8"

_CHUNK = 1 << 16
#: Largest corpus read into memory (text8 is 100 MB); a bigger file, or a device such as /dev/zero
#: that never ends, is refused before it fills the memory.
MAX_CORPUS_BYTES = 1 << 30
_LETTERS_AND_SPACE = b" abcdefghijklmnopqrstuvwxyz"
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGITS = str.maketrans({str(d): f" {w} " for d, w in enumerate(_DIGIT_WORDS)})
_NOT_LETTERS = re.compile(r"[^a-z]+")


def data_home() -> Path:
    """Folder where minirnn caches downloads and dataset files.

    ``$MINIRNN_HOME`` when that variable is set and non-empty, else ``~/.minirnn``.
    The folder is not created here; the functions that write into it create it.
    """
    env = os.environ.get("MINIRNN_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".minirnn"


@dataclass(frozen=True)
class Corpus:
    """A normalised corpus: ``text`` holds only ``a``-``z`` and single spaces."""

    text: str
    name: str
    sha256: str

    @classmethod
    def from_normalized(cls, text: str, name: str) -> "Corpus":
        """Wrap already-normalised ``text`` (checks that it has at least one letter)."""
        if not text:
            raise MinirnnError(f"corpus {name} has no letters a-z after normalisation; give a corpus with English text")
        return cls(text=text, name=name, sha256=hashlib.sha256(text.encode("ascii")).hexdigest())

    @property
    def num_words(self) -> int:
        return self.text.count(" ") + 1 if self.text else 0


# --------------------------------------------------------------------------- text


def _strip_accents(text: str) -> str:
    """NFKD-decompose and drop combining marks: 'é' -> 'e', 'ﬁ' -> 'fi', '²' -> '2'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_text(text: str) -> str:
    """Normalise ``text`` the text8 way.

    1. lowercase; accents stripped (Unicode NFKD, combining marks dropped, so
       ``"Café"`` -> ``"cafe"``; letters with no decomposition such as ``ß`` or
       ``æ`` are not letters a-z and so become word breaks);
    2. each digit becomes its own word: ``"1984"`` -> ``"one nine eight four"``;
    3. every other character that is not ``a``-``z`` is a word break;
    4. runs of breaks become one space; no leading or trailing space.
    """
    text = text.lower()
    if not text.isascii():
        text = _strip_accents(text).lower()
    text = text.translate(_DIGITS)
    return _NOT_LETTERS.sub(" ", text).strip()


def builtin_corpus() -> str:
    """The English prose of CPython's ``pydoc_data.topics``, normalised.

    All topic texts, in sorted topic order, joined by newlines, then
    :func:`normalize_text`.  Needs no network; its exact content depends on the
    Python version (the dataset cache is keyed by the text's checksum).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - stripped-down Python installs
        raise MinirnnError(
            "the built-in corpus needs the standard-library module pydoc_data, which this Python lacks; "
            "use --corpus text8 or a text file"
        ) from None
    return normalize_text("\n".join(topics[key] for key in sorted(topics)))


# ----------------------------------------------------------------------- download


def _progress_bar(progress: bool, total: int, done: int, label: str):
    """The reporter's progress bar (minirnn/messages.py), entered, already at ``done``."""
    bar = reporter_progress(progress, total, label)
    bar.__enter__()
    if done:
        bar.update(done)
    return bar


def _fail(url: str, part: Path, why: str) -> MinirnnError:
    return MinirnnError(
        f"downloading {url} failed ({why}); run the same command again to resume from {part} "
        f"({part.stat().st_size if part.exists() else 0} bytes so far), or download text8.zip yourself and pass its path"
    )


def download_text8(
    dest_dir: str | os.PathLike | None = None,
    url: str = TEXT8_URL,
    progress: bool = True,
    expected_size: int = TEXT8_SIZE,
    timeout: float = 60.0,
) -> Path:
    """Download ``text8.zip`` into ``dest_dir`` (default ``data_home()``) and return its path.

    - A finished file of ``expected_size`` bytes is reused without any network use.
    - Bytes arrive in ``text8.zip.part``; a later call resumes it with an HTTP
      ``Range`` request (a server that ignores ``Range`` and answers 200 restarts
      the file from zero).
    - The finished file must have exactly ``expected_size`` bytes; it is then
      renamed atomically to ``text8.zip``.
    - A failed transfer raises :class:`MinirnnError` and keeps the partial file.
    """
    dest = Path(dest_dir).expanduser() if dest_dir is not None else data_home()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MinirnnError(f"cannot create the download folder {dest} ({exc.strerror}); set MINIRNN_HOME to a writable folder") from None
    final = dest / "text8.zip"
    part = dest / "text8.zip.part"
    if final.is_file() and final.stat().st_size == expected_size:
        return final

    have = part.stat().st_size if part.is_file() else 0
    if have > expected_size:  # cannot be a prefix of the right file
        part.unlink()
        have = 0
    if have < expected_size:
        _fetch(url, part, have, expected_size, progress, timeout)

    size = part.stat().st_size
    if size != expected_size:
        part.unlink()
        raise MinirnnError(
            f"downloaded {url} has {size} bytes but {expected_size} were expected; the partial file was removed, "
            "check the URL (or pass the expected size) and try again"
        )
    os.replace(part, final)
    return final


def _fetch(url: str, part: Path, have: int, expected_size: int, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (or rewrite it when Range is ignored)."""
    request = urllib.request.Request(url, headers={"User-Agent": "minirnn"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # our partial file is not a prefix the server knows; start over
            part.unlink()
            return _fetch(url, part, 0, expected_size, progress, timeout)
        raise _fail(url, part, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _fail(url, part, str(reason)) from None

    with response:
        status = getattr(response, "status", 200)
        if status == 206:
            mode, start = "ab", have
        else:  # 200: the whole file again, from byte 0
            mode, start = "wb", 0
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and start + int(length) != expected_size:
            if part.exists():
                part.unlink()
            raise MinirnnError(
                f"{url} serves a file of {start + int(length)} bytes but {expected_size} were expected; check the URL "
                "(or pass the expected size) and try again"
            )
        bar = _progress_bar(progress, expected_size, start, "downloading text8.zip")
        try:
            with open(part, mode) as out:
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
        except Exception as exc:  # connection dropped, disk full, ...
            raise _fail(url, part, f"{type(exc).__name__}: {exc}") from None
        finally:
            bar.__exit__(None, None, None)
    got = part.stat().st_size
    if got < expected_size:
        raise _fail(url, part, f"the connection ended after {got} of {expected_size} bytes")


# -------------------------------------------------------------------------- loading


def _from_bytes(data: bytes, name: str) -> Corpus:
    """Text8-formatted bytes take a fast path; anything else is decoded and normalised."""
    if not data.translate(None, _LETTERS_AND_SPACE):  # only a-z and spaces
        text = data.decode("ascii")
        if "  " in text:
            text = " ".join(text.split())
        else:
            text = text.strip(" ")
        return Corpus.from_normalized(text, name)
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MinirnnError(f"corpus {name} is not UTF-8 text (bad byte at offset {exc.start}); give a UTF-8 text file or text8.zip") from None
    return Corpus.from_normalized(normalize_text(raw), name)


def corpus_from_text(text: str, name: str = "text") -> Corpus:
    """A :class:`Corpus` from an in-memory string (normalised unless it already is)."""
    if text.isascii():
        return _from_bytes(text.encode("ascii"), name)
    return Corpus.from_normalized(normalize_text(text), name)


def _read_zip(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            if TEXT8_MEMBER not in archive.namelist():
                raise MinirnnError(
                    f"zip file {path} has no member named {TEXT8_MEMBER!r}; give the text8.zip from {TEXT8_URL} or an unzipped text file"
                )
            size = archive.getinfo(TEXT8_MEMBER).file_size
            if size > MAX_CORPUS_BYTES:
                raise MinirnnError(_too_big(path, size))
            return archive.read(TEXT8_MEMBER)
    except MinirnnError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise MinirnnError(f"{path} is not a valid zip file ({exc}); delete it and download text8.zip again") from None
    except OSError as exc:
        raise MinirnnError(f"cannot read {path} ({exc.strerror or exc}); check the file and its permissions") from None


def _too_big(path: Path, size: int) -> str:
    return (f"corpus {path} holds {size:,} bytes, more than the {MAX_CORPUS_BYTES:,} minirnn reads into memory; "
            "give a smaller text file (e.g. its first part: head -c 500M)")


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, refusing (without reading it all) a file above MAX_CORPUS_BYTES."""
    try:
        size = path.stat().st_size
        if size > MAX_CORPUS_BYTES:
            raise MinirnnError(_too_big(path, size))
        with open(path, "rb") as f:
            data = f.read(MAX_CORPUS_BYTES + 1)  # the size on disk may lie (a file still growing)
    except OSError as exc:
        raise MinirnnError(f"cannot read corpus file {path} ({exc.strerror or exc}); check the file and its "
                           "permissions") from None
    if len(data) > MAX_CORPUS_BYTES:
        raise MinirnnError(_too_big(path, max(len(data), path.stat().st_size)))
    return data


def load_corpus(spec: "str | os.PathLike | Corpus", progress: bool = False) -> Corpus:
    """Load a corpus by name or path.

    ``"builtin"``: :func:`builtin_corpus`.  ``"text8"``: the canonical text8,
    downloaded into ``data_home()`` when not cached.  Anything else is a path:
    a ``text8.zip`` (member ``text8`` is read), an unzipped ``text8`` (only a-z
    and spaces: used as is), or any UTF-8 text file (normalised).  A file that
    happens to be named ``text8`` in the working folder is given as ``./text8``.
    """
    if isinstance(spec, Corpus):
        return spec
    if isinstance(spec, str) and spec == "builtin":
        return Corpus.from_normalized(builtin_corpus(), "builtin")
    if isinstance(spec, str) and spec == "text8":
        path = download_text8(progress=progress)
        return _from_bytes(_read_zip(path), "text8")

    path = Path(spec).expanduser()
    if not path.exists():
        raise MinirnnError(f"corpus file {path} does not exist; give 'builtin', 'text8' or the path of a text file or text8.zip")
    if path.is_dir():
        raise MinirnnError(f"corpus path {path} is a folder; give the path of a text file or text8.zip")
    if not path.is_file():
        raise MinirnnError(f"corpus path {path} is not a regular file (a device, pipe or socket); "
                           "give the path of a text file or text8.zip")
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        data = _read_zip(path)
    else:
        data = _read_bounded(path)
    if not data.strip():
        raise MinirnnError(f"corpus file {path} is empty; give a file with English text")
    return _from_bytes(data, str(path))
