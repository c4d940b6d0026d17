"""`netspec tune`: search expressions in the language, and studies on Optuna with a real database.

The language: search expressions take their defaults in every other command, their ranges are checked
at both ends, bad ones are located errors, and a trial's values are written into the text with its
comments kept. The studies (real Optuna, a real SQLite file, a real PostgreSQL server when the
`postgresql` package is installed): a study killed with SIGKILL in the middle of a trial continues from
its database without running a finished trial again; two worker processes share one study; the best
trial's spec, written back, checks clean and trains to exactly the best trial's test metrics on CPU.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netspec import compile_file, compile_text
from netspec.cli import main
from netspec.ir.pipeline import alternatives
from netspec.ir.writeback import written

ROOT = Path(__file__).resolve().parent.parent
TUNE_SPEC = ROOT / "specs" / "addition_tune.net"

TINY = """# a + b, with a search space small enough for tests
version 1

let hidden = int_uniform(8, 32)  # both hidden layers

network Adder {
    input [2]
    dense(hidden) -> relu
    dense(hidden) -> relu
    dense(1)
}

dataset pairs {
    source arithmetic(samples=SAMPLES, low=0, high=10)
    batch choice(64, 32)
    validation 0.2
}

train {
    model Adder
    loss mse
    optimizer adam(lr=loguniform(1e-3, 1e-1))  # the learning rate
    epochs EPOCHS
    metrics mae
    seed 3
    device cpu
}

tune {
    metric val_mae
    sampler tpe(seed=0, startup=3)
    pruner median(startup=2)
}
"""


def tiny(tmp_path: Path, samples: int = 1500, epochs: int = 2, name: str = "tiny.net") -> Path:
    path = tmp_path / name
    path.write_text(TINY.replace("SAMPLES", str(samples)).replace("EPOCHS", str(epochs)))
    return path


# --- the language --------------------------------------------------------------------------------


def test_search_expressions_stand_for_their_defaults() -> None:
    result = compile_file(str(TUNE_SPEC))
    assert result.ok, result.diagnostics
    p = result.program
    assert [s.name for s in p.search] == ["hidden", "dropout.p", "batch", "lr"]
    assert [s.default for s in p.search] == [64, 0.0, 64, math.sqrt(1e-4 * 1e-1)]
    assert p.networks[0].steps[0].units == 64 and p.dataset.batch == 64
    assert p.train.optimizer.lr == math.sqrt(1e-5)
    assert (p.tune.metric, p.tune.trials, p.tune.sampler.kind, p.tune.pruner.kind) == ("val_mae", 20, "tpe", "median")


def test_each_kind_of_default() -> None:
    from netspec.registry.search import Choice, IntUniform, LogUniform, Uniform

    assert Uniform(low=0, high=0.5).default_value() == 0.25
    assert Uniform(low=0, high=1, step=0.3).default_value() == 0.3  # on the grid, rounded down
    assert LogUniform(low=1e-4, high=1e-2).default_value() == pytest.approx(1e-3)
    assert IntUniform(low=16, high=128, step=16).default_value() == 64
    assert IntUniform(low=1, high=100, log=True).default_value() == 10
    assert IntUniform(low=1, high=9, default=2).default_value() == 2
    assert Choice(options=("relu", "gelu")).default_value() == "relu"
    assert IntUniform(low=16, high=120, step=16).ends() == [16, 112]  # the last value on the grid


BAD = [
    ("dropout(uniform(0, 0.3, default=0))", "dropout(uniform(0, 1.5))", "NS086", 12, 13, "can be 1.5"),
    ("int_uniform(16, 128, step=16, default=64)", "int_uniform(0, 128)", "NS086", 7, 14, "`hidden` can be 0"),
    ("loguniform(1e-4, 1e-1)", "loguniform(1e-1, 1e-4)", "NS015", 26, 23, "the range is empty"),
    ("loss mse", "loss choice(mse, mae)", "NS085", 25, 10, "cannot stand for a loss"),
    ("dense(1)", "choice(dense(1), dense(2))", "NS085", 14, 5, "cannot stand for a layer"),
    ("adam(lr=", "adam(rate=", "NS011", 26, 20, "has no argument `rate`"),
    ("trials 20", "trials int_uniform(5, 9)", "NS085", 34, 12, "cannot be searched"),
    ("metric val_mae", "metric val_accuracy", "NS052", 33, 5, "cannot score trials by `val_accuracy`"),
    ("uniform(0, 0.3, default=0)", "uniform(0, 0.3, default=0.5)", "NS015", 12, 37, "outside the range"),
]


@pytest.mark.parametrize(("old", "new", "code", "line", "column", "words"), BAD, ids=[b[2] + ":" + b[5] for b in BAD])
def test_bad_search_spaces_get_located_errors(
    old: str, new: str, code: str, line: int, column: int, words: str
) -> None:
    text = TUNE_SPEC.read_text()
    assert old in text
    result = compile_text(text.replace(old, new, 1), "spec.net")
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert [(d.code, d.line, d.column) for d in errors] == [(code, line, column)], errors
    assert words in errors[0].message and result.program is None


def test_names_are_qualified_when_written_twice() -> None:
    text = TUNE_SPEC.read_text().replace("dense(1)  # their sum", "dropout(uniform(0, 0.2))\n    dense(1)")
    result = compile_text(text)
    assert result.ok, result.diagnostics
    assert [s.name for s in result.program.search] == ["hidden", "dropout.p@12", "dropout.p@14", "batch", "lr"]


def test_a_trials_values_are_written_into_the_text() -> None:
    text = TUNE_SPEC.read_text()
    overrides = ["train.epochs=3", "dataset.limit=500", "train.optimizer=sgd(lr=loguniform(1e-3, 1e-1))"]
    program = compile_text(text, overrides=overrides).program
    assert [s.name for s in program.search] == ["hidden", "dropout.p", "batch", "lr"]  # lr: the override's
    values = {"hidden": 112, "dropout.p": 0.1234567890123, "batch": 32, "lr": 0.01}
    spec = written(text, overrides, program.search, values, alternatives())
    assert "let hidden = 112  # the width of both hidden layers" in spec  # comments kept
    assert "dropout(0.1234567890123)" in spec and "batch 32\n" in spec
    assert "optimizer sgd(lr=0.01)" in spec and "epochs 3\n" in spec and "    limit 500\n}" in spec
    assert spec.splitlines()[:4] == text.splitlines()[:4]
    again = compile_text(spec)
    assert again.ok and again.program.search == []
    assert again.program.networks[0].steps[2].p == 0.1234567890123  # the float exactly


def test_netspec_run_and_emit_use_the_defaults_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(TUNE_SPEC)]) == 0
    assert main(["summary", str(TUNE_SPEC)]) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "[64]" in out and "  lr = loguniform(0.0001, 0.1), line 26: 0.0031622776601683794" in out
    assert main(["emit", str(TUNE_SPEC)]) == 0
    captured = capsys.readouterr()
    assert "nn.Linear(2, 64)" in captured.out
    assert "4 search expressions, at their defaults: hidden=64" in captured.err


def test_tune_refuses_a_spec_without_search_expressions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", str(ROOT / "specs" / "addition.net")]) == 2
    assert "has no search expression" in capsys.readouterr().err


# --- studies ---------------------------------------------------------------------------------------

optuna_needed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("optuna") is None, reason='needs optuna: pip install "netspec[tune]"'
)


def tune(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "netspec", "tune", *args, "--device", "cpu"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def trials(url: str, name: str) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def state(t: Any) -> str:
    return str(t.state.name)


def wait_for_a_trial_mid_training(db: Path, proc: subprocess.Popen[str], first: int) -> int:
    """The number of a running trial (of number `first` or more) that has reported an epoch."""
    query = (
        "SELECT t.number FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
        "WHERE t.state = 'RUNNING' AND t.number >= ?"
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db, timeout=10) as con:
                found = con.execute(query, (first,)).fetchall()
        except sqlite3.Error:  # not created yet
            found = []
        if found:
            return int(found[0][0])
        time.sleep(0.05)
    raise AssertionError(f"no trial {first}+ reached its second epoch: {proc.poll()}")


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A study of 5 trials killed (SIGKILL) in the middle of its third trial, then continued."""
    tmp = tmp_path_factory.mktemp("killed")
    spec = tiny(tmp, samples=6000, epochs=3)
    out = tmp / "study"
    args = [str(spec), "--out", str(out), "--trials", "5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", "tune", *args, "--device", "cpu"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        victim = wait_for_a_trial_mid_training(out / "study.db", proc, 2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    url = f"sqlite:///{out / 'study.db'}"
    before = {t.number: t for t in trials(url, "tiny") if state(t) in ("COMPLETE", "PRUNED")}
    stamps = {n: (out / f"trial-{n:03d}" / "summary.json").stat().st_mtime_ns for n in before}
    again = tune(*args, cwd=tmp)
    return {"tmp": tmp, "spec": spec, "out": out, "url": url, "victim": victim, "before": before, "stamps": stamps,
            "output": again.stdout, "after": trials(url, "tiny")}  # fmt: skip


@optuna_needed
@pytest.mark.torch
def test_a_killed_study_continues_without_repeating_finished_trials(killed: dict[str, Any]) -> None:
    after = {t.number: t for t in killed["after"]}
    assert len(after) == len(killed["after"])  # every number once
    for n, t in killed["before"].items():  # finished before the kill: untouched, not run again
        assert (state(after[n]), after[n].value, after[n].params) == (state(t), t.value, t.params)
        assert (killed["out"] / f"trial-{n:03d}" / "summary.json").stat().st_mtime_ns == killed["stamps"][n]
        assert [u.number for u in after.values() if u.params == t.params] == [n]
    victim = after[killed["victim"]]
    assert state(victim) == "FAIL" and victim.user_attrs["interrupted"] == "its worker died"
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params and state(retries[0]) in ("COMPLETE", "PRUNED")
    done = [t for t in after.values() if state(t) in ("COMPLETE", "PRUNED")]
    assert len(done) == 5
    assert f"trial {victim.number} was interrupted: it runs again with the same values" in killed["output"]


@optuna_needed
@pytest.mark.torch
def test_the_study_leaves_a_table_a_csv_plots_and_marked_trials(killed: dict[str, Any]) -> None:
    out, output = killed["out"], killed["output"]
    assert "trials" in output and "best: trial" in output
    rows = (out / "tune.csv").read_text().splitlines()
    assert rows[0] == "trial,state,val_mae,hidden,batch,lr,epochs,seconds,run_dir,note"
    assert len(rows) == 1 + len(killed["after"])
    for t in killed["after"]:
        summary = out / f"trial-{t.number:03d}" / "summary.json"
        if state(t) in ("COMPLETE", "PRUNED"):
            record = json.loads(summary.read_text())
            assert record["pruned"] == (state(t) == "PRUNED")
            assert record["tune"]["trial"] == t.number and record["tune"]["params"] == t.params
            assert f",{'pruned' if state(t) == 'PRUNED' else 'complete'}," in rows[1 + t.number]
    for name in ("history.png", "slice.png", "importance.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@optuna_needed
@pytest.mark.torch
def test_the_best_spec_checks_clean_and_reproduces_the_best_trial(killed: dict[str, Any]) -> None:
    out = killed["out"]
    complete = [t for t in killed["after"] if state(t) == "COMPLETE"]
    best = min(complete, key=lambda t: t.value)
    text = (out / "best.net").read_text()
    assert f"The best trial ({best.number})" in text.splitlines()[0]
    assert "# both hidden layers" in text and "# the learning rate" in text  # the spec's comments kept
    assert "uniform(" not in text.split("version 1")[1] and "choice(" not in text.split("version 1")[1]
    result = compile_file(str(out / "best.net"))
    assert result.ok and result.diagnostics == [] and result.program.search == []
    assert main(["run", str(out / "best.net"), "--out", str(killed["tmp"] / "again"), "--quiet"]) == 0
    trial = json.loads((out / f"trial-{best.number:03d}" / "summary.json").read_text())
    again = json.loads((killed["tmp"] / "again" / "summary.json").read_text())
    assert again["test"] == trial["test"] and again["test"]  # exactly, on CPU


@optuna_needed
@pytest.mark.torch
def test_a_study_refuses_a_changed_spec(killed: dict[str, Any]) -> None:
    changed = killed["tmp"] / "tiny.net"
    changed.write_text(changed.read_text().replace("int_uniform(8, 32)", "int_uniform(8, 64)"))
    done = tune(str(changed), "--out", str(killed["out"]), cwd=killed["tmp"], check=False)
    assert done.returncode == 2 and "was made from a different spec" in done.stderr


@optuna_needed
@pytest.mark.torch
def test_ctrl_c_stops_at_a_step_and_queues_the_trial_again(tmp_path: Path) -> None:
    spec = tiny(tmp_path, samples=6000, epochs=4)
    out = tmp_path / "study"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", "tune", str(spec), "--out", str(out), "--device", "cpu"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    victim = wait_for_a_trial_mid_training(out / "study.db", proc, 0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and f"continue it with: netspec tune {spec} --out {out}" in stderr
    found = {t.number: t for t in trials(f"sqlite:///{out / 'study.db'}", "tiny")}
    assert state(found[victim]) == "FAIL" and found[victim].user_attrs["interrupted"] == "stopped by a signal"
    queued = [t for t in found.values() if state(t) == "WAITING"]
    assert [(t.params, t.system_attrs["failed_trial"], t.user_attrs) for t in queued] == [
        (found[victim].params, victim, {})
    ]


@optuna_needed
@pytest.mark.torch
def test_two_workers_share_one_study(tmp_path: Path) -> None:
    spec = tiny(tmp_path)
    out = tmp_path / "study"
    done = tune(str(spec), "--out", str(out), "--trials", "4", "--jobs", "2", cwd=tmp_path)
    assert "[worker 1] trial" in done.stdout and "[worker 0] trial" in done.stdout
    found = trials(f"sqlite:///{out / 'study.db'}", "tiny")
    check_shared(found, 4, out)


def check_shared(found: list[Any], wanted: int, out: Path) -> None:
    numbers = [t.number for t in found]
    assert numbers == list(range(len(found)))  # no number twice
    finished = [t for t in found if state(t) in ("COMPLETE", "PRUNED")]
    assert wanted <= len(finished) <= wanted + 1  # the workers may each start one as the last finishes
    assert len({t.user_attrs["pid"] for t in finished}) == 2  # both workers ran trials
    for t in finished:
        record = json.loads((out / f"trial-{t.number:03d}" / "summary.json").read_text())
        assert record["tune"]["trial"] == t.number


# --- PostgreSQL ------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A throwaway PostgreSQL server on a free port, run by the `postgres` user; its URL."""
    pg = postgres_bin()
    as_root = os.geteuid() == 0  # PostgreSQL refuses to run as root: then as the `postgres` user
    if pg is None or (as_root and shutil.which("runuser") is None):
        pytest.skip("needs PostgreSQL (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="needs psycopg2-binary")
    root = Path("/tmp") / f"netspec-pg-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(mode=0o777)
    if as_root:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_postgres(*cmd: str) -> None:
        user = ["runuser", "-u", "postgres", "--"] if as_root else []
        subprocess.run([*user, *cmd], check=True, capture_output=True, timeout=120)

    as_postgres(str(pg / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    as_postgres(str(pg / "pg_ctl"), "-D", str(root / "data"), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        as_postgres(str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "studies")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/studies"
    finally:
        as_postgres(str(pg / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@optuna_needed
@pytest.mark.torch
def test_workers_share_a_study_in_postgresql(postgres: str, tmp_path: Path) -> None:
    spec = tiny(tmp_path)
    out = tmp_path / "study"
    args = [str(spec), "--out", str(out), "--storage", postgres, "--study", "shared", "--trials", "3", "--jobs", "2"]
    tune(*args, cwd=tmp_path)
    assert not (out / "study.db").exists()  # the study is in the server
    check_shared(trials(postgres, "shared"), 3, out)
    assert (out / "best.net").is_file()
