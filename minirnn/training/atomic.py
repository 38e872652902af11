"""The one writer of every file a command writes, so that a failure never leaves a half-written one.

A file is written under a temporary name in the destination folder, flushed
to disk, then renamed over the destination in one step (``os.replace``).  Any
failure (a full disk, a folder without write permission, an interrupt) removes
the temporary file and leaves whatever was at the destination untouched.  A
writer killed outright (``kill -9``) can leave its temporary file behind; the
next writer that holds the file's lock removes it
(:func:`minirnn.training.runlock.remove_stale_temps`).

Before anything is written, :func:`check_output` refuses a destination whose
replacement would lose something: anything that is not a regular file (a
device, a pipe), an input of the same command (the checkpoint read, the run's
corpus) and, without ``overwrite``, any existing file.  A symbolic link is
followed: the file it points to is replaced and the link stays.

HDF5 files are built in memory and written with one plain ``write``: HDF5
never touches the disk, so a full disk is an ordinary "no space" error (HDF5
failing halfway through a file on disk raised RuntimeErrors and once crashed
the process), and the free space is checked against the exact size first.

Files get the usual permissions of new files (0666 minus the umask), not the
0600 of a temporary file.  Every HDF5 file carries the SHA-256 of its bytes in
its first 512 bytes (an HDF5 user block, skipped by HDF5 and h5py;
:func:`check_digest` verifies it), and datasets written with :data:`CHECKED`
also carry an HDF5 Fletcher-32 checksum that h5py verifies on every read.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py

from ..errors import MinirnnError
from .runlock import check_writable_folder, temp_prefix

try:
    import resource
except ImportError:   # not on Windows
    resource = None

#: keyword arguments of ``create_dataset`` for a checksummed dataset (verified by HDF5 on read)
CHECKED = {"fletcher32": True}

#: files being written right now (a stop signal's handler never raises inside one: minirnn/training/signals.py)
_writing = [0]


def writing() -> bool:
    """True while a file is being built or written (then a stop signal waits for the next safe point)."""
    return _writing[0] > 0


#: bytes reserved at the start of every file for its digest (an HDF5 "user block": HDF5 and h5py skip it)
USERBLOCK = 512
DIGEST_MAGIC = b"minirnn-sha256 "
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _digest_line(sha: str) -> bytes:
    return (DIGEST_MAGIC + sha.encode("ascii") + b"\n").ljust(USERBLOCK, b"\0")


def _file_sha256(fd: int) -> str:
    h = hashlib.sha256()
    offset = USERBLOCK
    while True:
        block = os.pread(fd, 1 << 20, offset)
        if not block:
            return h.hexdigest()
        h.update(block)
        offset += len(block)


def stamp_digest(path) -> None:
    """Write the SHA-256 of every byte after the user block of the file at ``path`` into its user block."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, _digest_line(_file_sha256(fd)), 0)
    finally:
        os.close(fd)


def check_digest(path) -> str:
    """'ok' (digest matches), 'bad' (it does not, or the user block is damaged), 'none' (plain HDF5 at
    byte 0: an older file) or 'foreign' (neither: another kind of file, for HDF5 to judge)."""
    fd = os.open(path, os.O_RDONLY)   # OSError (e.g. no permission) is the caller's to report
    try:
        head = os.pread(fd, USERBLOCK + len(HDF5_SIGNATURE), 0)
        if head.startswith(HDF5_SIGNATURE):
            return "none"
        if not head.startswith(DIGEST_MAGIC):
            # an HDF5 file behind a user block is ours with a damaged (e.g. zeroed) digest: never an
            # "older file", whose checks could be switched off that way
            return "bad" if head[USERBLOCK:] == HDF5_SIGNATURE else "foreign"
        stored = head[len(DIGEST_MAGIC):len(DIGEST_MAGIC) + 64]
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


def _same_file(a: Path, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError, TypeError):
        return False


def check_output(path, what: str, overwrite: bool = False, inputs=()) -> Path:
    """The file ``path`` resolves to, when writing ``what`` there loses nothing; MinirnnError (one line) if not.

    Refused: a folder or a file whose name leaves no room for the temporary name, anything that is not
    a regular file, any of ``inputs`` (paths this command reads, e.g. its checkpoint or the corpus) and,
    without ``overwrite``, an existing file."""
    given = check_writable_folder(path, what)
    path = given.resolve()          # a link is followed: its target is replaced, the link stays
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise MinirnnError(f"{what} {given} is also an input of this command ({source}); writing it would "
                               "destroy what is being read: choose another output name")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise MinirnnError(f"cannot write {what} {given} ({exc.strerror or exc}); choose another path") from None
    if not stat.S_ISREG(st.st_mode):
        raise MinirnnError(f"{what} {given} exists and is not a regular file (a device, pipe or socket); it is "
                           "never replaced: choose a file name")
    if not overwrite:
        raise MinirnnError(f"{what} {given} already exists; add --overwrite to replace it, or choose another name")
    return path


def _too_large() -> str:
    """Why a write failed with EFBIG, and what to do: this process's file size limit when one is set
    (``ulimit -f``, a job scheduler's), else the largest file the file system holds."""
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else None
    if soft is not None and soft != resource.RLIM_INFINITY:
        return (f"this process may write files of at most {soft:,} bytes (its file size limit, 'ulimit -f'); "
                "the previous file there, if any, is intact; raise the limit and try again")
    return ("the file is larger than its file system allows; the previous file there, if any, is intact; "
            "save it on another file system")


def _write_all(fd: int, data, folder: Path, path: Path, what: str, when_full: str) -> None:
    """Write every byte of ``data`` to ``fd``, after checking that the folder's disk can hold them."""
    view = memoryview(data).cast("B")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and len(view) > free:
        raise MinirnnError(f"the disk is full: {what} {path} needs {len(view):,} bytes but {free:,} are free "
                           f"(the previous file there, if any, is intact); {when_full}")
    while view:
        view = view[os.write(fd, view):]


@contextmanager
def atomic_file(path, what: str, when_full: str = "free some space and try again", *, overwrite: bool = False,
                inputs=()):
    """``with atomic_file(path, "export") as write: write(data)`` -- ``data`` (bytes) becomes ``path``
    only if the block completes: written to a temporary file in ``path``'s folder (created with the
    umask's permissions), flushed to disk, then renamed over it.  ``path`` is checked first
    (:func:`check_output` with ``overwrite`` and ``inputs``).  Failures raise MinirnnError (one line
    naming ``what`` and ``path``), and the previous file at ``path`` stays intact."""
    path = check_output(path, what, overwrite=overwrite, inputs=inputs)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
    except OSError as exc:
        raise MinirnnError(f"cannot write {what} {path} ({exc.strerror or exc}); choose a writable folder") from None
    _writing[0] += 1
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make every checkpoint private
            yield lambda data: _write_all(fd, data, path.parent, path, what, when_full)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            if exc.errno == errno.EFBIG:   # no free space would help: say what limits the file's size
                raise MinirnnError(f"could not save {what} {path}: {_too_large()}") from None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise MinirnnError(f"the disk is full: could not save {what} {path} (the previous file there, "
                                   f"if any, is intact); {when_full}") from None
            raise MinirnnError(f"could not save {what} {path} ({exc.strerror or exc}); check the folder's "
                               "permissions and free space (the previous file there, if any, is intact)") from None
        raise
    finally:
        _writing[0] -= 1
    _fsync_path(path.parent, directory=True)


def write_file(path, data, what: str, *, overwrite: bool = False, inputs=(),
               when_full: str = "free some space and try again") -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` with :func:`atomic_file`; returns the path written."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_file(path, what, when_full, overwrite=overwrite, inputs=inputs) as write:
        write(data)
    return Path(path).expanduser()


@contextmanager
def atomic_hdf5(path, what: str, when_full: str = "free some space and try again", *, overwrite: bool = False,
                inputs=()):
    """``with atomic_hdf5(path, "checkpoint") as f:`` -- an h5py File built in memory that becomes
    ``path`` (:func:`atomic_file`) only if the block completes, with the SHA-256 of its contents in
    its user block.  Failures raise MinirnnError (one line naming ``what`` and ``path``);
    ``when_full`` says what to do after freeing disk space."""
    with atomic_file(path, what, when_full, overwrite=overwrite, inputs=inputs) as write:
        buffer = io.BytesIO()
        try:
            with h5py.File(buffer, "w", userblock_size=USERBLOCK) as f:
                yield f
        except (RuntimeError, OSError, ValueError, TypeError, KeyError) as exc:   # HDF5 failed: nothing written
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MinirnnError(f"could not save {what} {path} ({why}); the previous file there, if any, is "
                               "intact") from None
        data = buffer.getbuffer()
        data[:USERBLOCK] = _digest_line(hashlib.sha256(data[USERBLOCK:]).hexdigest())
        write(data)
        del data
