"""Search expressions in a checked spec: their names, the value each stands for, and their ranges.

A search expression (`loguniform(1e-4, 1e-1)`, registry family ``SEARCH``) stands where a value
goes. The checker evaluates it to its default (what `netspec run` trains with), so the rest of
the spec is checked as usual; then, once the spec checks at its defaults, it checks it again at
each end of each range (the other expressions at their defaults): an error that only an end
produces is reported at the expression, since a trial could draw that value.

Names (`lr`, `width`, `dropout.p`) come from where an expression is written: the constant, the
block parameter or the section key it gives, or the argument it is (a keyword argument by its
name, a positional one as `call.parameter`); names written twice are qualified by the call, then
by the line.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Callable, Iterator

from netspec.ir import nodes as ir
from netspec.ir.sections import all_classes
from netspec.ir.values import INVALID, Binder, CallValue, Evaluator, jsonable
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic
from netspec.language.span import Span
from netspec.registry import LAYERS, SEARCH
from netspec.registry.base import Op, format_value
from netspec.registry.search import Distribution

Key = tuple[int, int, str | None]  # where an expression starts: line, column, and the --set text it is in


def key(span: Span) -> Key:
    return (span.line, span.column, span.origin)


def is_search(expr: Any) -> bool:
    """Whether a syntax node is a search expression (`choice(...)`)."""
    return isinstance(expr, st.Call) and expr.name in SEARCH.entries


# --- names -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Site:
    key: Key
    short: str  # `lr`
    long: str  # `adam.lr`
    line: int


class _Namer:
    """Walks the syntax tree and names every search expression by where it is written."""

    def __init__(self, module: st.Module) -> None:
        self.blocks = {x.name: x for x in module.items if isinstance(x, st.Block)}
        self.sites: list[_Site] = []

    def item(self, item: st.Top) -> None:
        if isinstance(item, st.Let):
            self.expr(item.value, item.name, item.name)
        elif isinstance(item, st.Block):
            for p in item.params:
                if p.default is not None:
                    self.expr(p.default, p.name, f"{item.name}.{p.name}")
            self.body(item.body)
        elif isinstance(item, st.Network):
            self.body(item.body)
        elif isinstance(item, st.Section):
            for e in item.entries:
                self.args(e.key, e.args or ())
                for v in e.values:
                    self.expr(v, e.key, f"{item.kind}.{e.key}")

    def body(self, body: st.Body) -> None:
        for step in body.steps:
            if isinstance(step, st.Input):
                self.expr(step.shape, "input", "input")
            elif isinstance(step, st.Chain):
                for call in step.calls:
                    self.args(call.name, call.args or ())
            elif isinstance(step, st.Repeat):
                self.expr(step.count, "repeat", "repeat")
                self.body(step.body)
            else:
                self.body(step.body)

    def args(self, callee: str, args: tuple[st.Arg, ...]) -> None:
        positional = self._positional(callee)
        for i, a in enumerate(args):
            if a.name is not None:
                self.expr(a.value, a.name, f"{callee}.{a.name}")
            else:
                param = positional[i] if i < len(positional) else str(i + 1)
                self.expr(a.value, f"{callee}.{param}", f"{callee}.{param}")

    def _positional(self, callee: str) -> tuple[str, ...]:
        if callee in self.blocks:
            return tuple(p.name for p in self.blocks[callee].params)
        cls = LAYERS.get(callee) or _section_class(callee)
        return cls.positional if cls is not None else ()

    def expr(self, e: st.Expr, short: str, long: str) -> None:
        if is_search(e):
            self.sites.append(_Site(key(e.span), short, long, e.span.line))
        elif isinstance(e, st.Call):
            self.args(e.name, e.args or ())
        elif isinstance(e, st.ListExpr):
            for x in e.items:
                self.expr(x, short, long)
        elif isinstance(e, st.BinOp):
            self.expr(e.left, short, long)
            self.expr(e.right, short, long)
        elif isinstance(e, st.Neg):
            self.expr(e.operand, short, long)


def _section_class(name: str) -> type[Op] | None:
    return next((cls for _, cls in all_classes() if cls.kind_name() == name), None)


def names(module: st.Module) -> dict[Key, str]:
    """Every search expression's name in the study, by where it starts."""
    namer = _Namer(module)
    for item in module.items:
        namer.item(item)
    shorts = Counter(s.short for s in namer.sites)
    chosen = [s.short if shorts[s.short] == 1 else s.long for s in namer.sites]
    twice = Counter(chosen)
    return {s.key: (c if twice[c] == 1 else f"{c}@{s.line}") for s, c in zip(namer.sites, chosen)}


# --- evaluation during a check -----------------------------------------------------------------


class Space:
    """The search expressions a check meets, each bound once; the Evaluator asks it for their values:
    the default, or a value `fixed` for this check (the range check's ends)."""

    def __init__(self, evaluator: Evaluator, binder: Binder, fixed: dict[Key, Any]) -> None:
        self.evaluator, self.binder, self.report = evaluator, binder, binder.report
        self.fixed = fixed
        self.names: dict[Key, str] = {}
        self.params: dict[Key, ir.SearchParam] = {}
        self.failed: set[Key] = set()
        self.depth = 0  # search expressions being bound (one inside another is an error)

    def evaluate(self, call: st.Call, scope: dict[str, Any]) -> Any:
        k = key(call.span)
        if k in self.params:
            return self.fixed.get(k, self.params[k].distribution.default_value())
        if k in self.failed:
            return INVALID
        op = self._bind(call, scope)
        if op is None:
            self.failed.add(k)
            return INVALID
        name = self.names.get(k) or f"{call.name}@{call.span.line}"
        self.params[k] = ir.SearchParam(
            name=name, span=call.span, distribution=op, default=jsonable({"v": op.default_value()})["v"]
        )
        return self.fixed.get(k, op.default_value())

    def _bind(self, call: st.Call, scope: dict[str, Any]) -> Distribution | None:
        if self.depth:
            self.report(
                "NS085",
                f"a search expression cannot hold another: `{call.name}` inside one",
                call.span,
                "give each range numbers: `loguniform(1e-4, 1e-1)`",
            )
            return None
        cls = SEARCH.entries[call.name]
        self.depth += 1
        try:
            if cls.variadic:
                return self._options(cls, call, scope)
            op = self.binder.bind(cls, call.args, call.span, scope, SEARCH.what)
            return op if isinstance(op, Distribution) else None
        finally:
            self.depth -= 1

    def _options(self, cls: type[Distribution], call: st.Call, scope: dict[str, Any]) -> Distribution | None:
        """`choice(64, 128, 256)`: every argument is an option."""
        named = next((a for a in call.args or () if a.name is not None), None)
        if named is not None:
            self.report(
                "NS011",
                f"`{cls.kind_name()}` takes values only, not `{named.name}=`",
                named.name_span or named.span,
                f"write it as `{cls.signature()}`",
            )
            return None
        values = [self._option(a.value, scope) for a in call.args or ()]
        if any(v is INVALID for v in values):
            return None
        field = cls.variadic or ""
        return self.binder._validate(cls, {field: tuple(values)}, {}, call.span, SEARCH.what)  # type: ignore[return-value]

    def _option(self, e: st.Expr, scope: dict[str, Any]) -> Any:
        value = self.evaluator.eval(e, scope)
        if isinstance(value, CallValue):
            self.report(
                "NS085",
                f"a value of `choice` cannot be a call: `{value.call.name}(...)`",
                e.span,
                "choose among values (numbers, strings, lists); to compare two layers or optimizers, tune two specs",
            )
            return INVALID
        return value


def defaults_note(program: ir.Program) -> str:
    """What `run`, `emit` and the like say of a spec with search expressions: they use the defaults."""
    n = len(program.search)
    values = ", ".join(f"{p.name}={format_value(p.default)}" for p in program.search)
    their = "their defaults" if n != 1 else "its default"
    return f"{n} search expression{'s' * (n != 1)}, at {their}: {values} (`netspec tune` searches them)"


# --- the range check ---------------------------------------------------------------------------


Check = Callable[[dict[Key, Any]], list[Diagnostic]]


def range_problems(params: list[ir.SearchParam], base: list[Diagnostic], check: Check) -> Iterator[Diagnostic]:
    """For each expression, the first error that one of its ends gives and the defaults do not.
    `check(fixed)` checks the spec with the values `fixed` (by where they are) instead of their defaults."""
    seen = {_identity(d) for d in base}
    for p in params:
        default = p.distribution.default_value()
        for value in p.distribution.ends():
            if _same(value, default):
                continue
            new = [d for d in check({key(p.span): value}) if d.severity == "error" and _identity(d) not in seen]
            if new:
                yield _at_expression(p, value, new[0])
                break


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _identity(d: Diagnostic) -> tuple[str, int, int, str | None, str]:
    return (d.code, d.line, d.column, d.origin, d.message)


def _at_expression(p: ir.SearchParam, value: Any, d: Diagnostic) -> Diagnostic:
    s = p.span
    where = "" if d.line == s.line or d.origin != s.origin else f" (line {d.line})"
    message = f"`{p.name}` can be {format_value(value)}, where {_lower(d.message)}{where}"
    hint = "narrow the range: a trial may draw any value in it" + (f"; {d.hint}" if d.hint else "")
    return dataclasses.replace(
        d,
        code="NS086",
        message=message,
        hint=hint,
        line=s.line,
        column=s.column,
        end_line=s.end_line,
        end_column=s.end_column,
        origin=s.origin,
    )


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message


def better_hints(params: list[ir.SearchParam], diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """A number drawn where an integer goes: say which search expression draws integers."""
    floats = [p for p in params if isinstance(p.default, float)]
    at = {key(p.span) for p in floats}
    got = tuple(f"got `{format_value(p.default)}`" for p in floats)
    out = []
    for d in diagnostics:
        drawn = (d.line, d.column, d.origin) in at or d.message.endswith(got)
        if drawn and "integer" in d.message:
            d = dataclasses.replace(d, hint="`int_uniform(low, high)` draws integers; `choice(...)` of integers too")
        out.append(d)
    return out
