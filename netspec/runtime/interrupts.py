"""Ctrl-C (SIGINT) and SIGTERM, the signal schedulers send: a run stops at a safe point.

While `deferred()` is active, either signal only sets a flag; the training loop calls `check()`
after each step, which raises `Interrupted` there, so that a checkpoint is always taken between
two steps, never in the middle of one. The same signal a second time raises at once (marked
`at_once`: no checkpoint is taken then, the last one stays). Before training (loading data), `terminating()` makes
SIGTERM raise `Interrupted` at once, as SIGINT raises KeyboardInterrupt. The command line exits
with 128 + the signal's number (130, 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []


class Interrupted(KeyboardInterrupt):
    """A run was stopped by a signal; `signum` is the signal."""

    def __init__(self, signum: int = signal.SIGINT, at_once: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.at_once = at_once  # a second signal: raised wherever the run was, not at a safe point


def check() -> None:
    """Raise Interrupted if a signal came since the last check."""
    if _pending:
        signum = _pending[0]
        _pending.clear()
        raise Interrupted(signum)


def _note(signum: int, frame: Any) -> None:
    if signum in _pending:  # the same signal twice (Ctrl-C, Ctrl-C): stop at once
        raise Interrupted(signum, at_once=True)
    _pending.append(signum)


def ignore_in_worker(worker_id: int) -> None:
    """A DataLoader worker's start: Ctrl-C in a terminal reaches the whole process group, but the main
    process decides when to stop; a worker that died of it would break the next batch."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _raise(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals set a flag for `check()` (main thread only: elsewhere signals cannot be caught)."""
    with _handled(_note):
        yield


@contextlib.contextmanager
def terminating() -> Iterator[None]:
    """SIGTERM raises Interrupted at once (start-up: nothing to save yet)."""
    with _handled(_raise, (signal.SIGTERM,)):
        yield


@contextlib.contextmanager
def _handled(handler: Any, signals: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _pending.clear()
