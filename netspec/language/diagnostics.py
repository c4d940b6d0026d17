"""One error type and one renderer, shared by the CLI and the language server."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable, Literal

if TYPE_CHECKING:
    from netspec.language.span import Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """A message about a span of a spec. Lines and columns are 1-based; ends are exclusive."""

    code: str
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    severity: Severity = "error"
    hint: str | None = None
    file: str = "<input>"
    origin: str | None = None  # source text when the span is not in `file` (a --set value)

    def to_json(self) -> dict[str, object]:
        """As `netspec check --format json` writes it."""
        data = asdict(self)
        data.pop("origin")
        return data


class SpecError(Exception):
    """Raised by the API (`netspec.load`, `loads`, `Spec.run`) when a spec has errors.

    `diagnostics` are the errors (and warnings) with their lines and columns; `str()` is exactly what
    `netspec check` prints for them (uncoloured), and `_repr_html_` the same, escaped, for Jupyter."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str] | None = None) -> None:
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})  # file -> text, for the underlined source lines
        super().__init__(render_all(self.diagnostics, self.sources))

    def _repr_html_(self) -> str:
        return render_html(self.diagnostics, self.sources)


class UsageError(Exception):
    """A problem with how netspec was called, or with what the machine offers (the CLI exits 2):
    not an error in the spec, so it has no location."""


def make(code: str, message: str, span: Span, hint: str | None = None, severity: Severity = "error") -> Diagnostic:
    """Build a diagnostic at a span (the file is filled in by the caller)."""
    return Diagnostic(
        code, message, span.line, span.column, span.end_line, span.end_column, severity, hint, origin=span.origin
    )


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diags)


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.origin or "", d.line, d.column, d.code)


def use_color(stream: object = sys.stdout) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") is not None:
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


_STYLES = {
    "error": "\033[1;31m",
    "warning": "\033[1;33m",
    "bold": "\033[1m",
    "blue": "\033[1;34m",
    "hint": "\033[1;36m",
    "reset": "\033[0m",
}


def render(d: Diagnostic, source: str, color: bool = False, lines: list[str] | None = None) -> str:
    """``path:line:col: error[NS123]: message``, the source line underlined, then the hint.
    ``lines``: ``source`` split at "\\n" (render_all splits each source once, not once per diagnostic).
    Control characters from the spec, a --set value or a file name are escaped, never sent to the terminal."""
    s = _STYLES if color else dict.fromkeys(_STYLES, "")
    where = escape(d.origin if d.origin is not None else d.file)
    head = f"{s['bold']}{where}:{d.line}:{d.column}:{s['reset']} "
    head += f"{s[d.severity]}{d.severity}[{escape(d.code)}]{s['reset']}: {s['bold']}{escape(d.message)}{s['reset']}"
    if d.origin is not None or lines is None:
        lines = (d.origin if d.origin is not None else source).split("\n")
    out = [head, *_excerpt(d, lines, s)]
    if d.hint:
        out.append(f"{' ' * _gutter(d)} {s['blue']}={s['reset']} {s['hint']}hint{s['reset']}: {escape(d.hint)}")
    return "\n".join(out)


def escape(text: str) -> str:
    """Text with its control (and other unprintable) characters written as Python escapes: ESC is `\\x1b`."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _gutter(d: Diagnostic) -> int:
    return len(str(d.line))


def _excerpt(d: Diagnostic, lines: list[str], s: dict[str, str]) -> list[str]:
    text = _source_line(lines, d.line)
    if text is None:
        return []
    width = _gutter(d)
    start = max(d.column - 1, 0)
    end = d.end_column - 1 if d.end_line == d.line else len(text)
    end = max(min(end, len(text)), start + 1)
    shown = text.expandtabs(1)[:200]
    marks = " " * min(start, 200) + "^" * max(1, min(end, 200) - min(start, 200))
    bar = f"{s['blue']}|{s['reset']}"
    return [
        f"{' ' * width} {bar}",
        f"{s['blue']}{d.line}{s['reset']} {bar} {shown}",
        f"{' ' * width} {bar} {s[d.severity]}{marks}{s['reset']}",
    ]


def _source_line(lines: list[str], line: int) -> str | None:
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1][:400].rstrip("\r")  # only the first 200 columns are shown
    return "".join(ch if ch.isprintable() or ch == "\t" else "\ufffd" for ch in text)


def render_all(diags: list[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    """All diagnostics as text, followed by a count line. Linear in the diagnostics: each source is split once."""
    split: dict[str, list[str]] = {}
    parts = []
    for d in diags:
        if d.file not in split:
            split[d.file] = sources.get(d.file, "").split("\n")
        parts.append(render(d, "", color, split[d.file]))
    errors = sum(d.severity == "error" for d in diags)
    warnings = len(diags) - errors
    if diags:
        parts.append(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
    return "\n\n".join(parts[:-1]) + ("\n\n" + parts[-1] if parts else "") if parts else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_html(diags: list[Diagnostic], sources: dict[str, str]) -> str:
    """`render_all` for a notebook: the same text, HTML-escaped, in a <pre>, each diagnostic's first line
    coloured by its severity."""
    import html

    colors = {"error": "#c62828", "warning": "#b26a00"}
    blocks = []
    for d in diags:
        head, _, rest = render(d, "", False, sources.get(d.file, "").split("\n")).partition("\n")
        styled = f'<span style="color:{colors[d.severity]};font-weight:bold">{html.escape(head)}</span>'
        blocks.append(styled + ("\n" + html.escape(rest) if rest else ""))
    errors = sum(d.severity == "error" for d in diags)
    count = f"{_plural(errors, 'error')}, {_plural(len(diags) - errors, 'warning')}"
    return '<pre class="netspec-diagnostics">' + "\n\n".join([*blocks, count]) + "</pre>"


def to_json(diags: list[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2)
