"""Positions and open documents: the one place where netspec's positions and LSP's meet.

netspec counts lines and columns from 1, in code points (Python string indices), with lines
separated by ``\\n``; LSP counts from 0, in UTF-16 code units unless the client negotiated UTF-8
or UTF-32. A document is split into lines at "\\n" (as netspec and Lark count lines); a line keeps
its trailing "\\r", which is not part of its content for LSP positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from lsprotocol import types as lsp

from netspec.language.diagnostics import Diagnostic
from netspec.language.span import Span

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def encoding_name(kind: object) -> str:
    """``utf-8``, ``utf-16`` or ``utf-32`` for a negotiated PositionEncodingKind (or its string)."""
    value = str(getattr(kind, "value", kind) or UTF16).lower()
    return value if value in (UTF8, UTF16, UTF32) else UTF16


def code_units(text: str, encoding: str = UTF16) -> int:
    """The length of ``text`` in the encoding's code units (lone surrogates count as one)."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def line_content(lines: Sequence[str], index: int) -> str:
    """Line ``index`` without its terminator: the \r of a \r\n ending is not part of it."""
    line = lines[index]
    return line[:-1] if index < len(lines) - 1 and line.endswith("\r") else line


def to_lsp_character(content: str, column: int, encoding: str = UTF16) -> int:
    """A 0-based code-point index into a line's content as LSP code units (clamped to the content)."""
    return code_units(content[: max(0, min(column, len(content)))], encoding)


def from_lsp_character(content: str, character: int, encoding: str = UTF16) -> int:
    """LSP code units into a line's content as a 0-based code-point index (clamped to the content).

    A position inside a character (between the halves of a surrogate pair) means that character."""
    character = max(0, character)
    if encoding == UTF32 or content.isascii():
        return min(character, len(content))
    units = 0
    for i, ch in enumerate(content):
        width = code_units(ch, encoding)
        if units + width > character:
            return i
        units += width
    return len(content)


def to_lsp_position(lines: Sequence[str], line: int, column: int, encoding: str = UTF16) -> lsp.Position:
    """netspec's 1-based (line, column) in code points -> an LSP position (clamped to the document)."""
    if not lines:
        return lsp.Position(line=0, character=0)
    index = min(max(line, 1), len(lines)) - 1
    if line > len(lines):  # past the end: the end of the last line
        column = len(lines[-1]) + 1
    return lsp.Position(line=index, character=to_lsp_character(line_content(lines, index), column - 1, encoding))


def from_lsp_position(lines: Sequence[str], position: lsp.Position, encoding: str = UTF16) -> tuple[int, int]:
    """An LSP position -> netspec's 1-based (line, column) in code points (clamped to the document)."""
    if not lines:
        return 1, 1
    if position.line >= len(lines):
        return len(lines), len(lines[-1]) + 1
    index = max(position.line, 0)
    return index + 1, from_lsp_character(line_content(lines, index), position.character, encoding) + 1


def span_to_range(
    lines: Sequence[str], line: int, column: int, end_line: int, end_column: int, encoding: str = UTF16
) -> lsp.Range:
    """A netspec span (1-based, end exclusive, code points) as an LSP range."""
    start = to_lsp_position(lines, line, column, encoding)
    end = to_lsp_position(lines, end_line, end_column, encoding)
    if (end.line, end.character) < (start.line, start.character):
        end = start
    return lsp.Range(start=start, end=end)


def offset_of(lines: Sequence[str], line: int, column: int) -> int:
    """The string index of a 1-based (line, column) in the text that ``lines`` came from."""
    line = min(max(line, 1), len(lines))
    return sum(len(x) + 1 for x in lines[: line - 1]) + min(max(column - 1, 0), len(lines[line - 1]))


@dataclass
class Document:
    """An open document: its text, as the client sees it, and its version."""

    uri: str
    text: str
    version: int | None = None
    _lines: list[str] | None = field(default=None, repr=False)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    def offset(self, position: lsp.Position, encoding: str = UTF16) -> int:
        line, column = from_lsp_position(self.lines, position, encoding)
        return offset_of(self.lines, line, column)

    def apply(self, change: Any, encoding: str = UTF16) -> None:
        """Apply one ``contentChanges`` item: a whole new text, or a text for a range."""
        rng = getattr(change, "range", None)
        if rng is None:
            self.text = change.text
        else:
            start, end = self.offset(rng.start, encoding), self.offset(rng.end, encoding)
            start, end = min(start, end), max(start, end)
            self.text = self.text[:start] + change.text + self.text[end:]
        self._lines = None

    def range(self, span: Span | Diagnostic, encoding: str = UTF16) -> lsp.Range:
        return span_to_range(self.lines, span.line, span.column, span.end_line, span.end_column, encoding)

    def whole(self, encoding: str = UTF16) -> lsp.Range:
        last = len(self.lines) - 1
        end = lsp.Position(line=last, character=code_units(self.lines[last], encoding))
        return lsp.Range(start=lsp.Position(line=0, character=0), end=end)


# --- diagnostics ---------------------------------------------------------------------------------


def to_lsp_diagnostic(d: Diagnostic, doc: Document, encoding: str = UTF16) -> lsp.Diagnostic:
    """A netspec diagnostic as LSP shows it: code `NS010`, source "netspec", the hint on its own line."""
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    severity = lsp.DiagnosticSeverity.Error if d.severity == "error" else lsp.DiagnosticSeverity.Warning
    data = {"hint": d.hint} if d.hint else None
    return lsp.Diagnostic(
        range=doc.range(d, encoding), message=message, severity=severity, code=d.code, source="netspec", data=data
    )
