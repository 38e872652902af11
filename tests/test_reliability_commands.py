"""Bounds and stops of the other commands: long texts, bench sizes, early Ctrl-C, a resume that would go
back, and the server's backlog and stalled clients (real sockets on 127.0.0.1)."""
import http.client
import socket
import threading

import pytest

from tiny_corpus import invoke, one_line, tiny_train_config, write_tiny_corpus

from minirnn.study.analysis import MAX_TEXT_CHARS
from minirnn.errors import MinirnnError
from minirnn.training.loop import train


@pytest.fixture(scope="module")
def run_h5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    corpus = write_tiny_corpus(folder / "tiny.txt", words=1200, seed=7)
    out = folder / "run.h5"
    train(tiny_train_config(str(corpus), out, steps=6), progress=False, echo=None)
    return out


def test_texts_are_bounded(run_h5):
    """A 1.6 MB line once took 24 GB in `complete`; now every command that reads text has one bound."""
    long_text = "the cat sat " * (MAX_TEXT_CHARS // 10)
    assert "at most 5,000 are read at once" in one_line(invoke("complete", run_h5, long_text))
    assert "at most 5,000" in one_line(invoke("connectivity", run_h5, long_text, "--at", "1"))
    digits = "7" * (MAX_TEXT_CHARS // 2)              # short, but far longer once spelled out
    assert "once normalised" in one_line(invoke("complete", run_h5, digits))
    assert invoke("complete", run_h5, "the cat " * 100).exit_code == 0


@pytest.mark.parametrize("args, why", [
    (["--pause", "nan"], "the pause must be between 0 and 60"),
    (["--pause", "inf"], "the pause must be between 0 and 60"),
    (["--counted", "nan"], "counted fraction must be in [0, 1]"),
    (["--time", "99999999999999"], "max_length must be at most"),
    (["--batch-size", "99999999999"], "batch_size must be at most"),
    (["--hidden", "100000000"], "hidden must be at most"),
    (["--hidden", "200000"], "this run needs at least"),       # within the bounds: the memory estimate
])
def test_bench_has_the_limits_of_train(args, why):
    assert why in one_line(invoke("bench", "--unit", "gru", "--repeats", "1", "--no-memory", *args))


def test_ctrl_c_before_a_command_takes_over_is_one_line_and_130(monkeypatch):
    import minirnn.cli.info

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(minirnn.cli.info, "parameter_table", interrupted)
    result = invoke("info", "--unit", "gru")
    assert result.exit_code == 130 and result.output.count("\n") == 1, result.output
    assert "interrupted by Ctrl-C (SIGINT); no file was left half-written" in result.output


def test_a_resume_never_goes_back(run_h5, tmp_path):
    corpus = run_h5.parent / "tiny.txt"
    before = run_h5.read_bytes()
    with pytest.raises(MinirnnError, match="is at step 6, past the 3 steps asked for"):
        train(tiny_train_config(str(corpus), run_h5, steps=3), resume=True, progress=False, echo=None)
    assert run_h5.read_bytes() == before             # the stored settings were once rewritten


# ----------------------------------------------------------------------------- the server

@pytest.fixture
def server(run_h5, monkeypatch):
    from minirnn.study.serve import App, Handler, make_server

    monkeypatch.setattr(Handler, "timeout", 0.5)
    app = App.load([str(run_h5)], max_chars=60)
    srv = make_server(app, "127.0.0.1", 0)
    yield srv
    srv.server_close()
    app.close()


def test_a_burst_of_connections_waits_for_the_server(server):
    """Before anything is accepted, 100 connections queue (a backlog of 5 reset a busy page's requests)."""
    sockets = []
    try:
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            sockets.append(s)
    finally:
        for s in sockets:
            s.close()
    assert len(sockets) == 100


def test_a_stalled_client_gets_408_not_an_internal_error(server, capfd):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", "/api/complete")
        conn.putheader("Host", f"127.0.0.1:{server.port}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", "100")
        conn.endheaders(b'{"text": ')               # then nothing: the body never completes
        response = conn.getresponse()
        assert response.status == 408, response.read()
        conn.close()
    finally:
        server.shutdown()
    assert "internal error" not in capfd.readouterr().err
