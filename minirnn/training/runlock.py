"""One writer per file: an exclusive lock on a sidecar ``<file>.lock`` that holds the writer's pid.

``fcntl.flock`` locks belong to the open file and the kernel drops them when the
process dies (also on ``kill -9``), so a lock is never stale: whoever holds it is
alive, and temporary files left beside the target by anyone else come from a
writer that died in the middle of a save (:func:`remove_stale_temps`).

    with RunLock(path, what="checkpoint"):     # MinirnnError naming the holder's pid if taken
        ...
"""
from __future__ import annotations

import errno
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (Windows): runs are not locked there
    fcntl = None
from pathlib import Path

from ..errors import MinirnnError


def lock_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


def temp_prefix(path) -> str:
    """The name prefix of the temporary files :func:`minirnn.training.atomic.atomic_file` writes for ``path``."""
    return Path(path).name + ".tmp-"


# the longest name a writer adds beside a file: its temporary file (mkstemp adds 8 characters)
_LONGEST_SIDECAR = len(".tmp-") + 8


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_writable_folder(path, what: str) -> Path:
    """Create ``path``'s folder if needed and make sure files can be created there; MinirnnError if not."""
    path = Path(path).expanduser()
    if not path.name or str(path) in (".", "..") or path.is_dir():
        raise MinirnnError(f"{what} path {str(path)!r} is a folder, not a file; give a file name such as "
                           f"{path / 'run.h5'}")
    folder = path.parent
    # find the deepest existing ancestor: mkdir's "File exists" would hide that it is a file
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise MinirnnError(f"cannot write {what} {path}: {ancestor} is a file, not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MinirnnError(f"cannot create the folder {folder} for {what} {path} ({exc.strerror or exc}); "
                           "choose a writable path") from None
    limit = _name_max(folder) - _LONGEST_SIDECAR
    if len(os.fsencode(path.name)) > limit:  # found now, not at the first save after hours of steps
        raise MinirnnError(f"{what} file name {path.name[:40]}... is {len(os.fsencode(path.name))} bytes long; "
                           f"the temporary file written beside it needs a name of at most {limit} bytes: "
                           "choose a shorter name")
    return path


class RunLock:
    """An exclusive, non-blocking (``wait=False``) or blocking lock on ``<path>.lock``."""

    def __init__(self, path, what: str = "checkpoint", wait: bool = False):
        self.path = Path(path).expanduser()
        # the file itself, not its name: a link or another spelling of the path finds the same lock
        self.lock = lock_path(self.path.resolve())
        self.what = what
        self.wait = wait
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            pid = self.lock.read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid.isdigit() else "a process that is just starting"

    def acquire(self) -> "RunLock":
        while True:
            try:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise MinirnnError(f"cannot write {self.what} {self.path} ({exc.strerror or exc} in {self.lock.parent}); "
                                   "choose a writable folder") from None
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise MinirnnError(f"{self.path} is in use by another minirnn run ({self._holder()}); wait for "
                                       "it to finish or stop it, or choose another --out") from None
                raise MinirnnError(f"cannot lock {self.lock} ({exc.strerror or exc}); choose another folder") from None
            # the holder we waited for may have removed the lock file on release: then lock the new one
            try:
                mine, there = os.fstat(fd), os.stat(self.lock)
                same = (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.lock)  # while still locked: no one can hold the name we remove
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def remove_stale_temps(path) -> tuple[int, int]:
    """Delete the temporary files of earlier, dead writers of ``path`` (call it holding the lock).

    Returns (files removed, bytes freed).
    """
    if fcntl is None:  # without a real lock a temporary file may belong to a live writer
        return 0, 0
    path = Path(path).expanduser().resolve()   # the writer writes beside the resolved file
    prefix = temp_prefix(path)
    count = size = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0, 0
    for entry in entries:
        if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
            try:
                n = entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
            except OSError:
                continue
            count, size = count + 1, size + n
    return count, size
