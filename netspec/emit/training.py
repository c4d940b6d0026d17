"""The training part of a script's context: loss, optimizer, schedule, meter and the loop's signatures."""

from __future__ import annotations

from typing import Any

from netspec.emit.model import Call, Param, Value
from netspec.emit.verbatim import definitions
from netspec.ir import nodes as ir
from netspec.registry.metrics import monitor_mode


def _params(*names: str | None) -> list[tuple[str, None]]:
    return [(n, None) for n in names if n]


def _call(func: str, *args: str | None) -> Call:
    """A call whose arguments are the script's variables of those names."""
    return Call(func, [Param(a) for a in args if a])


def training_context(train: ir.Train, net: ir.Network, augments: bool) -> dict[str, Any]:
    metrics = {m.kind: m.arg() for m in train.metrics}
    loss, schedule = train.loss, train.schedule
    classes, top_k, threshold = loss.meter_args(net.output_shape[-1], train.metrics)
    return {
        "train": train,
        "metric_args": metrics,
        "metric_funcs": [(name, f"_{name}") for name in metrics],
        "meter": _meter(classes, top_k),
        "meter_classes": bool(classes),
        "meter_top_k": bool(top_k),
        "binary_threshold": threshold,
        "schedule_total_steps": schedule is not None and "total_steps" in schedule.run_length_args().values(),
        "run_length_keys": schedule.run_length_keys if schedule else (),
        "loss": loss,
        "loss_wrapper": loss.target == "binary" or (loss.target == "class" and len(net.output_shape) > 1),
        "criterion": _criterion(loss),
        "optimizer_call": _optimizer(train),
        "schedule": train.schedule,
        "scheduler_call": _scheduler(train),
        "precision": train.precision,
        "early_stopping": train.early_stopping,
        "stop_mode": _stop_mode(train),
        **_call_context(train, augments),
    }


def _call_context(train: ir.Train, augments: bool) -> dict[str, Any]:
    """The training loop's and the checkpoints' signatures: only the arguments the spec needs."""
    trained = "compiled" if train.compile else "model"
    scheduler = "scheduler" if train.schedule else None
    amp = ("amp", "scaler") if train.precision != "fp32" else (None, None)
    steps = "steps" if train.steps else None
    train_args = ("model", "optimizer", scheduler, "train", "g", "state", "augment" if augments else None, steps, *amp)
    checkpoint_args = ("out", "model", "optimizer", scheduler, "g", "state")
    train_call = _call("train_epoch", *train_args)
    train_call.args[0] = Param(trained)
    return {
        "trained": trained,
        "train_params": _params(*train_args),
        "train_call": train_call,
        "checkpoint_params": _params(*checkpoint_args),
        "save_call": _call("save_checkpoint", *checkpoint_args),
        "load_params": _params(*checkpoint_args[:-1]),
        "load_call": _call("load_checkpoint", *checkpoint_args[:-1]),
    }


def _meter(classes: int, top_k: tuple[int, ...]) -> Call:
    """The Meter of netspec.runtime.loop.evaluate: the number of classes and the k of top_k, if any."""
    if not classes:
        return Call("Meter", [])
    return Call("Meter", [Value(classes)] + ([Value(top_k)] if top_k else []))


def _criterion(loss: Any) -> Call:
    """The torch loss netspec.runtime.loop._loss builds."""
    kwargs: list[tuple[str, Any]] = [(k, Value(v)) for k, v in loss.torch_kwargs().items()]
    kwargs = [(k, Call("torch.tensor", [Value([v.value])]) if k == "pos_weight" else v) for k, v in kwargs]
    return Call(f"nn.{loss.torch_class}", [], kwargs)


def _optimizer(train: ir.Train) -> Call:
    """The optimizer of netspec.runtime.loop._optimizer, over the parameter groups it asks for."""
    optimizer = train.optimizer
    kwargs = [(k, Value(v)) for k, v in optimizer.torch_kwargs().items()]
    grouping = optimizer.param_groups()
    decay = Value(getattr(optimizer, "weight_decay", 0.0))
    params = Call(grouping, [Param("model"), decay]) if grouping else Call("model.parameters")
    return Call(f"torch.optim.{optimizer.torch_class}", [params], kwargs)


def _scheduler(train: ir.Train) -> Call | None:
    """The scheduler of netspec.runtime.loop._scheduler; what follows from the run's length (the
    one-cycle's total steps, the cosine's default period) is the script's variable."""
    schedule = train.schedule
    if schedule is None:
        return None
    name, kwargs = schedule.torch_scheduler(0, 0)
    length = schedule.run_length_args()
    args: list[tuple[str, Any]] = [(k, Param(length[k]) if k in length else Value(v)) for k, v in kwargs.items()]
    own = name in definitions("modules")  # netspec's own scheduler, copied into the script
    return Call(name if own else f"torch.optim.lr_scheduler.{name}", [Param("optimizer")], args)


def _stop_mode(train: ir.Train) -> str | None:
    stop = train.early_stopping
    if stop is None:
        return None
    return stop.mode if stop.mode != "auto" else monitor_mode(stop.monitor)
