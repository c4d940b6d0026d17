"""`netspec compare`: several run directories side by side.

What a run directory records (see rundir.py and record.py) is read here directly, without torch:
`spec.json` (the resolved IR), `overrides.json`, `summary.json` (test metrics, versions, the sha256
of the data files; absent while a run is unfinished) and `metrics.csv` (a row per epoch). The spec
is flattened to dotted paths (`train.optimizer.lr`, `networks.LeNet.layers[7].units`) and only the
paths whose values differ between the runs are shown, unless all are asked for. The curves are
drawn by compare_plot.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from netspec.language.diagnostics import UsageError
from netspec.language.files import read_bounded
from netspec.language.suggest import did_you_mean
from netspec.registry.metrics import METRICS

MAX_BYTES = 64 * 2**20
MISSING = "—"  # a path that one run's spec does not have
DERIVED = {"input_shape", "output_shape", "params"}  # of a layer: follows from its arguments
RENAMED = {"steps": "layers"}  # IR fields under the name a spec's reader knows
PREFIXES = ("train_", "val_", "test_")


@dataclass
class Run:
    """One run directory, as recorded."""

    path: Path
    name: str
    spec: dict[str, Any]
    overrides: list[str]
    summary: dict[str, Any] | None  # None: the run did not finish (interrupted, or still running)
    rows: list[dict[str, float]] = field(default_factory=list)  # metrics.csv

    @property
    def complete(self) -> bool:
        return self.summary is not None

    @property
    def label(self) -> str:
        """The name, marked when the run did not finish."""
        return self.name if self.complete else f"{self.name} (incomplete)"


# --- reading run directories ------------------------------------------------------------------


def read_runs(paths: Iterable[str]) -> list[Run]:
    """The runs in `paths`, named by their directory names (with as much of their parents as tells
    them apart)."""
    folders = [_run_folder(p) for p in paths]
    seen: dict[Path, Path] = {}
    for folder in folders:
        if seen.setdefault(folder.resolve(), folder) is not folder:
            raise UsageError(f"{folder} is given more than once")
    names = short_names(folders)
    return [read_run(folder, name) for folder, name in zip(folders, names)]


def _run_folder(path: str) -> Path:
    folder = Path(path)
    if folder.is_file() and folder.name == "spec.json":
        folder = folder.parent
    if (folder / "spec.json").is_file():
        return folder
    if not folder.exists():
        raise UsageError(f"{path} does not exist")
    hint = _inner_runs_hint(folder)
    raise UsageError(f"{path} is not a run directory (no spec.json){hint}")


def _inner_runs_hint(folder: Path) -> str:
    """`runs/` or a tune directory holds run directories: say how to name them."""
    if not folder.is_dir():
        return ""
    try:
        inner = sorted(p.name for p in folder.iterdir() if (p / "spec.json").is_file())
    except OSError:
        return ""
    if not inner:
        return ""
    pattern = "trial-*" if all(n.startswith("trial-") for n in inner) else "*"
    return f"; it holds {len(inner)} run directories: netspec compare {folder / pattern}"


def short_names(folders: list[Path]) -> list[str]:
    """Each folder's name, with as many parent folders as make the names differ."""
    full = [folder.resolve().parts for folder in folders]
    depth = 1
    while depth < max(len(p) for p in full):
        names = ["/".join(p[-depth:]) for p in full]
        if len(set(names)) == len(names):
            return names
        depth += 1
    return ["/".join(p[-depth:]) or "/" for p in full]


def read_run(folder: Path, name: str) -> Run:
    spec = _read_json(folder / "spec.json")
    if not isinstance(spec, dict):
        raise UsageError(f"{folder / 'spec.json'} is damaged: it does not hold a spec")
    summary = _read_json(folder / "summary.json", missing=None)
    if summary is not None and not isinstance(summary, dict):
        raise UsageError(f"{folder / 'summary.json'} is damaged: it does not hold a summary")
    return Run(folder, name, spec, _read_overrides(folder), summary, read_metrics(folder / "metrics.csv"))


def _read_json(path: Path, missing: Any = ...) -> Any:
    try:
        return json.loads(read_bounded(path, MAX_BYTES))
    except FileNotFoundError:
        if missing is ...:
            raise
        return missing
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path} is damaged: not JSON ({e})") from None


def _read_overrides(folder: Path) -> list[str]:
    saved = _read_json(folder / "overrides.json", missing={})
    overrides = saved.get("overrides", []) if isinstance(saved, dict) else None
    if not isinstance(overrides, list):
        raise UsageError(f"{folder / 'overrides.json'} is damaged: it should hold a list of overrides")
    return [str(o) for o in overrides]


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv (none when there is none: a run stopped in its first epoch)."""
    try:
        text = read_bounded(path, MAX_BYTES).decode("utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is damaged: not text ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        return [_metric_row(row) for row in reader]
    except (ValueError, TypeError, csv.Error) as e:
        raise UsageError(f"{path} is damaged (line {reader.line_num}): {e}") from None


def _metric_row(row: dict[str | None, Any]) -> dict[str, float]:
    if None in row or None in row.values():
        raise ValueError("a row has more or fewer cells than the header has columns")
    values = {str(k): float(v) for k, v in row.items() if v != ""}
    if "epoch" not in values:
        raise ValueError("it has no epoch column")
    return values


# --- the spec's values --------------------------------------------------------------------------


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON value by its dotted path: `train.optimizer.lr`, `train.metrics[1].kind`,
    `networks.LeNet.layers[2].out_channels` (lists of named objects by their names). Lists of plain
    values are leaves (`input_shape: [1, 28, 28]`); source positions and a layer's derived shapes and
    counts are left out."""
    if isinstance(value, dict) and value:
        return _flatten_object(value, path)
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        keys = _names(value) or [f"[{i}]" for i in range(len(value))]
        return {k: v for key, item in zip(keys, value) for k, v in flatten(item, _join(path, key)).items()}
    return {path: value}


def _flatten_object(value: dict[str, Any], path: str) -> dict[str, Any]:
    skip = {"span"} | (set() if "name" in value else DERIVED)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in skip:
            out |= flatten(item, _join(path, RENAMED.get(key, key)))
    return out


def _names(items: list[Any]) -> list[str] | None:
    """`.LeNet` for each item of a list of objects with distinct names (networks); else None."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if all(isinstance(n, str) and n.isidentifier() for n in names) and len(set(names)) == len(names):
        return [f".{n}" for n in names]
    return None


def _join(path: str, key: str) -> str:
    if key.startswith("["):
        return path + key
    return f"{path}.{key.lstrip('.')}" if path else key.lstrip(".")


def differing(flats: list[dict[str, Any]]) -> list[str]:
    """The paths whose values are not the same in every one of `flats` (one missing counts), in
    the order they first appear."""
    return [p for p in merged(list(flat) for flat in flats) if not _all_equal([flat.get(p, MISSING) for flat in flats])]


def merged(orders: Iterable[list[str]]) -> list[str]:
    """The keys of several lists in one order: each new key right after the key before it in its list."""
    out: list[str] = []
    for keys in orders:
        at, waiting = None, []  # the new keys before the first known one go right before it
        for key in keys:
            if key not in out:
                waiting.append(key)
                continue
            at = out.index(key) if at is None else at
            out[at:at] = waiting
            at, waiting = out.index(key) + 1, []
        out[len(out) if at is None else at : len(out) if at is None else at] = waiting
    return out


def _all_equal(values: list[Any]) -> bool:
    first = json.dumps(values[0], sort_keys=True)
    return all(json.dumps(v, sort_keys=True) == first for v in values[1:])  # 1 and 1.0 differ, as in a spec


def collapse(paths: list[str], flats: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """A row per path with its value in each run; but one row for a whole part that some run lacks
    (a network of another name: `networks.LeNet: network, 10 layers, 431080 parameters`)."""
    rows: list[tuple[str, list[Any]]] = []
    done: set[str] = set()
    for path in paths:
        root = _absent_root(path, flats)
        if root is None:
            rows.append((path, [f.get(path, MISSING) for f in flats]))
        elif root not in done:
            done.add(root)
            rows.append((root, [_describe(f, root) for f in flats]))
    return rows


def _prefixes(path: str) -> list[str]:
    """`a.b[0].c` -> `a`, `a.b`, `a.b[0]`, `a.b[0].c`."""
    return [path[:i] for i, ch in enumerate(path) if ch in ".[" and i > 0] + [path]


def _under(flat: dict[str, Any], root: str) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k.startswith((root + ".", root + "["))}


def _absent_root(path: str, flats: list[dict[str, Any]]) -> str | None:
    """The outermost part above `path` that some run lacks altogether, of several values."""
    for prefix in _prefixes(path):
        parts = [_under(f, prefix) for f in flats]
        if not all(parts) and max(map(len, parts)) > 1:
            return prefix
    return None


def _describe(flat: dict[str, Any], root: str) -> Any:
    """A part in a few words: its kind, its layers and parameters (a network's), else its size."""
    part = _under(flat, root)
    if not part:
        return flat.get(root, MISSING)
    layers = {k.split("]")[0] for k in part if k.startswith(root + ".layers[")}
    words = [str(part.get(f"{root}.kind", "")), f"{len(layers)} layers" if layers else f"{len(part)} values"]
    if isinstance(part.get(f"{root}.params"), int):
        words.append(f"{part[f'{root}.params']} parameters")
    return ", ".join(w for w in words if w)


# --- the comparison -----------------------------------------------------------------------------


@dataclass
class Section:
    """A part of the table: a title and rows of one value per run."""

    title: str
    rows: list[tuple[str, list[Any]]]
    better: dict[str, str] = field(default_factory=dict)  # a row's metric: "min" or "max" is better


@dataclass
class Comparison:
    runs: list[Run]
    sections: list[Section]
    metrics: list[str]  # the metrics.csv columns every run has (what the plot draws as curves)
    tests: list[str] = field(default_factory=list)  # the test metrics every finished run has (bars)
    equal: int = 0  # spec values left out because they are the same in every run


def compare(runs: list[Run], everything: bool = False, metrics: list[str] | None = None) -> Comparison:
    """The spec values that differ (all of them with `everything`), what each run was, and its final
    metrics (those named in `metrics`: `accuracy`, `val_loss`, ...; all without)."""
    if len(runs) < 2:
        raise UsageError("compare needs at least two run directories")
    flats = [flatten(run.spec) for run in runs]
    paths = merged(list(f) for f in flats) if everything else differing(flats)
    spec = Section("spec" if everything else "spec (only the values that differ)", [])
    spec.rows = collapse(paths, flats)
    wanted = select_metrics(runs, metrics)
    sections = [spec, _run_section(runs), _metric_section(runs, wanted)]
    result = Comparison(runs, sections, shared_metrics(runs, wanted), shared_tests(runs, wanted))
    result.equal = len(set().union(*flats)) - len(paths)
    return result


def _run_section(runs: list[Run]) -> Section:
    facts = [_facts(run) for run in runs]
    keys = merged(list(f) for f in facts)
    return Section("run", [(k, [f.get(k, MISSING) for f in facts]) for k in keys])


def _facts(run: Run) -> dict[str, Any]:
    """What a run directory records besides the spec: how far it got, where, with what."""
    s = run.summary or {}
    last = run.rows[-1] if run.rows else {}
    facts: dict[str, Any] = {"status": _status(run)}
    facts |= {f"--set {k}": v for k, _, v in (o.partition("=") for o in run.overrides)} or {"--set": "none"}
    facts["epochs"] = s.get("epochs", int(last.get("epoch", 0)))
    facts |= {k: s[k] for k in ("steps", "params", "device", "world_size", "wall_seconds") if k in s}
    facts |= {f"{k} version": v for k, v in _dict(s.get("versions")).items()}
    facts |= {f"data {k} sha256": v for k, v in _dict(s.get("data_sha256")).items()}
    return facts


def _status(run: Run) -> str:
    summary = run.summary or {}
    if not run.complete:
        return "incomplete"
    if summary.get("pruned"):  # a tune trial that the pruner stopped (runtime/tune.py)
        return f"pruned (epoch {summary.get('epochs', '?')})"
    return "stopped early" if summary.get("stopped_early") else "complete"


def spec_name(run: Run) -> str | None:
    """The spec a run trained, as its summary.json names it (a tune trial: its study)."""
    summary = run.summary or {}
    study = _dict(summary.get("tune")).get("study")
    name = f"{study} (tune)" if study else summary.get("spec")
    return str(name) if name else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def final_metrics(run: Run) -> dict[str, float]:
    """The last epoch's row of metrics.csv (but its epoch) and the test metrics of summary.json."""
    last = dict(run.rows[-1]) if run.rows else {}
    last.pop("epoch", None)
    return last | {f"test_{k}": v for k, v in test_metrics(run).items()}


def _metric_section(runs: list[Run], wanted: set[str] | None) -> Section:
    finals = [final_metrics(run) for run in runs]
    keys = [k for k in merged(list(f) for f in finals) if wanted is None or k in wanted]
    section = Section("final metrics (last epoch; test: summary.json)", [])
    section.rows = [(k, [f.get(k, MISSING) for f in finals]) for k in sorted(keys, key=_metric_order)]
    section.better = {k: better for k in keys if (better := direction(k))}
    return section


def _metric_order(name: str) -> tuple[int, int]:
    """Training's, then validation's, then test metrics; the rest (lr, seconds) last."""
    prefix = next((i for i, p in enumerate(PREFIXES) if name.startswith(p)), len(PREFIXES))
    return prefix, 0 if name.endswith("loss") else 1


def direction(name: str) -> str | None:
    """Which is better of a metric, "min" or "max" (by the metric registry); None for the rest."""
    base = name
    for prefix in PREFIXES:
        base = base.removeprefix(prefix)
    if base == "loss" or base.endswith("_loss"):
        return "min"
    cls = METRICS.get(base)
    return None if cls is None else ("max" if cls.higher_is_better else "min")


def all_metrics(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(k for run in runs for k in [*(k for r in run.rows for k in r), *final_metrics(run)]))


def select_metrics(runs: list[Run], names: list[str] | None) -> set[str] | None:
    """The columns that `--metric` names: `val_accuracy` exactly, `accuracy` at every stage."""
    if not names:
        return None
    known = [k for k in all_metrics(runs) if k != "epoch"]
    chosen: set[str] = set()
    for name in names:
        match = {k for k in known if k == name or k in (p + name for p in PREFIXES)}
        if not match:
            bare = {k.removeprefix(p) for k in known for p in PREFIXES if k.startswith(p)}
            hint = did_you_mean(name, [*known, *bare]) or "the runs have: " + ", ".join(known)
            raise UsageError(f"no metric `{name}` in these runs; {hint}")
        chosen |= match
    return chosen


def shared_metrics(runs: list[Run], wanted: set[str] | None = None) -> list[str]:
    """The metrics.csv columns that every run with an epoch behind it has, in the first one's order
    (not `epoch`)."""
    columns = [dict.fromkeys(k for r in run.rows for k in r) for run in runs if run.rows]
    if not columns:
        return []
    shared = [k for k in columns[0] if k != "epoch" and all(k in c for c in columns[1:])]
    return [k for k in shared if wanted is None or k in wanted]


def test_metrics(run: Run) -> dict[str, float]:
    """The test metrics of a finished run's summary.json: `loss`, `accuracy`, ..."""
    test = _dict((run.summary or {}).get("test"))
    return {k: float(v) for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def shared_tests(runs: list[Run], wanted: set[str] | None = None) -> list[str]:
    """The test metrics that every run with test metrics has (`loss`, `accuracy`: test_loss, ...)."""
    tests = [test_metrics(run) for run in runs if test_metrics(run)]
    if not tests:
        return []
    shared = [k for k in tests[0] if all(k in t for t in tests[1:])]
    return [k for k in shared if wanted is None or f"test_{k}" in wanted]


def panels(result: Comparison) -> list[str]:
    """What the picture shows: each shared metrics.csv column, then the test metrics (`test_*`)."""
    return result.metrics + [f"test_{k}" for k in result.tests]


# --- the table as text, Markdown and JSON ----------------------------------------------------


def cell(value: Any, digits: int = 0, width: int = 40) -> str:
    """A value as the table shows it: metrics to 4 decimals (`digits` 4), spec values as written or
    to `digits` significant digits, long ones cut."""
    if isinstance(value, float) and digits and math.isfinite(value):
        small = abs(value) < 1e-3 and value != 0
        text = f"{value:.{digits}g}" if small or digits != 4 else f"{value:.4f}"
        text = repr(value) if digits != 4 and len(repr(value)) <= 10 else text  # a spec's 0.0 stays 0.0
    elif isinstance(value, str):
        text = value
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)  # nan, inf: a diverged run
    elif value is None:
        text = "none"
    else:
        text = json.dumps(value, ensure_ascii=False)
    if len(text) == 64 and set(text) <= set("0123456789abcdef"):  # a sha256: its first 12 digits
        return text[:12]
    return text if len(text) <= width else text[: width - 1] + "…"


def best_of(values: list[Any], better: str | None) -> set[int]:
    """The indices of the best value of a metric's row (none when all are equal or unknown)."""
    numbers = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float)) and math.isfinite(v)]
    if better is None or len(numbers) < 2 or len({v for _, v in numbers}) < 2:
        return set()
    best = (min if better == "min" else max)(v for _, v in numbers)
    return {i for i, v in numbers if v == best}


def rows_of(section: Section) -> list[tuple[str, list[str], set[int]]]:
    digits = 4 if section.title.startswith("final") else 6
    return [(k, _cells(vs, digits), best_of(vs, section.better.get(k))) for k, vs in section.rows]


def _cells(values: list[Any], digits: int) -> list[str]:
    """A row's cells, short; but exact where the short ones would make different values look alike."""
    distinct = len({json.dumps(v) for v in values})
    for shown in (digits, 8):
        short = [cell(v, shown) for v in values]
        if len(set(short)) == distinct:
            return short
    return [cell(v) for v in values]


def text_table(result: Comparison) -> str:
    """Aligned columns, one per run; the best value of each metric marked with *."""
    header = ["", *(run.label for run in result.runs)]
    lines: list[list[str]] = []
    for section in result.sections:
        lines.append([f"[{section.title}]"])
        rows = rows_of(section)
        lines += [[k, *(v + (" *" if i in best else "") for i, v in enumerate(vs))] for k, vs, best in rows]
        if not rows:
            lines.append([_empty(section, result)])
    widths = [max(len(row[i]) for row in [header, *lines] if len(row) > i) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() if len(row) > 1 else row[0] for row in lines]
    return "\n".join(out) + _footer(result) + "\n"


def _empty(section: Section, result: Comparison) -> str:
    if section.title.startswith("spec"):
        return f"  (none: the {result.equal} values of the spec are the same in every run)"
    return "  (none)"


def _footer(result: Comparison) -> str:
    notes = ["* best of the row"] if any(s.better for s in result.sections) else []
    if result.equal and result.sections[0].title != "spec" and result.sections[0].rows:
        notes.append(f"{result.equal} spec values are the same in every run (--all shows them)")
    return "".join(f"\n{n}" for n in notes)


def markdown_table(result: Comparison) -> str:
    """A GitHub table per section (pastes into a pull request); the best metric values in bold."""
    names = [_md(run.label) for run in result.runs]
    parts = []
    for section in result.sections:
        lines = [f"**{section.title}**", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for key, values, best in rows_of(section):
            shown = [f"**{_md(v)}**" if i in best else _md(v) for i, v in enumerate(values)]
            lines.append(f"| `{key}` | " + " | ".join(shown) + " |")
        if not section.rows:
            lines.append("| " + _empty(section, result).strip() + " |" + " |" * len(names))
        parts.append("\n".join(lines))
    notes = _footer(result).replace("* best", "**bold**: the best").strip("\n").split("\n")
    return "\n\n".join(parts + [n for n in notes if n]) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def json_report(result: Comparison, plot: str | None) -> str:
    """Everything, with values as recorded (full hashes, exact floats)."""
    names = [run.name for run in result.runs]
    body: dict[str, Any] = {
        "runs": [{"name": r.name, "path": str(r.path), "complete": r.complete} for r in result.runs],
    }
    for key, section in zip(("spec", "run", "metrics"), result.sections):
        body[key] = {k: {n: v for n, v in zip(names, vs) if v is not MISSING} for k, vs in section.rows}
    metrics = result.sections[2]
    body["best"] = {k: [names[i] for i in sorted(best_of(vs, metrics.better.get(k)))] for k, vs in metrics.rows}
    body |= {"equal_spec_values": result.equal, "plotted": panels(result), "plot": plot}
    return json.dumps(_finite(body), indent=1, ensure_ascii=False, allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    """NaN and infinities (a diverged run's loss) as the strings "nan", "inf": JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return [_finite(v) for v in value] if isinstance(value, list) else value
