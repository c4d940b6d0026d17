"""Data-parallel training (issue 14), with real gloo processes on this CPU: N processes train to the
numbers of one process with the same global batch and seed, started by `netspec run --nproc N` or by
torchrun itself; rank 0 alone prints and writes; a run resumes with another world size; Ctrl-C and a
killed process stop every process with a message, leaving a run directory that resumes exactly."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.language.diagnostics import UsageError  # noqa: E402
from netspec.runtime import distributed, interrupts  # noqa: E402
from tests.test_resume import rows, weights  # noqa: E402

pytestmark = pytest.mark.torch
ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-5
ADDER = """version 1

network Adder {
    input [2]
    dense(16) -> relu
    dense(1)
}

dataset pairs {
    source arithmetic(samples=%d, low=0, high=1)
    batch 32
    validation 0.2
}

train {
    model Adder
    loss mse
    optimizer sgd(lr=0.05, momentum=0.9)
    epochs %d
    metrics mae
    seed 1
    device cpu
}
"""
SMALL = "dataset.limit=97"  # batches of 32, 32, 32 and 1: the last one smaller than the world
IMAGES = """version 1

network Net {
    input [3, 8, 8]
    flatten
    dense(12) -> relu
    dense(3)
}

dataset images {
    source image_folder("folder", size=8)
    random_shift(1)
    normalize(mean=0.5, std=0.25)
    batch 10
    validation 0.2
    test 0.25
}

train {
    model Net
    loss cross_entropy
    optimizer adam(lr=0.01)
    epochs 2
    metrics accuracy, top_k(2), f1
    seed 3
    device cpu
}
"""


def in_process(*args: str) -> int:
    return cli.main(["run", *args, "--device", "cpu", "--quiet"])


def netspec(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "netspec", "run", *args, "--device", "cpu"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env())


def torchrun(nproc: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command = [*launcher, "-m", "netspec", "run", *args, "--device", "cpu"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=_env())


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def assert_close_runs(a: Path, b: Path) -> None:
    """The same metrics (every row, the test split) and weights, within TOL."""
    ra, rb = rows(a), rows(b)
    assert len(ra) == len(rb) and all(x.keys() == y.keys() for x, y in zip(ra, rb))
    for x, y in zip(ra, rb):
        assert {k: float(v) for k, v in x.items()} == pytest.approx({k: float(v) for k, v in y.items()}, abs=TOL)
    wa, wb = weights(a / "model.safetensors"), weights(b / "model.safetensors")
    assert wa.keys() == wb.keys() and max(float((wa[k] - wb[k]).abs().max()) for k in wa) < TOL
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["test"] == pytest.approx(sb["test"], abs=TOL)
    assert (sa["epochs"], sa["steps"]) == (sb["epochs"], sb["steps"])


def spec(folder: Path, samples: int = 400, epochs: int = 3) -> str:
    path = folder / f"adder{samples}.net"
    path.write_text(ADDER % (samples, epochs))
    return str(path)


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1-process run: 3 epochs of 4 batches, the last one of a single sample."""
    folder = tmp_path_factory.mktemp("one")
    assert in_process(spec(folder), "--set", SMALL, "--out", str(folder / "run")) == 0
    return folder / "run"


# --- the same numbers as one process --------------------------------------------------------------


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The same run in two processes that torchrun starts (`netspec run` reads RANK, WORLD_SIZE,
    MASTER_ADDR from the environment), in a folder of its own."""
    folder = tmp_path_factory.mktemp("two")
    work = folder / "work"
    work.mkdir()
    result = torchrun(2, spec(folder), "--set", SMALL, "--out", "run", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, result


def test_two_processes_under_torchrun_train_to_the_numbers_of_one(one: Path, two: Any) -> None:
    work, result = two
    assert_close_runs(one, work / "run")
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert (summary["world_size"], summary["backend"]) == (2, "gloo")
    # rank 0 alone prints and writes: one line per epoch, one run directory with the files of one process
    assert [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("epoch ")] == [
        ["epoch", "1"],
        ["epoch", "2"],
        ["epoch", "3"],
    ]
    assert result.stdout.count("test: ") == 1 and "Traceback" not in result.stderr
    assert [p.name for p in work.iterdir()] == ["run"]
    assert files(work / "run") == files(one)


def files(folder: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in folder.iterdir())  # checkpoint-<sha256 prefix>


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """45 RGB PNGs of 8x8 in three class folders, told apart by a bright column."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(45):
        label = i % 3
        image = rng.integers(0, 80, (8, 8), dtype=np.uint8)
        image[:, 2 * label : 2 * label + 2] = 230
        folder = root / "folder" / "abc"[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([image, image // 2, 255 - image], -1)).save(folder / f"{i:02d}.png")
    (root / "images.net").write_text(IMAGES)
    return root


def test_streamed_images_with_augmentation_and_class_metrics(data: Path, tmp_path: Path) -> None:
    """An image folder shards its file index; augmentation draws for the whole batch in every process,
    so each image is shifted as in one process; accuracy, top-k and f1 come from counts added up."""
    spec_file = str(data / "images.net")
    assert in_process(spec_file, "--out", str(tmp_path / "one")) == 0
    result = netspec(spec_file, "--nproc", "2", "--out", str(tmp_path / "two"), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_close_runs(tmp_path / "one", tmp_path / "two")
    assert (tmp_path / "two" / "confusion.png").is_file()  # from the test outputs gathered on rank 0


# --- the emitted script, under torchrun ----------------------------------------------------------

SCRIPTS = {"addition": [SMALL], "cifar10": []}  # values; classes with top_k, augmentation
GOLDEN = ROOT / "tests" / "golden" / "emit_distributed"


def distributed_script(spec_file: str, overrides: list[str]) -> str:
    from netspec import emit
    from netspec.ir.pipeline import load

    return emit.emit(load(spec_file, overrides), spec=Path(spec_file).stem, distributed=True)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_distributed_scripts_golden_ruff_clean_and_their_names_reserved(name: str) -> None:
    from netspec import emit
    from tests.test_emit import UPDATE, assert_ruff_clean, top_level_names

    script, golden = distributed_script(str(ROOT / "specs" / f"{name}.net"), SCRIPTS[name]), GOLDEN / f"{name}.py"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(script, encoding="utf-8")
    assert script == golden.read_text(encoding="utf-8"), f"{golden.name} differs; if intended, run `make golden`"
    assert_ruff_clean(golden)
    copied = {d for m in ("data", "metrics", "modules") for d in emit.definitions(m)}
    assert not top_level_names(script) - emit.SCRIPT_NAMES - copied - {"Adder", "SmallCNN"}


def test_a_distributed_script_under_torchrun_trains_to_the_numbers_of_netspec_run(
    one: Path, two: Any, tmp_path: Path
) -> None:
    """`netspec emit --distributed`: the script, started by torchrun in two processes, trains to exactly
    the numbers of `netspec run` in two processes; alone, to those of one process."""
    from tests.test_resume import assert_same_run

    script = tmp_path / "adder.py"
    script.write_text(distributed_script(spec(tmp_path), [SMALL]), encoding="utf-8")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run([*launcher, str(script), "--out", "two"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=_env())  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("test: ") == 1  # rank 0 alone prints
    assert_same_run(two[0] / "run", tmp_path / "two")
    alone = subprocess.run([sys.executable, str(script), "--out", "one"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300, env=_env())  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert_close_runs(one, tmp_path / "one")


def test_a_gan_or_streamed_files_get_no_distributed_script(tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["emit", str(ROOT / "specs" / "gan.net"), "--distributed"]) == 1
    assert "not a GAN's two" in capsys.readouterr().err
    (tmp_path / "images.net").write_text(IMAGES)
    assert cli.main(["emit", str(tmp_path / "images.net"), "--distributed"]) == 1
    assert "`image_folder` streams files" in capsys.readouterr().err


# --- resuming with another world size; Ctrl-C; a killed process -----------------------------------


def test_a_one_process_run_continues_in_two(one: Path, tmp_path: Path) -> None:
    part = tmp_path / "part"
    assert in_process(spec(tmp_path), "--set", SMALL, "--set", "train.epochs=1", "--out", str(part)) == 0
    result = netspec(str(part), "--set", "train.epochs=3", "--nproc", "2", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_close_runs(one, part)
    assert json.loads((part / "summary.json").read_text())["world_size"] == 2


@pytest.fixture(scope="module")
def long_one(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A run long enough to stop in its middle: 2 epochs of 300 batches, in one process."""
    folder = tmp_path_factory.mktemp("long")
    spec_file = spec(folder, samples=12000, epochs=2)
    assert in_process(spec_file, "--out", str(folder / "run")) == 0
    return spec_file, folder / "run"


def started(spec_file: str, out: Path, cwd: Path) -> subprocess.Popen[str]:
    """`netspec run --nproc 2` in the background, once rank 0 reports steps of the second epoch."""
    command = [sys.executable, "-m", "netspec", "run", spec_file, "--nproc", "2", "--out", str(out), "--device", "cpu"]
    env = {**_env(), "PYTHONUNBUFFERED": "1"}
    job = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert job.stdout is not None
    for line in job.stdout:  # rank 0's progress: a line every tenth of an epoch
        if line.startswith("epoch 2/2  step"):
            return job
    raise AssertionError(job.communicate())


def workers(parent: int) -> dict[int, int]:
    """rank -> pid of the processes that a launcher started."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = next((e[5:] for e in environ if e.startswith(b"RANK=")), None)
        if int(fields[1]) == parent and rank is not None:
            found[int(rank)] = int(stat.parent.name)
    return found


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def assert_nothing_half_written(out: Path) -> None:
    assert not list(out.glob(".*.tmp")) and not (out / "summary.json").exists()
    state = json.loads((out / "state.json").read_text())
    assert (out / state["checkpoint"]).is_file() and len(list(out.glob("checkpoint-*"))) == 1


def test_ctrl_c_stops_every_process_and_the_run_continues_in_one(long_one: tuple[str, Path], tmp_path: Path) -> None:
    spec_file, one_run = long_one
    out = tmp_path / "run"
    job = started(spec_file, out, tmp_path)
    ranks = workers(job.pid)
    job.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends to the launcher
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "interrupted: the run in" in err and "Traceback" not in err and err.count("continue with:") == 1
    assert all(gone(pid) for pid in ranks.values())
    assert_nothing_half_written(out)
    state = json.loads((out / "state.json").read_text())["state"]
    assert state["epoch"] == 1 and state["batch"] >= 30  # in the middle of the second epoch
    hint = next(line for line in err.splitlines() if line.startswith("continue with: "))
    assert f"--nproc 2 --resume {out}" in hint
    assert in_process(str(out)) == 0  # in one process this time
    assert_close_runs(one_run, out)


def test_a_killed_process_stops_the_run_cleanly(long_one: tuple[str, Path], tmp_path: Path) -> None:
    spec_file, one_run = long_one
    out = tmp_path / "run"
    job = started(spec_file, out, tmp_path)
    ranks = workers(job.pid)
    assert sorted(ranks) == [0, 1]
    os.kill(ranks[1], signal.SIGKILL)
    killed = time.monotonic()
    _, err = job.communicate(timeout=60)
    took = time.monotonic() - killed
    state = json.loads((out / "state.json").read_text())["state"]
    print(f"the job ended {took:.1f}s after rank 1 was killed, saved up to epoch {state['epoch']}")
    assert took < 15 and job.returncode == 128 + signal.SIGKILL, err
    assert f"process 1 of 2 (pid {ranks[1]}) was killed by SIGKILL" in err and "Traceback" not in err
    assert all(gone(pid) for pid in ranks.values())
    assert_nothing_half_written(out)
    assert in_process(str(out)) == 0
    assert_close_runs(one_run, out)


def test_the_processes_stop_when_the_launcher_is_killed(long_one: tuple[str, Path], tmp_path: Path) -> None:
    """Even SIGKILL of `netspec run --nproc` (which no handler sees) stops its processes: they get
    SIGTERM from the kernel (PR_SET_PDEATHSIG) and stop after a step, rank 0 saving the position."""
    spec_file, one_run = long_one
    out = tmp_path / "run"
    job = started(spec_file, out, tmp_path)
    ranks = workers(job.pid)
    job.kill()
    job.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in ranks.values()):
        assert time.monotonic() < deadline, "the processes outlived their launcher"
        time.sleep(0.1)
    assert_nothing_half_written(out)
    assert in_process(str(out)) == 0
    assert_close_runs(one_run, out)


# --- what is refused ---------------------------------------------------------------------------------


def test_nproc_must_be_positive_and_not_nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    assert in_process(spec(tmp_path), "--nproc", "0") == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert in_process(spec(tmp_path), "--nproc", "2", "--out", str(tmp_path / "run")) == 2
    assert "torchrun already started the processes" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")
    assert in_process(str(ROOT / "specs" / "gan.net"), "--nproc", "2") == 2  # before any process starts
    assert "a GAN trains in one process" in capsys.readouterr().err


def test_the_environment_of_torchrun() -> None:
    assert distributed.world({}) == distributed.World(0, 1, 0)
    assert distributed.world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == distributed.World(3, 4, 1)
    for env in ({"RANK": "4", "WORLD_SIZE": "4"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(UsageError):
            distributed.world(env)


def test_what_data_parallel_training_refuses() -> None:
    group = distributed.Group(distributed.World(0, 2, 0), torch.device("cpu"), "gloo")
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with pytest.raises(UsageError, match="SyncBatchNorm does not run on the CPU"):
        distributed.shard(group, model, None, sync_batchnorm=True)
    with pytest.raises(UsageError, match="a GAN trains in one process"):
        distributed.shard(group, model, object(), sync_batchnorm=False)
    alone = distributed.Group(distributed.World(), torch.device("cpu"))
    assert distributed.shard(alone, model, None, sync_batchnorm=True) == (model, None)


def test_a_signal_after_the_steps_all_reduce_waits_for_the_next_one(tmp_path: Path) -> None:
    """The CI failure of the Ctrl-C test: a process whose signal came between its step's all-reduce and
    the check after the step stopped alone, and the others waited in the next gradient all-reduce
    until torchrun killed them, silently. A process now stops only where all agreed to: the signal
    goes into the next all-reduce, and every process stops after that step."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    group = distributed.Group(distributed.World(0, 1, 0), torch.device("cpu"), "gloo")
    shard = distributed.Shard(group, torch.nn.Linear(2, 1))
    try:
        with interrupts.deferred():
            assert shard.mean(torch.tensor(0.5)) == 0.5 and shard.agreed == 0
            os.kill(os.getpid(), signal.SIGINT)  # after this step's all-reduce
            shard.check()  # the other processes cannot know of it yet: no stop here
            shard.mean(torch.tensor(0.5))  # the next step's all-reduce carries it
            with pytest.raises(interrupts.Interrupted) as stopped:
                shard.check()
            assert stopped.value.signum == signal.SIGINT and interrupts.pending() == 0
    finally:
        del shard
        gc.collect()
        dist.destroy_process_group()
