"""What `netspec run` prints and logs as it trains: values formatted by what they are, the running
loss in plain lines when the output is not a terminal, steps.csv, and plots after every epoch."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.runtime import loop, rundir  # noqa: E402
from netspec.runtime.console import Progress, number, plural  # noqa: E402

pytestmark = pytest.mark.torch

PAIRS = """
network Adder {
    input [2]
    dense(8) -> relu
    dense(1)
}

dataset pairs {
    source arithmetic(samples=%d, low=0, high=10)
    batch 16
    validation 0.2
}

train {
    loss mse
    optimizer adam(lr=0.01)
    epochs %d
    metrics mae
    seed 1
    device cpu
}
"""


def _spec(tmp_path: Path, samples: int = 200, epochs: int = 2) -> Path:
    path = tmp_path / "pairs.net"
    path.write_text(PAIRS % (samples, epochs))
    return path


# --- numbers ------------------------------------------------------------------------------------


def test_only_seconds_get_an_s_and_always_do() -> None:
    assert number("train_loss", 623302.8) == "6.233e+05"
    assert number("val_loss", 150.0) == "150"
    assert number("seconds", 457.91) == "457.9s"
    assert number("seconds", 27.54) == "27.5s"
    assert number("lr", 0.001) == "0.001"


def test_the_epoch_line_formats_each_value_by_its_name() -> None:
    lines: list[str] = []
    Progress(False, lines.append).summary(
        {"epoch": 3, "train_loss": 623302.8, "val_loss": 150.0, "val_mae": 0.02928, "lr": 0.001, "seconds": 27.54}
    )
    assert lines == ["epoch 3  train_loss 6.233e+05  val_loss 150  val_mae 0.02928  lr 0.001  seconds 27.5s"]


def test_one_epoch_is_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"
    spec = _spec(tmp_path, epochs=1)
    assert cli.main(["run", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\(1 epoch, \d+\.\ds\)", out), out


# --- the running loss ---------------------------------------------------------------------------


def test_plain_lines_give_the_running_loss_about_every_tenth_of_an_epoch() -> None:
    lines: list[str] = []
    with Progress(False, lines.append, live=False).epoch(2, 5, 6400, steps=200) as on_step:
        for i in range(200):
            on_step(32, float(i))
    assert len(lines) == 9  # steps 20, 40, ..., 180; the epoch line follows the 200th
    assert lines[0].startswith("epoch 2/5  step 20/200  loss 9.5  ")  # the mean of 0 ... 19
    assert lines[-1].startswith("epoch 2/5  step 180/200  loss 89.5  ")


def test_a_short_epoch_logs_every_ten_steps_at_most() -> None:
    lines: list[str] = []
    for steps in (6, 25):
        with Progress(False, lines.append, live=False).epoch(1, 1, steps * 16, steps=steps) as on_step:
            for _ in range(steps):
                on_step(16, 1.0)
    assert [line.split()[3] for line in lines] == ["10/25", "20/25"]


def test_quiet_prints_nothing() -> None:
    lines: list[str] = []
    progress = Progress(True, lines.append, live=False)
    with progress.epoch(1, 1, 64, steps=4) as on_step:
        for _ in range(4):
            on_step(16, 1.0)
    progress.summary({"epoch": 1, "train_loss": 1.0})
    assert lines == []


def test_a_piped_run_logs_the_running_loss_before_each_epoch_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, samples=1000)  # 800 training samples: 50 steps of 16
    assert cli.main(["run", str(spec), "--out", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch 1  train_loss"))
    running = [line.split()[3] for line in lines[:first_epoch] if re.match(r"epoch 1/2  step \S+  loss \S+", line)]
    assert running == ["10/50", "20/50", "30/50", "40/50"], lines


# --- steps.csv and plots after every epoch ------------------------------------------------------


def _steps(out: Path) -> list[dict[str, str]]:
    with open(out / "steps.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_steps_csv_has_every_step(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli.main(["run", str(_spec(tmp_path)), "--out", str(out), "--quiet"]) == 0
    rows = _steps(out)
    assert list(rows[0]) == ["step", "epoch", "loss", "lr"]
    assert [int(r["step"]) for r in rows] == list(range(1, 21))  # 160 training samples / 16, twice
    assert [int(r["epoch"]) for r in rows] == [1] * 10 + [2] * 10
    assert all(float(r["lr"]) == 0.01 for r in rows)
    with open(out / "metrics.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    for epoch in (1, 2):  # the epoch's train_loss is the mean of its steps' losses (equal batches)
        losses = [float(r["loss"]) for r in rows if int(r["epoch"]) == epoch]
        assert sum(losses) / len(losses) == pytest.approx(float(epochs[epoch - 1]["train_loss"]), rel=1e-5)


def test_plots_are_written_after_every_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "finish", interrupted)  # stopped after training, before the end of the run
    out = tmp_path / "run"
    assert cli.main(["run", str(_spec(tmp_path)), "--out", str(out), "--quiet"]) == 130
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert len(_steps(out)) == 20


def test_resumed_steps_replace_those_trained_again(tmp_path: Path) -> None:
    def rows(steps: range) -> list[dict[str, float]]:
        return [{"step": s, "epoch": 1 + (s - 1) // 5, "loss": 1.0 / s, "lr": 0.1} for s in steps]

    rundir.write_steps(tmp_path, rows(range(1, 9)))  # interrupted after step 8
    rundir.write_steps(tmp_path, rows(range(6, 11)))  # resumed from the checkpoint after step 5
    assert [r["step"] for r in rundir.read_steps(tmp_path)] == list(range(1, 11))


def test_a_terminal_gets_the_progress_bar_and_no_lines() -> None:
    lines: list[str] = []
    with Progress(False, lines.append, live=True).epoch(1, 1, 6400, steps=200) as on_step:
        for _ in range(200):
            on_step(32, 1.0)
    assert lines == []
