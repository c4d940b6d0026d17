"""Pass 4: the sections against the networks they train, by the train section's task.

The loss against the task. Supervised: the dataset's samples (after the transforms) against the
network's input, the loss against its output, the metrics against the loss's task and the classes,
and what early stopping and the schedule monitor. A GAN: the generator's noise input, its output
against the discriminator's input and the dataset's samples, the loss against the discriminator's
output.
"""

from __future__ import annotations

import re
from typing import Any

from netspec.ir import nodes as ir
from netspec.ir.checks.context import CheckContext
from netspec.language import syntax as st
from netspec.language.span import Shape
from netspec.language.suggest import did_you_mean
from netspec.registry import LOSSES, TASKS, Problem
from netspec.registry.base import fmt_shape
from netspec.registry.sources import Task


def run(module: st.Module, ctx: CheckContext) -> None:
    train, dataset = ctx.parts.train, ctx.parts.dataset
    if train is None or dataset is None:
        return
    task = dataset.source.task()
    sample = _transforms(ctx, dataset, task)
    _validation(ctx, dataset)
    if _loss_fits(ctx, train) and not _task_failed(module, train):
        CHECKS[train.task.trainer](module, ctx, train, task, sample)


def _task_failed(module: st.Module, train: ir.Train) -> bool:
    """The `task` the spec wrote had an error (reported): the shapes that depend on its options (a
    conditional GAN's inputs) are not checked against the defaults that stand in for it."""
    written = any(isinstance(n, st.Section) and n.kind == "train" and any(e.key == "task" for e in n.entries)
                  for n in module.items)  # fmt: skip
    return written and train.task.span is None


def _validation(ctx: CheckContext, dataset: ir.Dataset) -> None:
    why = dataset.source.no_validation
    if dataset.validation and why:
        ctx.report(
            "NS038",
            f"source `{dataset.source.kind}` takes no `validation`: {why}",
            dataset.span,
            "remove `validation`; the test split is evaluated at the end",
        )


def _loss_fits(ctx: CheckContext, train: ir.Train) -> bool:
    if train.loss.target in train.task.loss_target:
        return True
    names = [n for n, c in LOSSES.entries.items() if c.target in train.task.loss_target]
    owner = next((t for t in TASKS.entries.values() if train.loss.target in t.loss_target), None)
    whose = f"`{train.loss.kind}` trains {owner.title}, which names {owner.picture}; " if owner else ""
    ctx.report(
        "NS050",
        f"loss `{train.loss.kind}` does not train task `{train.task.kind}`",
        train.loss.span or train.span,
        f"{whose}losses of task `{train.task.kind}`: {', '.join(names)}",
    )
    return False


def _supervised(module: st.Module, ctx: CheckContext, train: ir.Train, task: Task, sample: Shape | None) -> None:
    net = ctx.trace.networks.get(train.model or "")
    dataset = ctx.parts.dataset
    assert dataset is not None
    if net is None:
        _failed_network(module, ctx, train.model or "", sample)
        return
    if sample is not None and net.input_shape != sample:
        _input_mismatch(ctx, net.name, net.input_shape, sample, ctx.trace.inputs.get(net.name, net.span))
    for p in train.loss.check_output(net.output_shape, task, _last_kind(net.steps)):
        ctx.binder.problem(p, train.loss.span or train.span, "NS050" if p.severity == "error" else "NS101")
    _metrics(ctx, train, net)
    _monitors(ctx, train, dataset)


def _adversarial(module: st.Module, ctx: CheckContext, train: ir.Train, task: Task, sample: Shape | None) -> None:
    g, d = ctx.trace.networks.get(train.generator or ""), ctx.trace.networks.get(train.discriminator or "")
    if d is None:
        _failed_network(module, ctx, train.discriminator or "", sample)
    if g is None or d is None:
        return
    classes = _conditioned(ctx, train, task)
    if classes is None:
        return
    if len(g.input_shape) != 1 or g.input_shape[0] <= classes:
        _noise_input(ctx, g, classes)
    judged = d.input_shape if not classes else (d.input_shape[0] - classes, *d.input_shape[1:])
    if sample is not None and judged != sample:
        wanted = sample if not classes else (sample[0] + classes, *sample[1:])
        labelled = not classes and task.classes and d.input_shape == (sample[0] + task.classes, *sample[1:])
        also = ", or give it the labels: `task gan(conditional=true)`" if labelled else ""
        _input_mismatch(ctx, d.name, d.input_shape, wanted, ctx.trace.inputs.get(d.name, d.span), classes, also)
    elif g.output_shape != judged:
        ctx.report(
            "NS041",
            f"the generator `{g.name}` makes samples of shape {fmt_shape(g.output_shape)}, but the discriminator "
            f"`{d.name}` takes {fmt_shape(judged)}{' (and the labels)' if classes else ''}",
            g.span,
            f"make the generator's last layer give {fmt_shape(judged)}",
        )
    for p in train.loss.check_output(d.output_shape, task, _last_kind(d.steps)):
        ctx.binder.problem(p, train.loss.span or train.span, "NS050" if p.severity == "error" else "NS101")


def _conditioned(ctx: CheckContext, train: ir.Train, task: Task) -> int | None:
    """The number of classes a conditional GAN appends to its networks' inputs (0: not conditional;
    None: it cannot be, reported)."""
    if not getattr(train.task, "conditional", False):
        return 0
    if task.target == "class" and task.classes:
        return task.classes
    ctx.report(
        "NS041",
        "a conditional GAN needs a dataset of labelled classes whose number is known before reading it",
        train.task.span or train.span,
        "use an image source with classes (mnist, fashion_mnist, cifar10), or remove `conditional=true`",
    )
    return None


def _noise_input(ctx: CheckContext, g: ir.Network, classes: int) -> None:
    if classes:
        message = f"the generator `{g.name}` takes noise and a one-hot label [latent + {classes}]"
        hint = f"write e.g. `input [64 + {classes}]`: 64 noise values and the {classes} classes"
    else:
        message, hint = f"the generator `{g.name}` takes noise vectors [latent]", "write e.g. `input [64]`"
    ctx.report(
        "NS041", f"{message}, but its input is {fmt_shape(g.input_shape)}", ctx.trace.inputs.get(g.name, g.span), hint
    )


def _input_mismatch(
    ctx: CheckContext, name: str, declared: Shape, sample: Shape, span: Any, classes: int = 0, also: str = ""
) -> None:
    layout = " (channels first: [C, H, W])" if _channels_last(declared, sample) else ""
    gives = f"the dataset gives samples of shape {fmt_shape(sample)}{layout}"
    if classes:  # `sample` holds the label channels too
        own = fmt_shape((sample[0] - classes, *sample[1:]))
        gives = f"a conditional GAN's discriminator gets the dataset's samples {own} and {classes} label channels"
    ctx.report(
        "NS041",
        f"network `{name}` takes input {fmt_shape(declared)}, but {gives}",
        span,
        f"write `input {fmt_shape(sample)}`{also}",
    )


def _channels_last(declared: Shape, sample: Shape) -> bool:
    return len(declared) == 3 and declared == (*sample[1:], sample[0]) and declared != sample


def _failed_network(module: st.Module, ctx: CheckContext, name: str, sample: Shape | None) -> None:
    """A network whose layers failed from an input that is not the dataset's samples: the
    input is the mistake, said first; the layer shape errors that followed from it go."""
    found = [n for n in module.items if isinstance(n, st.Network) and n.name == name]
    steps = found[0].body.steps if found else ()
    if sample is None or not steps or not isinstance(steps[0], st.Input):
        return
    declared = _shape(ctx.evaluator.eval(steps[0].shape, ctx.constants))
    if declared is None or declared == sample:
        return
    diags = ctx.report.diagnostics
    following = [d for d in diags if d.code == "NS040" and _inside(d, found[0].span)]
    first = diags.index(following[0]) if following else len(diags)
    kept = [d for d in diags if d not in following]
    before = len(diags)
    _input_mismatch(ctx, name, declared, sample, steps[0].span)
    diags[:] = kept[:first] + diags[before:] + kept[first:]


def _shape(value: Any) -> Shape | None:
    value = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = isinstance(value, tuple) and bool(value) and all(isinstance(v, int) and v > 0 for v in value)
    return value if ok else None


def _inside(d: Any, span: Any) -> bool:
    """Whether a diagnostic is in the network's lines, or in a block used there."""
    used = re.search(r"\(in block `[^`]*` used at line (\d+)\)", d.message)
    line = int(used.group(1)) if used else d.line
    return bool(span.line <= line <= span.end_line)


def _last_kind(steps: list[ir.Step]) -> str | None:
    leaves = ir.leaves(steps)
    return leaves[-1].kind if leaves else None  # type: ignore[attr-defined,no-any-return]


def _transforms(ctx: CheckContext, dataset: ir.Dataset, task: Task) -> Shape | None:
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


def _metrics(ctx: CheckContext, train: ir.Train, net: ir.Network) -> None:
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


def _monitors(ctx: CheckContext, train: ir.Train, dataset: ir.Dataset) -> None:
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


CHECKS = {"supervised": _supervised, "adversarial": _adversarial}  # by the task's trainer
