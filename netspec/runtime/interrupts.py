"""Ctrl-C (SIGINT) and SIGTERM, the signal schedulers send: a run stops at a safe point.

While `deferred()` is active, either signal only sets a flag; the training loop calls `check()`
after each step, which raises `Interrupted` there, so that a checkpoint is always taken between
two steps, never in the middle of one. The same signal a second time raises at once (marked
`at_once`: no checkpoint is taken then, the last one stays). Outside training, `watching()` (the
whole command line) makes either signal raise `Interrupted` at once and records it in `received`:
a library may turn that exception into one of its own (pydantic, building a schema, reports a
KeyboardInterrupt as a SchemaError), and the command line still exits with 128 + the signal's
number (130, 143) then, not with an internal error.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []
received: list[int] = []  # every signal a handler here has seen since `watching()` began


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


def pending() -> int:
    """The signal that the next `check()` raises, or 0 (data-parallel training tells the other processes)."""
    return _pending[0] if _pending else 0


def stop_agreed(signum: int) -> None:
    """Raise Interrupted for the signal that every process of a data-parallel run agreed on (0: none);
    the signal is then handled, as by `check()`."""
    if signum:
        _pending.clear()
        raise Interrupted(signum)


def _note(signum: int, frame: Any) -> None:
    received.append(signum)
    if signum in _pending:  # the same signal twice (Ctrl-C, Ctrl-C): stop at once
        raise Interrupted(signum, at_once=True)
    _pending.append(signum)


def ignore_in_worker(worker_id: int) -> None:
    """A DataLoader worker's start: Ctrl-C in a terminal reaches the whole process group, but the main
    process decides when to stop; a worker that died of it would break the next batch."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _raise(signum: int, frame: Any) -> None:
    received.append(signum)
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals set a flag for `check()` (main thread only: elsewhere signals cannot be caught)."""
    with _handled(_note):
        yield


@contextlib.contextmanager
def watching() -> Iterator[None]:
    """Either signal raises Interrupted at once and is recorded in `received`. SIGINT stays ignored
    where it was (a background job): a terminal's Ctrl-C never reaches such a process."""
    received.clear()
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    with _handled(_raise, (signal.SIGTERM,) if ignored else SIGNALS):
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
