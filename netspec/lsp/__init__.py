"""``netspec lsp``: a Language Server Protocol server for ``.net`` specs, over stdio (pygls 2).

Diagnostics are exactly those of ``netspec check``; hover, completion, go to definition, document
symbols, formatting (``netspec fmt``) and signature help read the same front end as ``check``: the
syntax tree of ``netspec.language.parse`` and, for the cursor's context in text that does not parse
yet, the same grammar's tokens. Section keys, their registries and docs come from the one section
schema, ``netspec.ir.sections``. Torch is never imported.

Modules, as pygls' examples are organised:

- ``document``: positions and encodings (the one place where netspec's and LSP's meet), ``Document``
- ``tokens``: the text as the grammar's tokens, line by line, cached; top-level chunks
- ``analysis``: ``Analysis``/``analyze``, the memoized parse (``ChunkedParse``), the position -> node finder
- ``context``: the cursor's context from the tokens (section, call, argument, key)
- ``scope``: the document's names from its syntax tree, and what the call at the cursor calls
- ``describe``: what a name means where it is written, and its markdown
- one module per feature: ``hover``, ``completion``, ``definition``, ``symbols``, ``signature``, ``formatting``
- ``server``: the protocol, ``NetspecServer`` (the checker runs in a worker thread, with a time budget,
  cancelled by a newer edit; requests that need a check await it) and ``serve``
- ``framing``: reading ``Content-Length`` framed messages from stdin, resynchronising after a wrong one
"""

from __future__ import annotations

from netspec.lsp.analysis import Analysis, ChunkedParse, Hit, analyze, find
from netspec.lsp.completion import completion
from netspec.lsp.context import Cursor, context_at
from netspec.lsp.definition import definition
from netspec.lsp.document import (
    UTF8,
    UTF16,
    UTF32,
    Document,
    code_units,
    encoding_name,
    from_lsp_character,
    from_lsp_position,
    span_to_range,
    to_lsp_character,
    to_lsp_diagnostic,
    to_lsp_position,
)
from netspec.lsp.formatting import formatting
from netspec.lsp.hover import hover_markdown
from netspec.lsp.server import NetspecServer, serve
from netspec.lsp.signature import signature_help
from netspec.lsp.symbols import symbols
from netspec.lsp.tokens import split_chunks

__all__ = [
    "UTF8",
    "UTF16",
    "UTF32",
    "Analysis",
    "ChunkedParse",
    "Cursor",
    "Document",
    "Hit",
    "NetspecServer",
    "analyze",
    "code_units",
    "completion",
    "context_at",
    "definition",
    "encoding_name",
    "find",
    "formatting",
    "from_lsp_character",
    "from_lsp_position",
    "hover_markdown",
    "serve",
    "signature_help",
    "span_to_range",
    "split_chunks",
    "symbols",
    "to_lsp_character",
    "to_lsp_diagnostic",
    "to_lsp_position",
]
