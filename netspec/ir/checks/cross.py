"""Pass 4: the sections against the network they train.

The dataset's samples (after the transforms) against the network's input, the loss against
its output, the metrics against the loss's task and the classes, and what early stopping
and the schedule monitor.
"""

from __future__ import annotations

from netspec.ir import nodes as ir
from netspec.ir.checks.context import Context
from netspec.language import syntax as st
from netspec.language.span import Shape
from netspec.language.suggest import did_you_mean
from netspec.registry import Problem
from netspec.registry.base import fmt_shape
from netspec.registry.sources import Task


def run(module: st.Module, ctx: Context) -> None:
    train, dataset = ctx.parts.train, ctx.parts.dataset
    if train is None or dataset is None:
        return
    net = ctx.trace.networks.get(train.model)
    task = dataset.source.task()
    sample = _transforms(ctx, dataset, task)
    if net is None:
        return
    if sample is not None and net.input_shape != sample:
        ctx.report(
            "NS041",
            f"network `{net.name}` takes input {fmt_shape(net.input_shape)}, but the dataset "
            f"gives samples of shape {fmt_shape(sample)}",
            ctx.trace.inputs.get(net.name, net.span),
            f"write `input {fmt_shape(sample)}`",
        )
    for p in train.loss.check_output(net.output_shape, task, _last_kind(net.steps)):
        ctx.binder.problem(p, train.loss.span or train.span, "NS050" if p.severity == "error" else "NS101")
    _metrics(ctx, train, net)
    _monitors(ctx, train, dataset)


def _last_kind(steps: list[ir.Step]) -> str | None:
    leaves = ir.leaves(steps)
    return leaves[-1].kind if leaves else None  # type: ignore[attr-defined,no-any-return]


def _transforms(ctx: Context, dataset: ir.Dataset, task: Task) -> Shape | None:
    """The sample shape after the transforms (None where unknown)."""
    shape = task.input_shape
    for t in dataset.transforms:
        if t.image_only and task.image is False:
            ctx.report(
                "NS037",
                f"`{t.kind}` works on images, but source `{dataset.source.kind}` does not give images",
                t.span or dataset.span,
            )
            continue
        if shape is not None:
            try:
                shape = t.apply(shape)
            except Problem as p:
                ctx.binder.problem(p, t.span or dataset.span, "NS015")
    return shape


def _metrics(ctx: Context, train: ir.Train, net: ir.Network) -> None:
    target = "value" if train.loss.target == "value" else "class"
    for m in train.metrics:
        span = m.span or train.span
        if m.task != target:
            kind = "class predictions" if m.task == "class" else "numeric predictions"
            ctx.report(
                "NS051",
                f"metric `{m.kind}` needs {kind}, but `{train.loss.kind}` trains "
                f"{'a regression' if target == 'value' else 'a classifier'}",
                span,
                "use mse or mae" if target == "value" else "use accuracy, precision, recall or f1",
            )
            continue
        for p in m.check_output(net.output_shape[-1]):
            ctx.binder.problem(p, span, "NS051")


def _monitors(ctx: Context, train: ir.Train, dataset: ir.Dataset) -> None:
    names = ["val_loss", "train_loss"] + [f"val_{m.kind}" for m in train.metrics]
    for op in (train.early_stopping, train.schedule):
        monitor = getattr(op, "monitor", None)
        if monitor is None or op is None:
            continue
        span = op.span or train.span
        if monitor not in names:
            ctx.report(
                "NS052",
                f"cannot monitor `{monitor}`",
                span,
                did_you_mean(monitor, names) or f"choose from {', '.join(names)}",
            )
        elif monitor.startswith("val_") and dataset.validation == 0:
            ctx.report(
                "NS052",
                f"monitoring `{monitor}` needs a validation split",
                span,
                "add `validation 0.1` to the dataset section",
            )
