"""The server: pygls' protocol and server, the open documents, the checker thread and the handlers.

Diagnostics are exactly those of ``netspec check`` (the same pipeline, codes, messages and hints),
published on open and after every change, computed in a worker thread off the event loop: a newer edit
cancels the running check of its document, a check past ``NETSPEC_LSP_CHECK_SECONDS`` (10 s) reports
NS061, and hover, definition and symbols await the check instead of running one on the loop. The server
never dies on bad input: every handler is wrapped so that an exception becomes a logged error (and an
empty answer), malformed requests get an error response, unknown methods get "method not found", and
garbage on stdin is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from lsprotocol import types as lsp
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from netspec import __version__
from netspec.ir.check import Cancelled, CheckOptions
from netspec.lsp.analysis import Analysis, ChunkedParse, analyze
from netspec.lsp.completion import completion
from netspec.lsp.definition import definition
from netspec.lsp.describe import md
from netspec.lsp.document import UTF16, Document, encoding_name, from_lsp_position, to_lsp_diagnostic
from netspec.lsp.formatting import formatting
from netspec.lsp.framing import loop_over_stdin, message_handler
from netspec.lsp.hover import hover_markdown
from netspec.lsp.signature import signature_help
from netspec.lsp.symbols import symbols

log = logging.getLogger("netspec.lsp")
CHECK_SECONDS = 10.0  # a check that takes longer reports NS061 (env NETSPEC_LSP_CHECK_SECONDS)


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
    def __init__(self, options: CheckOptions = CheckOptions()) -> None:
        super().__init__(
            "netspec",
            __version__,
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
            protocol_cls=NetspecProtocol,
        )
        self.options = options
        self.parser = ChunkedParse()  # re-parses only the top-level chunk an edit touched
        self.documents: dict[str, Document] = {}
        self.analyses: dict[str, Analysis] = {}
        self._pending: dict[str, None] = {}  # documents to check, oldest first
        self._busy = False
        self._running: tuple[str, threading.Event] | None = None  # the document being checked, its cancel flag
        self._waiters: dict[str, list[asyncio.Future[Analysis | None]]] = {}  # requests waiting for a check
        self.check_seconds = float(os.environ.get("NETSPEC_LSP_CHECK_SECONDS") or CHECK_SECONDS)
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

    def _guard(self, name: str, handler: Callable[[Any], Any], default: Callable[[], Any]) -> Callable[[Any], Any]:
        if asyncio.iscoroutinefunction(handler):

            async def guarded_async(params: Any) -> Any:
                try:
                    return await handler(params)
                except Exception as exc:
                    log.error("%s failed: %s: %s", name, type(exc).__name__, exc)
                    self._log_client(f"netspec: {name} failed: {type(exc).__name__}: {exc}")
                    return default()

            return guarded_async

        def guarded(params: Any) -> Any:
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

    async def analysis(self, doc: Document) -> Analysis | None:
        """The analysis of the document's current text: waits for the checker thread when the last one
        is stale (never checks on the event loop). None when the document closed meanwhile."""
        last = self.analyses.get(doc.uri)
        if last is not None and (last.text is doc.text or last.text == doc.text):
            return last
        waiter: asyncio.Future[Analysis | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(doc.uri, []).append(waiter)
        if doc.uri not in self._pending and (self._running is None or self._running[0] != doc.uri):
            self._schedule(doc.uri)
        try:
            return await asyncio.wait_for(waiter, self.check_seconds + 5)
        except asyncio.TimeoutError:
            return self.analyses.get(doc.uri)

    def _wake(self, uri: str, analysis: Analysis | None) -> None:
        for waiter in self._waiters.pop(uri, []):
            if not waiter.done():
                waiter.set_result(analysis)

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
        self._cancel(uri)
        self._wake(uri, None)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def _schedule(self, uri: str) -> None:
        """Check the document in a worker thread; edits that arrive meanwhile are checked together
        afterwards (only the newest text is checked), so a fast typist never queues up work."""
        self._pending.pop(uri, None)
        self._pending[uri] = None
        self._cancel(uri)  # a newer text supersedes the check of an older one
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (called directly): check now
            self._loop = None
        if self._loop is None:
            self._check_now()
        elif not self._busy:
            self._next()

    def _cancel(self, uri: str) -> None:
        if self._running is not None and self._running[0] == uri:
            self._running[1].set()

    def _check_options(self, cancel: threading.Event) -> CheckOptions:
        return dataclasses.replace(self.options, time_limit=self.check_seconds, cancel=cancel)

    def _check_now(self) -> None:
        while self._pending:
            uri = next(iter(self._pending))
            del self._pending[uri]
            doc = self.documents.get(uri)
            if doc is not None:
                options = self._check_options(threading.Event())
                self._publish(doc, analyze(doc.text, uri, options, self.parser))

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
            self._running = (uri, threading.Event())
            options = self._check_options(self._running[1])
            future = self._executor.submit(analyze, doc.text, uri, options, self.parser)
            future.add_done_callback(functools.partial(self._done, uri, self._loop))
            return
        self._busy = False

    def _done(self, uri: str, loop: asyncio.AbstractEventLoop | None, future: Future[Analysis]) -> None:
        """In the worker thread: hand the result to the event loop's thread."""
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._checked, uri, future)

    def _checked(self, uri: str, future: Future[Analysis]) -> None:
        self._busy = False
        self._running = None
        try:
            analysis = future.result()
            doc = self.documents.get(uri)
            if doc is not None and analysis.text == doc.text:
                self.analyses[uri] = analysis
                self._wake(uri, analysis)
                if uri not in self._pending:  # else a newer text is about to be checked
                    self._publish(doc, analysis)
        except Cancelled:
            log.debug("the check of %s was superseded", uri)
        except Exception as exc:
            self._wake(uri, self.analyses.get(uri))  # requests waiting for it get the last analysis
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

    async def hover(self, params: lsp.HoverParams) -> lsp.Hover | None:
        doc = self._doc(params.text_document.uri)
        a = await self.analysis(doc) if doc is not None else None
        if doc is None or a is None:
            return None
        line, column = from_lsp_position(doc.lines, params.position, self.encoding)
        found = hover_markdown(a, line, column)
        if found is None:
            return None
        text, span = found
        return lsp.Hover(contents=md(text), range=doc.range(span, self.encoding))

    def completion(self, params: lsp.CompletionParams) -> lsp.CompletionList:
        doc = self._doc(params.text_document.uri)
        items = []
        if doc is not None:
            offset = doc.offset(params.position, self.encoding)
            items = completion(doc.text, offset, self.analyses.get(doc.uri), self.parser)
        return lsp.CompletionList(is_incomplete=False, items=items)

    async def definition(self, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
        doc = self._doc(params.text_document.uri)
        a = await self.analysis(doc) if doc is not None else None
        if doc is None or a is None:
            return None
        line, column = from_lsp_position(doc.lines, params.position, self.encoding)
        span = definition(a, line, column)
        if span is None:
            return None
        return [lsp.Location(uri=doc.uri, range=doc.range(span, self.encoding))]

    async def document_symbols(self, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        doc = self._doc(params.text_document.uri)
        a = await self.analysis(doc) if doc is not None else None
        return symbols(a, self.encoding) if a is not None else []

    def formatting(self, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
        doc = self._doc(params.text_document.uri)
        return formatting(doc, self.encoding) if doc is not None else []

    def signature_help(self, params: lsp.SignatureHelpParams) -> lsp.SignatureHelp | None:
        doc = self._doc(params.text_document.uri)
        if doc is None:
            return None
        return signature_help(doc.text, doc.offset(params.position, self.encoding), self.parser)


def serve(options: CheckOptions = CheckOptions()) -> None:
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
    server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout))
    stop = server._stop_event
    try:  # pygls' start_io, with a reader that survives a wrong Content-Length or malformed JSON
        asyncio.run(loop_over_stdin(stdin, message_handler(server.protocol), stop.is_set))
    except BrokenPipeError:
        log.error("the client has gone; stopping")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
