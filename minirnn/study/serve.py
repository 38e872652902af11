"""`minirnn serve`: the study's interactive figures as a local web app (docs/serve.md).

A thin layer of JSON endpoints over :mod:`minirnn.study.analysis` on the standard
library's ``http.server`` (one thread per connection), plus one page (HTML, CSS
and vanilla JavaScript shipped in ``minirnn/study/serve_page/``, read once at start;
nothing is loaded from the network).

    GET  /                     the page (and /app.js, /app.css)
    GET  /api/models           every checkpoint's settings and training curves
    POST /api/complete         {"text": str, "k": 1..10}       top-k words per position, per model
    POST /api/connectivity     {"text": str, "at": position}   each model's connectivity to one output
    GET  /api/accuracy?model=i accuracy by letters seen on the test split (computed once, in the background)

Safety: every error is one JSON object ``{"error": "..."}`` with a 4xx/5xx
status and the server keeps serving; request bodies are JSON objects of at most
``MAX_BODY`` bytes with ``Content-Type: application/json``; texts are bounded
(``max_chars``); routes are a fixed table, so nothing in a request names a file;
bound to a loopback address the server answers only requests whose ``Host`` is
that address (no DNS rebinding).
"""
from __future__ import annotations

import json
import math
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import analysis
from ..errors import MinirnnError
from importlib import resources
from .plotting import UNIT_LABELS
from .comparison import evaluation_for
from concurrent.futures import ThreadPoolExecutor
from ..training.checkpoint import load_checkpoint
from .connectivity import LOG_DECADES
import socket

MAX_BODY = 64 * 1024
DEFAULT_MAX_CHARS = 500
MAX_CHARS_LIMIT = analysis.MAX_TEXT_CHARS
#: Whole answers kept per endpoint, keyed by the request (an unchanged text is never recomputed).
ANSWER_CACHE = 64
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGE_FILES = {  # URL path -> (file under minirnn/study, content type); the only files ever served
    "/": ("serve_page/index.html", "text/html; charset=utf-8"),
    "/index.html": ("serve_page/index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),    # shared with minirnn read's page
    "/app.js": ("serve_page/app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("serve_page/app.css", "text/css; charset=utf-8"),
}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def page_files(routes: dict = PAGE_FILES) -> dict:
    """A page's files as bytes, by URL path (read from the installed package; also ``minirnn read``'s)."""
    folder = resources.files("minirnn.study")
    cache = {}
    out = {}
    for route, (name, ctype) in routes.items():
        if name not in cache:
            try:
                cache[name] = folder.joinpath(name).read_bytes()
            except OSError:
                raise MinirnnError(f"the page file minirnn/study/{name} is missing from this installation; "
                                   "reinstall minirnn") from None
        out[route] = (cache[name], ctype)
    return out


# --------------------------------------------------------------------------- models

@dataclass
class ServedModel:
    """One loaded checkpoint: its live analysis, its summary and its evaluation state."""

    index: int
    path: Path
    checkpoint: object
    live: analysis.LiveModel
    label: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    accuracy: dict | None = None          # {"state": "computing" | "done" | "error", ...}
    accuracy_lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict:
        ck = self.checkpoint
        cfg = dict(ck.config)
        return {"id": self.index, "label": self.label, "unit": ck.model.config["unit"], "file": self.path.name,
                "step": ck.step, "dtype": str(ck.model.dtype), "model": dict(ck.model.config),
                "parameters": ck.model.parameter_counts(), "output_words": len(ck.output_words),
                "settings": {k: cfg[k] for k in sorted(cfg) if _plain(cfg[k])},
                "curves": analysis.training_curves(ck.history)}


def _plain(v) -> bool:
    return v is None or isinstance(v, (str, bool, int)) or (isinstance(v, float) and math.isfinite(v))


def model_labels(paths, units) -> list[str]:
    """'GRU', 'LSTM', 'Nested LSTM'; the file name is added where two checkpoints share a unit."""
    names = [UNIT_LABELS.get(u, str(u)) for u in units]
    return [f"{n} ({Path(p).stem})" if names.count(n) > 1 else n for n, p in zip(names, paths)]


def _default_evaluate(device: str, limit: int | None):
    def evaluate(served: ServedModel):
        return evaluation_for(served.path, served.checkpoint, split="test", device=device, limit=limit)
    return evaluate


class App:
    """The endpoints, independent of HTTP: ``route(method, path, query, body)``.

    ``evaluate(served) -> (evaluation dict, source)`` computes the accuracy of one
    model (default: the stored evaluation, else the test split).
    """

    def __init__(self, models: list, max_chars: int = DEFAULT_MAX_CHARS, evaluate=None, device: str = "cpu",
                 eval_limit: int | None = None):
        if not models:
            raise MinirnnError("give at least one checkpoint")
        if not 1 <= max_chars <= MAX_CHARS_LIMIT:
            raise MinirnnError(f"--max-chars must be between 1 and {MAX_CHARS_LIMIT}")
        self.models = models
        self.max_chars = int(max_chars)
        self.device = device
        self.evaluate = evaluate or _default_evaluate(device, eval_limit)
        self.eval_limit = eval_limit
        self.files = page_files()
        self._answers = {kind: analysis.LRUCache(ANSWER_CACHE) for kind in ("complete", "connectivity")}
        self._answers_lock = threading.Lock()

        # The models answer side by side: NumPy releases the GIL in its products.
        self._pool = ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="minirnn-model")
        self.routes = {
            ("GET", "/api/models"): self.api_models,
            ("POST", "/api/complete"): self.api_complete,
            ("POST", "/api/connectivity"): self.api_connectivity,
            ("GET", "/api/accuracy"): self.api_accuracy,
        }

    @classmethod
    def load(cls, paths, device: str = "cpu", **kwargs) -> "App":
        """Load every checkpoint (one-line MinirnnError for a bad one) on ``device``."""
        cks = [load_checkpoint(p, device=device, impl="reference") for p in paths]
        labels = model_labels(paths, [ck.model.config["unit"] for ck in cks])
        models = [ServedModel(index=i, path=Path(p), checkpoint=ck, label=label,
                              live=analysis.LiveModel(ck.model, analysis.Vocabulary(
                                  ck.output_words, int(ck.model.params["dense.b"].shape[0]))))
                  for i, (p, ck, label) in enumerate(zip(paths, cks, labels))]
        return cls(models, device=device, **kwargs)

    # ---------------------------------------------------------------- routing
    def route(self, method: str, path: str, query: str = "", body: bytes = b"") -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; raises RequestError for a bad one."""
        return dispatch(self.files, self.routes, method, path, query, body)

    # --------------------------------------------------------------- endpoints
    def api_models(self, query: dict) -> dict:
        _only(query, (), "GET /api/models")

        return {"max_chars": self.max_chars, "max_k": analysis.LIVE_TOP, "log_decades": LOG_DECADES,
                "device": self.device, "models": [m.summary() for m in self.models]}

    def _text(self, req: dict) -> analysis.EncodedText:
        text, typing = req.get("text"), req.get("typing", False)
        if not isinstance(text, str):
            raise RequestError(400, "'text' must be a string")
        if not isinstance(typing, bool):
            raise RequestError(400, "'typing' must be true or false")
        if len(text) > self.max_chars:
            raise RequestError(400, f"the text has {len(text)} characters; the limit is {self.max_chars} "
                                    "(minirnn serve --max-chars)")
        try:
            enc = analysis.encode_text(text, typing=typing)
        except MinirnnError as exc:
            raise RequestError(400, str(exc)) from None
        if len(enc) - 1 > self.max_chars:
            raise RequestError(400, f"the text is {len(enc) - 1} characters long as the model reads it (digits "
                                    f"spelled out); the limit is {self.max_chars} (minirnn serve --max-chars)")
        return enc

    def _cached(self, kind: str, key, compute) -> bytes:
        with self._answers_lock:
            hit = self._answers[kind].get(key)
        if hit is not None:
            return hit
        answer = _dumps(compute())
        with self._answers_lock:
            self._answers[kind].put(key, answer)
        return answer

    def _each_model(self, fn) -> list:
        """``fn(model)`` for every model, in parallel threads; the results in model order."""
        if len(self.models) == 1:
            return [fn(self.models[0])]
        return list(self._pool.map(fn, self.models))

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def api_complete(self, req: dict) -> bytes:
        _only(req, ("text", "k", "typing"), "POST /api/complete")
        k = _int(req.get("k", 3), "k", 1, analysis.LIVE_TOP)
        enc = self._text(req)

        def one(m):
            with m.lock:
                rows = m.live.complete(enc, k=k)
            return {"id": m.index,
                    "predictions": [[[w, p] for w, p in r.predictions] for r in rows],
                    "target_probability": [r.target_probability for r in rows],
                    "in_vocabulary": [r.target >= analysis.FIRST_WORD for r in rows]}

        def compute():
            per_model = self._each_model(one)
            return {"text": enc.chars, "k": k, "words": enc.words,
                    "letters_seen": [enc.letters_seen(t) for t in range(len(enc))],
                    "typing": [enc.typing(t) for t in range(len(enc))], "models": per_model}
        return self._cached("complete", (enc.chars, k, enc.open_from), compute)

    def api_connectivity(self, req: dict) -> bytes:
        _only(req, ("text", "at", "typing"), "POST /api/connectivity")
        if "at" not in req:
            raise RequestError(400, "'at' (the output position) is required")
        enc = self._text(req)
        at = _int(req["at"], "at", 0, len(enc) - 1,
                  why=f"position {req['at']!r} is outside the text: positions run from 0 (the leading space) "
                      f"to {len(enc) - 1}")

        def one(m):
            with m.lock:
                res = m.live.connectivity(enc, at)
            vals = [float(v) for v in res.values[: at + 1]]
            return {"id": m.index, "class": res.cls_word, "class_source": res.cls_source, "values": vals,
                    "max": max(vals)}

        def compute():
            per_model = self._each_model(one)
            return {"text": enc.chars, "at": at, "word": enc.words[at], "letters_seen": enc.letters_seen(at),
                    "typing": enc.typing(at), "models": per_model}
        return self._cached("connectivity", (enc.chars, at, enc.typing(at)), compute)

    def api_accuracy(self, query: dict) -> dict:
        _only(query, ("model",), "GET /api/accuracy")
        raw = query.get("model")
        if raw is None or not raw.isdigit() or len(raw) > 6:
            raise RequestError(400, f"give ?model=N with N from 0 to {len(self.models) - 1}")
        index = int(raw)
        if index >= len(self.models):
            raise RequestError(400, f"model {index} does not exist: N runs from 0 to {len(self.models) - 1}")
        m = self.models[index]
        with m.accuracy_lock:
            if m.accuracy is None:
                m.accuracy = {"state": "computing"}
                threading.Thread(target=self._evaluate, args=(m,), daemon=True,
                                 name=f"minirnn-evaluate-{index}").start()
            return {"id": index, **m.accuracy}

    def _evaluate(self, m: ServedModel) -> None:
        try:
            ev, source = self.evaluate(m)
            keep = ("split", "observations", "positions", "accuracy", "baseline_accuracy", "baseline_word",
                    "cross_entropy", "by_letters", "step")
            result = {"state": "done", "source": source,
                      "evaluation": json.loads(_dumps({k: ev[k] for k in keep if k in ev}))}
        except MinirnnError as exc:
            result = {"state": "error", "error": f"cannot evaluate {m.path.name}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - reported in the page, the server goes on
            result = {"state": "error", "error": f"evaluating {m.path.name} failed: {type(exc).__name__}: {exc}"}
        with m.accuracy_lock:
            m.accuracy = result


# ------------------------------------------------------------------ validation

def dispatch(files: dict, routes: dict, method: str, path: str, query: str, body: bytes) -> tuple[int, str, bytes]:
    """One request against a fixed table: ``files`` (URL path -> (bytes, type), GET only) and ``routes``
    ((method, path) -> handler of a JSON object or of the query's fields, answering a dict or JSON bytes)."""
    if path in files:
        if method != "GET":
            raise RequestError(405, f"{path} answers GET only")
        data, ctype = files[path]
        return 200, ctype, data
    handler = routes.get((method, path))
    if handler is None:
        if any(p == path for _, p in routes):
            allowed = next(m for m, p in routes if p == path)
            raise RequestError(405, f"{path} answers {allowed} only")
        raise RequestError(404, f"no such page or endpoint: {path[:100]}; the page is at /")
    if method == "POST":
        answer = handler(_json_object(body))
    else:
        if body:
            raise RequestError(400, f"GET {path} takes no body")
        answer = handler(_query(query))
    if isinstance(answer, bytes):
        return 200, "application/json", answer
    return 200, "application/json", _dumps(answer)


def _dumps(value) -> bytes:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):   # numpy scalars
            return clean(v.item())
        return v
    return json.dumps(clean(value), separators=(",", ":"), allow_nan=False).encode("utf-8")


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError(400, "the request body must be a JSON object (UTF-8)") from None
    if not isinstance(value, dict):
        raise RequestError(400, "the request body must be a JSON object")
    return value


def _query(query: str) -> dict:
    if not query:
        return {}
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=True, max_num_fields=10)
    except ValueError:
        raise RequestError(400, "the query string is malformed") from None
    out = {}
    for k, v in parsed.items():
        if len(v) != 1:
            raise RequestError(400, f"the query parameter {k!r} is given {len(v)} times")
        out[k] = v[0]
    return out


def _only(req: dict, allowed, what: str) -> None:
    extra = sorted(k for k in req if k not in allowed)
    if extra:
        keys = ", ".join(repr(k[:40]) for k in extra[:5])
        known = ", ".join(allowed) or "nothing"
        raise RequestError(400, f"{what} does not take {keys}; it takes {known}")


def _int(value, name: str, low: int, high: int, why: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"'{name}' must be an integer")
    if not low <= value <= high:
        raise RequestError(400, why or f"'{name}' must be between {low} and {high}")
    return value


# ------------------------------------------------------------------------ HTTP

class Handler(BaseHTTPRequestHandler):
    """Turns HTTP into App.route calls; every failure becomes one JSON error."""

    server_version = "minirnn-serve"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30                       # seconds a connection may stay silent before it is closed
    disable_nagle_algorithm = True     # headers and body leave at once (no 40 ms delayed-ACK stall)
    error_content_type = "application/json"

    def do_GET(self):  # noqa: N802 (http.server's names)
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        headers = {}
        self._body_read = method != "POST"
        try:
            self._check_host()
            url = urlsplit(self.path)
            body = self._body() if method == "POST" else b""
            status, ctype, payload = self.server.app.route(method, url.path, url.query, body)
        except RequestError as exc:
            if not self._body_read:            # an unread body must not be parsed as the next request
                self.close_connection = True
            if exc.status == 405:
                headers["Allow"] = "GET, POST"
            self._send_json_error(exc.status, exc.message, headers)
            return
        except TimeoutError:                   # the client stopped sending: its fault (408), not ours (500)
            self.close_connection = True
            self._send_json_error(408, f"the request did not arrive within {self.timeout} s")
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the server: one line, status 500
            msg = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0][:300]
            sys.stderr.write(f"minirnn serve: {self.command} {self.path[:100]}: {msg}\n")
            self._send_json_error(500, msg)
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self._common_headers(ctype)
        self.end_headers()
        self.wfile.write(payload)

    def _check_host(self) -> None:
        allowed = self.server.allowed_hosts
        if allowed is not None and (self.headers.get("Host") or "").lower() not in allowed:
            raise RequestError(403, "this server answers requests addressed to "
                                    f"{sorted(allowed)[0]} only (Host header)")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "a POST needs a Content-Length")
        if not length.strip().isdigit():
            raise RequestError(400, "Content-Length must be a number of bytes")
        n = int(length)
        if n > MAX_BODY:
            raise RequestError(413, f"the request body has {n} bytes; the limit is {MAX_BODY}")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(415, "send the body as JSON with Content-Type: application/json")
        body = self.rfile.read(n)
        if len(body) != n:
            raise RequestError(400, "the request body ended before Content-Length bytes")
        self._body_read = True
        return body

    def _common_headers(self, ctype: str) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy", PAGE_CSP)

    def _send_json_error(self, status: int, message: str, headers: dict | None = None) -> None:
        payload = _dumps({"error": message})
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self._common_headers("application/json")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (malformed request line, unsupported method, ...) as JSON too."""
        self.close_connection = True
        try:
            short = self.responses[code][0]
        except KeyError:
            short = "error"
        self._send_json_error(code, str(message or short).splitlines()[0][:300])

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        if self.server.verbose:
            sys.stderr.write("minirnn serve: %s\n" % (format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128   # connections waiting to be accepted (socketserver's 5 reset bursts of a busy page)

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False):
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)
        self.app = app
        self.verbose = verbose
        self.port = self.server_address[1]
        self.allowed_hosts = None
        if host in LOOPBACK:
            self.allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    def handle_error(self, request, client_address):
        """A connection that broke mid-answer (the browser went away): one line, never a traceback."""
        exc = sys.exc_info()[1]
        if self.verbose or not isinstance(exc, (ConnectionError, TimeoutError)):
            sys.stderr.write(f"minirnn serve: connection from {client_address[0]} failed: "
                             f"{type(exc).__name__}: {exc}\n")

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"


def make_server(app: App, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False) -> Server:
    """Bind (port 0: any free port); one-line MinirnnError when the address cannot be used."""
    try:
        return Server(app, host, port, verbose)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise MinirnnError(f"cannot listen on {host}:{port} ({why}); choose another --port (0 picks a free one) "
                           "or --host") from None


def warm_up(app: App) -> None:
    """One small request per endpoint so the first keystroke pays no first-call costs."""
    app.route("POST", "/api/complete", "", b'{"text": "the"}')
    app.route("POST", "/api/connectivity", "", b'{"text": "the", "at": 3}')
