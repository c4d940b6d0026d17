"""Evaluating expressions (constants, arithmetic) and binding arguments to registry classes."""

from __future__ import annotations

import math
import operator
import types
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Collection, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError

from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, Severity, make
from netspec.language.span import Span
from netspec.language.suggest import did_you_mean
from netspec.registry.base import Op, Problem, accepts_str, format_value
from netspec.registry.search import SEARCH


class Symbol(str):
    """A bare name that is not a constant: a string where a string fits (``mode=nearest``)."""

    span: Span


@dataclass(frozen=True)
class CallValue:
    """``csv("x.csv", target="y")`` in a value position."""

    call: st.Call


class Invalid:
    """An expression that already produced a diagnostic; suppresses follow-up errors."""


INVALID = Invalid()

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}


class Suggestions:
    """ "Did you mean" with bounded work: each question reads its candidates once, and one check
    reads at most ``budget`` candidates in all (100,000 unknown names among 100,000 constants
    would otherwise compare every pair); past it, diagnostics come without the suggestion."""

    def __init__(self, budget: int = 50_000) -> None:
        self.left = budget

    def __call__(self, name: str, candidates: Collection[str]) -> str | None:
        if len(candidates) > self.left:
            self.left = 0
            return None
        self.left -= len(candidates)
        return did_you_mean(name, [k for k in candidates if not k.startswith("__")])


class Evaluator:
    """Evaluates expressions in a scope and reports problems through ``report``."""

    def __init__(self, report: Callable[..., None]) -> None:
        self.report = report
        self.suggest = Suggestions()
        self.search: Callable[[st.Call, dict[str, Any]], Any] | None = None  # the value of a search expression

    def eval(self, e: st.Expr, scope: dict[str, Any]) -> Any:
        return getattr(self, "_" + type(e).__name__)(e, scope)

    def _Num(self, e: st.Num, scope: dict[str, Any]) -> Any:
        return INVALID if isinstance(e.value, float) and math.isinf(e.value) else e.value  # too large: reported

    def _Str(self, e: st.Str, scope: dict[str, Any]) -> Any:
        return e.value

    def _Const(self, e: st.Const, scope: dict[str, Any]) -> Any:
        return e.value

    def _Name(self, e: st.Name, scope: dict[str, Any]) -> Any:
        if e.id in scope:
            return scope[e.id]
        sym = Symbol(e.id)
        sym.span = e.span
        return sym

    def _Call(self, e: st.Call, scope: dict[str, Any]) -> Any:
        if self.search is not None and e.name in SEARCH.entries:  # `loguniform(1e-4, 1e-1)`: its value
            return self.search(e, scope)
        return CallValue(e)

    def _ListExpr(self, e: st.ListExpr, scope: dict[str, Any]) -> Any:
        items = tuple(self.eval(i, scope) for i in e.items)
        return INVALID if any(i is INVALID for i in items) else items

    def _Neg(self, e: st.Neg, scope: dict[str, Any]) -> Any:
        v = self.number(e.operand, scope)
        return INVALID if v is INVALID else -v

    def _BinOp(self, e: st.BinOp, scope: dict[str, Any]) -> Any:
        a, b = self.number(e.left, scope), self.number(e.right, scope)
        if a is INVALID or b is INVALID:
            return INVALID
        if e.op in ("/", "//", "%") and b == 0:
            self.report("NS024", "division by zero", e.span)
            return INVALID
        try:
            result = _OPS[e.op](a, b)
        except OverflowError:
            result = math.inf
        if (isinstance(result, float) and not math.isfinite(result)) or abs(result) > 1e300:
            self.report("NS006", "number too large", e.span)
            return INVALID
        return result

    def number(self, e: st.Expr, scope: dict[str, Any]) -> Any:
        """Evaluate an operand of arithmetic, which must be a number."""
        v = self.eval(e, scope)
        if isinstance(v, Symbol):
            self.unknown_name(v, scope)
            return INVALID
        if v is INVALID or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            return v
        self.report("NS025", f"arithmetic needs numbers, got {describe_value(v)}", e.span)
        return INVALID

    def unknown_name(self, sym: Symbol, scope: dict[str, Any]) -> None:
        self.report("NS020", f"unknown name `{sym}`", sym.span, self.suggest(sym, scope.keys()))


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Evaluated values as the IR stores them: lists for tuples, none for invalid ones."""

    def conv(v: Any) -> Any:
        return [conv(x) for x in v] if isinstance(v, tuple) else (None if v is INVALID else v)

    return {k: conv(v) for k, v in values.items()}


def describe_value(v: Any) -> str:
    if isinstance(v, CallValue):
        return f"a call `{v.call.name}(...)`"
    if isinstance(v, Symbol):
        return f"the name `{v}`"
    return f"`{format_value(v)}`"


# --- binding a call to a registry class --------------------------------------------------


@dataclass
class Binder:
    """Maps a call's positional and keyword arguments onto a registry class and validates."""

    evaluator: Evaluator
    report: Callable[..., None]

    def bind(
        self, cls: type[Op], args: tuple[st.Arg, ...] | None, span: Span, scope: dict[str, Any], what: str
    ) -> Op | None:
        raw, spans = self._collect(cls, args or (), span, scope, what)
        if raw is None:
            return None
        missing = [n for n, f in cls.parameters().items() if f.is_required() and n not in raw]
        if missing:
            self.report(
                "NS012", f"{_subject(what, cls)} needs `{missing[0]}`", span, f"write it as `{cls.signature()}`"
            )
            return None
        return self._validate(cls, raw, spans, span, what)

    def _collect(
        self, cls: type[Op], args: tuple[st.Arg, ...], span: Span, scope: dict[str, Any], what: str
    ) -> tuple[dict[str, Any] | None, dict[str, Span]]:
        raw: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        ok = True
        extra = [a for a in args if a.name is None][len(cls.positional) :]
        if extra:
            self._too_many(cls, extra)
        positional = iter(cls.positional)
        keyword_seen = False
        for arg in args:
            if any(arg is x for x in extra):
                ok = False
                continue
            if arg.name is None and keyword_seen:
                self.report(
                    "NS013",
                    "a positional argument cannot follow a keyword argument",
                    arg.span,
                    "name it, or move it before the keyword arguments",
                )
                ok = False
                continue
            keyword_seen = keyword_seen or arg.name is not None
            name = self._arg_name(cls, arg, arg.name or next(positional), raw, what)
            if name is None:
                ok = False
                continue
            value = self._value(cls, name, arg, scope)
            ok = ok and value is not INVALID
            raw[name], spans[name] = value, arg.value.span
        return (raw if ok else None), spans

    def _arg_name(self, cls: type[Op], arg: st.Arg, name: str, seen: dict[str, Any], what: str) -> str | None:
        if arg.name is not None and name not in cls.parameters():
            self._unknown_arg(cls, arg, what)
            return None
        if name in seen:
            self.report("NS016", f"`{name}` is given twice", arg.span)
            return None
        return name

    def _too_many(self, cls: type[Op], extra: list[st.Arg]) -> None:
        n = len(cls.positional)
        first, last = extra[0].span, extra[-1].span
        span = Span(
            line=first.line,
            column=first.column,
            end_line=last.end_line,
            end_column=last.end_column,
            origin=first.origin,
        )
        self.report(
            "NS013",
            f"`{cls.kind_name()}` takes {n or 'no'} positional argument{'s' * (n != 1)}"
            f"{' (' + ', '.join(cls.positional) + ')' if n else ''}, got {n + len(extra)}",
            span,
            f"name the others, as in `{cls.signature()}`",
        )

    def _unknown_arg(self, cls: type[Op], arg: st.Arg, what: str) -> None:
        params = list(cls.parameters())
        hint = did_you_mean(arg.name or "", params) or (
            f"`{cls.kind_name()}` takes " + (", ".join(f"`{p}`" for p in params) if params else "no arguments")
        )
        self.report("NS011", f"{_subject(what, cls)} has no argument `{arg.name}`", arg.name_span or arg.span, hint)

    def _value(self, cls: type[Op], name: str, arg: st.Arg, scope: dict[str, Any]) -> Any:
        value = self.evaluator.eval(arg.value, scope)
        field = cls.model_fields[name]
        if isinstance(value, Symbol):
            if accepts_str(field.annotation):
                return str(value)
            self.evaluator.unknown_name(value, scope)
            return INVALID
        if isinstance(value, CallValue):
            self.report(
                "NS014",
                f"`{name}` of `{cls.kind_name()}` cannot be a call",
                arg.value.span,
                f"`{name}` takes {describe_field(field)}",
            )
            return INVALID
        if isinstance(value, tuple) and any(isinstance(v, Symbol) for v in value):
            sym = next(v for v in value if isinstance(v, Symbol))
            self.evaluator.unknown_name(sym, scope)
            return INVALID
        return value

    def _validate(self, cls: type[Op], raw: dict[str, Any], spans: dict[str, Span], span: Span, what: str) -> Op | None:
        try:
            op = cls.model_validate({**raw, "kind": cls.kind_name(), "span": span})
        except ValidationError as e:
            reported: set[str] = set()
            for err in e.errors():
                name = str(err["loc"][0]) if err["loc"] else ""
                if name in reported or name not in raw:
                    continue
                reported.add(name)
                field = cls.model_fields[name]
                self.report(
                    "NS015",
                    f"`{name}` of `{cls.kind_name()}` must be {describe_field(field)}, got {describe_value(raw[name])}",
                    spans.get(name, span),
                    _int_hint(raw[name], field),
                )
            return None
        return op if self._problems(op, spans, span) else None

    def _problems(self, op: Op, spans: dict[str, Span], span: Span) -> bool:
        ok = True
        for p in op.problems():
            self.problem(p, spans.get(p.field or "", span), "NS015")
            ok = ok and p.severity != "error"
        return ok

    def problem(self, p: Problem, span: Span, code: str) -> None:
        sev: Severity = "warning" if p.severity == "warning" else "error"
        self.report(code, p.message, span, p.hint, sev)


def _int_hint(value: Any, field: Any) -> str | None:
    if isinstance(value, float) and "integer" in describe_field(field) and value.is_integer():
        return "use `//` for integer division, or write it without a decimal point"
    return None


# --- describing types in words ------------------------------------------------------------


def describe_field(field: Any) -> str:
    """A field's type in words: ``a positive integer or a list of 2 positive integers``."""
    return describe_type(field.annotation, list(field.metadata))


def describe_type(t: Any, metadata: list[Any] | None = None) -> str:
    metadata = [m for item in metadata or [] for m in getattr(item, "metadata", [item])]
    origin = get_origin(t)
    if origin is Annotated:
        inner, *meta = get_args(t)
        return describe_type(inner, meta + metadata)
    if origin is Literal:
        return _one_of([format_value(a) for a in get_args(t)])
    if origin is Union or isinstance(t, types.UnionType):
        parts = [describe_type(a) for a in get_args(t) if a is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" or none" if type(None) in get_args(t) else "")
    if origin is tuple:
        return _describe_tuple(get_args(t))
    return _describe_scalar(t, metadata)


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


def _describe_tuple(args: tuple[Any, ...]) -> str:
    if len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {_plural(describe_type(args[0]))}"
    return f"a list of {len(args)} {_plural(describe_type(args[0]))}"


def _plural(phrase: str) -> str:
    words = phrase.split(" ", 1)
    rest = words[1] if len(words) > 1 else words[0]
    return rest.replace("integer", "integers").replace("number", "numbers").replace("value", "values")


def _describe_scalar(t: Any, metadata: list[Any]) -> str:
    if t is Any:
        return "a value"
    if t is bool:
        return "true or false"
    if t is str:
        return "a string"
    noun = "integer" if t is int else "number"
    bounds = _bounds(metadata)
    if bounds == ("gt", 0):
        return f"a positive {noun}"
    if bounds == ("ge", 0):
        return f"a non-negative {noun}"
    if bounds:
        return f"a{'n' if noun == 'integer' else ''} {noun} {bounds[1]}"
    return f"a{'n' if noun == 'integer' else ''} {noun}"


def _bounds(metadata: list[Any]) -> Any:
    lo = next((m for m in metadata if isinstance(m, (Gt, Ge))), None)
    hi = next((m for m in metadata if isinstance(m, (Lt, Le))), None)
    if lo is not None and hi is None:
        return ("gt", lo.gt) if isinstance(lo, Gt) else ("ge", lo.ge)
    if lo is None and hi is None:
        return None
    low = "" if lo is None else (f"above {lo.gt}" if isinstance(lo, Gt) else f"from {lo.ge}")
    high = "" if hi is None else (f"below {hi.lt}" if isinstance(hi, Lt) else f"up to {hi.le}")
    return ("range", " ".join(x for x in (low, high) if x))


__all__ = ["INVALID", "Binder", "CallValue", "Diagnostic", "Evaluator", "Symbol", "describe_field", "make"]


def _subject(what: str, cls: type[Op]) -> str:
    """How a message names a registry entry: "layer `conv2d`", or "`early_stopping`" for a key's own class."""
    return f"{what} `{cls.kind_name()}`" if what else f"`{cls.kind_name()}`"
