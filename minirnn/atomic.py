"""Writing an HDF5 file so that a failure never leaves a half-written one.

The file is written under a temporary name in the destination folder, flushed
to disk, then renamed over the destination in one step (``os.replace``).  Any
failure (a full disk, a folder without write permission, an interrupt) removes
the temporary file and leaves whatever was at the destination untouched.  A
writer killed outright (``kill -9``) can leave its temporary file behind; the
next writer that holds the file's lock removes it
(:func:`minirnn.runlock.remove_stale_temps`).

Files get the usual permissions of new files (0666 minus the umask), not the
0600 of a temporary file.  Every file carries the SHA-256 of its bytes in its
first 512 bytes (an HDF5 user block, skipped by HDF5 and h5py;
:func:`check_digest` verifies it), and datasets written with :data:`CHECKED`
also carry an HDF5 Fletcher-32 checksum that h5py verifies on every read.
"""
from __future__ import annotations

import errno
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import MinirnnError

#: keyword arguments of ``create_dataset`` for a checksummed dataset (verified by HDF5 on read)
CHECKED = {"fletcher32": True}

# Tests only: seconds to pause inside every save, so that a signal sent while the
# temporary file exists reliably lands inside the save (tests/test_reliability_signals.py).
_PAUSE_ENV = "MINIRNN_TEST_SAVE_PAUSE"


#: bytes reserved at the start of every file for its digest (an HDF5 "user block": HDF5 and h5py skip it)
USERBLOCK = 512
DIGEST_MAGIC = b"minirnn-sha256 "
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _file_sha256(fd: int) -> str:
    import hashlib

    h = hashlib.sha256()
    offset = USERBLOCK
    while True:
        block = os.pread(fd, 1 << 20, offset)
        if not block:
            return h.hexdigest()
        h.update(block)
        offset += len(block)


def stamp_digest(path) -> None:
    """Write the SHA-256 of every byte after the user block into the user block.

    Done after HDF5 has closed the file, so it covers everything: data, attributes,
    names and HDF5's own structures.  A reader checks it before HDF5 parses a
    byte, so a damaged file can neither be read silently nor crash HDF5.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        line = DIGEST_MAGIC + _file_sha256(fd).encode("ascii") + b"\n"
        os.pwrite(fd, line.ljust(USERBLOCK, b"\0"), 0)
    finally:
        os.close(fd)


def check_digest(path) -> str:
    """'ok' (digest matches), 'bad' (it does not), 'none' (plain HDF5 at byte 0: an older file) or
    'foreign' (neither: another kind of file, for HDF5 to judge)."""
    fd = os.open(path, os.O_RDONLY)   # OSError (e.g. no permission) is the caller's to report
    try:
        head = os.pread(fd, USERBLOCK, 0)
        if head.startswith(HDF5_SIGNATURE):
            return "none"
        stored = head[len(DIGEST_MAGIC):len(DIGEST_MAGIC) + 64]
        if not head.startswith(DIGEST_MAGIC):
            # our layout with a damaged magic is still ours: never hand damaged bytes to HDF5
            ours = len(stored) == 64 and all(c in b"0123456789abcdef" for c in stored)
            return "bad" if ours else "foreign"
        return "ok" if stored == _file_sha256(fd).encode("ascii") else "bad"
    finally:
        os.close(fd)


def _umask() -> int:
    try:  # Linux shows it without changing it (setting it, even briefly, races with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)   # elsewhere reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def test_pause() -> None:
    """Sleep for $MINIRNN_TEST_SAVE_PAUSE seconds (unset: not at all)."""
    value = os.environ.get(_PAUSE_ENV)
    if value:
        time.sleep(float(value))


def _fsync_path(path, directory: bool = False) -> None:
    """Flush a file's (or, best effort, a folder's) contents to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return  # not every platform can open a folder
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path, what: str, when_full: str = "free some space and try again"):
    """``with atomic_file(path, "export") as tmp:`` -- a temporary file in ``path``'s folder
    (created with the umask's permissions) that becomes ``path`` only if the block completes:
    flushed to disk, then renamed over it.  Failures raise MinirnnError (one line naming
    ``what`` and ``path``), and the previous file at ``path`` stays intact."""
    from .runlock import check_writable_folder

    path = check_writable_folder(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make every checkpoint private
        finally:
            os.close(fd)
    except OSError as exc:
        raise MinirnnError(f"cannot write {what} {path} ({exc.strerror or exc}); choose a writable folder") from None
    try:
        yield Path(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC or "No space" in str(exc):
                raise MinirnnError(f"the disk is full: could not save {what} {path} (the previous file there, "
                                   f"if any, is intact); {when_full}") from None
            raise MinirnnError(f"could not save {what} {path} ({exc}); check the folder's permissions and free "
                               "space (the previous file there, if any, is intact)") from None
        raise
    _fsync_path(path.parent, directory=True)


@contextmanager
def atomic_hdf5(path, what: str, when_full: str = "free some space and try again"):
    """``with atomic_hdf5(path, "checkpoint") as f:`` -- an open h5py File that
    becomes ``path`` only if the block completes (``atomic_file``), with the
    SHA-256 of its contents in its user block.  Failures raise MinirnnError
    (one line naming ``what`` and ``path``); ``when_full`` says what to do after
    freeing disk space."""
    import h5py

    with atomic_file(path, what, when_full) as tmp:
        with h5py.File(tmp, "w", userblock_size=USERBLOCK) as f:
            yield f
            test_pause()
            f.flush()
        stamp_digest(tmp)
