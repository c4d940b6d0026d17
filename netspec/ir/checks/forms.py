"""Reading one section entry, by its key's form (see ``netspec.ir.sections``).

Each reader takes the context, the key and the entry, and returns the value for the key's
IR field, or INVALID after reporting why. An `each` entry (`normalize(0.5, 0.5)`) returns
the entry's class bound to its arguments, for the section to collect.
"""

from __future__ import annotations

from typing import Any, Callable

from netspec.ir.checks.context import CheckContext
from netspec.ir.search import is_search
from netspec.ir.sections import Form, Key
from netspec.ir.values import INVALID, CallValue, Symbol, describe_value
from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.language.suggest import did_you_mean
from netspec.registry import Registry
from netspec.registry.base import article
from netspec.registry.tasks import task_for

Reader = Callable[[CheckContext, Key, st.Entry], Any]


def value(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    """`key value`; a bare `key` means true for a flag (`compile`)."""
    if entry.args is not None:
        ctx.report(
            "NS032",
            f"`{entry.key}` takes a value, written without parentheses",
            entry.span,
            f"write `{entry.key} VALUE`",
        )
        return INVALID
    if not entry.values:
        if key.field.annotation is bool:
            return True
        ctx.report("NS032", f"`{entry.key}` needs a value", entry.span)
        return INVALID
    if len(entry.values) > 1:
        ctx.report("NS032", f"`{entry.key}` takes one value", entry.values[1].span)
        return INVALID
    return _evaluated(ctx, entry)


def _evaluated(ctx: CheckContext, entry: st.Entry) -> Any:
    found = ctx.evaluator.eval(entry.values[0], ctx.constants)
    if isinstance(found, CallValue):
        ctx.report("NS014", f"`{entry.key}` cannot be a call", entry.values[0].span)
        return INVALID
    return str(found) if isinstance(found, Symbol) else found


def network(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    """`model LeNet`: a value that names a network of the spec."""
    if entry.args is None and len(entry.values) > 1:  # `model Generator, Discriminator`
        task = task_for(len(entry.values))
        hint = f"{task.title} names each network with its own key: {task.picture}" if task else None
        ctx.report("NS032", f"`{entry.key}` names one network", entry.values[1].span, hint)
        return INVALID
    if entry.values and is_search(entry.values[0]):
        not_searched(ctx, f"a network (`{entry.key}` names one)", entry.values[0])
        return INVALID
    name = value(ctx, key, entry)
    if name is INVALID or (isinstance(name, str) and _known_network(ctx, name, entry)):
        return name
    return INVALID


def _known_network(ctx: CheckContext, name: str, entry: st.Entry) -> bool:
    names = ctx.parts.network_names
    if name in names:
        return True
    if names:  # with no network at all, "the spec defines no network" says it
        ctx.report(
            "NS020",
            f"unknown network `{name}`",
            entry.values[0].span,
            did_you_mean(name, names) or f"networks: {', '.join(names)}",
        )
    return False


def one(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    """`loss cross_entropy(label_smoothing=0.1)`."""
    registry = _registry(key)
    if entry.args is not None:
        ctx.report(
            "NS032",
            f"write `{entry.key} NAME(...)`, not `{entry.key}(...)`",
            entry.span,
            f"for example `{entry.key} {registry.names()[0]}`",
        )
        return INVALID
    if len(entry.values) > 1:
        ctx.report("NS032", f"`{entry.key}` takes one {registry.what}", entry.values[1].span)
    if entry.values and _is_none(entry.values[0]) and not key.field.is_required() and key.field.default is None:
        return None  # `pruner none`: a key that may be left empty, written empty
    return _named(ctx, registry, entry, entry.values[0] if entry.values else None)


def _is_none(expr: st.Expr) -> bool:
    return isinstance(expr, st.Const) and expr.value is None


def many(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    """`metrics accuracy, top_k(3)`."""
    registry = _registry(key)
    found = [_named(ctx, registry, entry, v) for v in entry.values]
    if not entry.values:
        ctx.report(
            "NS032",
            f"`{entry.key}` needs at least one {registry.what}",
            entry.span,
            "one of: " + ", ".join(registry.names()),
        )
    return INVALID if INVALID in found else found


def call(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    """`early_stopping(patience=3)`: the key's own class, called."""
    assert key.cls is not None, f"`{key.name}` is a call key without a class"
    if _values_instead_of_args(ctx, entry, key.cls.signature()):
        return INVALID
    op = ctx.binder.bind(key.cls, entry.args, entry.span, ctx.constants, "")
    return INVALID if op is None else op


def each(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    """`normalize(0.1307, 0.3081)`: an entry of the key's registry, written as a key of its own."""
    registry = _registry(key)
    if _values_instead_of_args(ctx, entry, registry.entries[entry.key].signature()):
        return INVALID
    return bind_named(ctx, registry, entry.key, entry.args, entry.key_span, entry.span)


READERS: dict[Form, Reader] = {"value": value, "network": network, "one": one, "many": many, "call": call, "each": each}


def _registry(key: Key) -> Registry[Any]:
    assert key.registry is not None, f"`{key.name}` ({key.form}) has no registry"
    return key.registry


def _values_instead_of_args(ctx: CheckContext, entry: st.Entry, signature: str) -> bool:
    if entry.values:
        ctx.report(
            "NS032",
            f"`{entry.key}` takes arguments in parentheses",
            entry.values[0].span,
            f"write `{signature}`",
        )
    return bool(entry.values)


def _named(ctx: CheckContext, registry: Registry[Any], entry: st.Entry, expr: st.Expr | None) -> Any:
    """`loss cross_entropy`, `loss cross_entropy(label_smoothing=0.1)`, `metrics top_k(k=3)`."""
    if expr is None:
        ctx.report(
            "NS032",
            f"`{entry.key}` needs {article(registry.what)}",
            entry.span,
            f"for example `{entry.key} {registry.names()[0]}`",
        )
        return INVALID
    if is_search(expr):
        not_searched(ctx, f"{article(registry.what)} (`{entry.key}` names one)", expr)
        return INVALID
    found = ctx.evaluator.eval(expr, {}) if isinstance(expr, (st.Name, st.Call)) else None
    if isinstance(found, Symbol):
        return bind_named(ctx, registry, str(found), None, expr.span, expr.span)
    if isinstance(found, CallValue):
        return bind_named(ctx, registry, found.call.name, found.call.args, found.call.name_span, expr.span)
    got = describe_value(ctx.evaluator.eval(expr, ctx.constants))
    ctx.report(
        "NS032",
        f"`{entry.key}` needs {article(registry.what + ' name')}, got {got}",
        expr.span,
        f"one of: {', '.join(registry.names())}",
    )
    return INVALID


def not_searched(ctx: CheckContext, what: str, expr: Any) -> None:
    """A search expression where only a name fits (`loss choice(mse, mae)`)."""
    ctx.report(
        "NS085",
        f"a search expression cannot stand for {what}",
        expr.span,
        "search the values inside it, as in `optimizer adam(lr=loguniform(1e-4, 1e-1))`; "
        "to compare two of them, tune a spec for each",
    )


def bind_named(ctx: CheckContext, registry: Registry[Any], name: str, args: Any, name_span: Span, span: Span) -> Any:
    """The registry entry `name` bound to `args`, or INVALID after reporting why not."""
    cls = registry.get(name)
    if cls is None:
        ctx.report(
            "NS010",
            f"unknown {registry.what} `{name}`",
            name_span,
            did_you_mean(name, registry.names()) or f"one of: {', '.join(registry.names())}",
        )
        return INVALID
    op = ctx.binder.bind(cls, args, span, ctx.constants, registry.what)
    return INVALID if op is None else op
