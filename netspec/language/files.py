"""Safe file I/O for every stage: one atomic write, one bounded read.

``write_atomic(path, data)`` replaces `path` so that a reader, or a crash at any moment,
sees either the old content or the new one, never a mixture:

- the new content goes to a temporary file with a unique, unpredictable name created
  exclusively (``mkstemp``: ``O_CREAT | O_EXCL``, never following a symlink planted at a
  guessable name) in the target's own directory, is flushed and fsynced, then renamed over
  the target; the directory is fsynced so that the rename itself survives a power cut;
- the target keeps its permission bits (a 0600 spec stays 0600); a new file gets the
  usual ``0666 & ~umask``;
- on any failure the temporary file is removed and ``WriteError`` says which file could
  not be written and why.

Two kinds of target are not replaced:

- a **symlink** is written *through*: its final target (``os.path.realpath``) is replaced
  atomically, in the target's directory, and the link stays a link;
- anything that is not a regular file (``/dev/stdout``, a FIFO, a character device) is
  simply opened and written, since it cannot be renamed over.

``FAULTS`` is the one seam for crash tests: it is called with the name of each file
operation before it happens (``create``, ``write``, ``fsync``, ``chmod``, ``replace``,
``unlink``); tests make it raise or ``os._exit`` at the N-th one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

Fault = Callable[[str, str], None]


def _no_fault(operation: str, path: str) -> None:
    return None


FAULTS: list[Fault] = [_no_fault]


class WriteError(OSError):
    """A file could not be written: the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"cannot write {os.fspath(path)}: {reason}")
        self.filename = os.fspath(path)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def operation(name: str, path: str | os.PathLike[str]) -> None:
    """Announce a file operation (the crash tests' kill points)."""
    FAULTS[-1](name, os.fspath(path))


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace `path` with `data` atomically (see the module's docstring)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if os.path.exists(path) and not os.path.isfile(path):  # a device, a FIFO, /dev/stdout: no rename
            _write_plain(Path(path), payload)
        else:
            _replace(Path(os.path.realpath(path)) if os.path.islink(path) else Path(path), payload)
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(path, e.strerror or str(e)) from None


def _write_plain(target: Path, payload: bytes) -> None:
    operation("write", target)
    with open(target, "wb") as f:
        f.write(payload)


def _replace(target: Path, payload: bytes) -> None:
    mode = _mode_of(target)
    operation("create", target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            operation("write", tmp)
            f.write(payload)
            f.flush()
            operation("fsync", tmp)
            os.fsync(f.fileno())
            operation("chmod", tmp)
            os.fchmod(f.fileno(), mode)
        operation("replace", target)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(target.parent)


def _mode_of(target: Path) -> int:
    """The permission bits the new file gets: the old file's, or 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove(path: str | os.PathLike[str]) -> None:
    """Delete a file if it is there."""
    operation("unlink", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class TooLarge(OSError):
    """A file is larger than a reader accepts."""


class NotAFile(OSError):
    """A path that is a device, a FIFO, a socket or a folder, where a regular file was expected."""


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of `path`, refusing a file over `limit` bytes without reading it all, and
    anything but a regular file (`/dev/zero` would never end, a FIFO would block) without
    reading it at all: opened without blocking, then checked."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, a FIFO or a socket)"
            raise NotAFile(22, what, os.fspath(path))
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(27, f"larger than {limit} bytes", os.fspath(path))
    return data
