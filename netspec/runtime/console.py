"""What a run prints: a progress bar per epoch on a terminal, plain lines otherwise, and the
per-epoch summary line."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator


class Progress:
    """A rich progress bar per epoch on a terminal; plain lines otherwise; nothing with quiet."""

    def __init__(self, quiet: bool, log: Callable[[str], None]) -> None:
        self.quiet, self.log = quiet, log
        self.live = not quiet and sys.stdout.isatty()

    @contextlib.contextmanager
    def epoch(self, epoch: int, epochs: int, samples: int) -> Iterator[Callable[[int, float], None]]:
        if not self.live:
            yield lambda n, loss: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        started = time.perf_counter()
        columns = (
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("train", total=samples, info="")

            def on_step(n: int, loss: float) -> None:
                done = bar.tasks[0].completed + n
                rate = done / max(time.perf_counter() - started, 1e-9)
                bar.update(task, advance=n, info=f"loss {loss:.4f}  {rate:,.0f} samples/s")

            yield on_step

    def summary(self, row: dict[str, float]) -> None:
        if self.quiet:
            return
        parts = [f"epoch {int(row['epoch'])}"] + [f"{k} {_short(v)}" for k, v in row.items() if k != "epoch"]
        self.log("  ".join(parts))


def _short(value: float) -> str:
    return f"{value:.1f}s" if value >= 100 else f"{value:.4g}"
