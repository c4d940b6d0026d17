"""`netspec compare RUN_DIR...`: the runs' differing spec values, what they ran on, their final
metrics, and one picture of their curves (torch-free: it reads the run directories' files)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netspec.cli.common import command

EXAMPLES = (
    "netspec compare runs/mnist-a runs/mnist-b            # a table, and compare.png\n"
    "  netspec compare runs/addition_tune-tune/trial-*     # the trials of a study (netspec tune)\n"
    "  netspec compare runs/a runs/b --metric accuracy -o acc.png\n"
    "  netspec compare runs/a runs/b --format markdown --no-plot   # a table to paste into a pull request\n"
    "  netspec compare runs/a runs/b --all                 # every spec value, not only those that differ"
)


def add(sub: Any) -> None:
    help_text = "compare run directories: the spec values that differ, versions, data, final metrics, overlaid curves"
    p = command(sub, "compare", help_text, cmd_compare, EXAMPLES)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="two or more run directories (netspec run's --out)")
    p.add_argument(
        "-o",
        "--output",
        default="compare.png",
        metavar="FILE",
        help="the curves' picture (.png, .svg, .pdf; default compare.png)",
    )
    p.add_argument("--no-plot", action="store_true", help="only the table; write no picture")
    p.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="only this metric (val_accuracy; or accuracy: at every stage); repeat for more",
    )
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table", help="the table's format")
    p.add_argument("--all", action="store_true", help="every spec value, not only those that differ")


def cmd_compare(args: argparse.Namespace) -> int:
    from netspec.language.diagnostics import UsageError
    from netspec.runtime import compare

    if len(args.runs) < 2:
        compare.read_runs(args.runs)  # a tune directory (not a run directory) says how to name its trials
        raise UsageError(f"compare needs at least two run directories, got one: {args.runs[0]}")
    if not args.no_plot:
        from netspec.runtime.compare_plot import check_path

        check_path(args.output)
    result = compare.compare(compare.read_runs(args.runs), args.all, args.metric)
    plot = None if args.no_plot else _plot(result, args.output)
    if args.format == "json":
        print(compare.json_report(result, plot))
    else:
        print(compare.markdown_table(result) if args.format == "markdown" else compare.text_table(result), end="")
    return 0


def _plot(result: Any, path: str) -> str | None:
    """Draw the shared curves into `path`; a note on stderr when there are none to draw."""
    if not result.metrics and not result.tests:
        print("netspec: note: the runs share no metric (of metrics.csv or the test): no plot", file=sys.stderr)
        return None
    from netspec.runtime.compare_plot import draw, save

    fig = draw(result.runs, result.metrics, result.tests)
    save(fig, path)
    count = len(result.metrics) + bool(result.tests)
    print(f"netspec: wrote {path} ({count} panels, {len(result.runs)} runs)", file=sys.stderr)
    return path
