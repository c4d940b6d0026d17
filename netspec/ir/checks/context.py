"""What the check passes share: the reporter, the options, the constants and blocks, the
Evaluator and Binder, the Trace, and the parts of the program as the passes produce them."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from netspec.ir import nodes as ir
from netspec.ir.search import Key, Space
from netspec.ir.values import Binder, Evaluator
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, Severity, make
from netspec.language.span import Span
from netspec.registry.layers import Layer

GiB = 1 << 30
TOP = Span.at(1, 1, 1, 2)  # where a problem of the whole spec is reported


@dataclass(frozen=True)
class CheckOptions:
    max_memory: int = 4 * GiB  # bytes; a spec estimated to need more is an error
    time_limit: float | None = None  # seconds; a check that takes longer stops with NS061
    cancel: threading.Event | None = field(default=None, compare=False)  # set: the check raises Cancelled
    fixed: tuple[tuple[Key, Any], ...] = ()  # search expressions' values instead of their defaults, by where
    ranges: bool = True  # check each search expression's range (by checking the spec again at its ends)


class Cancelled(Exception):
    """The check was cancelled (a newer text supersedes it); its result is of no use."""


class OutOfTime(Exception):
    """The check ran past its time limit."""


class Clock:
    """The check's deadline and cancellation, polled between steps of the work."""

    def __init__(self, options: CheckOptions) -> None:
        self.limit = options.time_limit
        self.deadline = math.inf if options.time_limit is None else time.monotonic() + options.time_limit
        self.cancel = options.cancel

    def poll(self) -> None:
        """Raise Cancelled or OutOfTime when the check must stop."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled
        if time.monotonic() > self.deadline:
            raise OutOfTime


@dataclass
class Trace:
    """What the checker learned per source span: for hover, summary lines and the LSP."""

    layers: list[tuple[Span, Layer]] = field(default_factory=list)
    constants: dict[str, tuple[Span, Any]] = field(default_factory=dict)
    networks: dict[str, ir.Network] = field(default_factory=dict)
    inputs: dict[str, Span] = field(default_factory=dict)  # network name -> its `input` line


class Reporter:
    """Collects diagnostics, each once; inside a block use, says which use it came from."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self.stack: list[tuple[str, Span]] = []  # block uses being expanded, outermost first
        self._found: set[tuple[str, str]] = set()  # answers of `already` that were yes

    def __call__(
        self, code: str, message: str, span: Span, hint: str | None = None, severity: Severity = "error"
    ) -> None:
        """Record a diagnostic once (a block used twice reports its own error once)."""
        if self.stack and span.origin is None:
            name, use = self.stack[-1]
            message += f" (in block `{name}` used at line {use.line})"
        key = (code, span.line, span.column, message.split(" (in block")[0])
        if key not in self._seen:
            self._seen.add(key)
            self.diagnostics.append(make(code, message, span, hint, severity))

    def already(self, code: str, words: str) -> bool:
        """Whether a `code` diagnostic saying `words` was reported (for problems reported once). A found
        one is remembered: asked again and again (every body too deep), this stays linear."""
        if (code, words) in self._found:
            return True
        found = any(d.code == code and words in d.message for d in self.diagnostics)
        if found:
            self._found.add((code, words))
        return found

    @contextmanager
    def inside(self, block: str, use: Span) -> Iterator[None]:
        """Report as from inside a use of `block`."""
        self.stack.append((block, use))
        try:
            yield
        finally:
            self.stack.pop()

    @contextmanager
    def outside_blocks(self) -> Iterator[None]:
        """Report without naming the block use being expanded."""
        stack, self.stack = self.stack, []
        try:
            yield
        finally:
            self.stack = stack


@dataclass
class Parts:
    """The program's parts, as the passes produce them (None or missing where they failed)."""

    network_names: list[str] = field(default_factory=list)  # every network the spec defines
    networks: list[ir.Network] = field(default_factory=list)  # those that checked
    dataset: ir.Dataset | None = None
    train: ir.Train | None = None
    tune: ir.Tune | None = None


class CheckContext:
    """One check of one spec: the passes read and extend it in order."""

    def __init__(self, options: CheckOptions) -> None:
        self.options = options
        self.clock = Clock(options)
        self.where = TOP  # what is being checked (a network's name): where running out of time is reported
        self.report = Reporter()
        self.evaluator = Evaluator(self.report)
        self.binder = Binder(self.evaluator, self.report)
        self.space = Space(self.evaluator, self.binder, dict(options.fixed))
        self.evaluator.search = self.space.evaluate
        self.constants: dict[str, Any] = {}
        self.blocks: dict[str, st.Block] = {}
        self.trace = Trace()
        self.parts = Parts()

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.report.diagnostics
