"""Writing an HDF5 file so that a failure never leaves a half-written one.

The file is written under a temporary name in the destination folder, flushed
to disk, then renamed over the destination in one step (``os.replace``).  Any
failure (a full disk, a folder without write permission, an interrupt) removes
the temporary file and leaves whatever was at the destination untouched.
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import MinirnnError


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
def atomic_hdf5(path, what: str, when_full: str = "free some space and try again"):
    """``with atomic_hdf5(path, "checkpoint") as f:`` -- an open h5py File that
    becomes ``path`` only if the block completes.  Failures raise MinirnnError
    (one line naming ``what`` and ``path``); ``when_full`` says what to do after
    freeing disk space."""
    import h5py

    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise MinirnnError(f"cannot write {what} {path} ({exc.strerror or exc}); choose a writable folder") from None
    try:
        with h5py.File(tmp, "w") as f:
            yield f
            f.flush()
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
