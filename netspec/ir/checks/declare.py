"""Pass 1: the `version` line, then names: constants (in order) and block definitions.

Duplicates, and names that shadow a built-in layer, are errors."""

from __future__ import annotations

from netspec.ir import nodes as ir
from netspec.ir.checks.context import CheckContext
from netspec.ir.values import INVALID, CallValue, Symbol
from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.registry import LAYERS


def run(module: st.Module, ctx: CheckContext) -> None:
    version(module, ctx)
    defined: dict[str, Span] = {}
    for item in module.items:
        ctx.clock.poll()
        if isinstance(item, (st.Let, st.Block, st.Network)):
            _unique(ctx, item.name, item.name_span, defined)
        if isinstance(item, st.Let):
            _let(ctx, item)
        elif isinstance(item, st.Block):
            _block(ctx, item)


def version(module: st.Module, ctx: CheckContext) -> None:
    for i, item in enumerate(module.items):
        if not isinstance(item, st.Version):
            continue
        if i != 0:
            ctx.report("NS071", "`version` must be the first statement", item.span)
        elif item.number.value != ir.FORMAT_VERSION:
            ctx.report(
                "NS070",
                f"unsupported format version {item.number.value}; this netspec reads version {ir.FORMAT_VERSION}",
                item.number.span,
                "upgrade netspec",
            )


def _unique(ctx: CheckContext, name: str, span: Span, defined: dict[str, Span]) -> None:
    if name in defined:
        ctx.report("NS021", f"`{name}` is already defined at line {defined[name].line}", span, "give it another name")
    elif name in LAYERS.entries:
        ctx.report("NS021", f"`{name}` is a built-in layer and cannot be redefined", span, "give it another name")
    defined.setdefault(name, span)


def _let(ctx: CheckContext, item: st.Let) -> None:
    value = ctx.evaluator.eval(item.value, ctx.constants)
    if isinstance(value, Symbol):
        ctx.evaluator.unknown_name(value, ctx.constants)
        value = INVALID
    elif isinstance(value, CallValue):
        ctx.report("NS014", "a constant cannot be a call", item.value.span)
        value = INVALID
    ctx.constants[item.name] = value
    ctx.trace.constants[item.name] = (item.name_span, value)


def _block(ctx: CheckContext, item: st.Block) -> None:
    seen: set[str] = set()
    for p in item.params:
        if p.name in seen:
            ctx.report("NS021", f"parameter `{p.name}` appears twice", p.span)
        seen.add(p.name)
    ctx.blocks.setdefault(item.name, item)
