"""What the document defines, from its syntax tree, and what the call at the cursor calls.

The tree is the parse that ``netspec check`` makes (memoized: the checker thread and a request
about the same text share it). A text being typed often does not parse at all (a `(` left open
makes every later line a follow-up error); then the tree is that of the text without the statement
being typed (blanked up to the cursor), with the brackets left open at its end closed: what the
parser's recovery keeps of it; failing that, that of the text before the statement.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from netspec.ir.sections import SECTIONS
from netspec.language import syntax as st
from netspec.lsp.analysis import PARSER, Parsed
from netspec.lsp.context import Cursor
from netspec.lsp.describe import any_class, entry_class
from netspec.lsp.tokens import IDENTS, Brackets, tokens
from netspec.registry import LAYERS
from netspec.registry.base import Op

Parse = Callable[[str], Parsed]
Target = type[Op] | st.Block  # what a call calls: a registry class or a block of the spec
BODIES = ("network", "block")
_CLOSE = {"(": ")", "[": "]", "{": "\n}"}


class Names:
    """The names a document defines (constants, networks, blocks), read from its syntax tree on first use."""

    def __init__(self, text: str, offset: int, ctx: Cursor, parse: Parse = PARSER) -> None:
        self.text, self.offset, self.ctx, self.parse = text, offset, ctx, parse
        self._module: st.Module | None = None
        self._parsed = False

    @property
    def module(self) -> st.Module | None:
        if not self._parsed:
            self._parsed = True
            self._module = next((m for m in map(self._parse, self._texts()) if m is not None), None)
        return self._module

    def _parse(self, text: str) -> st.Module | None:
        return self.parse(text)[0]

    def _texts(self) -> Iterator[str]:
        """The text; else without the statement being typed; else what comes before that statement, or
        before the top-level statement that holds it."""
        yield self.text
        start = self.ctx.start_offset
        typed = self.text[start : self.offset]
        yield closed(self.text[:start] + "".join(ch if ch == "\n" else " " for ch in typed) + self.text[self.offset :])
        yield closed(self.text[:start])
        yield self.text[: self.ctx.top_offset]

    def _items(self, kind: type[Any]) -> list[Any]:
        items = [x for x in self.module.items if isinstance(x, kind)] if self.module is not None else []
        return list({x.name: x for x in reversed(items)}.values())[::-1]  # the first of a name

    def lets(self) -> list[str]:
        return [x.name for x in self._items(st.Let)]

    def networks(self) -> list[str]:
        return [x.name for x in self._items(st.Network)]

    def blocks(self) -> list[st.Block]:
        return self._items(st.Block)  # type: ignore[no-any-return]

    def block(self, name: str | None) -> st.Block | None:
        return next((b for b in self.blocks() if b.name == name), None)


def closed(text: str) -> str:
    """The text with the brackets still open at its end closed (a `}` on a line of its own)."""
    lines = text.split("\n")
    brackets = Brackets()
    for i, t in enumerate(tokens(lines, len(lines) - 1, len(lines[-1]))):
        brackets.feed(t, i)
    return text + "".join(_CLOSE[ch] for ch, _ in reversed(brackets.stack))


def call_target(ctx: Cursor, names: Names) -> Target | None:
    """What the call around the cursor calls: a layer or block in a body, an entry in a section."""
    name = ctx.callee
    if name is None:
        return None
    if ctx.section in BODIES:
        return names.block(name) or LAYERS.get(name)
    if ctx.section in SECTIONS:
        if not ctx.callee_statement:  # `key(...)`
            return entry_class(ctx.section, name, None)
        first = ctx.callee_statement[0]
        return entry_class(ctx.section, first.text if first.type in IDENTS else name, name)
    return any_class(name)


def parameters(target: Target) -> list[tuple[str, Any]]:
    """(name, field) of each parameter; a block's parameters have no field."""
    if isinstance(target, st.Block):
        return [(p.name, None) for p in target.params]
    return list(target.parameters().items())


def positional(target: Target) -> list[str]:
    """The parameters that may be given without a name, in order."""
    if isinstance(target, st.Block):
        return [p.name for p in target.params]
    return list(target.positional)
