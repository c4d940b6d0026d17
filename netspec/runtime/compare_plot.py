"""`netspec compare`'s picture: the runs' curves overlaid, one panel per metric of metrics.csv that
every run has, one colour per run (matplotlib, off-screen; imported only when a plot is drawn)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from netspec.language.diagnostics import UsageError
from netspec.language.files import write_atomic
from netspec.runtime.compare import Run, direction, spec_name, test_metrics

FORMATS = (".png", ".svg", ".pdf")
NOTES = {"lr": "learning rate", "seconds": "per epoch"}


def check_path(path: str) -> None:
    """Refuse an output whose format matplotlib would not know from its name, before any work."""
    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"cannot write the plot as {path}: use a name ending in " + ", ".join(FORMATS))


def draw(runs: list[Run], metrics: list[str], tests: list[str] | None = None) -> Any:
    """The figure: a panel per metric, a line per run, then the test metrics as bars side by side
    (`tests`: `loss`, `accuracy`, ...); one legend above them all."""
    plt = _pyplot()
    count = len(metrics) + bool(tests)
    cols = columns(count)
    rows = -(-count // cols)
    legend_rows = -(-len(runs) // 4)
    size = (4.3 * cols, 3.1 * rows + 0.45 + 0.22 * legend_rows)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    colors = _colors(plt, len(runs))
    for ax, metric in zip(axes.flat, metrics):
        _panel(ax, runs, metric, colors)
    if tests:
        _bars(axes.flat[len(metrics)], runs, tests, colors)
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, marker="o", markersize=3, linestyle="-" if run.complete else "--")
        for run, c in zip(runs, colors)
    ]
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


def _bars(ax: Any, runs: list[Run], tests: list[str], colors: list[Any]) -> None:
    """The test metrics of summary.json, a group of bars per metric, a bar per run (none for a run
    without them), each labelled with its value while there are few."""
    width = 0.8 / len(runs)
    top = bottom = 0.0
    for i, (run, color) in enumerate(zip(runs, colors)):
        values = [test_metrics(run).get(k, math.nan) for k in tests]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(tests))]
        bars = ax.bar(xs, values, width, color=color)
        if len(runs) * len(tests) <= 16:
            ax.bar_label(bars, fmt="%.4g", fontsize=7, rotation=90, padding=2)
        top = max([top, *(v for v in values if math.isfinite(v))])
        bottom = min([bottom, *(v for v in values if math.isfinite(v))])  # an r2 below 0
    ax.set_xticks(range(len(tests)), tests, rotation=30 if len(tests) > 4 else 0)
    ax.set_ylim(bottom * 1.25, top * 1.25 or 1)
    ax.set_title("test (summary.json)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


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
