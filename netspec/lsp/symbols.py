"""Document symbols: the outline (networks, blocks, constants, the dataset and train sections with
their keys)."""

from __future__ import annotations

from lsprotocol import types as lsp

from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.lsp.analysis import Analysis, keyword_span
from netspec.lsp.describe import block_params, count
from netspec.lsp.document import UTF16, Document
from netspec.registry.base import fmt_shape


def symbols(a: Analysis, encoding: str = UTF16) -> list[lsp.DocumentSymbol]:
    """The outline: networks, blocks, constants, the dataset and train sections (with their keys)."""
    out = _Outline(a, encoding)
    return [s for item in a.items if (s := out.symbol(item)) is not None]


class _Outline:
    def __init__(self, a: Analysis, encoding: str) -> None:
        self.a, self.encoding = a, encoding
        self.doc = Document("", a.text)

    def sym(
        self, name: str, kind: lsp.SymbolKind, span: Span, sel: Span, detail: str | None = None
    ) -> lsp.DocumentSymbol:
        rng, sel_rng = self.doc.range(span, self.encoding), self.doc.range(sel, self.encoding)
        if not _contains(rng, sel_rng):
            sel_rng = lsp.Range(start=rng.start, end=rng.start)
        return lsp.DocumentSymbol(name=name, kind=kind, range=rng, selection_range=sel_rng, detail=detail)

    def symbol(self, item: st.Top) -> lsp.DocumentSymbol | None:
        from netspec.tools.fmt import expr

        if isinstance(item, st.Network):
            return self.network(item)
        if isinstance(item, st.Block):
            return self.sym(item.name, lsp.SymbolKind.Function, item.span, item.name_span, f"({block_params(item)})")
        if isinstance(item, st.Let):
            return self.sym(item.name, lsp.SymbolKind.Constant, item.span, item.name_span, f"= {expr(item.value)}")
        if isinstance(item, st.Section):
            return self.section(item)
        return None

    def network(self, item: st.Network) -> lsp.DocumentSymbol:
        net = self.a.network(item.name)
        detail = None
        if net is not None:
            detail = f"{fmt_shape(net.input_shape)} → {fmt_shape(net.output_shape)}, {count(net.params)}"
        return self.sym(item.name, lsp.SymbolKind.Class, item.span, item.name_span, detail)

    def section(self, item: st.Section) -> lsp.DocumentSymbol:
        from netspec.tools.fmt import entry as entry_text

        kind = lsp.SymbolKind.Namespace if item.kind == "dataset" else lsp.SymbolKind.Object
        name = item.kind + (f" {item.name}" if item.name else "")
        head = self.sym(name, kind, item.span, keyword_span(item.span, item.kind))
        head.children = [
            self.sym(e.key, lsp.SymbolKind.Property, e.span, e.key_span, entry_text(e)[len(e.key) :].strip() or None)
            for e in item.entries
        ]
        return head


def _contains(outer: lsp.Range, inner: lsp.Range) -> bool:
    def pos(p: lsp.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return pos(outer.start) <= pos(inner.start) and pos(inner.end) <= pos(outer.end)
