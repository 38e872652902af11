"""Every file a command writes: never over an input, a device or an existing file without --overwrite;
one lock per file whatever its path; a real full disk (a small tmpfs) costs one line and nothing else."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tiny_corpus import invoke, one_line, tiny_train_command, tiny_train_config, write_tiny_corpus

from minirnn.training.checkpoint import load_checkpoint
from minirnn.training.runlock import RunLock
from minirnn.training.loop import train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=1200, seed=7))


@pytest.fixture(scope="module")
def run_h5(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run.h5"
    train(tiny_train_config(corpus, out), progress=False, echo=None)
    return out


def real(*args, **kw):
    return subprocess.run([sys.executable, "-m", "minirnn", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


# ----------------------------------------------------------------------------- never over what is read

def test_connectivity_never_replaces_its_checkpoint(run_h5):
    before = run_h5.read_bytes()
    proc = real("connectivity", run_h5, "the cat", "--at", "2", "--html", run_h5, "--overwrite")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "is also an input of this command" in proc.stderr, proc.stderr
    assert run_h5.read_bytes() == before


def test_an_existing_output_is_replaced_only_with_overwrite(run_h5, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("mine")
    line = one_line(invoke("connectivity", run_h5, "the cat", "--at", "2", "--html", page))
    assert "already exists; add --overwrite" in line and page.read_text() == "mine"
    assert invoke("connectivity", run_h5, "the cat", "--at", "2", "--html", page, "--overwrite").exit_code == 0
    assert page.read_text().lstrip().lower().startswith("<!doctype html")

    pytest.importorskip("safetensors")
    export = tmp_path / "m.safetensors"
    export.write_text("mine")
    assert "already exists" in one_line(invoke("export", run_h5, export)) and export.read_text() == "mine"
    assert invoke("export", run_h5, export, "--overwrite").exit_code == 0

    pytest.importorskip("matplotlib")
    assert "is also an input" in one_line(invoke("plot", run_h5, "--out", run_h5, "--overwrite"))
    figure = tmp_path / "loss.png"
    figure.write_text("mine")
    assert "already exists" in one_line(invoke("plot", run_h5, "--out", figure)) and figure.read_text() == "mine"
    assert invoke("plot", run_h5, "--out", figure, "--overwrite").exit_code == 0
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "m.safetensors", "page.html"]


def test_train_never_replaces_its_corpus_or_a_device(corpus, tmp_path):
    text = tmp_path / "corpus.txt"
    shutil.copy(corpus, text)
    before = text.read_bytes()
    args = tiny_train_command(str(text), text, "--steps", "2", "--overwrite")[3:]
    assert "is also an input of this command" in one_line(invoke(*args))
    assert text.read_bytes() == before

    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))   # a /dev/null of our own
    except OSError:
        os.mkfifo(device)                                           # no right to make devices: a pipe
    kind = stat.S_IFMT(os.stat(device).st_mode)
    line = one_line(invoke(*tiny_train_command(corpus, device, "--steps", "2", "--overwrite")[3:]))
    assert "is not a regular file" in line
    assert stat.S_IFMT(os.stat(device).st_mode) == kind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "null"]


# ----------------------------------------------------------------------------- one lock per file

def test_a_link_to_a_running_checkpoint_is_locked_too(corpus, run_h5, tmp_path):
    target = tmp_path / "run.h5"
    shutil.copy(run_h5, target)
    link = tmp_path / "link.h5"
    link.symlink_to(target)
    (tmp_path / "sub").mkdir()
    before = target.read_bytes()
    with RunLock(target):                            # another run holds the file
        for out in (link, tmp_path / "sub" / ".." / "run.h5"):
            proc = real(*tiny_train_command(corpus, out, "--steps", "6", "--resume")[3:])
            assert proc.returncode == 1 and "is in use by another minirnn run" in proc.stderr, proc.stderr
    assert target.read_bytes() == before
    proc = real(*tiny_train_command(corpus, link, "--steps", "6", "--resume")[3:])
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and load_checkpoint(link, impl="reference").step == 6   # the link stays


# ----------------------------------------------------------------------------- a real full disk

@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root; skipped where it cannot be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs ({proc.stderr.strip() or proc.returncode}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk, leave: int) -> None:
    """Fill the disk up to ``leave`` free bytes."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock"))


def test_a_full_disk_costs_one_line_and_nothing_else(corpus, small_disk, tmp_path):
    env = {**os.environ, "MINIRNN_HOME": str(tmp_path / "home")}
    out = small_disk / "run.h5"
    assert real(*tiny_train_command(corpus, out, "--steps", "3")[3:], env=env).returncode == 0
    before = out.read_bytes()
    fill(small_disk, leave=len(before) // 2)     # enough for the start's estimate, not for the file
    proc = real(*tiny_train_command(corpus, out, "--steps", "6", "--checkpoint-every", "1", "--resume")[3:], env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0] and "intact" in errors[0], proc.stderr
    assert out.read_bytes() == before and leftovers(small_disk) == []

    # the dataset cache on the full disk: one line, no temporary file
    home = small_disk / "home"
    fresh = write_tiny_corpus(tmp_path / "other.txt", words=1500, seed=8)
    proc = real(*tiny_train_command(str(fresh), tmp_path / "other.h5", "--steps", "2")[3:],
                env={**env, "MINIRNN_HOME": str(home)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "disk is full" in proc.stderr, proc.stderr
    assert leftovers(small_disk) == [] and not (tmp_path / "other.h5").exists()


def test_a_file_size_limit_is_named_not_taken_for_a_full_disk(corpus, tmp_path):
    """A save that outgrows the process's file size limit (``ulimit -f``, as job schedulers set; no root
    needed) costs one line that names the limit -- freeing disk space would not help -- and nothing else."""
    resource = pytest.importorskip("resource")
    env = {**os.environ, "MINIRNN_HOME": str(tmp_path / "home")}
    out = tmp_path / "run.h5"
    assert real(*tiny_train_command(corpus, out, "--steps", "3")[3:], env=env).returncode == 0
    before = out.read_bytes()
    limit = len(before) // 2

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = real(*tiny_train_command(corpus, out, "--steps", "6", "--checkpoint-every", "1", "--resume")[3:],
                env=env, preexec_fn=limited)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"at most {limit:,} bytes" in errors[0] and "ulimit -f" in errors[0], proc.stderr
    assert "disk is full" not in errors[0] and "intact" in errors[0]
    assert out.read_bytes() == before and leftovers(tmp_path) == []
