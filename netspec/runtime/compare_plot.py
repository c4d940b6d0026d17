"""`netspec compare`'s picture: the runs' curves overlaid, one panel per metric of metrics.csv that
every run has, one colour per run (matplotlib, off-screen; imported only when a plot is drawn)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from netspec.language.diagnostics import UsageError
from netspec.language.files import write_atomic
from netspec.runtime.compare import Run, direction, spec_name

FORMATS = (".png", ".svg", ".pdf")
NOTES = {"lr": "learning rate", "seconds": "per epoch"}


def check_path(path: str) -> None:
    """Refuse an output whose format matplotlib would not know from its name, before any work."""
    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"cannot write the plot as {path}: use a name ending in " + ", ".join(FORMATS))


def draw(runs: list[Run], metrics: list[str]) -> Any:
    """The figure: a panel per metric, a line per run, one legend below them all."""
    plt = _pyplot()
    cols = columns(len(metrics))
    rows = -(-len(metrics) // cols)
    legend_rows = -(-len(runs) // 4)
    size = (4.3 * cols, 3.1 * rows + 0.45 + 0.22 * legend_rows)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    colors = _colors(plt, len(runs))
    for ax, metric in zip(axes.flat, metrics):
        _panel(ax, runs, metric, colors)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles = axes.flat[0].get_lines()
    names = [run.label for run in runs]
    fig.legend(handles, names, loc="outside upper center", ncol=min(4, len(runs)), frameon=False, title=_title(runs))
    return fig


def columns(panels: int) -> int:
    """Panels per row: 2 to 4, leaving the fewest empty places (the more columns of a tie); 2 by 2 for 4."""
    if panels <= 3 or panels == 4:
        return min(panels, 2) if panels == 4 else panels
    return min((4, 3, 2), key=lambda c: -panels % c)


def save(fig: Any, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lower()[1:], dpi=100)
    _pyplot().close(fig)
    write_atomic(path, buf.getvalue())


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError("the plot needs the matplotlib package: pip install matplotlib (or use --no-plot)") from None
    matplotlib.use("Agg")  # no display needed, and none is opened
    import matplotlib.pyplot as plt

    return plt


def _colors(plt: Any, n: int) -> list[Any]:
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("viridis")(i / (n - 1)) for i in range(n)]


def _panel(ax: Any, runs: list[Run], metric: str, colors: list[Any]) -> None:
    values: list[float] = []
    for run, color in zip(runs, colors):
        points = [(r["epoch"], r[metric]) for r in run.rows if metric in r]
        style = "-" if run.complete else "--"
        xs, ys = zip(*points) if points else ((), ())  # a run with no epoch yet: in the legend only
        ax.plot(xs, ys, style, marker="o", markersize=3, color=color, linewidth=1.4)
        values += [v for _, v in points if math.isfinite(v)]
    better = direction(metric)
    note = {"min": "lower is better", "max": "higher is better"}.get(better or "", NOTES.get(metric))
    ax.set_title(f"{metric} ({note})" if note else metric, fontsize=10)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    _scale(ax, metric, values)


def _scale(ax: Any, metric: str, values: list[float]) -> None:
    """A log scale for a loss or learning rate that spans two orders of magnitude or more."""
    if not values:
        return
    low, high = min(values), max(values)
    spans = low > 0 and high / low >= 100
    if spans and (direction(metric) == "min" or metric == "lr"):
        ax.set_yscale("log")


def _title(runs: list[Run]) -> str:
    specs = [name for name in dict.fromkeys(spec_name(run) for run in runs) if name]
    incomplete = sum(not run.complete for run in runs)
    note = f"; {incomplete} incomplete (dashed)" if incomplete else ""
    what = (" of " + ", ".join(specs) if len(specs) <= 3 else f" of {len(specs)} specs") if specs else ""
    return f"{len(runs)} runs{what}{note}"
