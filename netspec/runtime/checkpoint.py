"""The resumable checkpoint of a run directory, saved and restored as one unit.

A checkpoint is a tensor file with a new name, `checkpoint-<sha256 prefix>.safetensors`
(weights, optimizer tensors, random states), and `state.json`, which names that file and its
sha256 and is written last: renaming `state.json` into place is the moment the checkpoint
changes. A crash before it leaves the previous checkpoint whole; files no `state.json` names are
removed after it. Loading checks everything (the JSON's shape and ranges, the tensor file's hash,
every tensor's name and shape) before anything is restored, and says what is wrong.

A checkpoint taken when a run is interrupted in the middle of an epoch also holds the position
in it: `state.batch` batches were done, with the running loss `state.total / state.seen`, and the
shuffle generator's state at the start of the epoch (`rng.epoch`), from which the epoch's
permutation is drawn again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netspec.language.files import read_bounded, remove
from netspec.registry.metrics import monitor_mode
from netspec.runtime import rundir
from netspec.runtime.record import ResumeError
from netspec.runtime.rundir import Checkpointed, State

STATE = "state.json"
FORMAT = 2
MAX_STATE_BYTES = 256 * 2**20


class _StateFile(BaseModel):
    """What state.json must hold (checked before anything is restored)."""

    model_config = ConfigDict(extra="forbid")
    epoch: int = Field(ge=0)
    step: int = Field(ge=0)
    rows: list[dict[str, int | float]]  # an epoch stays an int
    best: float | None = None
    bad_epochs: int = Field(ge=0)
    stopped_early: bool
    batch: int = Field(default=0, ge=0)
    total: float = 0.0
    seen: int = Field(default=0, ge=0)
    sums: dict[str, float] = Field(default_factory=dict)


class _Info(BaseModel):
    format: int
    checkpoint: str = Field(pattern=r"^checkpoint-[0-9a-f]{16}\.safetensors$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    state: _StateFile
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None


# --- saving --------------------------------------------------------------------------------


def save(out: Path, exp: Checkpointed, state: State, g: torch.Generator, epoch_rng: torch.Tensor) -> None:
    """The tensors under a new name, the last weights, metrics and best weights, then state.json."""
    from safetensors.torch import save as encode

    tensors, plain = _tensors(exp, g, epoch_rng)
    data = encode(tensors)
    digest = hashlib.sha256(data).hexdigest()
    name = f"checkpoint-{digest[:16]}.safetensors"
    rundir.write_atomic(out / name, data)
    _save_derived(out, exp, state)
    rundir.write_atomic(out / STATE, _state_json(exp, state, name, digest, plain))  # the commit point
    for old in out.glob("checkpoint*.safetensors"):
        if old.name != name:
            remove(old)


def _save_derived(out: Path, exp: Checkpointed, state: State) -> None:
    """What follows from the checkpoint: the last weights and, at the end of an epoch, its metrics
    and, when it is the best yet, its weights (rewritten the same should the run be resumed)."""
    rundir.save_tensors(out / "model.safetensors", rundir.model_state(exp))
    if state.batch == 0:
        rundir.write_metrics(out, state.rows)
        _save_best(out, exp, state)


def _state_json(exp: Checkpointed, state: State, name: str, digest: str, plain: dict[str, Any]) -> str:
    info = {
        "format": FORMAT,
        "checkpoint": name,
        "sha256": digest,
        "state": asdict(state),
        "optimizer": {"param_groups": exp.optimizer.state_dict()["param_groups"], "plain": plain},
        "scheduler": exp.scheduler.state_dict() if exp.scheduler is not None else None,
    }
    return json.dumps(info, indent=1, default=_json_default)


def _tensors(exp: Checkpointed, g: torch.Generator, epoch_rng: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
    tensors = {f"model.{k}": v for k, v in rundir.model_state(exp).items()}
    plain: dict[str, Any] = {}
    for idx, values in exp.optimizer.state_dict()["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain[f"{idx}.{key}"] = value
    tensors["rng.shuffle"] = g.get_state()
    tensors["rng.epoch"] = epoch_rng
    tensors["rng.torch"] = torch.get_rng_state()
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, plain


def _save_best(out: Path, exp: Checkpointed, state: State) -> None:
    train = exp.program.train
    key = train.early_stopping.monitor if train and train.early_stopping else "val_loss"
    values = [r.get(key) for r in state.rows]
    if not values or values[-1] is None:
        return
    pick = min if monitor_mode(key) == "min" else max
    if values[-1] == pick(v for v in values if v is not None):
        rundir.save_tensors(out / "best.safetensors", rundir.model_state(exp))


def _json_default(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in state.json")


# --- loading -------------------------------------------------------------------------------


def has_checkpoint(out: Path) -> bool:
    return (out / STATE).is_file()


def saved_position(out: Path) -> str:
    """Where the checkpoint in `out` stands, in words (for messages: never raises)."""
    try:
        state = json.loads((out / STATE).read_text())["state"]
        where = f"epoch {state['epoch']}" + (f", batch {state['batch']} of the next" if state.get("batch") else "")
    except (OSError, ValueError, KeyError, TypeError):
        where = "its last checkpoint"
    return f"the run in {out} is saved up to {where}"


def read(out: Path | None) -> tuple[_Info, dict[str, torch.Tensor]]:
    """state.json and its tensor file, checked against each other; nothing is restored yet."""
    if out is None or not has_checkpoint(out):
        raise FileNotFoundError(2, "no checkpoint to resume (state.json is missing)", str(out))
    info = _read_info(out)
    path = out / info.checkpoint
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ResumeError(f"{out} is damaged: state.json names {info.checkpoint}, which is missing") from None
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise ResumeError(f"{out} is damaged: {info.checkpoint} does not match the sha256 that state.json records")
    return info, _decode(path, data)


def _read_info(out: Path) -> _Info:
    try:
        info = _Info.model_validate_json(read_bounded(out / STATE, MAX_STATE_BYTES))
    except (ValidationError, ValueError, OSError) as e:
        first = str(e).splitlines()[:3]
        raise ResumeError(f"{out / STATE} is damaged or from an older netspec ({' '.join(first)})") from None
    s = info.state
    if len(s.rows) != s.epoch or s.step < s.batch or (s.batch == 0) != (s.seen == 0):
        raise ResumeError(f"{out / STATE} is damaged: its epochs, steps and rows do not agree")
    return info


def _decode(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise ResumeError(f"{path} is damaged ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    missing = [k for k in ("rng.shuffle", "rng.epoch", "rng.torch") if k not in tensors]
    if missing:
        raise ResumeError(f"{path} is damaged: it lacks {', '.join(missing)}")
    return tensors


def validate(exp: Checkpointed, info: _Info, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a checkpoint whose weights or optimizer do not fit this run, naming what differs."""
    problems = _layer_problems(exp, tensors)
    if problems:
        raise ResumeError(f"the checkpoint does not fit this spec: layers differ ({'; '.join(problems[:6])})")
    saved_groups = info.optimizer.get("param_groups")
    groups = exp.optimizer.state_dict()["param_groups"]
    if not isinstance(saved_groups, list) or [sorted(g) for g in saved_groups] != [sorted(g) for g in groups]:
        raise ResumeError("the checkpoint does not fit this spec: the optimizer differs")


def _layer_problems(exp: Checkpointed, tensors: dict[str, torch.Tensor]) -> list[str]:
    model = getattr(exp.model, "_orig_mod", exp.model)
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k[6:]: tuple(v.shape) for k, v in tensors.items() if k.startswith("model.")}
    problems = [
        f"{k}: checkpoint {list(saved[k])}, this spec {list(s)}" for k, s in mine.items() if saved.get(k, s) != s
    ]
    problems += [f"{k} is not in the checkpoint" for k in mine if k not in saved]
    return problems + [f"{k} is not in this spec's network" for k in saved if k not in mine]


def restore(
    exp: Checkpointed, info: _Info, tensors: dict[str, torch.Tensor], g: torch.Generator
) -> tuple[State, torch.Tensor | None]:
    """Load a validated checkpoint into `exp` and `g`: the state, and, in the middle of an epoch, the
    shuffle generator's state to continue with once the epoch's permutation is drawn again."""
    try:
        exp.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        exp.optimizer.load_state_dict(_optimizer_state(info.optimizer, tensors))
        if exp.scheduler is not None and info.scheduler is not None:
            fresh = exp.scheduler.state_dict()
            exp.scheduler.load_state_dict(_scheduler_state(exp.program, info.scheduler, fresh))
        torch.set_rng_state(tensors["rng.torch"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise ResumeError(f"the checkpoint does not fit this spec ({str(e).splitlines()[0]})") from None
    state = State(**info.state.model_dump())
    middle = state.batch > 0
    g.set_state(tensors["rng.epoch"] if middle else tensors["rng.shuffle"])
    return state, (tensors["rng.shuffle"] if middle else None)


def _scheduler_state(program: Any, saved: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
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
