"""`netspec tune`: an Optuna study over a spec's search expressions; each trial an ordinary run.

The study lives in a relational storage (by default `sqlite:///<out>/study.db`), which is what lets
an interrupted study continue where it stopped and several workers share it: J local worker
processes (`--jobs`), or workers on many machines given one PostgreSQL or MySQL URL. A trial draws a
value for every search expression, writes them into the spec's text (``netspec.ir.writeback``),
checks that text and runs it in `<out>/trial-NNN/`; after each epoch the validation metric goes to
the pruner, which may stop the trial (`pruned`). A trial whose worker died (Ctrl-C, SIGKILL, a lost
machine) is failed and queued again with the same values: found at once when the worker ran on this
machine (its process is gone), after the heartbeat's grace period otherwise.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from netspec.ir import nodes as ir
from netspec.ir import writeback
from netspec.language.diagnostics import UsageError
from netspec.language.files import write_atomic
from netspec.registry.metrics import monitor_mode

DEFAULT_TRIALS = 20  # with neither `trials` nor a time budget
HEARTBEAT, GRACE = 30, 120  # seconds: a running trial's worker writes a heartbeat; one that misses it is lost
RETRIES = 3  # times a lost trial is queued again
WORKER_ATTRS = ("host", "pid", "interrupted", "seconds", "epochs")  # what a trial's worker records of it
HOST = socket.gethostname()


class TrialFailed(Exception):
    """A trial that ran and failed on its own account (a spec error at its values, a diverged loss): a
    result of the search, counted as done and not retried."""


@dataclass
class TuneOptions:
    file: Path  # the spec
    text: str  # its source
    program: ir.Program  # checked at the defaults
    overrides: list[str] = field(default_factory=list)
    out: Path = Path("runs/tune")
    storage: str | None = None  # default: sqlite:///<out>/study.db
    study: str | None = None  # default: the spec's name
    trials: int | None = None  # overrides the tune section's
    timeout: float | None = None
    jobs: int = 1
    worker: int = 0  # 0: the process that reports; 1, 2, ...: the workers it started
    data_dir: str | None = None
    device: str | None = None
    download: bool = True
    max_memory: int = 4 << 30
    log: Callable[[str], None] = print

    @property
    def settings(self) -> ir.Tune:
        return self.program.tune or ir.Tune(span=self.program.networks[0].span)

    @property
    def url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'study.db').as_posix()}"

    @property
    def name(self) -> str:
        return self.study or self.file.stem

    @property
    def budget(self) -> tuple[int | None, float | None]:
        """Trials in all, and seconds; neither given: DEFAULT_TRIALS."""
        trials = self.trials or self.settings.trials
        timeout = self.timeout or self.settings.timeout
        return (trials or (None if timeout else DEFAULT_TRIALS)), timeout

    @property
    def direction(self) -> str:
        d = self.settings.direction
        return d if d != "auto" else ("maximize" if monitor_mode(self.settings.metric) == "max" else "minimize")


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError('netspec tune needs optuna: pip install "netspec[tune]"') from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial gets a line of ours (a failed one: why)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retries
    return optuna


# --- the study ---------------------------------------------------------------------------------


def fingerprint(program: ir.Program) -> str:
    """What a study's trials must share: the spec's meaning (networks, data, training, search space)
    without positions and without the tune section, so that comments, layout and `trials` may change."""
    data = program.model_dump(mode="json", exclude={"tune"})
    return hashlib.sha256(json.dumps(_no_spans(data), sort_keys=True).encode()).hexdigest()[:16]


def _no_spans(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _no_spans(v) for k, v in x.items() if k != "span"}
    return [_no_spans(v) for v in x] if isinstance(x, list) else x


def storage_of(opts: TuneOptions) -> Any:
    optuna = optuna_module()
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    requeue = Requeue((retry or optuna.storages.RetryFailedTrialCallback)(max_retry=RETRIES))
    callback = {"heartbeat_stale_trial_callback": requeue} if retry else {"failed_trial_callback": requeue}
    engine = {"connect_args": {"timeout": 60}} if opts.url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(
            opts.url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT, grace_period=GRACE, **callback
        )
    except (ImportError, ValueError, OSError) as e:
        raise UsageError(f"cannot open the study storage {opts.url}: {e}") from None
    except Exception as e:  # sqlalchemy's errors: a server that refuses, a database that does not exist
        raise UsageError(f"cannot open the study storage {opts.url}: {type(e).__name__}: {_first_line(e)}") from None


@dataclass
class Requeue:
    """Queue a lost trial again with its values (Optuna's retry callback), without what its worker
    recorded of it (host, pid, why it was lost): the copy is a trial of its own."""

    inner: Callable[[Any, Any], None]

    def __call__(self, study: Any, trial: Any) -> None:
        frozen = copy.copy(trial)
        frozen.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in WORKER_ATTRS}
        self.inner(study, frozen)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def open_study(opts: TuneOptions, storage: Any) -> Any:
    """The study, created or continued; refused when it was made from another spec or direction."""
    optuna = optuna_module()
    settings = opts.settings
    sampler_cls = getattr(optuna.samplers, settings.sampler.optuna_class)
    sampler = sampler_cls(**settings.sampler.optuna_kwargs(opts.worker))
    study = optuna.create_study(
        storage=storage,
        study_name=opts.name,
        direction=opts.direction,
        sampler=sampler,
        pruner=_pruner(optuna, settings, opts.program),
        load_if_exists=True,
    )
    _same_spec(study, opts)
    return study


def _pruner(optuna: Any, settings: ir.Tune, program: ir.Program) -> Any:
    if settings.pruner is None:
        return optuna.pruners.NopPruner()
    epochs = program.train.epochs if program.train and program.train.epochs else 1
    return getattr(optuna.pruners, settings.pruner.optuna_class)(**settings.pruner.optuna_kwargs(epochs))


def _same_spec(study: Any, opts: TuneOptions) -> None:
    mine = {"fingerprint": fingerprint(opts.program), "metric": opts.settings.metric}
    attrs = study.user_attrs
    if "fingerprint" not in attrs:
        for k, v in mine.items():
            study.set_user_attr(k, v)
        return
    if study.direction.name.lower() != opts.direction:
        raise UsageError(
            f"study `{opts.name}` in {opts.url} {study.direction.name.lower()}s its metric, not {opts.direction}s"
        )
    if attrs.get("fingerprint") != mine["fingerprint"] or attrs.get("metric") != mine["metric"]:
        raise UsageError(
            f"study `{opts.name}` in {opts.url} was made from a different spec (its networks, data, training, "
            "search expressions or metric differ): continue it with that spec, or start another with --study NAME "
            "or --out DIR"
        )


# --- trials ------------------------------------------------------------------------------------


def counts(study: Any) -> dict[str, int]:
    """Trials done (complete, pruned, failed on their own account), running, and waiting to run again."""
    from optuna.trial import TrialState

    out = {"done": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and "error" in t.user_attrs
        ):
            out["done"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
    return out


def retry(study: Any, storage: Any, trial_id: int) -> None:
    """Queue a lost trial again: the storage's callback for trials lost by their heartbeat (a Requeue)."""
    get = getattr(storage, "get_heartbeat_stale_trial_callback", None) or storage.get_failed_trial_callback
    get()(study, storage.get_trial(trial_id))


def reclaim(study: Any, storage: Any) -> list[int]:
    """Fail the running trials of workers on this machine that are gone, and queue them again."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") != HOST or _alive(t.user_attrs.get("pid")):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "interrupted", "its worker died")
            failed = storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # another worker got there first
            continue
        if failed:
            retry(study, storage, t._trial_id)
            lost.append(t.number)
    return lost


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge: the heartbeat will
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that its parent has not reaped yet is a zombie: gone all the same
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


@dataclass
class Reporter:
    """RunOptions.on_epoch of a trial: each epoch's metric to Optuna, and the pruner's verdict."""

    trial: Any
    metric: str
    pruning: bool
    last: float | None = None
    epoch: int = 0

    def __call__(self, row: dict[str, float]) -> None:
        import optuna

        self.last, self.epoch = float(row[self.metric]), int(row["epoch"])
        self.trial.report(self.last, self.epoch)
        if self.pruning and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {self.epoch}: {self.metric} {self.last:.6g}")


def trial_dir(out: Path, number: int) -> Path:
    return out / f"trial-{number:03d}"


class Objective:
    """One trial: values drawn, written into the spec, checked, run."""

    def __init__(self, opts: TuneOptions, storage: Any) -> None:
        self.opts, self.storage = opts, storage
        self.settings = opts.settings
        self.number = -1  # of the trial under way, or the last one

    def __call__(self, trial: Any) -> float:
        self.number = trial.number
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        values = {p.name: p.distribution.suggest(trial, p.name) for p in self.opts.program.search}
        text = spec_text(self.opts, values)
        program = self._checked(trial, text)
        reporter = Reporter(trial, self.settings.metric, self.settings.pruner is not None)
        started = time.perf_counter()
        try:
            summary = self._run(trial, program, text, reporter)
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            trial.set_user_attr("epochs", reporter.epoch)
        if reporter.last is None:
            raise self._failed(trial, "it trained no epoch")
        self._record(trial, summary, "complete", reporter.last, reporter.epoch)
        return reporter.last

    def _checked(self, trial: Any, text: str) -> ir.Program:
        from netspec.ir.check import CheckOptions
        from netspec.ir.pipeline import compile_text

        name = f"{self.opts.file} (trial {trial.number})"
        result = compile_text(text, name, (), CheckOptions(max_memory=self.opts.max_memory))
        if result.program is None:
            first = next(d for d in result.diagnostics if d.severity == "error")
            raise self._failed(trial, f"the spec at these values does not check: {first.message}")
        return result.program

    def _run(self, trial: Any, program: ir.Program, text: str, reporter: Reporter) -> dict[str, Any]:
        import optuna

        from netspec.runtime.loop import RunOptions, TrainingError, run

        out = trial_dir(self.opts.out, trial.number)
        options = RunOptions(
            out=out, data_dir=self.opts.data_dir, device=self.opts.device, quiet=True, download=self.opts.download,
            spec_dir=self.opts.file.resolve().parent, spec_name=f"{self.opts.name}-trial-{trial.number:03d}",
            overwrite=True, source=text, on_epoch=reporter,
        )  # fmt: skip
        try:
            return run(program, options)
        except optuna.TrialPruned:
            pruned = {"spec": options.spec_name, "epochs": reporter.epoch}
            self._record(trial, pruned, "pruned", reporter.last, reporter.epoch)
            raise
        except TrainingError as e:
            raise self._failed(trial, str(e)) from None
        except KeyboardInterrupt:
            self._interrupted(trial)
            raise

    def _failed(self, trial: Any, why: str) -> TrialFailed:
        trial.set_user_attr("error", why)
        return TrialFailed(why)

    def _interrupted(self, trial: Any) -> None:
        """Ctrl-C or SIGTERM: the trial fails, and waits with its values for the next `netspec tune`."""
        trial.set_user_attr("interrupted", "stopped by a signal")
        retry(trial.study, self.storage, trial._trial_id)

    def _record(self, trial: Any, summary: dict[str, Any], state: str, value: float | None, epochs: int) -> None:
        """The trial's summary.json says what it was in the study."""
        out = trial_dir(self.opts.out, trial.number)
        summary = {**summary, "pruned": state == "pruned"}
        summary["tune"] = {
            "study": self.opts.name, "trial": trial.number, "state": state, "params": trial.params,
            "metric": self.settings.metric, "value": value, "epochs": epochs,
        }  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "summary.json", json.dumps(summary, indent=2))


def spec_text(opts: TuneOptions, values: dict[str, Any]) -> str:
    """The spec a trial with these values (as Optuna stores them) trains: complete, no --set needed."""
    from netspec.ir.pipeline import alternatives

    return writeback.written(opts.text, opts.overrides, opts.program.search, values, alternatives())


# --- workers -----------------------------------------------------------------------------------


def prepare(opts: TuneOptions) -> tuple[Any, Any]:
    """The storage and the study, created (before any worker starts, so that they do not race to) or continued."""
    opts.out.mkdir(parents=True, exist_ok=True)
    storage = storage_of(opts)
    return storage, open_study(opts, storage)


def work(opts: TuneOptions, storage: Any, study: Any, said: Callable[[Any], None]) -> None:
    """Run trials until the study has its trials or the time is up; `said(trial)` after each."""
    trials, timeout = opts.budget
    deadline = time.monotonic() + timeout if timeout else None
    if opts.jobs > 1:
        _share_cores(opts.jobs)
    objective = Objective(opts, storage)
    while True:
        for number in reclaim(study, storage):  # a worker of this machine died: its trial runs again
            opts.log(f"trial {number} was interrupted: it runs again with the same values")
        if not _more(study, trials, deadline):
            return
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        said(study.get_trials(deepcopy=False)[objective.number])


def _more(study: Any, trials: int | None, deadline: float | None) -> bool:
    if deadline is not None and time.monotonic() >= deadline:
        return False
    n = counts(study)
    return trials is None or n["done"] + n["running"] < trials


def _share_cores(jobs: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))


def start_workers(opts: TuneOptions, argv: list[str]) -> list[subprocess.Popen[bytes]]:
    """Workers 1 .. J-1: `netspec tune` again with --worker K (they share the study, and do not report)."""
    base = [sys.executable, "-m", "netspec", "tune", *argv]
    # each in a session of its own: a terminal's Ctrl-C reaches this process, which stops them once
    return [subprocess.Popen([*base, "--worker", str(k)], start_new_session=True) for k in range(1, opts.jobs)]


def wait_workers(workers: list[subprocess.Popen[bytes]]) -> int:
    """Wait for the workers; the first non-zero exit status, else 0."""
    codes = [w.wait() for w in workers]
    return next((c for c in codes if c), 0)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """This process was interrupted: the workers stop too (their trials wait to run again)."""
    import signal

    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGINT)
    for w in workers:
        try:
            w.wait(timeout=60)
        except subprocess.TimeoutExpired:
            w.kill()
