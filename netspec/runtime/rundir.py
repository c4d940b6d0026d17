"""What `netspec run` leaves on disk and shows on the console.

The run directory: `spec.json` (the resolved IR), `metrics.csv` (a row per epoch),
`steps.csv` (the loss and learning rate of every training step),
`summary.json`, `model.safetensors` (last) and `best.safetensors`, a resumable
`checkpoint.safetensors` + `state.json`, and plots. Every write goes to a temporary
file that is then renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch
from torch import nn

from netspec.ir import nodes as ir
from netspec.registry.metrics import monitor_mode


class ResumeError(Exception):
    """A run directory cannot be resumed with this spec."""


@dataclass
class State:
    """Everything a resumed run needs besides tensors."""

    epoch: int = 0  # epochs completed
    step: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    bad_epochs: int = 0
    stopped_early: bool = False


class Checkpointed(Protocol):
    """What a checkpoint saves and restores of a run (a netspec.runtime.loop.Experiment)."""

    program: ir.Program
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    write_atomic(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def model_state(exp: Checkpointed) -> dict[str, torch.Tensor]:
    model = getattr(exp.model, "_orig_mod", exp.model)  # unwrap torch.compile
    return dict(model.state_dict())


# --- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(out: Path, exp: Checkpointed, state: State, g: torch.Generator) -> None:
    """After each epoch: weights, optimizer, scheduler and random states, metrics so far.
    A Ctrl-C while the files are written takes effect once they all are, so that the
    tensors and state.json always belong to the same epoch."""
    with _interrupts_deferred():
        _save_checkpoint(out, exp, state, g)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT back for the duration of the block (main thread only), then deliver it."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, None)
        elif received and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


def _save_checkpoint(out: Path, exp: Checkpointed, state: State, g: torch.Generator) -> None:
    tensors = {f"model.{k}": v for k, v in model_state(exp).items()}
    opt = exp.optimizer.state_dict()
    plain: dict[str, Any] = {}
    for idx, values in opt["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain[f"{idx}.{key}"] = value
    tensors["rng.shuffle"] = g.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    save_tensors(out / "checkpoint.safetensors", tensors)
    info = {
        "state": asdict(state),
        "optimizer": {"param_groups": opt["param_groups"], "plain": plain},
        "scheduler": exp.scheduler.state_dict() if exp.scheduler is not None else None,
    }
    write_atomic(out / "state.json", json.dumps(info, indent=1, default=_json_default))
    save_tensors(out / "model.safetensors", model_state(exp))
    write_metrics(out, state.rows)
    _save_best(out, exp, state)


def _save_best(out: Path, exp: Checkpointed, state: State) -> None:
    train = exp.program.train
    key = train.early_stopping.monitor if train and train.early_stopping else "val_loss"
    values = [r.get(key) for r in state.rows]
    if values[-1] is None:
        return
    pick = min if monitor_mode(key) == "min" else max
    if values[-1] == pick(v for v in values if v is not None):
        save_tensors(out / "best.safetensors", model_state(exp))


def _json_default(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in state.json")


def load_checkpoint(out: Path | None, exp: Checkpointed, g: torch.Generator) -> State:
    """Restore a run directory's last checkpoint into `exp` and `g`."""
    if out is None or not (out / "state.json").is_file():
        raise FileNotFoundError(2, "no checkpoint to resume (state.json is missing)", str(out))
    info = json.loads((out / "state.json").read_text())
    tensors = load_tensors(out / "checkpoint.safetensors")
    try:
        exp.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        exp.optimizer.load_state_dict(_optimizer_state(info["optimizer"], tensors))
    except (RuntimeError, ValueError, KeyError) as e:  # the spec's network or optimizer changed
        raise ResumeError(f"the checkpoint in {out} does not fit this spec ({str(e).splitlines()[0]})") from e
    if exp.scheduler is not None and info["scheduler"] is not None:
        fresh = exp.scheduler.state_dict()
        exp.scheduler.load_state_dict(_scheduler_state(exp.program, info["scheduler"], fresh))
    g.set_state(tensors["rng.shuffle"])
    torch.set_rng_state(tensors["rng.torch"])
    state = State(**info["state"])
    state.rows = [dict(r) for r in state.rows]
    return state


def _scheduler_state(program: ir.Program, saved: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """The saved scheduler state, but what follows from the run's length comes from this run."""
    schedule = program.train.schedule if program.train else None
    keys = schedule.run_length_keys if schedule else ()
    return {**saved, **{k: fresh[k] for k in keys if k in fresh}}


def _optimizer_state(saved: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in saved["plain"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": saved["param_groups"]}


# --- the run directory ---------------------------------------------------------------------


def start(out: Path, program: Any, exp: Checkpointed, resumed: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "spec.json", program.model_dump_json(indent=1))


def write_metrics(out: Path, rows: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    write_atomic(out / "metrics.csv", buf.getvalue())


class StepLog:
    """The training steps of one epoch, for steps.csv: step, epoch, loss, lr."""

    def __init__(self, state: State, optimizer: torch.optim.Optimizer) -> None:
        self.state, self.optimizer = state, optimizer
        self.rows: list[dict[str, float]] = []

    def wrap(self, on_step: Callable[[int, float], None]) -> Callable[[int, float], None]:
        """`on_step`, recording each step first."""

        def record(n: int, loss: float) -> None:
            lr = self.optimizer.param_groups[0]["lr"]
            self.rows.append({"step": self.state.step, "epoch": self.state.epoch + 1, "loss": loss, "lr": lr})
            on_step(n, loss)

        return record


STEP_COLUMNS = ("step", "epoch", "loss", "lr")


def write_steps(out: Path, rows: list[dict[str, float]]) -> None:
    """Add steps to steps.csv; those it holds from the first of them on (written before an interruption,
    then trained again after resuming) are replaced."""
    first = min((r["step"] for r in rows), default=None)
    kept = [r for r in read_steps(out) if first is None or r["step"] < first]
    lines = [",".join(STEP_COLUMNS)] + [
        f"{int(r['step'])},{int(r['epoch'])},{float(r['loss'])!r},{float(r['lr'])!r}" for r in kept + rows
    ]
    write_atomic(out / "steps.csv", "\n".join(lines) + "\n")


def read_steps(out: Path) -> list[dict[str, float]]:
    """The rows of steps.csv, or none when there is none."""
    path = out / "steps.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return repr(value) if isinstance(value, float) else value


def save_final(out: Path, exp: Checkpointed, summary: dict[str, Any]) -> None:
    """The final weights and summary.json."""
    save_tensors(out / "model.safetensors", model_state(exp))
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))


def plots(out: Path, rows: list[dict[str, float]], test: dict[str, Any] | None) -> None:
    """Learning curves; with `test` (probabilities, labels, classes, the first inputs), the confusion
    matrix and, of images, a grid of predictions."""
    try:
        from netspec.runtime import plots as draw
    except ImportError:  # matplotlib is optional for running
        return
    draw.curves(out / "curves.png", rows, read_steps(out))
    if test is None:
        return
    draw.confusion(out / "confusion.png", test["predictions"], test["y"], test["classes"])
    if test["images"] is not None:
        draw.predictions(out / "predictions.png", test["images"], test["predictions"], test["y"], test["classes"])


# --- console ---------------------------------------------------------------------------------
