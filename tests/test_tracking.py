"""Experiment tracking (docs/tracking.md): what `train { log tensorboard, mlflow }` and `netspec run --log`
write, read back with the libraries' own readers — TensorBoard's EventAccumulator on the event files,
MLflow's client on the real SQLite store — never mocks. Tiny runs of a generated-data spec; MNIST ones
when $NETSPEC_DATA holds it."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.runtime import interrupts  # noqa: E402

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent
DATA = os.environ.get("NETSPEC_DATA")
SPEC = """version 1

let width = 16

network Adder {
    input [2]
    dense(width) -> relu
    dense(1)
}

dataset pairs {
    source arithmetic(samples=400, low=0, high=1)
    batch 32
    validation 0.2
    test 0.1
}

train {
    model Adder
    loss mse
    optimizer sgd(lr=0.05, momentum=0.9)
    epochs 3
    metrics mae
    seed 1
    device cpu
    LOG
}
"""
LIMIT = "dataset.limit=128"  # 4 batches an epoch, 12 steps in 3 epochs


def spec_file(tmp_path: Path, log: str = "") -> str:
    path = tmp_path / "adder.net"
    path.write_text(SPEC.replace("LOG", log))
    return str(path)


def run(*args: str) -> int:
    return cli.main(["run", *args, "--device", "cpu", "--quiet"])


def steps_of(out: Path) -> list[int]:
    with open(out / "steps.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalar_steps(acc: Any, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def mlflow_client(tmp_path: Path) -> Any:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def history(client: Any, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


# --- TensorBoard ---------------------------------------------------------------------------------


def test_tensorboard_logs_steps_epochs_test_metrics_and_the_spec(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "r"
    assert run(spec_file(tmp_path, "log tensorboard"), "--set", LIMIT, "--out", str(out)) == 0
    acc = events(out / "tensorboard")
    scalars = set(acc.Tags()["scalars"])
    assert {"step/loss", "step/lr", "epoch/train_loss", "epoch/val_loss", "epoch/val_mae", "epoch/lr"} <= scalars
    assert {"test/loss", "test/mae"} <= scalars
    assert scalar_steps(acc, "step/loss") == steps_of(out) == list(range(1, 13))
    assert scalar_steps(acc, "epoch/val_mae") == [1, 2, 3]
    with open(out / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert acc.Scalars("epoch/val_loss")[-1].value == pytest.approx(float(last["val_loss"]), rel=1e-6)
    assert acc.Graph() is not None  # traced on a real batch
    text = acc.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "network Adder" in text and "dense(width)" in text
    params = acc.Tensors("params/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| train.optimizer.lr | 0.05 |" in params and "| constants.width | 16 |" in params
    hparams = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in hparams and b"train.optimizer.momentum" in hparams["_hparams_/experiment"]
    assert b"epoch/val_mae" in hparams["_hparams_/experiment"]  # the metric the HParams tab shows


@pytest.mark.skipif(not DATA, reason="needs NETSPEC_DATA (MNIST)")
@pytest.mark.parametrize(("spec", "tag", "count"), [("mnist", "inputs", 1), ("gan", "samples", 2)])
def test_tensorboard_shows_images_of_image_specs_and_a_gans_samples(
    tmp_path: Path, spec: str, tag: str, count: int
) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "r"
    sets = ["--set", "dataset.limit=128", "--set", "train.epochs=2"]
    assert run(str(ROOT / "specs" / f"{spec}.net"), *sets, "--log", "tensorboard", "--out", str(out)) == 0
    acc = events(out / "tensorboard")
    images = acc.Images(tag)
    assert len(images) == count and images[0].width > 0 and images[0].height > 0
    assert acc.Graph() is not None  # the LeNet on a batch; the generator on noise


def test_tensorboard_does_not_change_what_the_run_computes(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    plain, logged = tmp_path / "plain", tmp_path / "logged"
    assert run(spec_file(tmp_path), "--set", LIMIT, "--out", str(plain)) == 0
    assert run(spec_file(tmp_path), "--set", LIMIT, "--log", "tensorboard", "--out", str(logged)) == 0
    assert (plain / "steps.csv").read_text() == (logged / "steps.csv").read_text()


# --- MLflow --------------------------------------------------------------------------------------


def test_mlflow_logs_params_metrics_artifacts_to_mlflow_db_here(tmp_path: Path, monkeypatch: Any) -> None:
    client = mlflow_client(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "r"
    assert run(spec_file(tmp_path, "log mlflow"), "--set", LIMIT, "--out", str(out)) == 0
    experiment = client.get_experiment_by_name("adder")  # the spec file's name
    assert experiment is not None
    (found,) = client.search_runs([experiment.experiment_id])
    recorded = json.loads((out / "mlflow.json").read_text())
    assert recorded["run_id"] == found.info.run_id and found.info.status == "FINISHED"
    assert found.info.run_name == "r"
    params = found.data.params
    assert params["train.optimizer.lr"] == "0.05" and params["train.optimizer.kind"] == "sgd"
    assert params["dataset.batch"] == "32" and params["constants.width"] == "16"
    assert params["train.metrics"] == "mae" and params["networks.Adder.params"] == str(2 * 16 + 16 + 16 + 1)
    run_id = found.info.run_id
    assert history(client, run_id, "step/loss") == steps_of(out) == list(range(1, 13))
    assert history(client, run_id, "epoch/val_mae") == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert found.data.metrics["test/mae"] == pytest.approx(summary["test"]["mae"])
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model.safetensors", "metrics.csv", "steps.csv", "spec.net", "summary.json"} <= artifacts
    assert not any(a.startswith("checkpoint-") for a in artifacts)
    assert (tmp_path / "mlartifacts").is_dir()  # beside mlflow.db


def test_mlflow_every_and_a_tracking_uri_in_the_spec(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    client = mlflow_client(tmp_path / "store")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    log = f'log mlflow(uri="{uri}", experiment="adders", every=5)'
    out = tmp_path / "r"
    assert run(spec_file(tmp_path, log), "--set", LIMIT, "--out", str(out)) == 0
    (found,) = client.search_runs([client.get_experiment_by_name("adders").experiment_id])
    assert history(client, found.info.run_id, "step/loss") == [5, 10]


# --- resuming ------------------------------------------------------------------------------------


def signal_at(monkeypatch: pytest.MonkeyPatch, check: int) -> None:
    """SIGINT just before the `check`-th safe point of the loop (one per epoch start and step)."""
    original, calls = interrupts.check, {"n": 0}

    def check_then_signal() -> None:
        calls["n"] += 1
        if calls["n"] == check:
            os.kill(os.getpid(), signal.SIGINT)
        original()

    monkeypatch.setattr(interrupts, "check", check_then_signal)


def test_an_interrupted_run_resumes_into_the_same_logs_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    client = mlflow_client(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "r"
    with monkeypatch.context() as m:
        signal_at(m, 8)  # epoch 2, after its second step: 6 steps done
        assert run(spec_file(tmp_path), "--set", LIMIT, "--log", "tensorboard,mlflow", "--out", str(out)) == 130
    run_id = json.loads((out / "mlflow.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "KILLED"
    assert history(client, run_id, "step/loss") == list(range(1, 7))
    assert history(client, run_id, "epoch/train_loss") == [1]
    assert run("--resume", str(out)) == 0  # the recorded --log keeps logging
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([client.get_experiment_by_name("adder").experiment_id])) == 1
    assert history(client, run_id, "step/loss") == steps_of(out) == list(range(1, 13))
    assert history(client, run_id, "epoch/train_loss") == [1, 2, 3]
    acc = events(out / "tensorboard")
    assert scalar_steps(acc, "step/loss") == list(range(1, 13))
    assert scalar_steps(acc, "epoch/train_loss") == [1, 2, 3]


def test_a_finished_run_continued_with_more_epochs_logs_only_the_new_ones(tmp_path: Path, monkeypatch: Any) -> None:
    client = mlflow_client(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "r"
    assert run(spec_file(tmp_path), "--set", LIMIT, "--set", "train.epochs=1", "--out", str(out)) == 0
    assert not (out / "mlflow.json").exists()  # nothing asked for logging yet
    assert run("--resume", str(out), "--set", "train.epochs=2", "--log", "mlflow") == 0
    run_id = json.loads((out / "mlflow.json").read_text())["run_id"]
    assert history(client, run_id, "epoch/train_loss") == [2]  # logging began with epoch 2
    assert history(client, run_id, "step/loss") == list(range(5, 9))


def test_only_rank_0_of_a_data_parallel_run_logs(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    client = mlflow_client(tmp_path)
    out = tmp_path / "r"
    command = [sys.executable, "-m", "netspec", "run", spec_file(tmp_path), "--set", LIMIT, "--nproc", "2"]
    command += ["--log", "tensorboard,mlflow", "--out", str(out), "--device", "cpu", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert len(list((out / "tensorboard").iterdir())) == 1  # one event file: one writer
    assert scalar_steps(events(out / "tensorboard"), "step/loss") == list(range(1, 13))
    (found,) = client.search_runs([client.get_experiment_by_name("adder").experiment_id])
    assert found.info.status == "FINISHED" and history(client, found.info.run_id, "step/loss") == list(range(1, 13))


# --- what goes wrong


def test_a_run_that_diverges_ends_its_mlflow_run_failed(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    client = mlflow_client(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "r"
    diverging = ["--set", "train.optimizer=sgd(lr=1e30)", "--log", "mlflow", "--out", str(out)]
    assert run(spec_file(tmp_path), "--set", LIMIT, *diverging) == 1
    assert "training stopped: the loss became" in capsys.readouterr().err
    run_id = json.loads((out / "mlflow.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "FAILED"
    assert history(
        client, run_id, "step/loss"
    )  # the steps before it diverged -----------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["tensorboard", "mlflow"])
def test_a_missing_package_is_named_with_its_extra_before_training(tmp_path: Path, package: str) -> None:
    out = tmp_path / "r"
    code = (
        f"import sys; sys.modules[{package!r}] = None\n"
        "from netspec.cli import main\n"
        f"sys.exit(main(['run', {spec_file(tmp_path)!r}, '--log', {package!r}, '--out', {str(out)!r}, '--quiet']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    message = f'netspec: error: log {package} needs the {package} package: pip install "netspec[{package}]"'
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == message
    assert not out.exists()  # before anything was written


def test_an_unknown_logger_is_a_located_error_with_a_suggestion(tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["check", spec_file(tmp_path, "log tensorbord")]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "unknown logger `tensorbord`" in text and "did you mean `tensorboard`?" in text and ":26:9" in text
    assert run(spec_file(tmp_path), "--log", "mlfow", "--out", str(tmp_path / "r")) == 1
    err = capsys.readouterr()
    assert "unknown logger `mlfow`" in err.out + err.err and "did you mean `mlflow`?" in err.out + err.err


def test_an_unusable_tracking_uri_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("mlflow")
    log = 'log mlflow(uri="nosuchscheme://x")'
    assert run(spec_file(tmp_path, log), "--set", LIMIT, "--out", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert err.startswith("netspec: error: log mlflow: cannot start:") and "Traceback" not in err


def test_check_imports_no_logger_package(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom netspec.cli import main\n"
        f"assert main(['check', {spec_file(tmp_path, 'log tensorboard, mlflow')!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'tensorboard', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("[]")


def test_an_emitted_script_says_that_it_writes_the_csv_files_only(tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["emit", spec_file(tmp_path, "log tensorboard, mlflow(every=5)")]) == 0
    script = capsys.readouterr().out
    assert "The spec logs to tensorboard, mlflow (`train { log ... }`)" in script
    assert "`netspec run` does that logging" in script
    assert cli.main(["emit", spec_file(tmp_path, "log csv")]) == 0
    assert "The spec logs" not in capsys.readouterr().out
