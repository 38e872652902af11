"""One writer per checkpoint: two real `minirnn train` processes on one --out."""
import os
import signal
import subprocess
import time

import pytest

from tiny_corpus import tiny_train_command, write_tiny_corpus

from minirnn.training.checkpoint import load_checkpoint
from minirnn.errors import MinirnnError
from minirnn.training.runlock import RunLock


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=1200, seed=7))


command = tiny_train_command


def test_a_second_run_or_resume_on_a_running_checkpoint_is_refused_naming_the_holder(corpus, tmp_path):
    out = tmp_path / "run.h5"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    first = subprocess.Popen(command(corpus, out, "--steps", "100000", "--checkpoint-every", "20", "--seed", "1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not out.exists():   # the first run holds the lock and has saved once
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.01)
        for more in (["--steps", "50", "--seed", "2", "--overwrite"], ["--steps", "50", "--resume"]):
            second = subprocess.run(command(corpus, out, *more), capture_output=True, text=True, timeout=120, env=env)
            assert second.returncode == 1, second.stderr
            errors = [line for line in second.stderr.splitlines() if line.strip()]
            assert errors == [f"Error: {out} is in use by another minirnn run (pid {first.pid}); wait for it to "
                              "finish or stop it, or choose another --out"], second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 143, err
    step = load_checkpoint(out, impl="reference").step
    assert load_checkpoint(out, impl="reference").config["seed"] == 1      # the refused run wrote nothing

    # once the holder is gone, the resume goes through
    resumed = subprocess.run(command(corpus, out, "--steps", str(step + 1), "--resume"), capture_output=True,
                             text=True, timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out, impl="reference").step == step + 1


def test_the_lock_is_released_and_its_file_removed(tmp_path):
    out = tmp_path / "run.h5"
    with RunLock(out):
        assert (tmp_path / "run.h5.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(MinirnnError, match=f"pid {os.getpid()}"):
            RunLock(out).acquire()       # a second open file description: flock refuses it too
    assert not (tmp_path / "run.h5.lock").exists()
    with RunLock(out):                   # and it can be taken again
        pass
