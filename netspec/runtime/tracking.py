"""The loggers of `train { log ... }` at run time: TensorBoard and MLflow writers (chosen by the registry
entry's `writer` name), driven by the training loop through one `Tracker`.

The loop reports what it records in the run directory, when it records it: every step's loss and
learning rate (`step/loss`, `step/lr`, at the step), every epoch's row of metrics.csv once the epoch is
saved (`epoch/<column>`, at the epoch), the test metrics at the end (`test/<metric>`). Only the process
that writes the run directory logs (rank 0 of a data-parallel run). A resumed run logs into the same
TensorBoard folder (steps past the checkpoint purged) and the same MLflow run (its id in
`mlflow.json`), skipping steps and epochs already logged. See docs/tracking.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from netspec.language.diagnostics import UsageError
from netspec.registry.loggers import Logger
from netspec.runtime.rundir import State

Row = dict[str, float]


def require(loggers: list[Logger]) -> None:
    """Every logger's package is installed; else the usage error naming the extra, before anything runs."""
    for logger in loggers:
        if logger.package and not installed(logger.package):
            raise UsageError(logger.missing_message())


def installed(package: str) -> bool:
    """Whether `package` can be imported (without importing it: MLflow takes seconds)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or one without a spec
        return False


class Tracker:
    """The writers of one run. A writer that fails while training is dropped with a warning: logging
    never stops a run."""

    def __init__(self, writers: list[Any]) -> None:
        self.writers = writers

    def step(self, row: Row) -> None:
        self._each(lambda w: w.step(row))

    def epoch(self, exp: Any, state: State) -> None:
        self._each(lambda w: w.epoch(exp, state, state.rows[-1]))

    def finish(self, out: Path, summary: dict[str, Any]) -> None:
        self._each(lambda w: w.finish(out, summary))

    def close(self, status: str) -> None:
        self._each(lambda w: w.close(status))

    def _each(self, call: Callable[[Any], None]) -> None:
        for writer in list(self.writers):
            try:
                call(writer)
            except Exception as e:  # a logger's failure must not end the training
                self.writers.remove(writer)
                print(f"netspec: warning: {writer.name} logging stopped: {e}", file=sys.stderr)


NO_TRACKER = Tracker([])


@contextlib.contextmanager
def session(out: Path | None, exp: Any, state: State, options: Any) -> Iterator[Tracker]:
    """The run's tracker, open while it trains; closed FINISHED, KILLED (Ctrl-C) or FAILED."""
    train = exp.program.train
    loggers = list({lg.kind: lg for lg in reversed(train.log)}.values())[::-1]  # each kind once
    if out is None or not any(lg.writer for lg in loggers):
        yield NO_TRACKER
        return
    tracker = _open([lg for lg in loggers if lg.writer], out, exp, state, options)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.close(status)


def _open(loggers: list[Logger], out: Path, exp: Any, state: State, options: Any) -> Tracker:
    """Each logger's writer; one that cannot start (an unreachable store) closes those started and says why."""
    tracker = Tracker([])
    for logger in loggers:
        try:
            tracker.writers.append(writer(str(logger.writer))(logger, out, exp, state, options))
        except Exception as e:  # the library's own errors, whatever their class
            tracker.close("FAILED")
            raise UsageError(f"log {logger.kind_name()}: cannot start: {e}") from None
    return tracker


def writer(name: str) -> Callable[..., Any]:
    """The writer class a registry entry names (`Logger.writer`)."""
    from netspec.runtime import tracking_writers

    return tracking_writers.WRITERS[name]
