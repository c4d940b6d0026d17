"""What a run prints: a progress bar per epoch on a terminal and in a Jupyter notebook, plain lines of
the running loss otherwise (about every tenth of an epoch), and the per-epoch summary line.

The bar is rich's, in a notebook too: rich (already a dependency, unlike tqdm) detects Jupyter
(`Console.is_jupyter`) and draws the same columns into an ipywidgets output that it updates in place,
so a notebook shows one live bar, not a stream of terminal control codes, and the terminal and the
notebook show the same thing."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any, Callable, Iterator

Step = Callable[[int, float], None]  # (samples in the batch, the batch's loss)
MIN_STEPS = 10  # between two lines of the running loss


class Progress:
    """A rich progress bar per epoch on a terminal; plain lines otherwise; nothing with quiet."""

    def __init__(self, quiet: bool, log: Callable[[str], None], live: bool | None = None) -> None:
        self.quiet, self.log = quiet, log
        self.live = not quiet and (sys.stdout.isatty() or in_notebook() if live is None else live)

    @contextlib.contextmanager
    def epoch(self, epoch: int, epochs: int, samples: int, steps: int = 0) -> Iterator[Step]:
        """A function to call after each training step, for the duration of one epoch."""
        if self.quiet:
            yield lambda n, loss: None
        elif self.live:
            with _bar(epoch, epochs, samples) as on_step:
                yield on_step
        else:
            yield _lines(self.log, epoch, epochs, steps)

    def summary(self, row: dict[str, float]) -> None:
        if self.quiet:
            return
        parts = [f"epoch {int(row['epoch'])}"] + [f"{k} {number(k, v)}" for k, v in row.items() if k != "epoch"]
        self.log("  ".join(parts))


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (rich's own test, so the bar goes where rich draws it)."""
    if "IPython" not in sys.modules:  # no kernel without it: skip importing rich's console
        return False
    import rich

    return bool(rich.get_console().is_jupyter)


class _Running:
    """The mean loss over the epoch so far, and the samples per second."""

    def __init__(self) -> None:
        self.started, self.total, self.seen, self.steps = time.perf_counter(), 0.0, 0, 0

    def add(self, n: int, loss: float) -> None:
        self.total, self.seen, self.steps = self.total + loss * n, self.seen + n, self.steps + 1

    def text(self) -> str:
        rate = self.seen / max(time.perf_counter() - self.started, 1e-9)
        return f"loss {number('loss', self.total / max(1, self.seen))}  {rate:,.0f} samples/s"


def _lines(log: Callable[[str], None], epoch: int, epochs: int, steps: int) -> Step:
    """Plain lines for a log file or a pipe: the running loss every tenth of the epoch, but not more
    often than every 10 steps (a short epoch gets only its summary line)."""
    every = max(MIN_STEPS, math.ceil(steps / 10)) if steps else 100
    running = _Running()

    def on_step(n: int, loss: float) -> None:
        running.add(n, loss)
        if running.steps % every == 0 and running.steps != steps:
            of = f"/{steps}" if steps else ""
            log(f"epoch {epoch}/{epochs}  step {running.steps}{of}  {running.text()}")

    return on_step


@contextlib.contextmanager
def _bar(epoch: int, epochs: int, samples: int) -> Iterator[Step]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(f"epoch {epoch}/{epochs}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    running = _Running()
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("train", total=samples, info="")

        def on_step(n: int, loss: float) -> None:
            running.add(n, loss)
            bar.update(task, advance=n, info=running.text())

        yield on_step


def number(key: str, value: Any) -> str:
    """A value of the console as what it is: seconds with an `s`, a learning rate in 3 digits,
    an epoch or a count as an integer, anything else (losses, metrics) in 4 significant digits."""
    value = float(value)
    if key == "seconds" or key.endswith("_seconds"):
        return f"{value:.1f}s"
    if key in ("epoch", "epochs", "step", "steps"):
        return f"{value:.0f}"
    if key == "lr":
        return f"{value:.3g}"
    return f"{value:.4g}"


def plural(count: int, word: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
