"""``netspec fmt``: canonical formatting, printed from the syntax tree with comments kept.

One statement per line, four-space indents, single spaces around `->`, `=` and binary
operators, at most one blank line in a row (and one between top-level definitions),
literals exactly as written. Idempotent, and parse(fmt(x)) == parse(x).
"""

from __future__ import annotations

from typing import Any

from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic
from netspec.language.parse import parse
from netspec.language.printer import args, call, entry, expr

INDENT = "    "


def format_text(text: str) -> tuple[str | None, list[Diagnostic]]:
    """The formatted text, or None with the syntax errors that prevent formatting."""
    module, diags = parse(text)
    if module is None or any(d.severity == "error" for d in diags):
        return None, diags
    return Printer(module, text).print(), []


class Printer:
    def __init__(self, module: st.Module, text: str) -> None:
        self.module = module
        self.lines = text.split("\n")
        self.comments = sorted(module.comments, key=lambda c: (c.line, c.column))
        self.out: list[str] = []
        self.notes: dict[int, str] = {}  # output line index -> its trailing comment

    def print(self) -> str:
        self._statements(list(self.module.items), 0, len(self.lines) + 1, top=True)
        while self.out and not self.out[-1]:
            self.out.pop()
        return "\n".join(self._aligned()) + "\n" if self.out else ""

    def _aligned(self) -> list[str]:
        """Trailing comments on consecutive lines start in one column (as gofmt does)."""
        lines = list(self.out)
        i = 0
        while i < len(lines):
            j = i
            while j in self.notes:
                j += 1
            if j > i:
                width = max(len(lines[k]) for k in range(i, j)) + 2
                for k in range(i, j):
                    lines[k] = lines[k].ljust(width) + self.notes[k]
            i = j + 1
        return lines

    # --- statements and comments -----------------------------------------------------

    def _statements(self, items: list[Any], depth: int, end_line: int, top: bool = False) -> None:
        prev: Any = None
        for item in items:
            start = item.span.line
            leading = self._take(lambda c, start=start: c.line < start)
            first = leading[0].line if leading else item.span.line
            if prev is not None and (
                self._blank_between(prev.span.end_line, first) or (top and (_braced(item) or _braced(prev)))
            ):
                self.out.append("")
            self._comments(leading, depth)
            self._statement(item, depth)
            prev = item
        rest = self._take(lambda c: c.line < end_line)
        if rest and prev is not None and self._blank_between(prev.span.end_line, rest[0].line):
            self.out.append("")
        self._comments(rest, depth)

    def _comments(self, comments: list[st.Comment], depth: int) -> None:
        for i, c in enumerate(comments):
            if i and self._blank_between(comments[i - 1].line, c.line):
                self.out.append("")
            self.out.append(INDENT * depth + c.text.rstrip())

    def _take(self, pred: Any) -> list[st.Comment]:
        taken = [c for c in self.comments if pred(c)]
        self.comments = [c for c in self.comments if not pred(c)]
        return taken

    def _blank_between(self, a: int, b: int) -> bool:
        return any(not self.lines[i - 1].strip() for i in range(a + 1, b) if 0 < i <= len(self.lines))

    def _statement(self, item: Any, depth: int) -> None:
        pad = INDENT * depth
        head = self._head(item)
        if head is None:
            inner = self._take(lambda c: item.span.line <= c.line < item.span.end_line)
            self._comments(inner, depth)
            self._line(pad + self._simple(item), item.span.end_line)
            return
        body_items, close = self._body(item)
        self._line(pad + head + " {", item.span.line)
        self._statements(body_items, depth + 1, close)
        self._line(pad + "}", close)

    def _line(self, code: str, source_line: int) -> None:
        """Emit a line of code with the comment that ended its source line, if any."""
        found = self._take(lambda c: c.line == source_line)
        if found:
            self.notes[len(self.out)] = " ".join(c.text.rstrip() for c in found)
        self.out.append(code)

    def _head(self, item: Any) -> str | None:
        if isinstance(item, st.Network):
            return f"network {item.name}"
        if isinstance(item, st.Block):
            params = ", ".join(p.name + (f"={expr(p.default)}" if p.default is not None else "") for p in item.params)
            return f"block {item.name}({params})" if item.params else f"block {item.name}"
        if isinstance(item, st.Section):
            return item.kind + (f" {item.name}" if item.name else "")
        if isinstance(item, st.Repeat):
            return f"repeat {expr(item.count)}"
        if isinstance(item, st.Residual):
            return "residual"
        return None

    def _body(self, item: Any) -> tuple[list[Any], int]:
        if isinstance(item, st.Section):
            return list(item.entries), item.span.end_line
        return list(item.body.steps), item.body.span.end_line

    def _simple(self, item: Any) -> str:
        if isinstance(item, st.Version):
            return f"version {item.number.raw}"
        if isinstance(item, st.Let):
            return f"let {item.name} = {expr(item.value)}"
        if isinstance(item, st.Input):
            return f"input {expr(item.shape)}"
        if isinstance(item, st.Chain):
            return " -> ".join(call(c) for c in item.calls)
        return entry(item)


def _braced(item: Any) -> bool:
    return isinstance(item, (st.Network, st.Block, st.Section))


__all__ = ["args", "call", "entry", "expr", "format_text"]
