"""The filters through which every value reaches a script, and the Jinja2 environment that enforces them."""

from __future__ import annotations

import keyword
import math
import re
from functools import cache
from pathlib import Path
from typing import Any, Callable

import jinja2
from markupsafe import Markup

from netspec.ir.checks.networks import MAX_BODY_DEPTH

LINE_LENGTH = 88  # ruff's default: the emitted scripts are formatted for it
PACKAGE = Path(__file__).resolve().parent


# --- filters: the only way a value reaches a script ---------------------------------------


def literal(value: Any) -> str:
    """`value` as a Python literal, formatted as ruff formats it. Only plain data is accepted:
    None, bools, ints, floats (inf and nan as float("inf") / float("nan")), strings, and tuples
    and lists of those; anything else raises TypeError, whatever its repr would say."""
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return repr(value)
    if kind is float:
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value).replace("e+", "e")  # ruff writes 1e16, not 1e+16
    if kind is str:
        return _string(value)
    if kind is tuple:
        items = [literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if kind is list:
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"not a literal value: {kind.__name__}")


def _string(s: str) -> str:
    """A string literal with ruff's preferred quotes: double, unless that needs more escapes.
    Every character is escaped as repr escapes it, so a newline, quote or backslash in the
    value stays inside the literal."""
    quote = "'" if s.count('"') > s.count("'") else '"'
    return quote + "".join(_char(ch, quote) for ch in s) + quote


def _char(ch: str, quote: str) -> str:
    if ch == quote:
        return "\\" + ch
    if ch in "'\"":
        return ch
    return repr(ch)[1:-1]


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def identifier(name: Any) -> str:
    """A (dotted) ASCII identifier that is not a keyword; anything else raises."""
    if type(name) is not str or not _IDENT.fullmatch(name) or any(keyword.iskeyword(p) for p in name.split(".")):
        raise TypeError(f"not an identifier: {name!r}")
    return name


def text(value: Any) -> str:
    """Prose for a comment or a docstring: printable characters as they are; quotes,
    backslashes, line breaks and other unprintable characters escaped, so the text can end
    neither the comment nor the docstring."""
    if type(value) is not str:
        raise TypeError(f"not text: {type(value).__name__}")
    return "".join(ch if ch.isprintable() and ch not in '"\\' else _escape(ch) for ch in value)


def _escape(ch: str) -> str:
    return '\\"' if ch == '"' else repr(ch)[1:-1]


def shape(value: Any) -> str:
    """A per-sample shape as the spec writes it: [20, 24, 24]."""
    if type(value) not in (tuple, list) or not all(type(d) is int for d in value):
        raise TypeError(f"not a shape: {value!r}")
    return "[" + ", ".join(str(d) for d in value) + "]"


def count(value: Any) -> str:
    """An integer with thousands separators, for comments: 431,080."""
    if type(value) is not int:
        raise TypeError(f"not a count: {value!r}")
    return f"{value:,}"


# Indentation of the deepest nesting the checker accepts: a network's class body, each body
# (block, repeat, residual) as a container inside a container, and the call inside the last one.
MAX_INDENT = 4 * (2 * MAX_BODY_DEPTH + 16)


def pad(value: Any) -> str:
    """Indentation: `value` spaces (at most MAX_INDENT, the deepest nesting `check` accepts)."""
    if type(value) is not int or not 0 <= value <= MAX_INDENT:
        raise TypeError(f"not an indentation: {value!r}")
    return " " * value


FILTERS: dict[str, Callable[[Any], str]] = {
    "lit": literal,
    "ident": identifier,
    "text": text,
    "shape": shape,
    "count": count,
    "pad": pad,
}


def _marked(fn: Callable[[Any], str]) -> Callable[[Any], Markup]:
    def render(value: Any) -> Markup:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined: raises, naming what is undefined
        return Markup(fn(value))

    return render


def _printed(value: Any) -> Any:
    """The environment's `finalize`: what `{{ ... }}` may print. Filters and macros return
    Markup; anything else (a raw string, a number) means a template forgot its filter."""
    if isinstance(value, Markup):
        return value
    raise TypeError(f"a template printed {type(value).__name__} {value!r} without a filter (lit, ident, ...)")


@cache
def environment(target: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE / "templates" / target),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # with `finalize`, makes every printed value pass through a filter
        finalize=_printed,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update({name: _marked(fn) for name, fn in FILTERS.items()})
    env.tests.update({"list": lambda v: type(v) is list, "tuple": lambda v: type(v) is tuple})
    env.globals["LINE_LENGTH"] = LINE_LENGTH
    return env
