"""One run per run directory: a finished run is never overwritten by accident, and two runs never
write to the same directory at once.

`claim(out, resume, overwrite)` refuses a non-empty directory unless the run resumes it or was
told to overwrite it, then holds an exclusive `fcntl.flock` on `out/.lock` until the run ends
(the kernel drops it when the process dies, so a killed run leaves no stale lock).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from netspec.language.diagnostics import UsageError
from netspec.language.files import remove

LOCK = ".lock"
# What `--overwrite` removes before a new run starts: the files of an earlier run.
RUN_FILES = ("state.json", "metrics.csv", "summary.json", "model.safetensors", "best.safetensors")


@contextlib.contextmanager
def claim(out: Path, resume: bool, overwrite: bool) -> Iterator[None]:
    """Check that a run may write to `out`, and hold its lock meanwhile."""
    if not resume and not overwrite and _has_files(out):
        raise UsageError(
            f"{out} already holds a run; continue it with --resume {out}, "
            "write over it with --overwrite, or choose another --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise UsageError(f"cannot use {out} as a run directory: {e.strerror}") from None
    try:
        _lock(fd, out)
        for stale in out.glob(".*.tmp"):  # left by a run that was killed while writing (files.write_atomic)
            remove(stale)
        if overwrite and not resume:
            _clear(out)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def fresh_run_dir(stem: str) -> Path:
    """runs/<stem>-<timestamp>, with -2, -3, ... when runs started in the same second."""
    import time

    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    names = (base if i == 1 else f"{base}-{i}" for i in range(1, 10**6))
    return next(Path("runs") / n for n in names if not (Path("runs") / n).exists())


def _lock(fd: int, out: Path) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        message = f"another netspec run is writing to {out}; wait for it to end, or choose another --out"
        raise UsageError(message) from e


def _has_files(out: Path) -> bool:
    try:
        return any(p.name != LOCK for p in out.iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise UsageError(f"{out} is a file, not a run directory") from None


def _clear(out: Path) -> None:
    for name in RUN_FILES:  # state.json first: a half-cleared directory is not resumable
        remove(out / name)
    for path in out.glob("checkpoint*.safetensors"):
        remove(path)
