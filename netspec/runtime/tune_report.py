"""What a study leaves: a table of its trials (rich), `tune.csv`, Optuna's plots as PNG, and the best
trial's spec written back as a complete `.net` file (`best.net`)."""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any

from netspec.language.files import write_atomic
from netspec.runtime.tune import TuneOptions, spec_text, trial_dir

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
PLOTS = (
    ("history.png", "plot_optimization_history"),
    ("importance.png", "plot_param_importances"),
    ("slice.png", "plot_slice"),
)


def state(t: Any) -> str:
    return STATES.get(t.state.name, t.state.name.lower())


def number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def params_text(t: Any) -> str:
    return ", ".join(f"{k}={number(v)}" for k, v in t.params.items())


def note(t: Any) -> str:
    """Why a trial is what it is: pruned when, failed why, retried from which."""
    attrs = t.user_attrs
    parts = []
    if state(t) == "pruned":
        parts.append(f"after epoch {attrs.get('epochs', '?')}")
    if state(t) == "failed":
        parts.append(str(attrs.get("error") or f"interrupted: {attrs.get('interrupted', 'its worker stopped')}"))
    retried = t.system_attrs.get("failed_trial")
    if retried is not None:
        parts.append(f"runs trial {retried} again")
    return "; ".join(parts)


def trial_line(t: Any, metric: str) -> str:
    """`trial 3: val_mae 0.0213 (hidden=97, lr=0.0052), 2 epochs in 4.1 s`."""
    value = t.value if t.value is not None else _last(t)
    score = f"{metric} {number(value)}" if value is not None else state(t)
    if state(t) != "complete" and value is not None:
        score = f"{state(t)}, {score}"
    epochs = t.user_attrs.get("epochs", 0)
    took = f", {epochs} epoch{'s' * (epochs != 1)} in {t.user_attrs.get('seconds', 0):.1f} s"
    why = f"; {note(t)}" if note(t) and state(t) != "pruned" else ""  # a pruned trial's epochs are said
    return f"trial {t.number}: {score} ({params_text(t)}){took}{why}"


def _last(t: Any) -> float | None:
    """A pruned trial's last reported value."""
    steps = t.intermediate_values
    return steps[max(steps)] if steps else None


def best_trial(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial
        return None


# --- tune.csv and the table ------------------------------------------------------------------


def rows(study: Any, opts: TuneOptions) -> list[dict[str, Any]]:
    names = [p.name for p in opts.program.search]
    out = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": state(t), opts.settings.metric: t.value}
        row.update({n: t.params.get(n) for n in names})
        row["epochs"] = t.user_attrs.get("epochs")
        row["seconds"] = t.user_attrs.get("seconds")
        row["run_dir"] = trial_dir(opts.out, t.number).as_posix()
        row["note"] = note(t)
        out.append(row)
    return out


def write_csv(path: Path, table: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if table:
        writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in table)
    write_atomic(path, buf.getvalue())


def print_table(table: list[dict[str, Any]], best: Any, stream: Any) -> None:
    """The trials as a rich table (plain text when not on a terminal), the best one starred."""
    from rich.console import Console
    from rich.table import Table

    shown = [k for k in (table[0] if table else {}) if k != "run_dir"]
    t = Table(title="trials", title_justify="left")
    for k in shown:
        t.add_column(k, justify="right" if k not in ("state", "note") else "left", overflow="fold")
    for r in table:
        mark = best is not None and r["trial"] == best.number
        t.add_row(*("" if r[k] is None else number(r[k]) for k in shown), style="bold" if mark else None)
    Console(file=stream, soft_wrap=False, width=max(120, Console(file=stream).width)).print(t)


# --- plots -------------------------------------------------------------------------------------


def plots(out: Path, study: Any) -> list[str]:
    """Optuna's plots as PNG; what was drawn, or why not."""
    import matplotlib

    matplotlib.use("Agg")
    complete = [t for t in study.get_trials(deepcopy=False) if state(t) == "complete"]
    said = []
    for name, function in PLOTS:
        if not complete or (function == "plot_param_importances" and len(complete) < 2):
            said.append(f"{name}: not drawn, it needs {'2 complete trials' if complete else 'a complete trial'}")
            continue
        said.append(_plot(out / name, study, function))
    return said


def _plot(path: Path, study: Any, function: str) -> str:
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            axes = getattr(vis, function)(study)
        except (ValueError, RuntimeError) as e:  # e.g. importances of parameters that never varied
            return f"{path.name}: not drawn ({e})"
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    fig = first.figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return str(path)


# --- best.net ----------------------------------------------------------------------------------


def write_best(opts: TuneOptions, study: Any, best: Any) -> Path:
    """The best trial's spec, complete: its values in place of the search expressions, the --set
    overrides written into their sections, a comment on top saying where it came from."""
    text = spec_text(opts, best.params)
    head = [
        f"# The best trial ({best.number}) of study `{opts.name}`: {opts.settings.metric} {number(best.value)}.",
        "# Written by netspec tune: the spec with its values in place of the search expressions:",
        *(f"#   {p.name} = {number(best.params[p.name])}  (was {p.distribution.text()})" for p in opts.program.search),
    ]
    path = opts.out / "best.net"
    write_atomic(path, "\n".join(head) + "\n" + text)
    return path


def report(opts: TuneOptions, study: Any, stream: Any) -> dict[str, Any]:
    """Everything the study leaves in `out` and the table of trials (on `stream`); what to say about it."""
    table = rows(study, opts)
    best = best_trial(study)
    print_table(table, best, stream)
    write_csv(opts.out / "tune.csv", table)
    drawn = plots(opts.out, study)
    counts: dict[str, int] = {}
    for r in table:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    summary: dict[str, Any] = {"study": opts.name, "storage": opts.url, "trials": counts, "plots": drawn}
    if best is not None:
        value = best.value if best.value is not None and math.isfinite(best.value) else None
        summary["best"] = {"trial": best.number, "value": value, "params": best.params}
        summary["best"]["spec"] = str(write_best(opts, study, best))
    return summary
