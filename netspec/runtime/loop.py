"""Stage 3a: run a checked spec on PyTorch — the experiment of its task, the training loop, evaluation.

The data and its batches are `splits`; the experiment is built by the task's trainer, chosen by
name (`BUILDERS`): supervised training here, a GAN's in `adversarial`. Every random number comes from the
spec's seed: the same spec and seed give the same metrics on CPU, run after run, and
`--resume` continues an interrupted run to exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import netspec
from netspec.ir import nodes as ir
from netspec.language.diagnostics import UsageError
from netspec.registry.metrics import monitor_mode
from netspec.runtime import adversarial, checkpoint, console, distributed, interrupts, resume, tracking
from netspec.runtime import rundir as artifacts
from netspec.runtime.build import build_network, build_optimizer, scheduler_class
from netspec.runtime.data_fit import DataMismatch
from netspec.runtime.datasets import DataError, check_fit, load, resolve_root
from netspec.runtime.rundir import State
from netspec.runtime.splits import Data, Split, batches, prepare_data
from netspec.verbatim import metrics as vmetrics


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss); the last good checkpoint is kept."""


@dataclass
class RunOptions:
    out: Path | None = None
    data_dir: str | None = None
    device: str | None = None  # overrides train.device
    quiet: bool = False
    on_epoch: Callable[[dict[str, float]], None] | None = None  # after each epoch is saved (`tune`'s pruner; may raise)
    resume: Path | None = None
    download: bool = True
    spec_dir: Path | None = None
    spec_name: str = "spec"
    log: Callable[[str], None] = print
    overwrite: bool = False  # a run may write over the files of an earlier one in `out`
    source: str | None = None  # the spec's text and the overrides, recorded in the run directory
    overrides: list[str] = field(default_factory=list)
    sync_batchnorm: bool = False  # data-parallel training: BatchNorm over the whole batch (CUDA)


# --- the experiment -----------------------------------------------------------------------


@dataclass
class Experiment:
    program: ir.Program
    data: Data
    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    epochs: int
    steps_per_epoch: int
    classes: int  # of the confusion matrix; 0: the outputs are values
    metrics: dict[str, Any]
    meter_args: tuple[int, tuple[int, ...], float | None]  # what the evaluation Meter counts
    autocast: Any  # None, or the dtype of CUDA mixed precision
    scaler: Any = None  # a GradScaler for fp16 (bf16 needs none)
    channels_last: bool = False  # convolutions on CUDA run faster with NHWC inputs
    epoch_rng: Any = None  # the shuffle generator's state at the start of the epoch under way
    trainer: Any = None  # a task's own trainer (adversarial.GanTrainer); None: supervised training
    resume_rng: Any = None  # resumed in the middle of an epoch: its state after the permutation
    shard: Any = None  # distributed.Shard: this process's part of a data-parallel run; None: one process
    tracker: tracking.Tracker = tracking.NO_TRACKER  # the loggers of `train { log ... }` (rank 0's)


def available_devices() -> list[str]:
    """The devices this machine and this torch build can train on, best first."""
    found = ["cuda"] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(wanted: str) -> torch.device:
    """auto: CUDA, then Apple's MPS, then the CPU. A device that is not there is a usage error."""
    available = available_devices()
    if wanted == "auto":
        return torch.device(available[0])
    if wanted.split(":")[0] not in available:
        raise UsageError(
            f"device `{wanted}` is not available: {_why_missing(wanted)}; available here: {', '.join(available)}"
        )
    return torch.device(wanted)


def _why_missing(wanted: str) -> str:
    if wanted.startswith("cuda"):
        built = torch.version.cuda is not None  # type: ignore[attr-defined]
        return f"torch {torch.__version__} {'finds no CUDA GPU' if built else 'was built without CUDA'}"
    return f"torch {torch.__version__} finds no `{wanted}` device"


def build(program: ir.Program, data: Data, device: torch.device) -> Experiment:
    """The experiment of the train section's task: its trainer is chosen by name."""
    assert program.train is not None
    return BUILDERS[program.train.task.trainer](program, data, device)


def _build_gan(program: ir.Program, data: Data, device: torch.device) -> Experiment:
    model, optimizers = adversarial.build(program, device)
    steps_per_epoch = math.ceil(len(data.train) / program.dataset.batch)  # type: ignore[union-attr]
    train = program.train
    assert train is not None
    epochs = train.epochs or math.ceil((train.steps or 1) / steps_per_epoch)
    if train.task.d_steps > steps_per_epoch:  # type: ignore[attr-defined]
        raise DataMismatch(
            f"task gan(d_steps={train.task.d_steps}) takes more batches than an epoch has ({steps_per_epoch}): "  # type: ignore[attr-defined]
            "some epochs would not train the generator; lower d_steps or the batch size"
        )
    trainer = adversarial.GanTrainer(program, data.at_eval)
    no_loss: Any = None  # each network's loss is the trainer's
    pair: Any = optimizers  # saved and restored as one optimizer
    return Experiment(
        program, data, model, no_loss, pair, None, device, epochs, steps_per_epoch, 0, {}, (0, (), None), None,
        trainer=trainer,
    )  # fmt: skip


def _build_supervised(program: ir.Program, data: Data, device: torch.device) -> Experiment:
    train = program.train
    net = program.network(train.model) if train else None
    assert train is not None and net is not None
    torch.manual_seed(train.seed)  # the model's initial weights
    model, channels_last = _model(net, device)
    steps_per_epoch = math.ceil(len(data.train) / program.dataset.batch)  # type: ignore[union-attr]
    epochs = train.epochs or math.ceil((train.steps or 1) / steps_per_epoch)
    optimizer = build_optimizer(train.optimizer, model)
    scheduler = _scheduler(train, optimizer, epochs, steps_per_epoch)
    meter_args = train.loss.meter_args(net.output_shape[-1], train.metrics)
    autocast = _autocast(train, device)
    scaler = torch.amp.GradScaler("cuda") if autocast == torch.float16 else None
    return Experiment(
        program,
        data,
        model,
        _loss(train.loss, device),
        optimizer,
        scheduler,
        device,
        epochs,
        steps_per_epoch,
        meter_args[0],
        {m.kind: m.arg() for m in train.metrics},
        meter_args,
        autocast,
        scaler,
        channels_last,
    )


def _model(net: ir.Network, device: torch.device) -> tuple[nn.Module, bool]:
    """The network on `device`, and whether it takes channels-last inputs (convolutions on CUDA run faster)."""
    model = build_network(net).to(device)
    channels_last = device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model, channels_last


def _loss(loss: Any, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    kwargs = loss.torch_kwargs()
    if "pos_weight" in kwargs:
        kwargs["pos_weight"] = torch.tensor([kwargs["pos_weight"]], device=device)
    criterion = getattr(nn, loss.torch_class)(**kwargs)
    if loss.target == "binary":
        return lambda out, y: criterion(out, y.float().view_as(out))
    if loss.target == "class":  # per-position classes ([batch, seq, classes]) flatten to rows
        return lambda out, y: criterion(out.flatten(0, -2), y.flatten())
    return criterion  # type: ignore[no-any-return]


def binary_probabilities(loss: Any, out: torch.Tensor) -> torch.Tensor:
    """[..., 2] class probabilities from one binary output [..., 1]: a probability, or a logit."""
    p = out if loss.threshold == 0.5 else out.sigmoid()
    return torch.cat([1 - p, p], -1)


def _scheduler(train: ir.Train, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> Any:
    if train.schedule is None:
        return None
    name, kwargs = train.schedule.torch_scheduler(epochs, steps_per_epoch)
    if train.steps:  # a run of `steps`: a cycle over the run spans exactly those
        kwargs.update({k: train.steps for k, v in train.schedule.run_length_args().items() if v == "total_steps"})
    return scheduler_class(name)(optimizer, **kwargs)


def _autocast(train: ir.Train, device: torch.device) -> Any:
    """bf16/fp16 mixed precision on CUDA when asked; never on the CPU, whose results must not change."""
    if device.type != "cuda" or train.precision == "fp32":
        return None
    if train.precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# --- the loop -----------------------------------------------------------------------------


def train_epoch(exp: Experiment, g: torch.Generator, state: State, on_step: Callable[[int, float], None]) -> float:
    """One pass over the training data in a seeded order; returns the mean loss.
    `on_step(samples, loss)` is called after each step with that step's loss."""
    exp.model.train()
    train, dataset = exp.program.train, exp.program.dataset
    assert train is not None and dataset is not None
    data, batch = exp.data.train, dataset.batch
    exp.epoch_rng = g.get_state()
    order = torch.randperm(len(data), generator=g) if dataset.shuffle else torch.arange(len(data))
    if exp.resume_rng is not None:  # resumed in the middle of this epoch
        g.set_state(exp.resume_rng)
        exp.resume_rng = None
    if isinstance(data.x, torch.Tensor):
        order = order.to(exp.device)
    total, seen = state.total, state.seen
    part = exp.shard.part if exp.shard else None
    for x, y in batches(data, order[state.batch * batch :], batch, exp.device, part):
        if train.steps and state.step >= train.steps:
            break
        n = min(batch, len(order) - state.batch * batch)  # the batch's samples, in all processes together
        x = exp.shard.augment(x, exp.data.augment, g, n) if exp.shard else _augment(exp, x, g)
        loss = exp.trainer.step(exp, state, x, y) if exp.trainer else _step(exp, x, y, n)
        state.step += 1
        value = exp.shard.mean(loss) if exp.shard else loss.item()
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at epoch {state.epoch + 1}, step {state.step}")
        total, seen = total + value * n, seen + n
        state.batch, state.total, state.seen = state.batch + 1, total, seen
        on_step(n, value)
        _check(exp)  # Ctrl-C or SIGTERM: stop here, between two steps
    state.batch, state.total, state.seen = 0, 0.0, 0
    return total / max(1, seen)


def _augment(exp: Experiment, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    for augment in exp.data.augment:
        x = augment(x, g)
    return x


def _forward(exp: Experiment, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """The batch's loss; of a data-parallel run, this process's part's, weighed (distributed.Shard.loss)."""
    return exp.shard.loss(exp.loss_fn, x, y, n) if exp.shard else exp.loss_fn(exp.model(x), y)


def _step(exp: Experiment, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    train = exp.program.train
    assert train is not None
    if exp.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if exp.autocast is not None:
        with torch.autocast("cuda", dtype=exp.autocast):
            loss = _forward(exp, x, y, n)
    else:
        loss = _forward(exp, x, y, n)
    exp.optimizer.zero_grad(set_to_none=True)
    if exp.scaler is not None:  # fp16: scale the loss so that small gradients do not underflow
        exp.scaler.scale(loss).backward()
        exp.scaler.unscale_(exp.optimizer)
    else:
        loss.backward()
    if train.clip_grad:
        nn.utils.clip_grad_norm_(exp.model.parameters(), train.clip_grad)
    if exp.scaler is not None:
        exp.scaler.step(exp.optimizer)
        exp.scaler.update()
    else:
        exp.optimizer.step()
    if exp.scheduler is not None and train.schedule is not None and train.schedule.every == "step":
        exp.scheduler.step()
    return loss.detach()


@torch.no_grad()
def evaluate(
    exp: Experiment, split: Split, keep_predictions: bool = False
) -> tuple[vmetrics.Meter, torch.Tensor | None]:
    """Loss and metric statistics over a split, in order, in evaluation mode."""
    exp.model.eval()
    meter = vmetrics.Meter(*exp.meter_args)
    batch = max(exp.program.dataset.batch, 256)  # type: ignore[union-attr]
    outputs = []
    for x, y in batches(split, exp.shard.span(len(split)) if exp.shard else None, batch, exp.device):
        out = exp.model(x).float()
        meter.update(exp.loss_fn(out, y), out, y)
        if keep_predictions:
            outputs.append(out.cpu())
    if exp.shard:  # a data-parallel run: every process evaluated its span
        exp.shard.reduce(meter)
        shape = exp.program.network(exp.program.train.model).output_shape  # type: ignore[union-attr]
        outputs = [exp.shard.gather(outputs, len(split), shape)] if keep_predictions else []
    return meter, (torch.cat(outputs) if outputs else None)


def epoch_row(exp: Experiment, state: State, train_loss: float, seconds: float) -> dict[str, float]:
    row: dict[str, float] = {"epoch": state.epoch, "train_loss": train_loss}
    if exp.data.val is not None:
        meter, _ = evaluate(exp, exp.data.val)
        row["val_loss"] = meter.loss
        row.update({f"val_{k}": v for k, v in meter.metrics(exp.metrics).items()})
    row["lr"] = exp.optimizer.param_groups[0]["lr"]
    row["seconds"] = seconds
    return row


def end_of_epoch(exp: Experiment, state: State, row: dict[str, float]) -> None:
    """Per-epoch schedule step and early stopping bookkeeping."""
    train = exp.program.train
    assert train is not None
    if exp.scheduler is not None and train.schedule is not None and train.schedule.every == "epoch":
        monitored = [row.get(train.schedule.monitor, row["train_loss"])] if train.schedule.monitored else []  # type: ignore[attr-defined]
        exp.scheduler.step(*monitored)
    stop = train.early_stopping
    if stop is None:
        return
    value = row.get(stop.monitor, row["train_loss"])
    mode = stop.mode if stop.mode != "auto" else monitor_mode(stop.monitor)
    better = state.best is None or (
        value < state.best - stop.min_delta if mode == "min" else value > state.best + stop.min_delta
    )
    state.best, state.bad_epochs = (value, 0) if better else (state.best, state.bad_epochs + 1)
    state.stopped_early = state.bad_epochs >= stop.patience


def _check_finite(exp: Experiment, state: State, row: dict[str, float]) -> None:
    """The loss of every step was finite, but the last step's update can still overflow."""
    where = f"at the end of epoch {state.epoch}, step {state.step}"
    for key, value in row.items():
        if not math.isfinite(value):
            raise TrainingError(f"{key} became {value} {where}")
    if not all(bool(torch.isfinite(p).all()) for p in exp.model.parameters()):
        raise TrainingError(f"the weights became infinite or nan {where}")


def _check(exp: Experiment) -> None:
    """Stop here on Ctrl-C or SIGTERM: one process at once, a data-parallel run where all agreed."""
    if exp.shard:
        exp.shard.check()
    else:
        interrupts.check()


def fit(
    exp: Experiment,
    state: State,
    g: torch.Generator,
    out: Path | None,
    progress: console.Progress,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> State:
    """Train epoch by epoch, checkpointing after each so that any stop can be resumed. `on_epoch(row)`
    sees each epoch once it is saved; an exception it raises ends the run there (a pruned trial)."""
    train = exp.program.train
    assert train is not None
    while state.epoch < exp.epochs and not state.stopped_early:
        _check(exp)
        if train.steps and state.step >= train.steps:
            break
        row = _epoch(exp, state, g, out, progress)
        if on_epoch is not None:
            on_epoch(row)
    return state


def _epoch(
    exp: Experiment, state: State, g: torch.Generator, out: Path | None, progress: console.Progress
) -> dict[str, float]:
    """One epoch: its steps, then its row, checked, recorded and saved."""
    start = time.perf_counter()
    steps = artifacts.StepLog(state, exp.optimizer, exp.tracker.step)
    train_loss = _steps(exp, state, g, out, progress, steps)
    state.epoch += 1
    seconds = time.perf_counter() - start
    row = exp.trainer.row(exp, state, train_loss, seconds, state.sums) if exp.trainer else None
    row, state.sums = row or epoch_row(exp, state, train_loss, seconds), {}
    _check_finite(exp, state, row)  # a diverged epoch is not saved over the last good one
    state.rows.append(row)
    end_of_epoch(exp, state, row)
    progress.summary(row)
    if out is not None:
        _save_epoch(out, exp, state, g, steps)
    return row


def _steps(
    exp: Experiment,
    state: State,
    g: torch.Generator,
    out: Path | None,
    progress: console.Progress,
    steps: artifacts.StepLog,
) -> float:
    """The epoch's training steps; stopped between two (Ctrl-C), the position in the epoch is saved."""
    try:
        with progress.epoch(state.epoch + 1, exp.epochs, len(exp.data.train), exp.steps_per_epoch) as on_step:
            return train_epoch(exp, g, state, steps.wrap(on_step))
    except KeyboardInterrupt as e:
        if out is not None and state.batch and not getattr(e, "at_once", False):
            artifacts.write_steps(out, steps.rows)
            checkpoint.save(out, exp, state, g, exp.epoch_rng)
        raise


def _save_epoch(out: Path, exp: Experiment, state: State, g: torch.Generator, steps: artifacts.StepLog) -> None:
    artifacts.write_steps(out, steps.rows)
    checkpoint.save(out, exp, state, g, exp.epoch_rng)
    artifacts.plots(out, state.rows, None)  # after every epoch: an interrupted run has them too
    if exp.trainer:
        exp.trainer.after_epoch(out, exp, state)
    exp.tracker.epoch(exp, state)  # once the epoch is saved: a resumed run does not log it again


def run(program: ir.Program, options: RunOptions) -> dict[str, Any]:
    """Train and evaluate; write the run directory; return the summary."""
    train, dataset = program.train, program.dataset
    if train is None or dataset is None:
        raise DataError("the spec needs a `dataset` and a `train` section to run", None)
    tracking.require(train.log)  # a logger's missing package, before anything is loaded
    with distributed.joined(pick_device(options.device or train.device)) as group:
        return _run(program, options, group)


def _run(program: ir.Program, options: RunOptions, group: distributed.Group) -> dict[str, Any]:
    """`run` in one process of a data-parallel group (or alone): every process trains, rank 0 alone
    prints and writes (`mine`), after the others have read what they need of the run directory."""
    train, dataset, device = program.train, program.dataset, group.device
    assert train is not None and dataset is not None
    out, quiet = options.resume or options.out, options.quiet or not group.world.main
    mine = out if group.world.main else None
    group.main_first()  # rank 0 checks the run directory and loads (perhaps downloads) the data first
    with resume.opened(out, program, options.resume is not None, options.overwrite, group.world.main) as saved:
        arrays = load(dataset.source, resolve_root(options.data_dir), options.spec_dir, train.seed, options.download)
        check_fit(program, arrays)  # data that does not fit the network, named before torch meets it
        group.main_done()
        exp = build(program, prepare_data(program, arrays, device), device)
        g = torch.Generator().manual_seed(train.seed)
        state = resume.restore(exp, saved, g, (lambda line: None) if quiet else options.log) if saved else State()
        exp.model = torch.compile(exp.model) if train.compile and not exp.trainer else exp.model  # type: ignore[assignment]
        # DDP's start is a collective: past it, every process has read the checkpoint
        exp.model, exp.shard = distributed.shard(group, exp.model, exp.trainer, options.sync_batchnorm)
        if mine is not None:  # everything that must match did: now the directory changes
            artifacts.start(mine, program, options.source, options.overrides, options.spec_dir)
            artifacts.write_vocab(mine, exp.data.vocab)
            artifacts.write_interface(mine, exp.data)
        started = time.perf_counter()
        with interrupts.deferred(), tracking.session(mine, exp, state, options) as exp.tracker:
            state = fit(exp, state, g, mine, console.Progress(quiet, options.log), options.on_epoch)
            _check(exp)
            return finish(mine, exp, state, time.perf_counter() - started, options)


# --- the end of a run ----------------------------------------------------------------------


def finish(out: Path | None, exp: Experiment, state: State, seconds: float, options: RunOptions) -> dict[str, Any]:
    """Evaluate on the test split; write summary.json, the final weights and plots."""
    test: dict[str, float] = {}
    predictions = None
    if exp.data.test is not None and not exp.trainer:  # a GAN has no test loss
        meter, predictions = evaluate(exp, exp.data.test, keep_predictions=True)
        test = {"loss": meter.loss, **meter.metrics(exp.metrics)}
    summary = _summary(exp, state, test, seconds, options)
    if out is not None:
        artifacts.save_final(out, exp, summary)
        if exp.trainer:
            exp.trainer.finish(out, exp, state)
        drawn = (out / "curves.png").exists()  # after the last epoch, from the same rows
        artifacts.plots(out, state.rows, _test_plots(exp, predictions), curves=not drawn)
        exp.tracker.finish(out, summary)
    return summary


def _summary(
    exp: Experiment, state: State, test: dict[str, float], seconds: float, options: RunOptions
) -> dict[str, Any]:
    train = exp.program.train
    nets = [exp.program.network(name) for name in train.trained().values()] if train else []
    return {
        "spec": options.spec_name,
        "test": test,
        "params": sum(net.params for net in nets if net),
        "seed": train.seed if train else 0,
        "epochs": state.epoch,
        "steps": state.step,
        "stopped_early": state.stopped_early,
        "device": str(exp.device),
        "world_size": exp.shard.size if exp.shard else 1,  # data-parallel processes
        "backend": exp.shard.backend if exp.shard else None,  # of their collectives: gloo, nccl
        "wall_seconds": round(seconds, 3),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "netspec": netspec.__version__},
        "data_sha256": exp.data.files,
        **(exp.trainer.summary() if exp.trainer else {}),
    }


def _test_plots(exp: Experiment, predictions: torch.Tensor | None) -> dict[str, Any] | None:
    """What the test split's plots show: class probabilities, labels, class names and, of images, a function
    that gives the (preprocessed) test inputs at some indices."""
    test = exp.data.test
    if predictions is None or not exp.classes or test is None:
        return None
    if predictions.shape[-1] == 1:  # one binary output: as two class probabilities
        predictions = binary_probabilities(exp.program.train.loss, predictions)  # type: ignore[union-attr]
    images = (lambda idx: next(batches(test, idx, len(idx), exp.device))[0]) if len(test.x.shape) == 4 else None
    return {"predictions": predictions, "y": test.y, "classes": exp.data.classes, "images": images}


BUILDERS = {"supervised": _build_supervised, "adversarial": _build_gan}  # by the task's trainer
