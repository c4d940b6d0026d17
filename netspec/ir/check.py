"""Stage 2: syntax tree -> IR, with every semantic error found in one pass over the spec.

Resolves constants, expands blocks and repeats, binds arguments through the registry,
infers shapes and parameter counts, and checks the dataset and train sections against the
network. The work is done by the passes in ``netspec.ir.checks``, run in the order of
``PASSES`` over one ``CheckContext``. Errors never stop the passes; they make the result ``None``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from netspec.ir import nodes as ir
from netspec.ir import search
from netspec.ir.checks import cross, declare, memory, networks, sections, tuning
from netspec.ir.checks.context import Cancelled, CheckContext, CheckOptions, OutOfTime, Trace
from netspec.ir.values import jsonable
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, has_errors

Pass = Callable[[st.Module, CheckContext], None]
PASSES: tuple[Pass, ...] = (
    tuning.names,
    declare.run,
    networks.run,
    sections.run,
    cross.run,
    tuning.run,
    memory.run,
)


def check(module: st.Module, options: CheckOptions = CheckOptions()) -> tuple[ir.Program | None, list[Diagnostic]]:
    """Check a parsed spec. Returns the IR (None when there are errors) and all diagnostics."""
    program, ctx = run(module, options)
    return program, ctx.diagnostics


def run(module: st.Module, options: CheckOptions = CheckOptions()) -> tuple[ir.Program | None, CheckContext]:
    """Run every pass; the IR (None when there are errors) and the context, with diagnostics and trace."""
    ctx = CheckContext(options)
    try:
        for check_pass in PASSES:
            ctx.clock.poll()
            check_pass(module, ctx)
    except OutOfTime:
        _out_of_time(ctx)
        return None, ctx
    if ctx.space.params:
        _ranges(module, ctx)
    return program(ctx), ctx


def _ranges(module: st.Module, ctx: CheckContext) -> None:
    """Once the spec checks at its defaults, each end of each search range must check too."""
    params = list(ctx.space.params.values())
    ctx.report.diagnostics[:] = search.better_hints(params, ctx.diagnostics)
    if not ctx.options.ranges or has_errors(ctx.diagnostics):
        return

    def at(fixed: dict[search.Key, object]) -> list[Diagnostic]:
        options = dataclasses.replace(ctx.options, fixed=tuple(fixed.items()), ranges=False)
        return [d for d in run(module, options)[1].diagnostics if d.code != "NS061"]

    ctx.report.diagnostics += search.range_problems(params, ctx.diagnostics, at)


def _out_of_time(ctx: CheckContext) -> None:
    where = ctx.report.stack[0][1] if ctx.report.stack else ctx.where
    with ctx.report.outside_blocks():
        ctx.report(
            "NS061",
            f"checking stopped after {ctx.clock.limit:g} s: the spec expands to too much work",
            where,
            "use fewer or smaller repeats and blocks; the diagnostics shown may be incomplete",
        )


def program(ctx: CheckContext) -> ir.Program | None:
    """The checked program from the passes' parts, or None when an error was reported."""
    if has_errors(ctx.diagnostics):
        return None
    parts = ctx.parts
    return ir.Program(
        version=ir.FORMAT_VERSION,
        constants=jsonable(ctx.constants),
        networks=parts.networks,
        dataset=parts.dataset,
        train=parts.train,
        tune=parts.tune,
        search=list(ctx.space.params.values()),
    )


__all__ = ["PASSES", "Cancelled", "CheckContext", "CheckOptions", "OutOfTime", "Trace", "check", "run"]
