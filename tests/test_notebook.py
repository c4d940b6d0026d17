"""docs/quickstart.ipynb, executed by nbclient in a real kernel (this venv's ipykernel), and its outputs
read: the summary's HTML table, the diagnostics, a progress widget instead of terminal codes, the
run's metrics and plots."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (pip install -e '.[dev]')")

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "quickstart.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The notebook run in a copy of docs/ beside the specs, so that its run directory is not in the repo."""
    root = tmp_path_factory.mktemp("nb")
    (root / "docs").mkdir()
    os.symlink(ROOT / "specs", root / "specs")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root / "docs")}}
    )
    env = {"PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client.execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb, root / "docs"


def outputs(nb: Any, marker: str) -> list[Any]:
    """The outputs of the code cell whose source contains `marker`."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return list(cell.outputs)


def html_of(outs: list[Any]) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outs)


def text_of(outs: list[Any]) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outs)


def test_the_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_no_cell_fails(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_the_spec_shows_its_summary_table(executed: tuple[Any, Path]) -> None:
    page = html_of(outputs(executed[0], "netspec.load("))
    assert "<table" in page and "network Adder, the model" in page and "Total params: 4,417" in page


def test_an_error_shows_as_netspec_check_prints_it(executed: tuple[Any, Path]) -> None:
    outs = outputs(executed[0], "netspec.loads(bad")
    page = html_of(outs)
    assert "adder.net:4:18: error[NS010]: unknown layer `rleu`" in page and "did you mean `relu`?" in page
    assert "NS010 4 18 did you mean `relu`?" in text_of(outs)


def test_the_own_loop_trains_the_built_model(executed: tuple[Any, Path]) -> None:
    text = text_of(outputs(executed[0], "own loop"))
    assert text.startswith("own loop: mse ") and float(text.split()[3]) < 5.0


def test_training_shows_a_widget_not_terminal_codes(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    outs = outputs(nb, "spec.run(")
    assert any(WIDGET in o.get("data", {}) for o in outs), [o.get("data", {}).keys() for o in outs]
    streams = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "\x1b[" not in streams and "epoch 2" in streams


def test_the_result_shows_its_metrics_and_curves(executed: tuple[Any, Path]) -> None:
    nb, docs = executed
    page = html_of(outputs(nb, "spec.run("))
    run_dir = docs / "runs" / "addition-notebook"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{summary['test']['mae']:.4g}" in page and "data:image/png;base64," in page and "curves.png" in page
    with (run_dir / "metrics.csv").open(newline="") as f:
        last = list(csv.DictReader(f))[-1]
    shown = text_of(outputs(nb, "result.metrics[-1]"))
    assert f"'epoch': {float(last['epoch'])}" in shown and f"'val_mae': {float(last['val_mae'])!r}" in shown


def test_the_trained_weights_load_and_emit_writes_the_script(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    assert "tensor([[" in text_of(outputs(nb, "load_state_dict"))
    assert "Train Adder from addition.net in plain PyTorch" in text_of(outputs(nb, "spec.emit("))


def test_the_kernel_is_this_venvs() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert shutil.which(spec.argv[0]) is not None
