"""What `netspec run` leaves on disk and shows on the console.

The run directory: `spec.json` (the resolved IR), `metrics.csv` (a row per epoch),
`steps.csv` (the loss and learning rate of every training step),
`summary.json`, `vocab.json` (of a language model: the character of each token id),
`model.safetensors` (last) and `best.safetensors`, a resumable
checkpoint (`checkpoint-*.safetensors` named by `state.json`: see checkpoint.py), the record of
the run (`spec.net`, `overrides.json`: see record.py), and plots. Every write goes through
`netspec.language.files.write_atomic`, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from netspec.ir import nodes as ir
from netspec.language.files import write_atomic
from netspec.runtime import record
from netspec.runtime.record import ResumeError

__all__ = ["ResumeError", "State", "write_atomic"]


@dataclass
class State:
    """Everything a resumed run needs besides tensors."""

    epoch: int = 0  # epochs completed
    step: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    batch: int = 0  # batches done of the epoch under way (a run interrupted in its middle)
    total: float = 0.0  # the sum of the losses of those batches, weighted by their sizes
    seen: int = 0  # and the samples they held
    sums: dict[str, float] = field(default_factory=dict)  # more running sums of that epoch (a GAN's g_loss)


class Checkpointed(Protocol):
    """What a checkpoint saves and restores of a run (a netspec.runtime.loop.Experiment)."""

    program: ir.Program
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    write_atomic(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))


def model_state(exp: Checkpointed) -> dict[str, torch.Tensor]:
    model = getattr(exp.model, "_orig_mod", exp.model)  # unwrap torch.compile
    return dict(model.state_dict())


# --- the run directory ---------------------------------------------------------------------


def start(out: Path, program: Any, source: str | None, overrides: list[str], spec_dir: Path | None) -> None:
    """Record what the run is: spec.json, and spec.net and overrides.json (see record.py)."""
    out.mkdir(parents=True, exist_ok=True)
    record.write(out, source, overrides, program, spec_dir)


def write_vocab(out: Path, vocab: list[str] | None) -> None:
    """vocab.json of a language model: the character of each token id, so that sampling from the
    trained model needs no data files. Nothing for other models."""
    if vocab is not None:
        write_atomic(out / "vocab.json", json.dumps({"vocab": vocab}, ensure_ascii=False, indent=1))


def write_interface(out: Path, data: Any) -> None:
    """interface.json: what a deployed model needs besides its weights and spec (netspec export and
    serve): the inputs' dtype, whether they are images, the class names and the evaluation-time
    preprocessing with its numbers (Transform.deployed)."""
    x = data.train.x
    integer = hasattr(x, "is_floating_point") and not x.is_floating_point()
    image = x.dim() == 4 if hasattr(x, "dim") else True  # streamed files are images
    body = {"dtype": "int64" if integer else "float32", "image": image}
    body |= {"classes": data.classes, "preprocessing": data.deployed}
    write_atomic(out / "interface.json", json.dumps(body, ensure_ascii=False, indent=1))


def read_interface(out: Path) -> dict[str, Any]:
    """A run's interface.json (FileNotFoundError: a run from before it existed; ValueError: not one)."""
    data = json.loads((out / "interface.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("preprocessing"), list):
        raise ValueError(f"{out / 'interface.json'} is not a run's interface")
    return data


def read_vocab(out: Path) -> list[str]:
    """The characters of a run's token ids, from its vocab.json (FileNotFoundError: not a language
    model's run; ValueError: not a vocabulary)."""
    data = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    vocab = data.get("vocab") if isinstance(data, dict) else None
    if not isinstance(vocab, list) or not all(isinstance(c, str) for c in vocab):
        raise ValueError(f"{out / 'vocab.json'} holds no list of characters")
    return vocab


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

    def __init__(
        self, state: State, optimizer: torch.optim.Optimizer, listener: Callable[[dict[str, float]], None] | None = None
    ) -> None:
        self.state, self.optimizer, self.listener = state, optimizer, listener  # listener: sees each row (tracking)
        self.rows: list[dict[str, float]] = []

    def wrap(self, on_step: Callable[[int, float], None]) -> Callable[[int, float], None]:
        """`on_step`, recording each step first."""

        def record(n: int, loss: float) -> None:
            lr = self.optimizer.param_groups[0]["lr"]
            self.rows.append({"step": self.state.step, "epoch": self.state.epoch + 1, "loss": loss, "lr": lr})
            if self.listener is not None:
                self.listener(self.rows[-1])
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


def plots(out: Path, rows: list[dict[str, float]], test: dict[str, Any] | None, curves: bool = True) -> None:
    """Learning curves (unless `curves` is false: drawn after the last epoch already); with `test`
    (probabilities, labels, classes, the first inputs), the confusion matrix and, of images, a grid
    of predictions."""
    try:
        from netspec.runtime import plots as draw
    except ImportError:  # matplotlib is optional for running
        return
    if curves:
        draw.curves(out / "curves.png", rows, read_steps(out))
    if test is None:
        return
    draw.confusion(out / "confusion.png", test["predictions"], test["y"], test["classes"])
    if test["images"] is not None:
        draw.predictions(out / "predictions.png", test["images"], test["predictions"], test["y"], test["classes"])


# --- console ---------------------------------------------------------------------------------
