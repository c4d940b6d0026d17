"""Formatting: ``netspec fmt`` as one edit of the whole document."""

from __future__ import annotations

from lsprotocol import types as lsp

from netspec.lsp.document import UTF16, Document


def formatting(doc: Document, encoding: str = UTF16) -> list[lsp.TextEdit]:
    """``netspec fmt`` as one edit of the whole document; none when it has syntax errors or is formatted."""
    from netspec.tools.fmt import format_text

    formatted, _ = format_text(doc.text)
    if formatted is None or formatted == doc.text:
        return []
    return [lsp.TextEdit(range=doc.whole(encoding), new_text=formatted)]
