"""A spec with values written in: its search expressions replaced by the values a trial drew, and
its `--set` overrides folded into the sections they change, by editing the text at the spans the
parser gave. Everything else (comments, layout) stays as written, so the result reads like the
original and `netspec run` trains it without options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netspec.ir import nodes as ir
from netspec.ir.search import key
from netspec.language import syntax as st
from netspec.language.parse import parse
from netspec.language.span import Span
from netspec.registry.base import format_value
from netspec.registry.search import Choice


@dataclass(frozen=True)
class Edit:
    start: int  # string indices of the text replaced
    end: int
    text: str


class Text:
    """A text and the string index of each (1-based) line and column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self.starts.append(i + 1)

    def index(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column - 1

    def slice(self, span: Span) -> str:
        return self.text[self.index(span.line, span.column) : self.index(span.end_line, span.end_column)]

    def edit(self, span: Span, text: str) -> Edit:
        return Edit(self.index(span.line, span.column), self.index(span.end_line, span.end_column), text)

    def apply(self, edits: list[Edit]) -> str:
        out = self.text
        for e in sorted(edits, key=lambda e: e.start, reverse=True):
            out = out[: e.start] + e.text + out[e.end :]
        return out


def value_text(param: ir.SearchParam, value: Any, source: Text) -> str:
    """How a drawn value (as Optuna stores it) is written: a choice's option as the spec writes it
    (`relu`, `[3, 3]`, `2 * width`), a number exactly (the `repr` of a float reads back as that float)."""
    dist = param.distribution
    if isinstance(dist, Choice):
        i = dist.index(value)
        alone = Text("let _ = " + source.slice(param.span))
        module, diags = parse(alone.text)
        call = module.items[0].value if module and not diags and isinstance(module.items[0], st.Let) else None
        if isinstance(call, st.Call) and i is not None and i < len(call.args or ()):
            return alone.slice(call.args[i].value.span)  # type: ignore[index]
    return format_value(value)


def substitute(text: str, params: list[ir.SearchParam], values: dict[str, Any], origin: str | None = None) -> str:
    """`text` (the spec, or the --set text `origin`) with each search expression in it replaced."""
    source = Text(text)
    edits = [
        source.edit(p.span, value_text(p, values[p.name], source))
        for p in params
        if p.span.origin == origin and p.name in values
    ]
    return source.apply(edits)


# --- folding --set overrides into the text ------------------------------------------------------


def fold(text: str, overrides: list[str], replaces: dict[str, dict[str, tuple[str, ...]]]) -> str:
    """The text with each `section.key=value` or `constant=value` written where it applies, in order.
    `replaces`: per section, the keys a key replaces (`steps` replaces `epochs`)."""
    for override in overrides:
        text = _fold_one(text, override, replaces)
    return text


def _fold_one(text: str, override: str, replaces: dict[str, dict[str, tuple[str, ...]]]) -> str:
    module, _ = parse(text)
    path, _, value = override.partition("=")
    section, dot, name = path.strip().rpartition(".")
    value = value.strip()
    if module is None:
        return text
    source = Text(text)
    if not dot:
        let = next((x for x in module.items if isinstance(x, st.Let) and x.name == name), None)
        return source.apply([source.edit(let.value.span, value)]) if let is not None else text
    target = next((x for x in module.items if isinstance(x, st.Section) and x.kind == section), None)
    if target is None:
        return text
    gone = {name, *replaces.get(section, {}).get(name, ())}
    written = [e for e in target.entries if e.key in gone]
    entry = f"{name} {value}"
    if value == "none" and any(e.key == name for e in target.entries):
        return source.apply([_remove(source, e) for e in written])
    if not written:
        return source.apply([_insert(source, target, entry)])
    return source.apply([source.edit(written[0].span, entry), *(_remove(source, e) for e in written[1:])])


def _remove(source: Text, entry: st.Entry) -> Edit:
    """An entry's text, with its line when nothing else is on it."""
    start, end = (
        source.index(entry.span.line, entry.span.column),
        source.index(entry.span.end_line, entry.span.end_column),
    )
    line_start = source.starts[entry.span.line - 1]
    line_end = source.text.find("\n", end)
    line_end = len(source.text) if line_end < 0 else line_end + 1
    if not source.text[line_start:start].strip() and not source.text[end:line_end].strip():
        return Edit(line_start, line_end, "")
    return Edit(start, end, "")


def _insert(source: Text, section: st.Section, entry: str) -> Edit:
    """A new entry before the section's closing brace: on a line of its own when the brace has one."""
    brace = source.index(section.span.end_line, section.span.end_column) - 1
    line_start = source.starts[section.span.end_line - 1]
    if source.text[line_start:brace].strip():
        return Edit(brace, brace, f"; {entry} ")
    first = section.entries[0].span.column - 1 if section.entries else 4
    return Edit(line_start, line_start, " " * first + entry + "\n")


def written(
    text: str,
    overrides: list[str],
    params: list[ir.SearchParam],
    values: dict[str, Any],
    replaces: dict[str, dict[str, tuple[str, ...]]],
) -> str:
    """The spec a trial trains: the drawn values in place of the search expressions (in the text and in
    the overrides), then the overrides folded in."""
    spec = substitute(text, params, values)
    return fold(spec, [substitute(o, params, values, o) for o in overrides], replaces)


__all__ = ["fold", "key", "substitute", "written"]
