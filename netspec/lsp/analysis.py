"""A compiled document (``Analysis``), the memoized parse it is compiled with, and what is at a position.

The parse is ``netspec.language.parse.parse`` (the one ``netspec check`` uses), memoized twice: per
top-level chunk (an edit re-parses only the chunk it touched) and per whole text (the checker thread
and the completion or signature request about the same text parse it once).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from netspec.ir.check import CheckOptions
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic
from netspec.language.parse import MAX_SOURCE
from netspec.language.parse import parse as parse_text
from netspec.language.span import Span
from netspec.lsp.tokens import split_chunks

Parsed = tuple[st.Module | None, list[Diagnostic]]


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
                for node in walk_ir(net.steps):
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


class ChunkedParse:
    """``netspec.language.parse.parse``, memoized per top-level chunk: each chunk is parsed alone, padded with
    new lines so that its positions are those in the whole text, and the trees are joined.

    The result is the whole-text parse's whenever every chunk parses without a diagnostic (a chunk
    holds whole statements, with every bracket closed, so it parses the same alone); otherwise, and
    for anything unusual, the whole text is parsed as usual. A 300-line spec edited in one place
    re-parses one chunk instead of 300 lines. The last few whole texts are memoized too, so that two
    threads asking about the same text parse it once."""

    def __init__(self, parse: Callable[[str], Parsed] = parse_text, size: int = 1024, texts: int = 8) -> None:
        self.parse = parse
        self.size = size
        self.texts = texts
        self.cache: dict[tuple[int, str], tuple[tuple[st.Top, ...], tuple[st.Comment, ...]]] = {}
        self.recent: dict[str, Future[Parsed]] = {}
        self.lock = threading.Lock()

    def __call__(self, text: str) -> Parsed:
        with self.lock:
            future = self.recent.pop(text, None)
            mine = future is None
            if future is None:
                future = Future()
            self.recent[text] = future  # most recently used last
            while len(self.recent) > self.texts:
                del self.recent[next(iter(self.recent))]
        if mine:
            try:
                future.set_result(self._parse(text))
            except BaseException as exc:
                future.set_exception(exc)
        module, diags = future.result()
        return module, list(diags)

    def _parse(self, text: str) -> Parsed:
        chunks = split_chunks(text) if len(text) <= MAX_SOURCE else None
        if chunks is None or len(chunks) < 2:
            return self.parse(text)
        items: list[st.Top] = []
        comments: list[st.Comment] = []
        for first, chunk in chunks:
            found = self._chunk(first, chunk)
            if found is None:  # errors: their messages and recovery need the whole text
                return self.parse(text)
            items += found[0]
            comments += found[1]
        return st.Module(tuple(items), tuple(comments)), []

    def _chunk(self, first: int, chunk: str) -> tuple[tuple[st.Top, ...], tuple[st.Comment, ...]] | None:
        key = (first, chunk)
        with self.lock:
            found = self.cache.pop(key, None)
        if found is None:
            module, diags = self.parse("\n" * (first - 1) + chunk)
            if module is None or diags:
                return None
            found = (module.items, module.comments)
        with self.lock:
            self.cache[key] = found  # most recently used last
            while len(self.cache) > self.size:
                del self.cache[next(iter(self.cache))]
        return found


PARSER = ChunkedParse()  # for callers without a server of their own


def analyze(text: str, file: str = "<input>", options: CheckOptions = CheckOptions(), parser: Any = None) -> Analysis:
    from netspec.ir.pipeline import compile_text

    return Analysis(text, compile_text(text, file, options=options, parser=parser or parse_text))


def _key(span: Span) -> tuple[int, int, int, int]:
    return (span.line, span.column, span.end_line, span.end_column)


def walk_ir(steps: Iterable[Any]) -> Iterator[Any]:
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


# --- what is under the cursor ---------------------------------------------------------------------


def inside(span: Span | None, line: int, column: int) -> bool:
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
    for item in module.items if module is not None else ():
        handler = _ITEMS.get(type(item))
        if handler is not None and inside(item.span, line, column):
            return handler(item, line, column)
    return None


def _in_let(item: st.Let, line: int, column: int) -> Hit | None:
    if inside(item.name_span, line, column):
        return Hit("let", item.name_span, item, item=item)
    return _in_expr(item.value, line, column, item)


def _in_network(item: st.Network, line: int, column: int) -> Hit | None:
    if inside(item.name_span, line, column):
        return Hit("network", item.name_span, item, item=item)
    return _in_body(item.body, line, column, item)


def _in_block(item: st.Block, line: int, column: int) -> Hit | None:
    if inside(item.name_span, line, column):
        return Hit("block", item.name_span, item, item=item)
    p = next((p for p in item.params if inside(p.span, line, column)), None)
    if p is None:
        return _in_body(item.body, line, column, item)
    name_span = Span.at(p.span.line, p.span.column, p.span.line, p.span.column + len(p.name))
    if inside(name_span, line, column):
        return Hit("param", name_span, p, item=item)
    return _in_expr(p.default, line, column, item) if p.default is not None else None


def _in_section(item: st.Section, line: int, column: int) -> Hit | None:
    e = next((e for e in item.entries if inside(e.span, line, column)), None)
    return _in_entry(e, line, column, item) if e is not None else None


def _in_body(body: st.Body, line: int, column: int, item: Any) -> Hit | None:
    for step in body.steps:
        if not inside(step.span, line, column):
            continue
        if isinstance(step, st.Chain):
            for call in step.calls:
                if inside(call.span, line, column):
                    if inside(call.name_span, line, column):
                        return Hit("layer", call.name_span, call, call=call, item=item)
                    return _in_args(call, line, column, item)
        elif isinstance(step, st.Input):
            if inside(step.shape.span, line, column):
                return _in_expr(step.shape, line, column, item)
            return Hit("composite", keyword_span(step.span, "input"), step, item=item)
        elif isinstance(step, st.Repeat):
            if inside(step.count.span, line, column):
                return _in_expr(step.count, line, column, item)
            if inside(step.body.span, line, column):
                return _in_body(step.body, line, column, item)
            return Hit("composite", keyword_span(step.span, "repeat"), step, item=item)
        elif isinstance(step, st.Residual):
            if inside(step.body.span, line, column):
                return _in_body(step.body, line, column, item)
            return Hit("composite", keyword_span(step.span, "residual"), step, item=item)
    return None


def keyword_span(span: Span, word: str) -> Span:
    return Span.at(span.line, span.column, span.line, span.column + len(word))


def _in_args(call: st.Call, line: int, column: int, item: Any, entry: st.Entry | None = None) -> Hit | None:
    for arg in call.args or ():
        if arg.name_span is not None and inside(arg.name_span, line, column):
            return Hit("kwarg", arg.name_span, arg, call=call, item=item, entry=entry)
        if inside(arg.value.span, line, column):
            return _in_expr(arg.value, line, column, item, entry)
    return None


def _in_expr(e: st.Expr, line: int, column: int, item: Any, entry: st.Entry | None = None) -> Hit | None:
    """The name at a position inside an expression (iterative: expressions may nest deeply)."""
    todo: list[Any] = [e]
    while todo:
        x = todo.pop()
        if not inside(x.span, line, column):
            continue
        if isinstance(x, st.Name):
            return Hit("name", x.span, x, item=item, entry=entry)
        if isinstance(x, st.Call):
            if inside(x.name_span, line, column):
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
    if inside(e.key_span, line, column):
        return Hit("key", e.key_span, e, item=section, entry=e)
    if e.args is not None:
        for arg in e.args:
            if arg.name_span is not None and inside(arg.name_span, line, column):
                call = st.Call(e.key, e.args, e.span, e.key_span)
                return Hit("kwarg", arg.name_span, arg, call=call, item=section, entry=e)
            if inside(arg.value.span, line, column):
                return _in_expr(arg.value, line, column, section, e)
    for v in e.values:
        if not inside(v.span, line, column):
            continue
        if isinstance(v, st.Name):
            return Hit("value", v.span, v, item=section, entry=e)
        if isinstance(v, st.Call):
            if inside(v.name_span, line, column):
                return Hit("value", v.name_span, v, call=v, item=section, entry=e)
            return _in_args(v, line, column, section, e)
        return _in_expr(v, line, column, section, e)
    return None


_ITEMS: dict[type, Callable[[Any, int, int], Hit | None]] = {
    st.Let: _in_let,
    st.Network: _in_network,
    st.Block: _in_block,
    st.Section: _in_section,
}
