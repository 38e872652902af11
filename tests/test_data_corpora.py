"""Corpora: normalisation, built-in corpus, loading files, and the text8 download
against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from minirnn.data import corpora
from minirnn.data.corpora import (
    Corpus,
    builtin_corpus,
    corpus_from_text,
    data_home,
    download_text8,
    load_corpus,
    normalize_text,
)
from minirnn.errors import MinirnnError

LETTERS = set("abcdefghijklmnopqrstuvwxyz ")


def is_normalised(text: str) -> bool:
    return set(text) <= LETTERS and "  " not in text and text == text.strip()


# ------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The Cat", "the cat"),
        ("In 1984 he left.", "in one nine eight four he left"),
        ("x2y", "x two y"),
        ("42", "four two"),
        ("rock'n'roll, e-mail; a.b", "rock n roll e mail a b"),
        ("  many   spaces\n\tand\r\nlines  ", "many spaces and lines"),
        ("Café naïve Ångström façade", "cafe naive angstrom facade"),
        ("ÉCOLE", "ecole"),
        ("Straße", "stra e"),  # no decomposition: a word break
        ("ﬁne", "fine"),  # compatibility ligature
        ("x²", "x two"),
        ("日本 text", "text"),
        ("!!!", ""),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_is_idempotent():
    text = normalize_text("Hello, World! 3 times: Größe 10%.")
    assert normalize_text(text) == text
    assert is_normalised(text)


def test_builtin_corpus():
    text = builtin_corpus()
    assert len(text) > 100_000
    assert is_normalised(text)
    corpus = load_corpus("builtin")
    assert corpus.text == text and corpus.name == "builtin"
    assert len(corpus.sha256) == 64
    assert corpus.num_words == len(text.split(" "))


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIRNN_HOME", str(tmp_path / "h"))
    assert data_home() == tmp_path / "h"
    monkeypatch.delenv("MINIRNN_HOME")
    assert data_home() == Path.home() / ".minirnn"


# ------------------------------------------------------------------ loading files


def make_zip(path: Path, member: str = "text8", text: bytes = b" the cat sat on the mat") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, text)
    return path


def test_load_text8_zip_and_unzipped(tmp_path):
    corpus = load_corpus(make_zip(tmp_path / "text8.zip"))
    assert corpus.text == "the cat sat on the mat"
    raw = tmp_path / "text8"
    raw.write_bytes(b" the cat sat on the mat")
    again = load_corpus(raw)
    assert again.text == corpus.text and again.sha256 == corpus.sha256
    # a zip without the .zip suffix is still recognised
    noext = make_zip(tmp_path / "archive")
    assert load_corpus(noext).text == corpus.text


def test_load_text_file_is_normalised(tmp_path):
    f = tmp_path / "prose.txt"
    f.write_text("Hello, World!\nCafé in 1999.", encoding="utf-8")
    c = load_corpus(str(f))
    assert c.text == "hello world cafe in one nine nine nine"
    assert c.sha256 == corpus_from_text("hello world cafe in one nine nine nine").sha256


def test_text8_like_file_with_double_spaces(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"  the  cat ")
    assert load_corpus(f).text == "the cat"


def test_load_text8_name_uses_download(monkeypatch, tmp_path):
    z = make_zip(tmp_path / "text8.zip")
    monkeypatch.setattr(corpora, "download_text8", lambda progress=True: z)
    c = load_corpus("text8")
    assert c.name == "text8" and c.text == "the cat sat on the mat"


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda p: p / "missing.txt", "does not exist"),
        (lambda p: p, "is a folder"),
        (lambda p: _write(p / "e.txt", b""), "is empty"),
        (lambda p: _write(p / "w.txt", b"   \n "), "is empty"),
        (lambda p: _write(p / "n.txt", b"!!! ??? ..."), "no letters"),
        (lambda p: _write(p / "bad.txt", b"caf\xe9 \xff\xfe"), "not UTF-8"),
        (lambda p: _write(p / "bad.zip", b"this is not a zip"), "not a valid zip"),
        (lambda p: make_zip(p / "other.zip", member="words.txt"), "no member named 'text8'"),
    ],
)
def test_load_errors(tmp_path, setup, fragment):
    path = setup(tmp_path)
    with pytest.raises(MinirnnError) as info:
        load_corpus(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_corpus_from_normalized_rejects_empty():
    with pytest.raises(MinirnnError, match="no letters"):
        Corpus.from_normalized("", "x")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ download


class Server:
    """A small HTTP server on 127.0.0.1 (ephemeral port) serving one file."""

    def __init__(self, payload: bytes, ranges: bool = True, drop_after: int | None = None):
        self.payload = payload
        self.ranges = ranges
        self.drop_after = drop_after
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                outer.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if self.path != "/text8.zip":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start = outer.payload, 0
                rng = self.headers.get("Range")
                if outer.ranges and rng and rng.startswith("bytes="):
                    start = int(rng[len("bytes=") :].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.drop_after is not None:
                    body = body[: outer.drop_after]
                    outer.drop_after = None  # only the first transfer breaks
                    self.close_connection = True
                self.wfile.write(body)
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/text8.zip"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def payload() -> bytes:
    buf = io.BytesIO()
    words = " ".join(f"w{chr(97 + i % 26)}{chr(97 + (i * 7) % 26)}" for i in range(5000))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("text8", (" " + words.replace("w", "")).encode("ascii"))
    return buf.getvalue()


def test_download_full(tmp_path, payload, capsys):
    with Server(payload) as server:
        path = download_text8(tmp_path, url=server.url, progress=True, expected_size=len(payload))
    assert path == tmp_path / "text8.zip"
    assert path.read_bytes() == payload
    assert not (tmp_path / "text8.zip.part").exists()
    assert server.requests[0]["range"] is None
    assert load_corpus(path).text.startswith("aa bh co")
    # a finished file is reused without any request
    with Server(payload) as server:
        assert download_text8(tmp_path, url=server.url, progress=False, expected_size=len(payload)) == path
    assert server.requests == []


def test_download_resumes_with_range(tmp_path, payload):
    k = len(payload) // 3
    (tmp_path / "text8.zip.part").write_bytes(payload[:k])
    with Server(payload) as server:
        path = download_text8(tmp_path, url=server.url, progress=False, expected_size=len(payload))
    assert server.requests[0]["range"] == f"bytes={k}-"
    assert path.read_bytes() == payload


def test_download_server_ignoring_range_restarts(tmp_path, payload):
    (tmp_path / "text8.zip.part").write_bytes(b"garbage!" * 10)
    with Server(payload, ranges=False) as server:
        path = download_text8(tmp_path, url=server.url, progress=False, expected_size=len(payload))
    assert server.requests[0]["range"] == "bytes=80-"
    assert path.read_bytes() == payload


def test_download_interrupted_keeps_part_then_resumes(tmp_path, payload):
    k = len(payload) // 2
    with Server(payload, drop_after=k) as server:
        with pytest.raises(MinirnnError) as info:
            download_text8(tmp_path, url=server.url, progress=False, expected_size=len(payload))
        assert "resume" in str(info.value) and "\n" not in str(info.value)
        part = tmp_path / "text8.zip.part"
        assert part.read_bytes() == payload[:k]
        path = download_text8(tmp_path, url=server.url, progress=False, expected_size=len(payload))
    assert server.requests[-1]["range"] == f"bytes={k}-"
    assert path.read_bytes() == payload


def test_download_wrong_size(tmp_path, payload):
    with Server(payload) as server:
        with pytest.raises(MinirnnError) as info:
            download_text8(tmp_path, url=server.url, progress=False, expected_size=len(payload) + 10)
    assert "expected" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "text8.zip").exists()


def test_download_404(tmp_path, payload):
    with Server(payload) as server:
        with pytest.raises(MinirnnError) as info:
            download_text8(tmp_path, url=server.url.replace("text8.zip", "nope.zip"), progress=False, expected_size=len(payload))
    assert "404" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "text8.zip").exists()


def test_download_unreachable(tmp_path):
    # a port nobody listens on: bind, note the port, close
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(MinirnnError, match="failed"):
        download_text8(tmp_path, url=f"http://127.0.0.1:{port}/text8.zip", progress=False, expected_size=10, timeout=5)
