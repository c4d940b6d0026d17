"""Continuing a run directory: everything that must match is checked before anything is written.

`opened(out, program, resume, overwrite)` claims the directory (lock.py) and, to resume, checks the
recorded spec (record.py) and reads and checks the checkpoint (checkpoint.py); `restore` then
loads it into the built experiment, after checking that its tensors fit.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from netspec.ir import nodes as ir
from netspec.runtime import checkpoint, lock, record
from netspec.runtime.rundir import Checkpointed, State

Saved = tuple[Any, dict[str, torch.Tensor]]  # state.json's content, the checkpoint's tensors


@contextlib.contextmanager
def opened(
    out: Path | None, program: ir.Program, resume: bool, overwrite: bool, claim: bool = True
) -> Iterator[Saved | None]:
    """Hold `out` for the run; to resume, its checked checkpoint (nothing written yet). Without `claim`
    (a data-parallel process other than rank 0, which holds it), only read the checkpoint."""
    if out is None:
        yield None
        return
    if resume and not checkpoint.has_checkpoint(out):
        raise FileNotFoundError(2, "no checkpoint to resume (state.json is missing)", str(out))
    with lock.claim(out, resume, overwrite) if claim else contextlib.nullcontext():
        yield _checked(out, program) if resume else None


def _checked(out: Path, program: ir.Program) -> Saved:
    """The recorded spec, then the checkpoint: read and checked, nothing restored."""
    record.check_compatible(out, program)
    return checkpoint.read(out)


def restore(exp: Checkpointed, saved: Saved, g: torch.Generator, log: Callable[[str], None]) -> State:
    """Load the checkpoint into the experiment; say where the run continues."""
    info, tensors = saved
    checkpoint.validate(exp, info, tensors)
    state, resume_rng = checkpoint.restore(exp, info, tensors, g)
    exp.resume_rng = resume_rng  # type: ignore[attr-defined]
    log(f"resuming from {_where(state)} ({state.epoch} completed, step {state.step})")
    return state


def _where(state: State) -> str:
    return f"epoch {state.epoch + 1}" + (f", batch {state.batch + 1}" if state.batch else "")
