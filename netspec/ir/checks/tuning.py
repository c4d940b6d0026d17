"""The search expressions and the `tune` section: the first pass names every search expression
(``netspec.ir.search``); a later one checks the `tune` section against the train section (what it
scores trials by) and that no search expression sits in it."""

from __future__ import annotations

from netspec.ir import nodes as ir
from netspec.ir import search
from netspec.ir.checks.context import CheckContext
from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.language.suggest import did_you_mean


def names(module: st.Module, ctx: CheckContext) -> None:
    """Pass 0: the name in the study of every search expression, by where it is written."""
    ctx.space.names = search.names(module)


def run(module: st.Module, ctx: CheckContext) -> None:
    section = next((x for x in module.items if isinstance(x, st.Section) and x.kind == "tune"), None)
    if section is None:
        return
    _nothing_searched_inside(ctx, section)
    if not any(isinstance(x, st.Section) and x.kind == "train" for x in module.items):
        ctx.report("NS035", "the `tune` section needs a `train` section: trials train the spec", section.span)
    tune, train, dataset = ctx.parts.tune, ctx.parts.train, ctx.parts.dataset
    if tune is None or train is None or dataset is None:
        return
    _metric(ctx, tune, train, dataset, _entry_span(section, "metric"))


def _nothing_searched_inside(ctx: CheckContext, section: st.Section) -> None:
    for p in ctx.space.params.values():
        if _within(p.span, section.span):
            ctx.report(
                "NS085",
                "the `tune` section cannot be searched",
                p.span,
                "write a number: search expressions belong in the network, dataset and train sections",
            )


def _within(inner: Span, outer: Span) -> bool:
    return (
        inner.origin == outer.origin
        and (outer.line, outer.column) <= (inner.line, inner.column)
        and (
            inner.end_line,
            inner.end_column,
        )
        <= (outer.end_line, outer.end_column)
    )


def _entry_span(section: st.Section, key: str) -> Span:
    return next((e.span for e in section.entries if e.key == key), section.span)


def _metric(ctx: CheckContext, tune: ir.Tune, train: ir.Train, dataset: ir.Dataset, span: Span) -> None:
    names = ["val_loss"] + [f"val_{m.kind}" for m in train.metrics]
    if tune.metric not in names:
        ctx.report(
            "NS052",
            f"cannot score trials by `{tune.metric}`",
            span,
            did_you_mean(tune.metric, names)
            or f"choose from {', '.join(names)} (validation values, after every epoch)",
        )
    elif dataset.validation == 0:
        ctx.report(
            "NS052",
            f"scoring trials by `{tune.metric}` needs a validation split",
            span,
            "add `validation 0.1` to the dataset section: trials are compared on held-out training data, "
            "never on the test split",
        )
