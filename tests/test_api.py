"""The Python API (netspec/api.py) against the command line: the same rendering of errors, the same
summary, the same script, and a model that loads a real run's weights."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import netspec
from netspec import cli

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent
ADDITION = str(ROOT / "specs" / "addition.net")
MNIST = str(ROOT / "specs" / "mnist.net")
TINY = {"train.epochs": 2, "dataset.limit": 256, "train.seed": 3}  # a few seconds on 2 cores
BAD = """version 1
network Net {
    input [1, 28, 28]
    conv2d(8, kernel=3) -> rleu
    flatten
    dense(10)
}
"""


def cli_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- load, loads, errors ------------------------------------------------------------------


def test_import_netspec_is_cheap() -> None:
    code = "import sys, netspec; assert 'torch' not in sys.modules and 'netspec.api' not in sys.modules; netspec.load"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_error_is_what_netspec_check_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text(BAD, encoding="utf-8")
    with pytest.raises(netspec.SpecError) as caught:
        netspec.load(bad)
    code, out, _ = cli_output(capsys, "check", str(bad))
    assert code == 1
    assert str(caught.value) == out.rstrip("\n")
    assert "did you mean `relu`" in str(caught.value)
    (d,) = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert (d.code, d.line, d.column, d.end_column, d.file) == ("NS010", 4, 28, 32, str(bad))


def test_loads_reports_its_name_and_escapes_html() -> None:
    text = BAD.replace("rleu", "rleu<script>")
    with pytest.raises(netspec.SpecError) as caught:
        netspec.loads(text, name="mine.net")
    assert str(caught.value).startswith("mine.net:")
    page = caught.value._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page and "mine.net:4:" in page


def test_an_override_error_points_into_the_override(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(netspec.SpecError) as caught:
        netspec.load(ADDITION, set={"train.epochs": "two"})
    _, out, _ = cli_output(capsys, "check", ADDITION, "--set", "train.epochs=two")
    assert str(caught.value) == out.rstrip("\n")
    assert caught.value.diagnostics[0].file == "--set"


def test_set_takes_python_values_or_strings() -> None:
    spec = netspec.load(ADDITION, set={"train.epochs": 3, "hidden": 16, "train.optimizer": "sgd(lr=0.1)"})
    assert spec.program.train is not None and spec.program.train.epochs == 3
    assert spec.overrides == ("train.epochs=3", "hidden=16", "train.optimizer=sgd(lr=0.1)")
    assert spec.summary().params == {"Adder": 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1}
    assert netspec.load(ADDITION, set=["train.epochs=3"]).program.train.epochs == 3  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        netspec.load(ADDITION, set="train.epochs=3")  # type: ignore[arg-type]


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        netspec.load(tmp_path / "none.net")


def test_check_returns_diagnostics_without_raising(tmp_path: Path) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text(BAD, encoding="utf-8")
    assert [d.code for d in netspec.check(bad) if d.severity == "error"] == ["NS010"]
    assert netspec.check(MNIST) == []


# --- summary, build, emit -----------------------------------------------------------------


def test_summary_is_netspec_summary(capsys: pytest.CaptureFixture[str]) -> None:
    summary = netspec.load(MNIST).summary()
    _, out, _ = cli_output(capsys, "summary", MNIST)
    assert str(summary) == out.rstrip("\n") and "431,080" in str(summary)
    _, out, _ = cli_output(capsys, "summary", MNIST, "--format", "json")
    assert summary.to_dict() == json.loads(out)
    page = summary._repr_html_()
    assert "431,080" in page and page.count("<tr>") == 2 + len(summary.to_dict()["networks"][0]["layers"])


def test_a_gan_summary_names_both_networks() -> None:
    spec = netspec.load(ROOT / "specs" / "gan.net")
    assert len(spec.networks) == 2 and all(n in spec.summary()._repr_html_() for n in spec.networks)
    with pytest.raises(ValueError, match="several networks"):
        spec.build()
    assert sum(p.numel() for p in spec.build(spec.networks[0]).parameters()) == spec.summary().params[spec.networks[0]]


def test_build_is_a_plain_module_with_the_checked_shapes() -> None:
    import torch

    spec = netspec.load(MNIST)
    model = spec.build("LeNet")
    assert type(model).__module__.startswith("torch.nn")
    assert sum(p.numel() for p in model.parameters()) == 431_080
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="did you mean `LeNet`"):
        spec.build("LeNte")


def test_emit_is_netspec_emit(capsys: pytest.CaptureFixture[str]) -> None:
    script = netspec.load(MNIST, set={"train.epochs": 3}).emit("pytorch")
    _, out, _ = cli_output(capsys, "emit", MNIST, "--set", "train.epochs=3")
    assert script == out and "class LeNet(nn.Sequential)" in script
    named = netspec.load(MNIST).emit(script_name="lenet.py")
    _, out, _ = cli_output(capsys, "emit", MNIST)
    assert named != out and "lenet.py" in named


def test_emit_refuses_an_unknown_target() -> None:
    with pytest.raises(netspec.EmitError):
        netspec.load(MNIST).emit("tensorflow")


# --- run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("api") / "run"
    return netspec.load(ADDITION, set=TINY).run(out=out, quiet=True)


def test_run_returns_the_run_directory_and_its_metrics(tiny_run: Any) -> None:
    assert tiny_run.dir.is_dir()
    with (tiny_run.dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(tiny_run.metrics) == len(rows) == 2 == tiny_run.summary["epochs"]
    assert [r["epoch"] for r in tiny_run.metrics] == [1.0, 2.0]
    for mine, theirs in zip(tiny_run.metrics, rows):
        assert mine == {k: float(v) for k, v in theirs.items() if v}
    saved = json.loads((tiny_run.dir / "summary.json").read_text())
    assert tiny_run.test == saved["test"] and set(tiny_run.test) == {"loss", "mae"}


def test_build_loads_the_weights_of_a_real_run(tiny_run: Any) -> None:
    import torch
    from safetensors.torch import load_file

    spec = netspec.load(ADDITION, set=TINY)
    model = spec.build()
    x = torch.tensor([[2.0, 3.0], [1.0, 7.0]])
    fresh = model(x).detach()
    trained = load_file(str(tiny_run.dir / "model.safetensors"))
    model.load_state_dict(trained)  # strict: every key, every shape
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    assert not torch.equal(model(x).detach(), fresh)


def test_the_run_is_the_cli_run(tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = [w for k, v in TINY.items() for w in ("--set", f"{k}={v}")]
    assert cli.main(["run", ADDITION, *args, "--out", str(out), "--quiet"]) == 0
    assert (out / "metrics.csv").read_text() == _without_seconds(tiny_run.dir / "metrics.csv", out / "metrics.csv")
    assert (out / "spec.net").read_text() == (tiny_run.dir / "spec.net").read_text()


def _without_seconds(mine: Path, theirs: Path) -> str:
    """metrics.csv of `mine` with the wall-clock columns of `theirs` (the only values that differ)."""
    a, b = (list(csv.DictReader(p.open(newline=""))) for p in (mine, theirs))
    for x, y in zip(a, b):
        x.update({k: y[k] for k in x if "seconds" in k})
    columns = list(a[0])
    return ",".join(columns) + "\n" + "".join(",".join(r[c] for c in columns) + "\n" for r in a)


def test_the_run_directory_continues_from_the_api(tiny_run: Any) -> None:
    spec = netspec.load(tiny_run.dir)
    assert spec.overrides[: len(TINY)] == tuple(f"{k}={v}" for k, v in TINY.items())
    assert spec.name == tiny_run.dir.name


def test_a_run_extended_from_the_api_equals_the_longer_run(tiny_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "short"
    netspec.load(ADDITION, set={**TINY, "train.epochs": 1}).run(out=out, quiet=True)
    longer = netspec.load(out, set={"train.epochs": 2}).run(resume=out, quiet=True)
    assert longer.dir == out and len(longer.metrics) == 2
    drop = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert drop(longer.metrics) == drop(tiny_run.metrics) and longer.test == tiny_run.test


def test_the_api_reference_is_fresh() -> None:
    assert cli.main(["docs", "--api", "--check", str(ROOT / "docs" / "api.md")]) == 0


def test_result_renders_its_metrics_and_plots(tiny_run: Any) -> None:
    page = tiny_run._repr_html_()
    assert "curves.png" in page and "data:image/png;base64," in page and "mae" in page
    assert set(tiny_run.plots) == {"curves"} and "test loss" in repr(tiny_run)


def test_unknown_run_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown options colour"):
        netspec.load(ADDITION).run(out=tmp_path / "x", colour=True)


def test_options_reach_run_options(tmp_path: Path) -> None:
    seen: list[float] = []
    spec = netspec.load(ADDITION, set={**TINY, "train.epochs": 1})
    spec.run(out=tmp_path / "r", quiet=True, on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == [1.0]


CSV_SPEC = """version 1
network N {{
    input [{inputs}]
    dense(1)
}}
dataset d {{
    source csv("d.csv", target="{target}")
    batch 2
}}
train {{
    model N
    loss mse
    optimizer sgd(lr=0.1)
    epochs 1
}}
"""


def csv_spec(tmp_path: Path, inputs: int, target: str) -> Path:
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,3\n4,5,9\n", encoding="utf-8")
    path = tmp_path / "fit.net"
    path.write_text(CSV_SPEC.format(inputs=inputs, target=target), encoding="utf-8")
    return path


def test_a_source_that_cannot_load_is_a_spec_error_like_the_cli_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = csv_spec(tmp_path, 2, "z")
    with pytest.raises(netspec.SpecError) as caught:
        netspec.load(path).run(out=tmp_path / "r", quiet=True)
    assert caught.value.diagnostics[0].code == "NS090" and "has no column 'z'" in str(caught.value)
    code, _, err = cli_output(capsys, "run", str(path), "--out", str(tmp_path / "c"), "--quiet")
    assert code == 1 and err.rstrip("\n") == str(caught.value)


def test_data_that_does_not_fit_the_network_is_a_data_error(tmp_path: Path) -> None:
    from netspec.runtime.datasets import DataError

    with pytest.raises(DataError, match="2 features per sample, but network `N` takes input \\[5\\]"):
        netspec.load(csv_spec(tmp_path, 5, "y")).run(out=tmp_path / "r", quiet=True)


def test_a_spec_without_train_cannot_run(tmp_path: Path) -> None:
    spec = netspec.loads("version 1\nnetwork N {\n    input [2]\n    dense(1)\n}\n")
    with pytest.raises(netspec.UsageError, match="needs a `dataset` and a `train`"):
        spec.run(out=tmp_path / "r")


def test_the_progress_bar_is_a_notebook_widget_only_in_a_kernel() -> None:
    from netspec.runtime import console

    assert not console.in_notebook()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "from netspec.runtime import console; print(console.Progress(False, print).live)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # a pipe: plain lines
