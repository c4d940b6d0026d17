"""`netspec compare`: real tiny runs compared as a table (text, Markdown, JSON) and a picture; the
flatten/diff function as a property; every user error an exit code and a message, never a traceback."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netspec import cli
from netspec.runtime import compare
from tests.test_resume import SPEC as RESUME_SPEC

pytestmark = pytest.mark.torch

SPEC = RESUME_SPEC.replace("epochs 3", "epochs 2")  # the tiny adder of the resume tests, 2 epochs
QUICK = ["--set", "dataset.limit=128", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three runs of one spec: `base`, `seeded` (another seed and learning rate, 3 epochs) and
    `cut`, a copy of `base` as an interrupted run leaves it (no summary.json)."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("runs")
    spec = root / "adder.net"
    spec.write_text(SPEC)
    out = {"base": root / "base", "seeded": root / "seeded"}
    assert cli.main(["run", str(spec), "--out", str(out["base"]), *QUICK]) == 0
    other = ["--set", "train.seed=2", "--set", "train.optimizer=sgd(lr=0.02, momentum=0.9)", "--set", "train.epochs=3"]
    assert cli.main(["run", str(spec), "--out", str(out["seeded"]), *QUICK, *other]) == 0
    out["cut"] = root / "cut"
    shutil.copytree(out["base"], out["cut"])
    (out["cut"] / "summary.json").unlink()
    return out


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in a folder of its own: a compare.png by default lands there, not in the checkout."""
    monkeypatch.chdir(tmp_path)


def run_compare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


# --- the table --------------------------------------------------------------------------------


def test_the_json_table_holds_exactly_the_differing_spec_values(
    runs: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    png = tmp_path / "cmp.png"
    code, out, _ = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "--format", "json", "-o", str(png))
    assert code == 0
    body = json.loads(out)
    assert set(body["spec"]) == {"train.optimizer.lr", "train.seed", "train.epochs"}
    assert body["spec"]["train.seed"] == {"base": 1, "seeded": 2}
    assert body["spec"]["train.optimizer.lr"] == {"base": 0.05, "seeded": 0.02}
    assert body["equal_spec_values"] > 20
    assert [r["name"] for r in body["runs"]] == ["base", "seeded"] and all(r["complete"] for r in body["runs"])
    assert body["plot"] == str(png) and png.is_file()


def test_the_final_metrics_are_those_of_summary_json_and_the_last_epoch(
    runs: dict[str, Path], capsys: Any, tmp_path: Path
) -> None:
    code, out, _ = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "--format", "json", "--no-plot")
    assert code == 0
    body = json.loads(out)
    for name in ("base", "seeded"):
        summary = json.loads((runs[name] / "summary.json").read_text())
        last = compare.read_metrics(runs[name] / "metrics.csv")[-1]
        assert body["metrics"]["test_mae"][name] == summary["test"]["mae"]
        assert body["metrics"]["test_loss"][name] == summary["test"]["loss"]
        assert body["metrics"]["val_mae"][name] == last["val_mae"]
        assert body["run"]["epochs"][name] == summary["epochs"]
        assert body["run"]["torch version"][name] == summary["versions"]["torch"]
    assert body["run"]["epochs"] == {"base": 2, "seeded": 3}
    best = min(("base", "seeded"), key=lambda n: body["metrics"]["test_mae"][n])
    assert body["best"]["test_mae"] == [best]
    assert body["plot"] is None and not (tmp_path / "compare.png").exists()


def test_the_text_table_shows_the_differences_and_not_the_equal_values(runs: dict[str, Path], capsys: Any) -> None:
    code, out, _ = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "--no-plot")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["base", "seeded"]
    assert next(line for line in lines if line.startswith("train.seed")).split() == ["train.seed", "1", "2"]
    assert not any(line.startswith(("train.loss", "networks.", "dataset.batch")) for line in lines)
    assert "*" in next(line for line in lines if line.startswith("test_mae"))  # the best one marked
    assert "spec values are the same in every run (--all shows them)" in out


def test_all_shows_every_spec_value(runs: dict[str, Path], capsys: Any) -> None:
    code, out, _ = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "--all", "--format", "json", "--no-plot")
    assert code == 0
    body = json.loads(out)
    assert body["spec"]["train.loss.kind"] == {"base": "mse", "seeded": "mse"}
    assert body["spec"]["networks.Adder.layers[0].units"] == {"base": 16, "seeded": 16}
    assert body["equal_spec_values"] == 0


def test_markdown_is_a_github_table_per_section(runs: dict[str, Path], capsys: Any) -> None:
    code, out, _ = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "--format", "markdown", "--no-plot")
    assert code == 0
    tables = [block for block in out.split("\n\n") if block.startswith("|")]
    assert len(tables) == 3
    for table in tables:
        rows = [line.split("|")[1:-1] for line in table.splitlines()]
        assert {len(r) for r in rows} == {3}, table  # the name column and one per run
        assert set("".join(rows[1])) <= set("-")
    assert "| `train.seed` | 1 | 2 |" in out
    assert "**bold**: the best of the row" in out


def test_an_interrupted_run_compares_marked_incomplete(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    png = tmp_path / "cut.png"
    code, out, _ = run_compare(capsys, str(runs["base"]), str(runs["cut"]), "-o", str(png))
    assert code == 0
    assert out.splitlines()[0].split() == ["base", "cut", "(incomplete)"]
    status = next(line for line in out.splitlines() if line.startswith("status"))
    assert status.split() == ["status", "complete", "incomplete"]
    assert next(line for line in out.splitlines() if line.startswith("test_mae")).split()[2] == "—"
    assert png_size(png)[0] > 400


def test_metric_restricts_the_table_and_the_plot(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    png = tmp_path / "mae.png"
    args = [str(runs["base"]), str(runs["seeded"]), "--metric", "mae", "--format", "json", "-o", str(png)]
    code, out, _ = run_compare(capsys, *args)
    assert code == 0
    body = json.loads(out)
    assert set(body["metrics"]) == {"val_mae", "test_mae"}
    assert body["plotted"] == ["val_mae", "test_mae"]
    code, out, _ = run_compare(
        capsys, *args[:2], "--metric", "val_loss", "--metric", "val_mae", "--format", "json", "--no-plot"
    )
    assert code == 0
    assert json.loads(out)["plotted"] == ["val_loss", "val_mae"]


def test_the_trials_of_a_study_compare(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    spec = tmp_path / "search.net"
    tune = "\ntune {\n    metric val_mae\n    trials 3\n    sampler random(seed=0)\n}\n"
    spec.write_text(SPEC.replace("lr=0.05", "lr=loguniform(0.005, 0.1)") + tune)
    out = tmp_path / "study"
    assert cli.main(["tune", str(spec), "--out", str(out), "--set", "dataset.limit=128"]) == 0
    capsys.readouterr()
    trials = sorted(str(p) for p in out.glob("trial-*"))
    code, text, err = run_compare(capsys, *trials, "--format", "json", "-o", str(tmp_path / "t.png"))
    assert code == 0, err
    body = json.loads(text)
    assert [r["name"] for r in body["runs"]] == ["trial-000", "trial-001", "trial-002"]
    assert set(body["spec"]) == {"train.optimizer.lr"}
    csv_rows = (out / "tune.csv").read_text().splitlines()
    assert len(csv_rows) == 4 and body["run"]["status"]["trial-000"] in ("complete", "pruned (epoch 1)")
    code, _, err = run_compare(capsys, str(out))
    assert code == 2 and f"it holds 3 run directories: netspec compare {out / 'trial-*'}" in err


def test_a_pruned_trial_says_so(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    pruned = tmp_path / "trial-007"
    shutil.copytree(runs["base"], pruned)
    summary = {"spec": "adder-trial-007", "epochs": 1, "pruned": True, "tune": {"study": "adder", "state": "pruned"}}
    (pruned / "summary.json").write_text(json.dumps(summary))
    code, out, _ = run_compare(capsys, str(runs["base"]), str(pruned), "--no-plot")
    assert code == 0
    assert next(line for line in out.splitlines() if line.startswith("status")).split()[1:] == [
        "complete",
        "pruned",
        "(epoch",
        "1)",
    ]


def test_a_diverged_run_compares_with_nan(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    diverged = tmp_path / "diverged"
    shutil.copytree(runs["base"], diverged)
    columns = (runs["base"] / "metrics.csv").read_text().splitlines()[0]
    cells = ["1"] + ["nan" if c == "train_loss" else "inf" for c in columns.split(",")[1:]]
    (diverged / "metrics.csv").write_text(columns + "\n" + ",".join(cells) + "\n")
    code, out, _ = run_compare(capsys, str(runs["base"]), str(diverged), "-o", str(tmp_path / "d.png"))
    assert code == 0
    assert next(line for line in out.splitlines() if line.startswith("train_loss")).split()[2] == "nan"
    code, out, _ = run_compare(capsys, str(runs["base"]), str(diverged), "--format", "json", "--no-plot")
    assert json.loads(out)["metrics"]["val_loss"]["diverged"] == "inf"


def test_the_table_needs_neither_torch_nor_matplotlib(runs: dict[str, Path]) -> None:
    code = (
        "import sys; from netspec.cli import main; "
        f"assert main(['compare', {str(runs['base'])!r}, {str(runs['seeded'])!r}, '--no-plot']) == 0; "
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "train.seed" in done.stdout


# --- the picture ------------------------------------------------------------------------------


def test_the_figure_has_a_panel_per_shared_metric_and_a_line_per_run(runs: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    from netspec.runtime.compare_plot import draw

    loaded = compare.read_runs([str(runs["base"]), str(runs["seeded"]), str(runs["cut"])])
    result = compare.compare(loaded)
    assert result.metrics == ["train_loss", "val_loss", "val_mae", "lr", "seconds"]
    assert result.tests == ["loss", "mae"]  # of the two finished runs
    fig = draw(result.runs, result.metrics, result.tests)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels][:3] == [
        "train_loss (lower is better)",
        "val_loss (lower is better)",
        "val_mae (lower is better)",
    ]
    assert len(panels) == 6
    for ax in panels[:5]:
        lines = ax.get_lines()
        assert len(lines) == 3
        assert [len(line.get_xdata()) for line in lines] == [2, 3, 2]  # epochs of each run
    bars = panels[5]
    assert bars.get_title() == "test (summary.json)"
    assert [t.get_text() for t in bars.get_xticklabels()] == ["loss", "mae"]
    heights = [[p.get_height() for p in c.patches] for c in bars.containers]
    summary = json.loads((runs["seeded"] / "summary.json").read_text())
    assert heights[1] == pytest.approx([summary["test"]["loss"], summary["test"]["mae"]])
    assert all(h != h for h in heights[2])  # the interrupted run: no test, no bar (nan)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["base", "seeded", "cut (incomplete)"]
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", "-", "--"]
    assert legend.get_title().get_text() == "3 runs of adder; 1 incomplete (dashed)"


def test_the_png_is_written_whole(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    png = tmp_path / "out.png"
    code, _, err = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "-o", str(png))
    assert code == 0 and f"wrote {png} (6 panels, 2 runs)" in err
    width, height = png_size(png)
    assert width > 800 and height > 500
    assert not [p for p in tmp_path.iterdir() if p.name != "out.png"]  # no temporary file left


def test_runs_without_shared_metrics_still_give_the_table(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(runs["cut"], bare)
    (bare / "metrics.csv").unlink()
    other = tmp_path / "other"
    shutil.copytree(runs["cut"], other)
    (other / "metrics.csv").unlink()
    png = tmp_path / "none.png"
    code, out, err = run_compare(capsys, str(bare), str(other), "-o", str(png))
    assert code == 0 and "status" in out
    assert "share no metric" in err and not png.exists()


# --- errors -----------------------------------------------------------------------------------


def test_a_directory_that_is_no_run_is_a_usage_error(runs: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    code, out, err = run_compare(capsys, str(runs["base"]), str(tmp_path))
    assert code == 2 and out == ""
    assert err == f"netspec: error: {tmp_path} is not a run directory (no spec.json)\n"
    code, _, err = run_compare(capsys, str(runs["base"]), str(runs["base"].parent))
    assert code == 2 and "it holds 3 run directories: netspec compare" in err
    code, _, err = run_compare(capsys, str(runs["base"]), str(tmp_path / "missing"))
    assert code == 2 and "missing does not exist" in err


def test_one_run_is_not_enough(runs: dict[str, Path], capsys: Any) -> None:
    code, _, err = run_compare(capsys, str(runs["base"]))
    assert code == 2 and "at least two run directories" in err
    code, _, err = run_compare(capsys, str(runs["base"]), str(runs["base"]))
    assert code == 2 and "given more than once" in err


def test_a_metric_typo_gets_a_suggestion(runs: dict[str, Path], capsys: Any) -> None:
    code, _, err = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "--metric", "val_mea", "--no-plot")
    assert code == 2 and "no metric `val_mea` in these runs; did you mean `val_mae`?" in err


def test_an_unknown_picture_format_is_refused_before_reading(runs: dict[str, Path], capsys: Any) -> None:
    code, _, err = run_compare(capsys, str(runs["base"]), str(runs["seeded"]), "-o", "curves.jpeg")
    assert code == 2 and "use a name ending in .png, .svg, .pdf" in err


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("spec.json", '{"networks": [', "spec.json is damaged: not JSON"),
        ("spec.json", "[1, 2]", "spec.json is damaged: it does not hold a spec"),
        ("summary.json", "\xff\xfe", "summary.json is damaged"),
        ("metrics.csv", "epoch,val_loss\n1,0.5\n2,abc\n", "metrics.csv is damaged (line 3)"),
        ("metrics.csv", "epoch,val_loss\n1,0.5,7\n", "metrics.csv is damaged (line 2)"),
        ("metrics.csv", "val_loss\n0.5\n", "metrics.csv is damaged (line 2): it has no epoch column"),
        ("overrides.json", '{"overrides": 3}', "overrides.json is damaged"),
    ],
)
def test_damaged_files_are_named_never_a_traceback(
    runs: dict[str, Path], capsys: Any, tmp_path: Path, name: str, text: str, message: str
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(runs["base"], damaged)
    (damaged / name).write_text(text, encoding="latin-1")
    code, out, err = run_compare(capsys, str(runs["base"]), str(damaged), "--no-plot")
    assert code == 2 and out == ""
    assert err.startswith(f"netspec: error: {damaged / name.split(':')[0]}") and message in err


# --- names, flattening and the difference --------------------------------------------------------


def test_short_names_take_as_many_parents_as_tell_them_apart(tmp_path: Path) -> None:
    folders = [tmp_path / "x" / "run", tmp_path / "y" / "run", tmp_path / "y" / "other"]
    assert compare.short_names(folders) == ["x/run", "y/run", "y/other"]
    assert compare.short_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]


def test_flatten_names_networks_and_layers() -> None:
    ir = {
        "networks": [
            {"name": "LeNet", "params": 10, "steps": [{"kind": "dense", "units": 5, "params": 6, "span": {}}]}
        ],
        "train": {"optimizer": {"kind": "sgd", "lr": 0.1}, "metrics": [{"kind": "accuracy"}], "shape": [1, 28]},
    }
    assert compare.flatten(ir) == {
        "networks.LeNet.name": "LeNet",
        "networks.LeNet.params": 10,
        "networks.LeNet.layers[0].kind": "dense",
        "networks.LeNet.layers[0].units": 5,
        "train.optimizer.kind": "sgd",
        "train.optimizer.lr": 0.1,
        "train.metrics[0].kind": "accuracy",
        "train.shape": [1, 28],
    }


def test_a_part_that_one_run_lacks_is_one_row() -> None:
    a = compare.flatten({"networks": [{"name": "A", "params": 3, "steps": [{"kind": "relu"}, {"kind": "dense"}]}]})
    b = compare.flatten({"networks": [{"name": "B", "params": 5, "steps": [{"kind": "relu"}]}], "x": None})
    rows = compare.collapse(compare.differing([a, b]), [a, b])
    assert rows == [
        ("networks.A", ["2 layers, 3 parameters", "—"]),
        ("networks.B", ["—", "1 layers, 5 parameters"]),
        ("x", ["—", None]),
    ]


KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=4).filter(lambda k: k not in ("span", "name"))
LEAF = st.integers()  # relabelled: every leaf a distinct number
TREES = st.recursive(
    LEAF,
    lambda inner: (
        st.dictionaries(KEYS, inner, min_size=1, max_size=4)
        | st.lists(st.dictionaries(KEYS, inner, min_size=1, max_size=3), min_size=1, max_size=3)
    ),
    max_leaves=20,
)


def relabel(tree: Any, counter: list[int]) -> Any:
    """Every leaf replaced by the next number: leaves become distinct and identify their place."""
    if isinstance(tree, dict):
        return {k: relabel(v, counter) for k, v in tree.items()}
    if isinstance(tree, list):
        return [relabel(v, counter) for v in tree]
    counter[0] += 1
    return counter[0]


def change(tree: Any, chosen: set[int]) -> Any:
    if isinstance(tree, dict):
        return {k: change(v, chosen) for k, v in tree.items()}
    if isinstance(tree, list):
        return [change(v, chosen) for v in tree]
    return -tree if tree in chosen else tree


@given(st.dictionaries(KEYS, TREES, min_size=1, max_size=4))
def test_a_spec_does_not_differ_from_itself(tree: dict[str, Any]) -> None:
    flat = compare.flatten(tree)
    assert compare.differing([flat, flat]) == []
    assert compare.differing([flat, compare.flatten(json.loads(json.dumps(tree)))]) == []


@given(st.dictionaries(KEYS, TREES, min_size=1, max_size=4), st.data())
def test_the_difference_is_exactly_the_changed_leaves(tree: dict[str, Any], data: st.DataObject) -> None:
    tree = relabel(tree, [0])
    flat = compare.flatten(tree)
    assert sorted(flat.values()) == list(range(1, len(flat) + 1))  # one path per leaf
    chosen = data.draw(st.sets(st.sampled_from(sorted(flat.values()))))
    changed = compare.flatten(change(tree, chosen))
    assert set(compare.differing([flat, changed])) == {p for p, v in flat.items() if v in chosen}
    assert set(compare.differing([flat, flat, changed])) == {p for p, v in flat.items() if v in chosen}
