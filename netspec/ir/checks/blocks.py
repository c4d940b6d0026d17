"""Binding the arguments of a block use (`Unit(64, stride=2)`) to the block's parameters."""

from __future__ import annotations

from typing import Any

from netspec.ir.checks.context import CheckContext
from netspec.ir.values import INVALID, CallValue
from netspec.language import syntax as st
from netspec.language.printer import expr
from netspec.language.suggest import did_you_mean


def block_args(ctx: CheckContext, block: st.Block, call: st.Call, scope: dict[str, Any]) -> dict[str, Any] | None:
    """The block's parameter values for this use (defaults filled in), or None after an error."""
    names = [p.name for p in block.params]
    bound: dict[str, Any] = {}
    ok = True
    for i, arg in enumerate(call.args or ()):
        name = arg.name if arg.name is not None else (names[i] if i < len(names) else None)
        if name is None or name not in names or name in bound:
            ok = False
            _bad_arg(ctx, block, arg, name, bound)
            continue
        bound[name] = _value(ctx, arg.value, scope)
        ok = ok and bound[name] is not INVALID
    return _defaults(ctx, block, call, bound) if ok else None


def _bad_arg(ctx: CheckContext, block: st.Block, arg: st.Arg, name: str | None, bound: dict[str, Any]) -> None:
    names = [p.name for p in block.params]
    if name is None:
        ctx.report(
            "NS013",
            f"block `{block.name}` takes {len(names)} argument{'s' * (len(names) != 1)}",
            arg.span,
            f"its parameters: {', '.join(names) or 'none'}",
        )
    elif name in bound:
        ctx.report("NS016", f"`{name}` is given twice", arg.span)
    else:
        ctx.report(
            "NS011",
            f"block `{block.name}` has no parameter `{name}`",
            arg.name_span or arg.span,
            did_you_mean(name, names) or f"its parameters: {', '.join(names) or 'none'}",
        )


def _value(ctx: CheckContext, e: st.Expr, scope: dict[str, Any]) -> Any:
    value = ctx.evaluator.eval(e, scope)
    if isinstance(value, CallValue):
        ctx.report("NS014", "a block argument cannot be a call", e.span)
        return INVALID
    return value


def _defaults(ctx: CheckContext, block: st.Block, call: st.Call, bound: dict[str, Any]) -> dict[str, Any] | None:
    for p in block.params:
        if p.name in bound:
            continue
        if p.default is None:
            _missing(ctx, block, call, p.name)
            return None
        bound[p.name] = _value(ctx, p.default, {**ctx.constants, **bound})
        if bound[p.name] is INVALID:
            return None
    return bound


def _missing(ctx: CheckContext, block: st.Block, call: st.Call, name: str) -> None:
    params = (q.name if q.default is None else f"{q.name}={expr(q.default)}" for q in block.params)
    ctx.report(
        "NS012",
        f"block `{block.name}` needs `{name}`",
        call.span,
        f"write it as `{block.name}({', '.join(params)})`",
    )
