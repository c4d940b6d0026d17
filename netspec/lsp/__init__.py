"""``netspec lsp``: a Language Server Protocol server for ``.net`` specs, over stdio (pygls 2).

Diagnostics are exactly those of ``netspec check`` (the same pipeline, codes, messages and
hints), published on open and after every change; hover, completion, go to definition,
document symbols, formatting (``netspec fmt``) and signature help come from the syntax tree,
the checker's trace and the registries.

Positions: netspec counts lines and columns from 1, in code points (Python string indices),
with lines separated by ``\\n``; LSP counts from 0, in UTF-16 code units unless the client
negotiated UTF-8 or UTF-32. The functions in the first part of this module are the only
place where the two meet.

The server never dies on bad input: every handler is wrapped so that an exception becomes a
logged error (and an empty answer), malformed requests get an error response, unknown
methods get "method not found", and garbage on stdin is skipped. Torch is never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence, TypeVar, get_args, get_origin

import attrs
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from netspec import __version__
from netspec.ir.check import Options
from netspec.ir.nodes import Dataset, Train
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic
from netspec.language.parse import parse as parse_text
from netspec.language.span import Span
from netspec.registry import (
    ACTIVATIONS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    SCHEDULES,
    SOURCES,
    TRANSFORMS,
    EarlyStopping,
    Registry,
)
from netspec.registry.base import Op, fmt_shape, format_value

log = logging.getLogger("netspec.lsp")

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"
KEYWORDS_TOP = ("version", "let", "block", "network", "dataset", "train")
KEYWORDS_BODY = ("input", "repeat", "residual")
SECTION_KEYS_SKIPPED = ("kind", "span", "name", "transforms")
MAX_SHAPES_SHOWN = 6  # a layer inside a block used many times: its first few distinct shapes

T = TypeVar("T")


# --- positions ---------------------------------------------------------------------------------
#
# A document is split into lines at "\n" (as netspec and Lark count lines); a line keeps its
# trailing "\r", which is not part of its content for LSP positions.


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


# --- analysis: a compiled document and what the features need from it ------------------------


@dataclass
class Analysis:
    """The compile result of one text, with indexes by source span built on first use."""

    text: str
    result: Any  # netspec.ir.pipeline.Result
    _lines: list[str] | None = field(default=None, repr=False)
    _layers: dict[tuple[int, int, int, int], list[Any]] | None = field(default=None, repr=False)
    _composites: dict[tuple[int, int, int, int], list[Any]] | None = field(default=None, repr=False)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    @property
    def module(self) -> st.Module | None:
        return self.result.module  # type: ignore[no-any-return]

    @property
    def items(self) -> tuple[st.Top, ...]:
        return self.module.items if self.module is not None else ()

    def layers_at(self, span: Span) -> list[Any]:
        """The checked layers (with shapes) of a call: several when its block is used several times."""
        if self._layers is None:
            self._layers = {}
            trace = self.result.trace
            for s, layer in trace.layers if trace is not None else ():
                self._layers.setdefault(_key(s), []).append(layer)
        return self._layers.get(_key(span), [])

    def composites_at(self, span: Span) -> list[Any]:
        """The checked block uses, repeats and residuals written at ``span``."""
        if self._composites is None:
            self._composites = {}
            trace = self.result.trace
            for net in trace.networks.values() if trace is not None else ():
                for node in _walk_ir(net.steps):
                    self._composites.setdefault(_key(node.span), []).append(node)
        return self._composites.get(_key(span), [])

    def constant(self, name: str) -> tuple[bool, Any]:
        trace = self.result.trace
        if trace is not None and name in trace.constants:
            return True, trace.constants[name][1]
        return False, None

    def network(self, name: str) -> Any:
        trace = self.result.trace
        return trace.networks.get(name) if trace is not None else None


def analyze(text: str, file: str = "<input>", options: Options = Options(), parser: Any = None) -> Analysis:
    from netspec.ir.pipeline import compile_text

    if parser is None:
        from netspec.language.parse import parse as parser
    return Analysis(text, compile_text(text, file, options=options, parser=parser))


# --- a memoized parse: the server re-parses only the top-level chunk that an edit touched ----------

_TOP_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[\[\](){}]|\n')


def split_chunks(text: str) -> list[tuple[int, str]] | None:
    """The text cut after each line that closes a top-level `{ ... }` (strings and comments skipped),
    as (first line, chunk) pairs whose concatenation is the text; None when brackets do not balance.
    Never cut after a line ending in `\\` (a line continuation)."""
    chunks: list[tuple[int, str]] = []
    depth, start, line, first, closed = 0, 0, 1, 1, False
    for m in _TOP_SCAN.finditer(text):
        ch = m.group()
        if ch == "\n":
            line += 1
            if depth == 0 and closed and not text[start : m.start()].rstrip("\r").endswith("\\"):
                chunks.append((first, text[start : m.end()]))
                start, first = m.end(), line
            closed = False
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return None
            closed = closed or (depth == 0 and ch == "}")
    if depth:
        return None
    chunks.append((first, text[start:]))
    return chunks


class ChunkedParse:
    """``netspec.language.parse.parse``, memoized per top-level chunk: each chunk is parsed alone, padded with
    new lines so that its positions are those in the whole text, and the trees are joined.

    The result is the whole-text parse's whenever every chunk parses without a diagnostic (a chunk
    holds whole statements, with every bracket closed, so it parses the same alone); otherwise, and
    for anything unusual, the whole text is parsed as usual. A 300-line spec edited in one place
    re-parses one chunk instead of 300 lines."""

    def __init__(self, parse: Callable[..., Any], size: int = 1024) -> None:
        self.parse = parse
        self.size = size
        self.cache: dict[tuple[int, str], tuple[tuple[st.Top, ...], tuple[st.Comment, ...]]] = {}
        self.lock = threading.Lock()

    def __call__(self, text: str, *args: Any, **kwargs: Any) -> Any:
        from netspec.language.parse import MAX_SOURCE

        chunks = split_chunks(text) if not args and not kwargs and len(text) <= MAX_SOURCE else None
        if chunks is None or len(chunks) < 2:
            return self.parse(text, *args, **kwargs)
        items: list[st.Top] = []
        comments: list[st.Comment] = []
        for first, chunk in chunks:
            key = (first, chunk)
            with self.lock:
                found = self.cache.pop(key, None)
            if found is None:
                module, diags = self.parse("\n" * (first - 1) + chunk)
                if module is None or diags:  # errors: their messages and recovery need the whole text
                    return self.parse(text)
                found = (module.items, module.comments)
            with self.lock:
                self.cache[key] = found  # most recently used last
                while len(self.cache) > self.size:
                    del self.cache[next(iter(self.cache))]
            items += found[0]
            comments += found[1]
        return st.Module(tuple(items), tuple(comments)), []


def _key(span: Span) -> tuple[int, int, int, int]:
    return (span.line, span.column, span.end_line, span.end_column)


def _walk_ir(steps: Iterable[Any]) -> Iterator[Any]:
    """Every block use, repeat and residual in IR steps, outermost first (no recursion limits:
    the checker bounds the nesting)."""
    todo = list(steps)
    while todo:
        node = todo.pop()
        kind = getattr(node, "kind", None)
        if kind in ("block", "residual"):
            yield node
            todo.extend(node.steps)
        elif kind == "repeat":
            yield node
            for it in node.iterations:
                todo.extend(it)


# --- what is under the cursor --------------------------------------------------------------------


def _inside(span: Span | None, line: int, column: int) -> bool:
    """Whether (line, column) is in the span, its end included (a cursor just after a word is on it)."""
    if span is None:
        return False
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


@dataclass
class Hit:
    """What the cursor is on, and where it is."""

    kind: str  # layer | kwarg | name | let | network | block | param | key | value | composite
    span: Span
    node: Any = None
    call: st.Call | None = None  # for kwarg: the call; for value: the value's call, if any
    item: Any = None  # the enclosing top-level item (network, block, section, let)
    entry: st.Entry | None = None


def find(module: st.Module | None, line: int, column: int) -> Hit | None:
    """The innermost named thing at a 1-based position of the syntax tree."""
    if module is None:
        return None
    for item in module.items:
        if not _inside(item.span, line, column):
            continue
        if isinstance(item, st.Let):
            if _inside(item.name_span, line, column):
                return Hit("let", item.name_span, item, item=item)
            return _in_expr(item.value, line, column, item)
        if isinstance(item, st.Network):
            if _inside(item.name_span, line, column):
                return Hit("network", item.name_span, item, item=item)
            return _in_body(item.body, line, column, item)
        if isinstance(item, st.Block):
            if _inside(item.name_span, line, column):
                return Hit("block", item.name_span, item, item=item)
            for p in item.params:
                if _inside(p.span, line, column):
                    name_span = Span.at(p.span.line, p.span.column, p.span.line, p.span.column + len(p.name))
                    if _inside(name_span, line, column):
                        return Hit("param", name_span, p, item=item)
                    return _in_expr(p.default, line, column, item) if p.default is not None else None
            return _in_body(item.body, line, column, item)
        if isinstance(item, st.Section):
            for e in item.entries:
                if _inside(e.span, line, column):
                    return _in_entry(e, line, column, item)
            return None
    return None


def _in_body(body: st.Body, line: int, column: int, item: Any) -> Hit | None:
    for step in body.steps:
        if not _inside(step.span, line, column):
            continue
        if isinstance(step, st.Chain):
            for call in step.calls:
                if _inside(call.span, line, column):
                    if _inside(call.name_span, line, column):
                        return Hit("layer", call.name_span, call, call=call, item=item)
                    return _in_args(call, line, column, item)
        elif isinstance(step, st.Input):
            if _inside(step.shape.span, line, column):
                return _in_expr(step.shape, line, column, item)
            return Hit("composite", _keyword_span(step.span, "input"), step, item=item)
        elif isinstance(step, st.Repeat):
            if _inside(step.count.span, line, column):
                return _in_expr(step.count, line, column, item)
            if _inside(step.body.span, line, column):
                return _in_body(step.body, line, column, item)
            return Hit("composite", _keyword_span(step.span, "repeat"), step, item=item)
        elif isinstance(step, st.Residual):
            if _inside(step.body.span, line, column):
                return _in_body(step.body, line, column, item)
            return Hit("composite", _keyword_span(step.span, "residual"), step, item=item)
    return None


def _keyword_span(span: Span, word: str) -> Span:
    return Span.at(span.line, span.column, span.line, span.column + len(word))


def _in_args(call: st.Call, line: int, column: int, item: Any, entry: st.Entry | None = None) -> Hit | None:
    for arg in call.args or ():
        if arg.name_span is not None and _inside(arg.name_span, line, column):
            return Hit("kwarg", arg.name_span, arg, call=call, item=item, entry=entry)
        if _inside(arg.value.span, line, column):
            return _in_expr(arg.value, line, column, item, entry)
    return None


def _in_expr(e: st.Expr, line: int, column: int, item: Any, entry: st.Entry | None = None) -> Hit | None:
    """The name at a position inside an expression (iterative: expressions may nest deeply)."""
    todo: list[Any] = [e]
    while todo:
        x = todo.pop()
        if not _inside(x.span, line, column):
            continue
        if isinstance(x, st.Name):
            return Hit("name", x.span, x, item=item, entry=entry)
        if isinstance(x, st.Call):
            if _inside(x.name_span, line, column):
                return Hit("call", x.name_span, x, call=x, item=item, entry=entry)
            return _in_args(x, line, column, item, entry)
        if isinstance(x, st.ListExpr):
            todo.extend(x.items)
        elif isinstance(x, st.BinOp):
            todo.extend((x.left, x.right))
        elif isinstance(x, st.Neg):
            todo.append(x.operand)
    return None


def _in_entry(e: st.Entry, line: int, column: int, section: st.Section) -> Hit | None:
    if _inside(e.key_span, line, column):
        return Hit("key", e.key_span, e, item=section, entry=e)
    if e.args is not None:
        for arg in e.args:
            if arg.name_span is not None and _inside(arg.name_span, line, column):
                call = st.Call(e.key, e.args, e.span, e.key_span)
                return Hit("kwarg", arg.name_span, arg, call=call, item=section, entry=e)
            if _inside(arg.value.span, line, column):
                return _in_expr(arg.value, line, column, section, e)
    for v in e.values:
        if not _inside(v.span, line, column):
            continue
        if isinstance(v, st.Name):
            return Hit("value", v.span, v, item=section, entry=e)
        if isinstance(v, st.Call):
            if _inside(v.name_span, line, column):
                return Hit("value", v.name_span, v, call=v, item=section, entry=e)
            return _in_args(v, line, column, section, e)
        return _in_expr(v, line, column, section, e)
    return None


# --- the registry: which class a name means where it is written --------------------------------

_VALUE_REGISTRIES: dict[str, Registry[Any]] = {
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "metrics": METRICS,
    "source": SOURCES,
}


def entry_class(section: str, key: str, name: str | None) -> type[Op] | None:
    """The registry class of ``name`` written as the value of ``key`` (or of ``key(...)`` itself)."""
    if name is None:  # `key(...)`: a transform or early_stopping
        if section == "dataset":
            return TRANSFORMS.get(key)  # type: ignore[no-any-return]
        return EarlyStopping if section == "train" and key == "early_stopping" else None
    registry = _VALUE_REGISTRIES.get(key)
    if registry is None or (key == "source") != (section == "dataset"):
        return None
    return registry.get(name)  # type: ignore[no-any-return]


def _any_class(name: str) -> type[Op] | None:
    for registry in (LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, METRICS, SOURCES, TRANSFORMS):
        cls = registry.get(name)
        if cls is not None:
            return cls  # type: ignore[no-any-return]
    return EarlyStopping if name == "early_stopping" else None


def _what(cls: type[Op]) -> str:
    if cls is EarlyStopping:
        return "early stopping"
    for registry in (LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, METRICS, SOURCES, TRANSFORMS):
        if registry.get(cls.kind_name()) is cls:
            if registry is LAYERS:
                return str(getattr(cls, "category", "layer"))
            return registry.what
    return "entry"


def _block_for(a: Analysis, name: str) -> st.Block | None:
    return next((x for x in a.items if isinstance(x, st.Block) and x.name == name), None)


def _class_of_call(a: Analysis, hit: Hit) -> type[Op] | st.Block | None:
    """What a call under the cursor (or holding the keyword argument under it) calls."""
    call = hit.call
    if call is None:
        return None
    if isinstance(hit.item, st.Section):
        e = hit.entry
        if e is None:
            return None
        if call.name_span == e.key_span:  # `key(...)`
            return entry_class(hit.item.kind, e.key, None)
        return entry_class(hit.item.kind, e.key, call.name)
    if isinstance(hit.item, (st.Network, st.Block)):
        block = _block_for(a, call.name)
        return block if block is not None else LAYERS.get(call.name)
    return None


# --- markdown --------------------------------------------------------------------------------------


def _count(n: int) -> str:
    return f"{n:,} parameter{'' if n == 1 else 's'}"


def _shapes_line(node: Any) -> str:
    shapes = f"input `{fmt_shape(node.input_shape)}` → output `{fmt_shape(node.output_shape)}`"
    return f"{shapes} · {_count(node.params or 0)}"


def _shapes(nodes: list[Any]) -> list[str]:
    seen: list[str] = []
    for node in nodes:
        line = _shapes_line(node)
        if line not in seen:
            seen.append(line)
    shown = seen[:MAX_SHAPES_SHOWN]
    if len(seen) > len(shown):
        shown.append(f"… and {len(seen) - len(shown)} more")
    if len(nodes) > 1:
        shown = [f"used {len(nodes)} times:"] + [f"- {s}" for s in shown]
    return shown


def class_markdown(cls: type[Op]) -> str:
    """Signature, kind and documentation of a registry entry."""
    parts = [f"```netspec\n{cls.signature()}\n```", f"*{_what(cls)}* — {cls.doc()}"]
    expects = getattr(cls, "expects", None)
    if expects and expects != "any input" and _what(cls) == "layer":
        parts.append(f"Input: {expects}.")
    return "\n\n".join(parts)


def param_markdown(name: str, f: Any) -> str:
    from netspec.ir.values import describe_field

    default = "required" if f.is_required() else f"default `{format_value(f.default)}`"
    text = f"**{name}**: {describe_field(f)} ({default})"
    return text + (f"\n\n{f.description}" if f.description else "")


def _value_markdown(value: Any) -> str:
    from netspec.ir.values import INVALID

    if value is INVALID:
        return "(invalid: see the diagnostics)"
    return f"`{format_value(list(value) if isinstance(value, tuple) else value)}`"


def _network_markdown(a: Analysis, name: str) -> str:
    net = a.network(name)
    head = f"```netspec\nnetwork {name}\n```"
    if net is None:
        return head + "\n\nshapes and parameters appear when the network checks without errors"
    return head + "\n\n" + _shapes_line(net)


def _block_head(block: st.Block) -> str:
    from netspec.tools.fmt import expr

    params = ", ".join(p.name + (f"={expr(p.default)}" if p.default is not None else "") for p in block.params)
    return f"block {block.name}({params})" if block.params else f"block {block.name}"


def _block_markdown(a: Analysis, block: st.Block, uses: list[Any] | None = None) -> str:
    parts = [f"```netspec\n{_block_head(block)}\n```"]
    if uses is None:
        uses = [n for net in _networks(a) for n in _walk_ir(net.steps) if n.kind == "block" and n.name == block.name]
    if uses:
        parts.append("\n".join(_shapes(uses)))
    return "\n\n".join(parts)


def _networks(a: Analysis) -> list[Any]:
    trace = a.result.trace
    return list(trace.networks.values()) if trace is not None else []


def _key_markdown(section: str, key: str) -> str | None:
    model: Any = Dataset if section == "dataset" else Train
    f = model.model_fields.get(key)
    if f is None or key in ("kind", "span", "name"):
        return None
    return f"`{key}` — {_key_type(key, f)}" + (f"\n\n{f.description}" if f.description else "")


def _key_type(key: str, f: Any) -> str:
    from netspec.ir.values import describe_field

    if key in _VALUE_REGISTRIES:
        return f"a {_VALUE_REGISTRIES[key].what}" + (" list" if key == "metrics" else "")
    if key == "early_stopping":
        return "`early_stopping(...)`"
    if key == "model":
        return "a network name"
    default = "" if f.is_required() or f.default is None else f" (default `{format_value(f.default)}`)"
    return describe_field(f) + default


# --- hover -------------------------------------------------------------------------------------


def hover_markdown(a: Analysis, line: int, column: int) -> tuple[str, Span] | None:
    """Markdown for the thing at a 1-based position, and its span."""
    hit = find(a.module, line, column)
    if hit is None:
        return None
    text = _hover_text(a, hit)
    return (text, hit.span) if text else None


def _hover_text(a: Analysis, hit: Hit) -> str | None:
    if hit.kind == "layer" and hit.call is not None:
        return _call_hover(a, hit.call)
    if hit.kind == "composite":
        step = hit.node
        if isinstance(step, st.Input):
            net = a.network(hit.item.name) if isinstance(hit.item, st.Network) else None
            return "`input` — the shape of one sample (batch excluded)" + (
                f": `{fmt_shape(net.input_shape)}`" if net is not None else ""
            )
        word = "repeat" if isinstance(step, st.Repeat) else "residual"
        nodes = a.composites_at(step.span)
        about = "the body, expanded N times" if word == "repeat" else "y = x + body(x)"
        return "\n\n".join([f"`{word}` — {about}", *(["\n".join(_shapes(nodes))] if nodes else [])])
    if hit.kind == "network":
        return _network_markdown(a, hit.node.name)
    if hit.kind == "block":
        return _block_markdown(a, hit.node)
    if hit.kind == "let":
        known, value = a.constant(hit.node.name)
        return f"```netspec\nlet {hit.node.name}\n```\n\nvalue: " + (_value_markdown(value) if known else "unknown")
    if hit.kind == "param" and isinstance(hit.item, st.Block):
        return f"parameter `{hit.node.name}` of block `{hit.item.name}`"
    if hit.kind == "name":
        return _name_hover(a, hit)
    if hit.kind == "kwarg":
        return _kwarg_hover(a, hit)
    if hit.kind == "key" and isinstance(hit.item, st.Section) and hit.entry is not None:
        cls = entry_class(hit.item.kind, hit.entry.key, None)
        if cls is not None:
            return class_markdown(cls)
        return _key_markdown(hit.item.kind, hit.entry.key)
    if hit.kind == "value" and isinstance(hit.item, st.Section) and hit.entry is not None:
        name = hit.node.name if isinstance(hit.node, st.Call) else hit.node.id
        if hit.entry.key == "model" and hit.item.kind == "train":
            return _network_markdown(a, name)
        cls = entry_class(hit.item.kind, hit.entry.key, name)
        return class_markdown(cls) if cls is not None else None
    if hit.kind == "call" and hit.call is not None:  # a call inside an expression (a metric list, ...)
        cls = _any_class(hit.call.name)
        return class_markdown(cls) if cls is not None else None
    return None


def _call_hover(a: Analysis, call: st.Call) -> str | None:
    block = _block_for(a, call.name)
    if block is not None:
        return _block_markdown(a, block, a.composites_at(call.span) or None)
    cls = LAYERS.get(call.name)
    if cls is None:
        return None
    parts = [class_markdown(cls)]
    layers = a.layers_at(call.span)
    if layers:
        parts.append("\n".join(_shapes(layers)))
    return "\n\n".join(parts)


def _name_hover(a: Analysis, hit: Hit) -> str | None:
    name = hit.node.id
    if isinstance(hit.item, st.Block) and any(p.name == name for p in hit.item.params):
        return f"parameter `{name}` of block `{hit.item.name}`"
    known, value = a.constant(name)
    if known:
        return f"```netspec\nlet {name}\n```\n\nvalue: {_value_markdown(value)}"
    cls = _any_class(name)
    return class_markdown(cls) if cls is not None else None


def _kwarg_hover(a: Analysis, hit: Hit) -> str | None:
    target = _class_of_call(a, hit)
    name = hit.node.name
    if isinstance(target, st.Block):
        return f"parameter `{name}` of block `{target.name}`"
    if target is None:
        return None
    f = target.parameters().get(name)
    return param_markdown(name, f) if f is not None else None


# --- go to definition ----------------------------------------------------------------------------


def definition(a: Analysis, line: int, column: int) -> Span | None:
    """Where the block, network, constant or block parameter at a position is defined."""
    hit = find(a.module, line, column)
    if hit is None:
        return None
    if hit.kind in ("let", "network", "block", "param"):
        return hit.span
    if hit.kind == "layer" and hit.call is not None:
        block = _block_for(a, hit.call.name)
        return block.name_span if block is not None else None
    if hit.kind == "kwarg":
        target = _class_of_call(a, hit)
        if isinstance(target, st.Block):
            p = next((p for p in target.params if p.name == hit.node.name), None)
            return _param_span(p) if p is not None else None
        return None
    if hit.kind == "value" and hit.entry is not None and hit.entry.key == "model" and isinstance(hit.node, st.Name):
        net = next((x for x in a.items if isinstance(x, st.Network) and x.name == hit.node.id), None)
        return net.name_span if net is not None else None
    if hit.kind == "name":
        name = hit.node.id
        if isinstance(hit.item, st.Block):
            p = next((p for p in hit.item.params if p.name == name), None)
            if p is not None:
                return _param_span(p)
        let = next((x for x in a.items if isinstance(x, st.Let) and x.name == name), None)
        return let.name_span if let is not None else None
    return None


def _param_span(p: st.Param) -> Span:
    return Span.at(p.span.line, p.span.column, p.span.line, p.span.column + len(p.name))


# --- document symbols ----------------------------------------------------------------------------


def symbols(a: Analysis, encoding: str = UTF16) -> list[lsp.DocumentSymbol]:
    """The outline: networks, blocks, constants, the dataset and train sections (with their keys)."""
    from netspec.tools.fmt import entry as entry_text
    from netspec.tools.fmt import expr

    doc = Document("", a.text)
    out: list[lsp.DocumentSymbol] = []

    def sym(name: str, kind: lsp.SymbolKind, span: Span, sel: Span, detail: str | None = None) -> lsp.DocumentSymbol:
        rng, sel_rng = doc.range(span, encoding), doc.range(sel, encoding)
        if not _contains(rng, sel_rng):
            sel_rng = lsp.Range(start=rng.start, end=rng.start)
        return lsp.DocumentSymbol(name=name, kind=kind, range=rng, selection_range=sel_rng, detail=detail)

    for item in a.items:
        if isinstance(item, st.Network):
            net = a.network(item.name)
            detail = None
            if net is not None:
                detail = f"{fmt_shape(net.input_shape)} → {fmt_shape(net.output_shape)}, {_count(net.params)}"
            out.append(sym(item.name, lsp.SymbolKind.Class, item.span, item.name_span, detail))
        elif isinstance(item, st.Block):
            params = ", ".join(p.name + (f"={expr(p.default)}" if p.default is not None else "") for p in item.params)
            out.append(sym(item.name, lsp.SymbolKind.Function, item.span, item.name_span, f"({params})"))
        elif isinstance(item, st.Let):
            out.append(sym(item.name, lsp.SymbolKind.Constant, item.span, item.name_span, f"= {expr(item.value)}"))
        elif isinstance(item, st.Section):
            head = sym(
                item.kind + (f" {item.name}" if item.name else ""),
                lsp.SymbolKind.Namespace if item.kind == "dataset" else lsp.SymbolKind.Object,
                item.span,
                _keyword_span(item.span, item.kind),
            )
            head.children = [
                sym(e.key, lsp.SymbolKind.Property, e.span, e.key_span, entry_text(e)[len(e.key) :].strip() or None)
                for e in item.entries
            ]
            out.append(head)
    return out


def _contains(outer: lsp.Range, inner: lsp.Range) -> bool:
    def pos(p: lsp.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return pos(outer.start) <= pos(inner.start) and pos(inner.end) <= pos(outer.end)


# --- formatting --------------------------------------------------------------------------------


def formatting(doc: Document, encoding: str = UTF16) -> list[lsp.TextEdit]:
    """``netspec fmt`` as one edit of the whole document; none when it has syntax errors or is formatted."""
    from netspec.tools.fmt import format_text

    formatted, _ = format_text(doc.text)
    if formatted is None or formatted == doc.text:
        return []
    return [lsp.TextEdit(range=doc.whole(encoding), new_text=formatted)]


# --- the cursor's context, from the text (it is being edited: it may not parse) --------------------

_SCAN = re.compile(
    r'(?P<str>"(?:[^"\\\n]|\\.)*(?P<close>")?)|(?P<com>#[^\n]*)|(?P<open>[\[({])|(?P<shut>[\])}])|(?P<sep>[\n;])'
)
_SECTION = re.compile(r"\b(network|block|dataset|train)\b(?!.*\b(?:network|block|dataset|train)\b)")
_WORD = re.compile(r"[A-Za-z_]\w*$")


@dataclass
class Context:
    """Where the cursor is, as far as completion and signature help are concerned."""

    section: str = "top"  # top | network | block | dataset | train
    header: str = ""  # the line that opened the section, up to its `{`
    statement: str = ""  # the current statement up to the cursor (comments removed), outside brackets
    in_comment: bool = False
    in_string: bool = False
    bracket: str | None = None  # the innermost open `(` or `[`, if any
    callee: str | None = None  # the name before that `(`
    callee_statement: str = ""  # the statement that the call stands in, before the callee's name
    args: str = ""  # the text between that `(` and the cursor


def context_at(text: str, offset: int) -> Context:
    """The cursor context at a string index of ``text``."""
    before = text[: max(0, min(offset, len(text)))]
    stack: list[tuple[str, int]] = []
    stmt_start = 0
    in_comment = in_string = False
    for m in _SCAN.finditer(before):
        kind = m.lastgroup if m.lastgroup != "close" else "str"
        if kind == "str":
            in_string = m.group("close") is None and m.end() == len(before)
        elif kind == "com":
            in_comment = m.end() == len(before)
        elif kind == "open":
            stack.append((m.group(), m.start()))
            if m.group() == "{":
                stmt_start = m.end()
        elif kind == "shut":
            _close(stack, m.group())
            if m.group() == "}":
                stmt_start = m.end()
        elif not stack or stack[-1][0] == "{":  # a separator outside ( and [
            stmt_start = m.end()
    ctx = Context(in_comment=in_comment, in_string=in_string)
    braces = [pos for ch, pos in stack if ch == "{"]
    if braces:
        header = before[before.rfind("\n", 0, braces[0]) + 1 : braces[0]]
        ctx.header = _strip_comments(header)
        section = _SECTION.search(ctx.header)
        ctx.section = section.group(1) if section else "network"
    inner = stack[-1] if stack and stack[-1][0] in "([" else None
    if inner is not None:
        ctx.bracket = inner[0]
        # the innermost call's arguments (a `[` inside a call is still in it)
        calls = [pos for ch, pos in stack if ch == "("]
        if calls:
            call_pos = calls[-1]
            head = before[max(stmt_start, 0) : call_pos].rstrip()
            words = _WORD.search(head)
            if words is not None:
                ctx.callee = words.group()
                ctx.callee_statement = _strip_comments(head[: words.start()])
                ctx.args = before[call_pos + 1 :]
    else:
        ctx.statement = _strip_comments(before[stmt_start:])
    return ctx


def _close(stack: list[tuple[str, int]], ch: str) -> None:
    """Pop to the matching bracket; a `}` also drops brackets left open inside its body."""
    want = {")": "(", "]": "[", "}": "{"}[ch]
    for i in range(len(stack) - 1, -1, -1):
        if stack[i][0] == want:
            del stack[i:]
            return
        if stack[i][0] == "{":  # a `)` or `]` never closes across a brace
            return


def _strip_comments(text: str) -> str:
    return re.sub(r'("(?:[^"\\\n]|\\.)*"?)|#[^\n]*', lambda m: m.group(1) or "", text)


def split_args(args: str) -> list[str]:
    """The arguments written so far, split at top-level commas (the last one is being typed)."""
    parts, depth, start = [], 0, 0
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[][(){},]', args):
        ch = m.group()
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(args[start : m.start()])
            start = m.end()
    parts.append(args[start:])
    return parts


_KWARG = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)")


def _names_in(text: str, keyword: str) -> list[str]:
    """Names defined by `keyword NAME` statements, in order, found in the text."""
    found = re.findall(rf"(?:^|[;{{}}])[ \t]*{keyword}[ \t]+([A-Za-z_]\w*)", text, re.M)
    return list(dict.fromkeys(found))


def block_params(text: str, name: str) -> list[tuple[str, str | None]] | None:
    """The parameters (name, default text) of `block NAME(...)` in the text; None if no such block."""
    m = re.search(rf"(?:^|[;{{}}])[ \t]*block[ \t]+{re.escape(name)}\b[ \t]*(\(([^)]*)\))?", text, re.M)
    if m is None:
        return None
    out: list[tuple[str, str | None]] = []
    for part in split_args(_strip_comments(m.group(2) or "")):
        if not part.strip():
            continue
        pname, _, default = part.partition("=")
        out.append((pname.strip(), default.strip() or None))
    return out


# --- completion ----------------------------------------------------------------------------------

Item = lsp.CompletionItem
Kind = lsp.CompletionItemKind


def _md(text: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)


def _class_item(cls: type[Op], kind: lsp.CompletionItemKind, order: str) -> Item:
    return Item(
        label=cls.kind_name(),
        kind=kind,
        detail=cls.signature(),
        documentation=_md(class_markdown(cls)),
        sort_text=order,
    )


@functools.cache
def _registry_items(name: str) -> tuple[Item, ...]:
    """Completion items of a registry (or of the layers, the activations, the keywords), built once."""
    if name == "layers":
        layers = [c for c in LAYERS.entries.values() if c.category != "activation"]
        return tuple(_class_item(c, Kind.Function, f"1{i:03d}") for i, c in enumerate(layers))
    if name == "activations":
        acts = [LAYERS.entries[n] for n in ACTIVATIONS]
        return tuple(_class_item(c, Kind.Function, f"1{i:03d}") for i, c in enumerate(acts))
    if name in ("dataset keys", "train keys"):
        model: Any = Dataset if name == "dataset keys" else Train
        section = name.split()[0]
        return tuple(
            Item(
                label=k,
                kind=Kind.Property,
                detail=_key_type(k, f),
                documentation=_md(_key_markdown(section, k) or ""),
                sort_text=f"0{i:03d}",
            )
            for i, (k, f) in enumerate(model.model_fields.items())
            if k not in SECTION_KEYS_SKIPPED
        )
    registries: dict[str, Registry[Any]] = {
        "transforms": TRANSFORMS,
        "loss": LOSSES,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "metrics": METRICS,
        "source": SOURCES,
    }
    entries = registries[name].entries.values()
    return tuple(_class_item(c, Kind.Function, f"1{i:03d}") for i, c in enumerate(entries))


def _keywords(words: Iterable[str], order: str = "2") -> list[Item]:
    return [Item(label=w, kind=Kind.Keyword, sort_text=f"{order}{w}") for w in words]


def _regroup(items: Iterable[Item], order: str) -> list[Item]:
    return [attrs.evolve(i, sort_text=order + (i.sort_text or "")) for i in items]


def completion(text: str, offset: int, last: Analysis | None = None) -> list[Item]:
    """Completion items at a string index of a document's current text.

    The context comes from the text alone (it is usually mid-edit); ``last``, the latest compile
    result (perhaps of an older text), only adds constant values to the items."""
    ctx = context_at(text, offset)
    if ctx.in_comment or ctx.in_string:
        return []
    if ctx.bracket is not None:
        return _complete_in_brackets(text, ctx, last)
    stmt = ctx.statement
    if ctx.section in ("network", "block"):
        if re.fullmatch(r"\s*\w*", stmt):
            return [*_layers_and_blocks(text, "1"), *_keywords(KEYWORDS_BODY)]
        if re.search(r"->\s*\w*$", stmt):
            return [*_regroup(_registry_items("activations"), "0"), *_layers_and_blocks(text, "1", activations=False)]
        if re.fullmatch(r"\s*(repeat|input)\s+[\w\s*+\-/%]*", stmt):
            return _values(text, ctx, last)
        return []
    if ctx.section in ("dataset", "train"):
        return _complete_section(text, ctx, last)
    if re.fullmatch(r"\s*\w*", stmt):
        return _keywords(KEYWORDS_TOP, "0")
    let = re.fullmatch(r"\s*let\s+(\w+)\s*=.*", stmt, re.S)
    if let is not None:  # a constant's value: the other constants
        return [i for i in _values(text, ctx, last) if i.label != let.group(1)]
    return []


def _layers_and_blocks(text: str, order: str, activations: bool = True) -> list[Item]:
    items = _regroup(_registry_items("layers"), order)
    if activations:
        items += _regroup(_registry_items("activations"), order)
    for name in _names_in(text, "block"):
        params = block_params(text, name) or []
        sig = f"{name}({', '.join(p if d is None else f'{p}={d}' for p, d in params)})" if params else name
        items.append(Item(label=name, kind=Kind.Class, detail=f"block {sig}", sort_text=f"0{name}"))
    return items


def _complete_section(text: str, ctx: Context, last: Analysis | None) -> list[Item]:
    stmt = ctx.statement
    if re.fullmatch(r"\s*\w*", stmt):
        if ctx.section == "dataset":
            return [*_registry_items("dataset keys"), *_registry_items("transforms")]
        return list(_registry_items("train keys"))
    m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s+(.*)", stmt, re.S)
    if m is None:
        return []
    key, rest = m.group(1), m.group(2)
    if key in _VALUE_REGISTRIES and (key == "source") == (ctx.section == "dataset"):
        if key == "metrics" and re.fullmatch(r"(.*,\s*)?\w*", rest, re.S):
            return list(_registry_items("metrics"))
        if re.fullmatch(r"\w*", rest):
            return list(_registry_items(key))
        return []
    if ctx.section == "train" and key == "model":
        if not re.fullmatch(r"\w*", rest):
            return []
        return [Item(label=n, kind=Kind.Module, detail="network") for n in _names_in(text, "network")]
    model: Any = Dataset if ctx.section == "dataset" else Train
    f = model.model_fields.get(key)
    if f is None or key in SECTION_KEYS_SKIPPED:
        return []
    return _literal_items(f.annotation) + _values(text, ctx, last)


def _literal_items(annotation: Any) -> list[Item]:
    """`true`/`false` for a flag, the choices of a Literal (e.g. padding "same")."""
    out: list[Item] = []
    todo = [annotation]
    while todo:
        t = todo.pop()
        if t is bool:
            out += [Item(label=w, kind=Kind.Value, sort_text=f"0{w}") for w in ("true", "false")]
        elif get_origin(t) is Literal:
            out += [
                Item(label=format_value(v), kind=Kind.EnumMember, sort_text=f"0{i:03d}")
                for i, v in enumerate(get_args(t))
                if isinstance(v, str)
            ]
        else:
            todo.extend(get_args(t))
    return out


def _values(text: str, ctx: Context, last: Analysis | None) -> list[Item]:
    """Names that may stand in an expression: constants, and a block's parameters inside it."""
    items = []
    for name in _names_in(text, "let"):
        known, value = last.constant(name) if last is not None else (False, None)
        detail = f"= {_value_markdown(value).strip('`')}" if known else "constant"
        items.append(Item(label=name, kind=Kind.Constant, detail=detail, sort_text=f"1{name}"))
    if ctx.section == "block":
        m = re.search(r"\bblock\s+([A-Za-z_]\w*)", ctx.header)
        for pname, _ in (block_params(text, m.group(1)) or []) if m else []:
            items.append(Item(label=pname, kind=Kind.Variable, detail="block parameter", sort_text=f"0{pname}"))
    return items


def call_target(text: str, ctx: Context) -> type[Op] | list[tuple[str, str | None]] | None:
    """What the call around the cursor calls: a registry class, or a block's parameter list."""
    name = ctx.callee
    if name is None:
        return None
    key = re.match(r"\s*([A-Za-z_]\w*)", ctx.callee_statement)
    first = key.group(1) if key else name  # the section key the call is the value of
    if ctx.section in ("network", "block"):
        params = block_params(text, name)
        if params is not None:
            return params
        return LAYERS.get(name)  # type: ignore[no-any-return]
    if ctx.section in ("dataset", "train"):
        if not ctx.callee_statement.strip():  # `key(...)`
            return entry_class(ctx.section, name, None)
        return entry_class(ctx.section, first, name)
    return _any_class(name)


def _complete_in_brackets(text: str, ctx: Context, last: Analysis | None) -> list[Item]:
    target = call_target(text, ctx) if ctx.callee is not None else None
    args = split_args(ctx.args)
    current = args[-1]
    kw = _KWARG.match(current)
    if ctx.bracket == "[" or target is None:
        return _values(text, ctx, last)
    params = _param_list(target)
    if kw is not None:  # a value for `name=`
        annotation = next((f.annotation for n, f in params if n == kw.group(1) and f is not None), None)
        return (_literal_items(annotation) if annotation is not None else []) + _values(text, ctx, last)
    if not re.fullmatch(r"\s*\w*", current):
        return []
    given = {m.group(1) for a in args[:-1] if (m := _KWARG.match(a))}
    positional = sum(1 for a in args[:-1] if a.strip() and not _KWARG.match(a))
    order = _positional(target)
    taken = given | set(order[:positional])
    items = []
    for i, (pname, f) in enumerate(params):
        if pname in taken:
            continue
        doc = param_markdown(pname, f) if f is not None else f"block parameter `{pname}`"
        detail = None
        if f is not None:
            from netspec.ir.values import describe_field

            detail = describe_field(f)
        items.append(
            Item(
                label=f"{pname}=",
                kind=Kind.Field,
                detail=detail,
                documentation=_md(doc),
                sort_text=f"0{i:03d}",
            )
        )
    return items + _values(text, ctx, last)


def _param_list(target: type[Op] | list[tuple[str, str | None]]) -> list[tuple[str, Any]]:
    if isinstance(target, list):
        return [(n, None) for n, _ in target]
    return list(target.parameters().items())


def _positional(target: type[Op] | list[tuple[str, str | None]]) -> list[str]:
    if isinstance(target, list):
        return [n for n, _ in target]
    return list(target.positional)


# --- signature help ----------------------------------------------------------------------------


def signature_help(text: str, offset: int) -> lsp.SignatureHelp | None:
    """The signature of the layer (or block, transform, loss, ...) whose argument list holds the cursor;
    the active parameter is the one named before `=`, else the one at the comma count."""
    ctx = context_at(text, offset)
    if ctx.in_comment or ctx.in_string or ctx.callee is None:
        return None
    target = call_target(text, ctx)
    if target is None:
        return None
    pairs: list[tuple[str, str | None]] = []
    if isinstance(target, list):
        name, doc = ctx.callee, f"block `{ctx.callee}`"
        pairs = [(n if d is None else f"{n}={d}", None) for n, d in target]
        names = [n for n, _ in target]
    else:
        name, doc = target.kind_name(), class_markdown(target)
        for n, f in target.parameters().items():
            pairs.append((n if f.is_required() else f"{n}={format_value(f.default)}", param_markdown(n, f)))
        names = list(target.parameters())
    label, params = name + "(", []
    for i, (part, pdoc) in enumerate(pairs):
        if i:
            label += ", "
        start = code_units(label)
        label += part
        params.append(
            lsp.ParameterInformation(label=(start, code_units(label)), documentation=_md(pdoc) if pdoc else None)
        )
    label += ")"
    args = split_args(ctx.args)
    active = len(args) - 1
    kw = _KWARG.match(args[-1])
    positional = _positional(target)
    if kw is not None and kw.group(1) in names:
        active = names.index(kw.group(1))
    elif active < len(positional) and positional[active] in names:
        active = names.index(positional[active])
    info = lsp.SignatureInformation(label=label, documentation=_md(doc), parameters=params)
    if params:
        info.active_parameter = min(active, len(params) - 1)
    return lsp.SignatureHelp(signatures=[info], active_signature=0, active_parameter=info.active_parameter)


# --- the server --------------------------------------------------------------------------------


@dataclass
class _BadRequest:
    """A request whose parameters could not be read: answered with an error, never dropped."""

    id: int | str
    method: str
    reason: str


class NetspecProtocol(LanguageServerProtocol):
    """pygls' protocol, with three changes: open documents are kept by the server (lines split at
    "\\n" as netspec counts them), requests with malformed parameters get an error response,
    and messages that are not JSON-RPC objects are logged and dropped."""

    _server: NetspecServer

    def structure_message(self, data: Any) -> Any:
        try:
            return super().structure_message(data)
        except Exception as exc:
            msg_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool) and "method" in data:
                cause = exc.__cause__ or exc
                return _BadRequest(msg_id, str(data.get("method")), f"{type(cause).__name__}: {cause}")
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _BadRequest):
            log.warning("invalid parameters for %s (id %r): %s", message.method, message.id, message.reason)
            error = lsp.ResponseError(
                code=lsp.ErrorCodes.InvalidParams, message=f"invalid parameters for {message.method}"
            )
            self._send_response(message.id, error=error)
            return
        if not hasattr(message, "jsonrpc"):
            log.warning("ignoring a message that is not a JSON-RPC object: %.200r", message)
            return
        super().handle_message(message)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: lsp.DidOpenTextDocumentParams) -> None:
        self._server.did_open(params)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams) -> None:
        self._server.did_change(params)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: lsp.DidCloseTextDocumentParams) -> None:
        self._server.did_close(params)


class NetspecServer(LanguageServer):
    def __init__(self, options: Options = Options()) -> None:
        super().__init__(
            "netspec",
            __version__,
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
            protocol_cls=NetspecProtocol,
        )
        self.options = options
        self.parser = ChunkedParse(parse_text)  # re-parses only the top-level chunk an edit touched
        self.documents: dict[str, Document] = {}
        self.analyses: dict[str, Analysis] = {}
        self._pending: dict[str, None] = {}  # documents to check, oldest first
        self._busy = False
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._register()

    # --- plumbing -----------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        try:
            return encoding_name(self.workspace.position_encoding)
        except Exception:  # not initialized yet
            return UTF16

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Log errors (stderr and the client's log), never pop them up."""
        log.error("%s: %s", getattr(source, "__name__", source), error)
        self._log_client(f"netspec: {error}")

    def _log_client(self, message: str) -> None:
        with contextlib.suppress(Exception):  # no transport, or a broken pipe: stderr has it
            self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Error, message=message))

    def _guard(self, name: str, handler: Callable[[Any], T], default: Callable[[], T]) -> Callable[[Any], T]:
        def guarded(params: Any) -> T:
            try:
                return handler(params)
            except Exception as exc:
                log.exception("%s failed", name)
                self._log_client(f"netspec: {name} failed: {type(exc).__name__}: {exc}")
                return default()

        return guarded

    def _register(self) -> None:
        features: list[tuple[str, Any, Callable[[Any], Any], Callable[[], Any]]] = [
            (lsp.TEXT_DOCUMENT_HOVER, None, self.hover, lambda: None),
            (
                lsp.TEXT_DOCUMENT_COMPLETION,
                lsp.CompletionOptions(trigger_characters=["(", ",", ">", " ", "="]),
                self.completion,
                lambda: lsp.CompletionList(is_incomplete=False, items=[]),
            ),
            (lsp.TEXT_DOCUMENT_DEFINITION, None, self.definition, lambda: None),
            (lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL, None, self.document_symbols, list),
            (lsp.TEXT_DOCUMENT_FORMATTING, None, self.formatting, list),
            (
                lsp.TEXT_DOCUMENT_SIGNATURE_HELP,
                lsp.SignatureHelpOptions(trigger_characters=["(", ","], retrigger_characters=[","]),
                self.signature_help,
                lambda: None,
            ),
        ]
        for method, options, handler, default in features:
            self.feature(method, options)(self._guard(method, handler, default))

    def _doc(self, uri: str) -> Document | None:
        return self.documents.get(uri)

    def analysis(self, doc: Document) -> Analysis:
        """The analysis of the document's current text (computed now when the last one is stale)."""
        last = self.analyses.get(doc.uri)
        if last is None or (last.text is not doc.text and last.text != doc.text):
            last = analyze(doc.text, doc.uri, self.options, self.parser)
            self.analyses[doc.uri] = last
        return last

    # --- documents and diagnostics ------------------------------------------------------

    def did_open(self, params: lsp.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        self.documents[item.uri] = Document(item.uri, item.text, item.version)
        self._schedule(item.uri)

    def did_change(self, params: lsp.DidChangeTextDocumentParams) -> None:
        doc = self.documents.get(params.text_document.uri)
        if doc is None:
            log.warning("didChange for a document that is not open: %s", params.text_document.uri)
            return
        for change in params.content_changes:
            doc.apply(change, self.encoding)
        doc.version = params.text_document.version
        self._schedule(doc.uri)

    def did_close(self, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        self.documents.pop(uri, None)
        self.analyses.pop(uri, None)
        self._pending.pop(uri, None)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def _schedule(self, uri: str) -> None:
        """Check the document in a worker thread; edits that arrive meanwhile are checked together
        afterwards (only the newest text is checked), so a fast typist never queues up work."""
        self._pending.pop(uri, None)
        self._pending[uri] = None
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (called directly): check now
            self._loop = None
        if self._loop is None:
            self._check_now()
        elif not self._busy:
            self._next()

    def _check_now(self) -> None:
        while self._pending:
            uri = next(iter(self._pending))
            del self._pending[uri]
            doc = self.documents.get(uri)
            if doc is not None:
                self._publish(doc, analyze(doc.text, uri, self.options, self.parser))

    def _next(self) -> None:
        while self._pending:
            uri = next(iter(self._pending))
            del self._pending[uri]
            doc = self.documents.get(uri)
            if doc is None:
                continue
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netspec-check")
            self._busy = True
            future = self._executor.submit(analyze, doc.text, uri, self.options, self.parser)
            future.add_done_callback(functools.partial(self._done, uri, self._loop))
            return
        self._busy = False

    def _done(self, uri: str, loop: asyncio.AbstractEventLoop | None, future: Future[Analysis]) -> None:
        """In the worker thread: hand the result to the event loop's thread."""
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._checked, uri, future)

    def _checked(self, uri: str, future: Future[Analysis]) -> None:
        self._busy = False
        try:
            analysis = future.result()
            doc = self.documents.get(uri)
            if doc is not None and analysis.text == doc.text:
                self.analyses[uri] = analysis
                if uri not in self._pending:  # else a newer text is about to be checked
                    self._publish(doc, analysis)
        except Exception as exc:
            log.exception("checking %s failed", uri)
            self._log_client(f"netspec: checking {uri} failed: {type(exc).__name__}: {exc}")
        finally:
            self._next()

    def _publish(self, doc: Document, analysis: Analysis) -> None:
        self.analyses[doc.uri] = analysis
        enc = self.encoding
        diagnostics = [to_lsp_diagnostic(d, doc, enc) for d in analysis.result.diagnostics]
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=doc.uri, diagnostics=diagnostics, version=doc.version)
        )

    # --- features -----------------------------------------------------------------------

    def hover(self, params: lsp.HoverParams) -> lsp.Hover | None:
        doc = self._doc(params.text_document.uri)
        if doc is None:
            return None
        a = self.analysis(doc)
        line, column = from_lsp_position(doc.lines, params.position, self.encoding)
        found = hover_markdown(a, line, column)
        if found is None:
            return None
        text, span = found
        return lsp.Hover(contents=_md(text), range=doc.range(span, self.encoding))

    def completion(self, params: lsp.CompletionParams) -> lsp.CompletionList:
        doc = self._doc(params.text_document.uri)
        items = []
        if doc is not None:
            items = completion(doc.text, doc.offset(params.position, self.encoding), self.analyses.get(doc.uri))
        return lsp.CompletionList(is_incomplete=False, items=items)

    def definition(self, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
        doc = self._doc(params.text_document.uri)
        if doc is None:
            return None
        line, column = from_lsp_position(doc.lines, params.position, self.encoding)
        span = definition(self.analysis(doc), line, column)
        if span is None:
            return None
        return [lsp.Location(uri=doc.uri, range=doc.range(span, self.encoding))]

    def document_symbols(self, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        doc = self._doc(params.text_document.uri)
        return symbols(self.analysis(doc), self.encoding) if doc is not None else []

    def formatting(self, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
        doc = self._doc(params.text_document.uri)
        return formatting(doc, self.encoding) if doc is not None else []

    def signature_help(self, params: lsp.SignatureHelpParams) -> lsp.SignatureHelp | None:
        doc = self._doc(params.text_document.uri)
        if doc is None:
            return None
        return signature_help(doc.text, doc.offset(params.position, self.encoding))


def serve(options: Options = Options()) -> None:
    """Run the server on stdin/stdout until the client says `exit` or closes the pipe."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if os.environ.get("NETSPEC_LSP_DEBUG") else logging.WARNING,
        format="netspec lsp %(levelname)s %(name)s: %(message)s",
    )
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must never corrupt the protocol stream
    server = NetspecServer(options)
    threading.current_thread().name = "netspec-lsp"
    server.start_io(stdin, stdout)


__all__ = [
    "Analysis",
    "Context",
    "Document",
    "NetspecServer",
    "analyze",
    "code_units",
    "completion",
    "context_at",
    "definition",
    "find",
    "formatting",
    "from_lsp_character",
    "from_lsp_position",
    "hover_markdown",
    "serve",
    "signature_help",
    "span_to_range",
    "symbols",
    "to_lsp_character",
    "to_lsp_diagnostic",
    "to_lsp_position",
]
