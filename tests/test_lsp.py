"""The language server (`netspec lsp`): end to end through a real LSP client over stdio
(pytest-lsp), raw malformed input on its stdin, the position conversions, and the VS Code
extension's grammar. Torch-free.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsprotocol import types  # noqa: E402
from pygls.protocol import default_converter  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features  # noqa: E402

from netspec import lsp as L  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.ir.pipeline import compile_text  # noqa: E402
from netspec.language import parse as parse_module  # noqa: E402
from netspec.language.syntax import KEYWORDS  # noqa: E402
from netspec.registry import (  # noqa: E402
    ACTIVATIONS,
    LAYERS,
    LOGGERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    PRUNERS,
    SAMPLERS,
    SCHEDULES,
    SEARCH,
    SOURCES,
    TASKS,
    TRANSFORMS,
)
from netspec.tools.fmt import format_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.net"))
GOLDEN = sorted(p for p in (ROOT / "tests" / "golden" / "diagnostics").glob("*.net") if p.stem != "invalid_utf8")
VSCODE = ROOT / "editors" / "vscode"
SERVER = [sys.executable, "-m", "netspec", "lsp"]
TIMEOUT = 30.0
aio = pytest.mark.asyncio(loop_scope="module")


# --- helpers: positions computed independently of the server --------------------------------------


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def pos(text: str, needle: str, shift: int = 0, units: Callable[[str], int] = utf16) -> types.Position:
    """The LSP position of the first ``needle`` in ``text`` (plus ``shift`` code points)."""
    index = text.index(needle) + shift
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    return types.Position(line=line, character=units(text[start:index]))


def doc_id(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


# --- the client ---------------------------------------------------------------------------------


def _record(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
    client.diagnostics[params.uri] = params.diagnostics
    client.published.append(params)  # type: ignore[attr-defined]


def make_client() -> LanguageClient:
    """pytest-lsp's client, keeping every publishDiagnostics (with its version), not just the last."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _record
    register_lsp_features(client, features)
    return client


CONFIG = ClientServerConfig(server_command=SERVER, client_factory=make_client)


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"), root_uri=ROOT.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


async def published(client: LanguageClient, uri: str, version: int) -> list[types.Diagnostic]:
    """The diagnostics the server published for ``uri`` at ``version`` (waiting for them)."""

    async def poll() -> list[types.Diagnostic]:
        while True:
            for p in reversed(client.published):  # type: ignore[attr-defined]
                if p.uri == uri and p.version == version:
                    return list(p.diagnostics)
            await asyncio.sleep(0.005)

    return await asyncio.wait_for(poll(), TIMEOUT)


_counter = iter(range(10**6))


def open_doc(client: LanguageClient, text: str, name: str = "doc") -> str:
    uri = f"file:///tmp/netspec-lsp-test/{name}-{next(_counter)}.net"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="netspec", version=1, text=text)
        )
    )
    return uri


def change(client: LanguageClient, uri: str, version: int, rng: types.Range | None, text: str) -> None:
    event: Any = (
        types.TextDocumentContentChangeWholeDocument(text=text)
        if rng is None
        else types.TextDocumentContentChangePartial(range=rng, text=text)
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[event]
        )
    )


def check_json(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """`netspec check PATH --format json`, in-process."""
    capsys.readouterr()
    main(["check", str(path), "--format", "json"])
    out, _ = capsys.readouterr()
    return json.loads(out)  # type: ignore[no-any-return]


# --- diagnostics -------------------------------------------------------------------------------


@aio
async def test_diagnostics_on_open_are_exactly_those_of_check(
    client: LanguageClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NETSPEC_MAX_MEMORY", raising=False)
    paths = SPECS + GOLDEN
    uris = [open_doc(client, p.read_text(encoding="utf-8"), p.stem) for p in paths]
    counts = []
    for path, uri in zip(paths, uris):
        got = await published(client, uri, 1)
        counts.append(len(got))
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        want = check_json(path, capsys)
        assert len(got) == len(want), path.name
        for g, w in zip(got, want):
            assert g.code == w["code"]
            assert g.source == "netspec"
            assert g.message == w["message"] + (f"\nhint: {w['hint']}" if w["hint"] else "")
            assert g.severity == (
                types.DiagnosticSeverity.Error if w["severity"] == "error" else types.DiagnosticSeverity.Warning
            )
            start, end = g.range.start, g.range.end
            assert start.line == w["line"] - 1 and end.line == min(w["end_line"], len(lines)) - 1
            assert start.character == utf16(lines[start.line][: w["column"] - 1])
    assert all(counts[len(SPECS) :]) and not any(counts[: len(SPECS)])  # golden specs have errors, specs none


@aio
async def test_diagnostics_after_a_syntax_error_continue_past_it(client: LanguageClient) -> None:
    text = "network N {\n    input [4]\n    dense(2 -> relu\n    reluu\n    dense(3)\n}\n"
    uri = open_doc(client, text)
    codes = [(d.code, d.range.start.line) for d in await published(client, uri, 1)]
    assert codes[0][1] == 2 and codes[0][0] in ("NS001", "NS002")  # the bad line
    assert ("NS010", 3) in codes  # and the unknown layer on the next one


@aio
async def test_a_typo_introduced_then_fixed(client: LanguageClient) -> None:
    text = (ROOT / "specs" / "mnist.net").read_text(encoding="utf-8")
    uri = open_doc(client, text, "mnist")
    assert await published(client, uri, 1) == []
    at = pos(text, "dense(500) -> relu", len("dense(500) -> relu"))
    change(client, uri, 2, types.Range(start=at, end=at), "u")  # relu -> reluu
    diags = await published(client, uri, 2)
    assert [(d.code, d.range.start.line, d.range.start.character) for d in diags] == [
        ("NS010", at.line, at.character - 4)
    ]
    assert "unknown layer `reluu`" in diags[0].message and "did you mean `relu`?" in diags[0].message
    end = types.Position(line=at.line, character=at.character + 1)
    change(client, uri, 3, types.Range(start=at, end=end), "")
    assert await published(client, uri, 3) == []


@aio
async def test_many_quick_edits_end_with_the_last_texts_diagnostics(client: LanguageClient) -> None:
    uri = open_doc(client, "network N {\n    input [4]\n    dense(2)\n}\n")
    await published(client, uri, 1)
    for version in range(2, 30):  # typed faster than checked: only the newest text matters
        at = types.Position(line=2, character=11 + version - 2)
        change(client, uri, version, types.Range(start=at, end=at), "x")
    diags = await published(client, uri, 29)
    assert [d.code for d in diags if d.severity == types.DiagnosticSeverity.Error] == ["NS001"]
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=doc_id(uri)))


# --- hover ---------------------------------------------------------------------------------------


async def hover(client: LanguageClient, uri: str, at: types.Position) -> str | None:
    result = await client.text_document_hover_async(types.HoverParams(text_document=doc_id(uri), position=at))
    if result is None:
        return None
    assert isinstance(result.contents, types.MarkupContent)
    return result.contents.value


@aio
async def test_hover_shows_shapes_parameters_values_and_docs(client: LanguageClient) -> None:
    text = (ROOT / "specs" / "mnist.net").read_text(encoding="utf-8")
    uri = open_doc(client, text, "mnist")
    layer = await hover(client, uri, pos(text, "conv2d(20", 2))
    assert layer is not None
    assert "conv2d(out_channels, kernel" in layer and "[1, 28, 28]" in layer and "[20, 24, 24]" in layer
    assert "520 parameters" in layer
    second = await hover(client, uri, pos(text, "conv2d(50"))
    assert second is not None and "[20, 12, 12]" in second and "25,050 parameters" in second
    network = await hover(client, uri, pos(text, "LeNet {"))
    assert network is not None and "431,080" in network and "[10]" in network
    assert "431,080" in (await hover(client, uri, pos(text, "model LeNet", 8)) or "")
    loss = await hover(client, uri, pos(text, "cross_entropy"))
    assert loss is not None and "*loss*" in loss
    for needle, what in (("sgd(", "*optimizer*"), ("precision", "*metric*"), ("normalize", "*transform*")):
        assert what in (await hover(client, uri, pos(text, needle)) or ""), needle
    assert "*source*" in (await hover(client, uri, pos(text, "source mnist", 8)) or "")
    momentum = await hover(client, uri, pos(text, "momentum="))
    assert momentum is not None and "**momentum**" in momentum
    assert await hover(client, uri, pos(text, "# Check it")) is None


@aio
async def test_hover_on_constants_and_blocks(client: LanguageClient) -> None:
    text = (ROOT / "specs" / "resnet_cifar.net").read_text(encoding="utf-8")
    uri = open_doc(client, text, "resnet")
    assert "`64`" in (await hover(client, uri, pos(text, "let width", 4)) or "")
    assert "`64`" in (await hover(client, uri, pos(text, "ConvBN(width)", 7)) or "")
    block = await hover(client, uri, pos(text, "ConvBN(width * 2, stride=2)"))
    assert block is not None and "block ConvBN(channels, stride=1)" in block and "[128, 16, 16]" in block


# --- completion --------------------------------------------------------------------------------


async def labels(client: LanguageClient, uri: str, at: types.Position) -> list[str]:
    result = await client.text_document_completion_async(types.CompletionParams(text_document=doc_id(uri), position=at))
    items = result.items if isinstance(result, types.CompletionList) else (result or [])
    return [i.label for i in items]


@aio
async def test_completion_of_layers_arguments_and_keys(client: LanguageClient) -> None:
    text = "network N {\n    input [1, 28, 28]\n    conv2d()\n    \n}\ndataset {\n    \n}\ntrain {\n    loss \n}\n"
    uri = open_doc(client, text)
    inside = await labels(client, uri, pos(text, "conv2d(", 7))
    assert {"out_channels=", "kernel=", "stride=", "padding=", "bias="} <= set(inside)
    at_line = await labels(client, uri, types.Position(line=3, character=4))
    assert set(LAYERS.names()) <= set(at_line) and {"input", "repeat", "residual"} <= set(at_line)
    dataset = await labels(client, uri, types.Position(line=6, character=4))
    assert {"source", "batch", "validation", *TRANSFORMS.names()} <= set(dataset)
    assert await labels(client, uri, pos(text, "loss ", 5)) == LOSSES.names()


@aio
async def test_completion_after_arrow_and_of_names(client: LanguageClient) -> None:
    text = (
        "let width = 8\nblock Unit(c) {\n    dense(c)\n}\nnetwork Net {\n    input [4]\n    dense(width) -> \n"
        "    Unit(width)\n}\ntrain {\n    model \n    metrics accuracy, \n}\n"
    )
    uri = open_doc(client, text)
    after_arrow = await labels(client, uri, pos(text, "-> ", 3))
    assert after_arrow[: len(ACTIVATIONS)] == ACTIVATIONS and "Unit" in after_arrow
    assert "width" in await labels(client, uri, pos(text, "dense(width", 6))
    assert await labels(client, uri, pos(text, "model ", 6)) == ["Net"]
    assert await labels(client, uri, pos(text, "accuracy, ", 10)) == METRICS.names()


# --- definition, symbols, formatting, signature help ---------------------------------------------


@aio
async def test_definition_of_a_block_use_and_a_constant(client: LanguageClient) -> None:
    text = (ROOT / "specs" / "resnet_cifar.net").read_text(encoding="utf-8")
    uri = open_doc(client, text, "resnet")
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc_id(uri), position=pos(text, "ConvBN(width)", 2))
    )
    assert isinstance(result, list) and len(result) == 1
    assert result[0].uri == uri
    assert result[0].range.start == pos(text, "ConvBN(channels")
    assert result[0].range.end == pos(text, "ConvBN(channels", len("ConvBN"))
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc_id(uri), position=pos(text, "width * 2", 1))
    )
    assert isinstance(result, list) and result[0].range.start == pos(text, "width = 64")


@aio
async def test_document_symbols_outline(client: LanguageClient) -> None:
    text = (ROOT / "specs" / "resnet_cifar.net").read_text(encoding="utf-8")
    uri = open_doc(client, text, "resnet")
    result = await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc_id(uri)))
    assert result is not None
    names = [(s.name, s.kind) for s in result if isinstance(s, types.DocumentSymbol)]
    assert names == [
        ("width", types.SymbolKind.Constant),
        ("ConvBN", types.SymbolKind.Function),
        ("ResNet", types.SymbolKind.Class),
        ("dataset cifar", types.SymbolKind.Namespace),
        ("train", types.SymbolKind.Object),
    ]
    train = result[-1]
    assert isinstance(train, types.DocumentSymbol) and train.children
    assert [c.name for c in train.children][:3] == ["model", "loss", "optimizer"]


@aio
async def test_formatting_is_one_edit_of_netspec_fmt(client: LanguageClient) -> None:
    messy = "# a spec\nnetwork   N{\ninput [4]\n  dense( 2 )->relu   # out\n}\n\n\n\nlet   x=1+2\n"
    uri = open_doc(client, messy)
    options = types.FormattingOptions(tab_size=4, insert_spaces=True)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=doc_id(uri), options=options)
    )
    assert edits is not None and len(edits) == 1
    assert edits[0].range.start == types.Position(line=0, character=0)
    assert edits[0].range.end == types.Position(line=messy.count("\n"), character=0)
    assert edits[0].new_text == format_text(messy)[0]
    formatted = open_doc(client, edits[0].new_text)
    assert not await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=doc_id(formatted), options=options)
    )
    broken = open_doc(client, "network N {\n    input [4]\n    dense(2 -> relu\n}\n")
    assert not await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=doc_id(broken), options=options)
    )


@aio
async def test_signature_help_follows_the_commas(client: LanguageClient) -> None:
    text = "network N {\n    input [1, 8, 8]\n    conv2d(4, 3, padding=1, \n}\n"
    uri = open_doc(client, text)

    async def active(shift: int) -> tuple[str, int | None]:
        at = pos(text, "conv2d(", shift)
        result = await client.text_document_signature_help_async(
            types.SignatureHelpParams(text_document=doc_id(uri), position=at)
        )
        assert result is not None
        sig = result.signatures[0]
        index = result.active_parameter
        assert sig.parameters is not None and index is not None
        label = sig.parameters[index].label
        assert isinstance(label, tuple)
        return sig.label, int(index)

    label, index = await active(7)
    assert label.startswith("conv2d(out_channels, kernel, stride=1") and index == 0
    assert (await active(9))[1] == 1  # after `4, `: kernel
    assert (await active(len("conv2d(4, 3, padding=")))[1] == 3  # `padding=`: by name
    assert (await active(len("conv2d(4, 3, padding=1, ")))[1] == 3  # the 4th comma-separated slot


# --- positions: UTF-16 end to end, and UTF-8 for a client that asks for it -----------------------

UNICODE_SPEC = (
    "# 日本語のコメント 🎉🎉 and ünïcödé\n"
    'let label = "🎉 ok"; let wrong = nope\n'
    "network N {  # 中文 😀\n"
    "    input [4]\n"
    "    dense(2) -> reluu  # 🙂\n"
    "}\n"
)


@aio
async def test_utf16_positions_after_emoji_and_cjk(client: LanguageClient) -> None:
    uri = open_doc(client, UNICODE_SPEC, "unicode")
    diags = {d.code: d for d in await published(client, uri, 1) if d.code in ("NS020", "NS010")}
    assert diags["NS020"].range.start == pos(UNICODE_SPEC, "nope")  # after an emoji on its line
    assert diags["NS020"].range.end == pos(UNICODE_SPEC, "nope", 4)
    assert diags["NS010"].range.start == pos(UNICODE_SPEC, "reluu")
    # an edit placed by UTF-16 positions lands where it should
    at = pos(UNICODE_SPEC, "nope")
    end = types.Position(line=at.line, character=at.character + 4)
    change(client, uri, 2, types.Range(start=at, end=end), "1")
    assert {d.code for d in await published(client, uri, 2)} >= {"NS010"} - {"NS020"}
    assert "NS020" not in {d.code for d in await published(client, uri, 2)}
    hover_text = await hover(client, uri, pos(UNICODE_SPEC, "wrong"))
    assert hover_text is not None and "`1`" in hover_text


@pytest.mark.asyncio
async def test_utf8_positions_when_the_client_negotiates_them() -> None:
    client = await CONFIG.start()
    try:
        result = await client.initialize_session(  # type: ignore[attr-defined]
            types.InitializeParams(capabilities=client_capabilities("neovim@v0.11.0"))
        )
        assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
        uri = open_doc(client, UNICODE_SPEC, "unicode8")  # type: ignore[arg-type]
        diags = {d.code: d for d in await published(client, uri, 1)}  # type: ignore[arg-type]
        assert diags["NS020"].range.start == pos(UNICODE_SPEC, "nope", units=utf8)
        assert diags["NS010"].range.start == pos(UNICODE_SPEC, "reluu", units=utf8)
        await client.shutdown_session()  # type: ignore[attr-defined]
    finally:
        await client.stop()


# --- any document, any request: the server answers -------------------------------------------------


@aio
async def test_documents_in_any_state_are_answered(client: LanguageClient) -> None:
    texts = [
        "",
        "\n\n\n",
        "network {",
        "network N {\n    input [",
        '"unterminated',
        "\x00\x01\x02 binary \ufffd\ud83c",  # NUL, control characters, a lone surrogate
        "}}}}{{{{(((([[[[",
        "let x = " + "(" * 200,
        "network N {\n" + "    repeat 3 {\n" * 70 + "}\n" * 71,
        "dataset {\n    source \n    normalize(mean=\n",
        "\r\nnetwork N {\r\n    input [4]\r\n    dense(2)\r\n}\r\n",
    ]
    for text in texts:
        uri = open_doc(client, text)
        await published(client, uri, 1)
        ends = [types.Position(line=0, character=0), types.Position(line=10**6, character=10**6)]
        ends += [types.Position(line=i, character=c) for i in range(text.count("\n") + 1) for c in (0, 3, 9)]
        for at in ends[:40]:
            await hover(client, uri, at)
            await labels(client, uri, at)
            await client.text_document_signature_help_async(
                types.SignatureHelpParams(text_document=doc_id(uri), position=at)
            )
            await client.text_document_definition_async(types.DefinitionParams(text_document=doc_id(uri), position=at))
        await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc_id(uri)))
        await client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=doc_id(uri), options=types.FormattingOptions(tab_size=4, insert_spaces=True)
            )
        )
    # requests about a document that was never opened
    assert await hover(client, "file:///never/opened.net", types.Position(line=0, character=0)) is None
    # no handler failed (a failure is answered emptily, and logged to the client as an error)
    assert [m.message for m in client.log_messages if m.type == types.MessageType.Error] == []


class RawServer:
    """The server as a subprocess with hand-framed JSON-RPC, to feed it what no client would."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr or []), daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line == b"\r\n":
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None
            self.messages.put(json.loads(out.read(length)))

    def raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any = None, body: bytes | None = None) -> None:
        data = body if body is not None else json.dumps(message).encode("utf-8")
        self.raw(b"Content-Length: %d\r\n\r\n" % len(data) + data)

    def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if pred(message):
                return message

    def response(self, msg_id: int | str) -> dict[str, Any]:
        return self.until(lambda m: m.get("id") == msg_id and "method" not in m)

    def close(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)


@pytest.fixture
def raw_server():  # type: ignore[no-untyped-def]
    server = RawServer()
    yield server
    server.close()


def test_survives_garbage_invalid_json_and_unknown_methods(raw_server: RawServer) -> None:
    s = raw_server
    s.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "capabilities": {}}})
    assert "capabilities" in s.response(1)["result"]
    s.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    uri = "file:///tmp/raw.net"
    text = "network N {\n    input [4]\n    dense(2) -> relu\n}\n"
    s.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "netspec", "version": 1, "text": text}},
        }
    )
    s.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    hover = {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 5}}

    def still_answers(msg_id: int) -> None:
        s.send({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/hover", "params": hover})
        assert "dense" in s.response(msg_id)["result"]["contents"]["value"]

    s.raw(b"this is not a header\r\n\r\n")
    s.raw(b"Content-Length: nope\r\n\r\n")
    still_answers(2)
    s.send(body=b"{not json at all")
    s.send(body=b"\xff\xfe\x00 not utf-8")
    s.send(body=b"[1, 2, 3]")
    s.send(body=b'"a string"')
    s.send(body=b'{"no": "jsonrpc"}')
    s.send(body=b'{"jsonrpc": "2.0"}')
    still_answers(3)
    s.send({"jsonrpc": "2.0", "id": 4, "method": "netspec/noSuchMethod", "params": {}})
    assert s.response(4)["error"]["code"] == types.ErrorCodes.MethodNotFound
    s.send({"jsonrpc": "2.0", "method": "netspec/noSuchNotification", "params": {}})
    s.send({"jsonrpc": "2.0", "id": 5, "method": "textDocument/hover", "params": {"textDocument": 42}})
    assert s.response(5)["error"]["code"] == types.ErrorCodes.InvalidParams
    bad_position = {"textDocument": {"uri": uri}, "position": {"line": -1, "character": "x"}}
    s.send({"jsonrpc": "2.0", "id": 6, "method": "textDocument/completion", "params": bad_position})
    assert "error" in s.response(6)
    s.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": None}})
    s.send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": "x"}}})
    change = {"range": {"start": {"line": 99, "character": 99}, "end": {"line": 0, "character": 0}}, "text": "#"}
    s.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {"textDocument": {"uri": "file:///never-opened.net", "version": 2}, "contentChanges": [change]},
        }
    )
    s.send(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "textDocument/hover",
            "params": {**hover, "position": {"line": 10**9, "character": 10**9}},
        }
    )
    assert s.response(7)["result"] is None
    still_answers(8)
    s.send({"jsonrpc": "2.0", "id": 9, "method": "shutdown"})
    assert s.response(9)["result"] is None
    s.send({"jsonrpc": "2.0", "method": "exit"})
    assert s.proc.wait(10) == 0
    time.sleep(0.1)
    log = b"".join(s.stderr).decode("utf-8", "replace")
    assert "invalid parameters for textDocument/hover" in log
    assert not re.search(r"textDocument/\w+ failed", log), log  # the garbage never reached a handler


# --- bounded checks (issue 11): a real client against a server with a 1 s check budget -------------

BOUNDED = ClientServerConfig(
    server_command=[
        sys.executable,
        "-c",
        "import os, sys; os.environ['NETSPEC_LSP_CHECK_SECONDS'] = '1'; from netspec.cli import main; "
        "sys.exit(main(['lsp']))",
    ],
    client_factory=make_client,
)
MNIST_TEXT = (ROOT / "specs" / "mnist.net").read_text(encoding="utf-8")


def _block_chain(n: int, leaf: str) -> str:
    blocks = f"block B0 {{ {leaf} }}\n" + "".join(f"block B{k} {{ B{k - 1} -> B{k - 1} }}\n" for k in range(1, n))
    return blocks + MNIST_TEXT.replace("    flatten\n", f"    flatten\n    B{n - 1}\n")


SLOW_TEXT = (  # 99,000 layers: seconds of checking without a budget
    "network N {\n    input [4, 8, 8]\n    repeat 33000 { conv2d(4, kernel=3, padding=1) -> batchnorm -> relu }\n}\n"
)


@pytest_lsp.fixture(config=BOUNDED, scope="module")
async def bounded(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"), root_uri=ROOT.as_uri())
    )
    yield
    await asyncio.wait_for(lsp_client.shutdown_session(), TIMEOUT)


@aio
async def test_documents_that_expand_exponentially_do_not_freeze_the_server(bounded: LanguageClient) -> None:
    client = bounded
    for text, code in ((_block_chain(35, "relu"), "NS060"), (_block_chain(18, "reluu"), "NS010")):
        uri = open_doc(client, text, "blocks")
        assert code in [d.code for d in await published(client, uri, 1)]
    uri = open_doc(client, MNIST_TEXT, "after")  # the checker thread is still there for the next document
    assert [d.code for d in await published(client, uri, 1)] == []
    assert "[20, 24, 24]" in (await hover(client, uri, pos(MNIST_TEXT, "conv2d(20", 2)) or "")
    items = await asyncio.wait_for(
        client.text_document_completion_async(
            types.CompletionParams(text_document=doc_id(uri), position=pos(MNIST_TEXT, "relu"))
        ),
        TIMEOUT,
    )
    assert items is not None


@aio
async def test_a_check_over_its_budget_reports_it_and_a_newer_edit_supersedes_it(bounded: LanguageClient) -> None:
    client = bounded
    start = time.monotonic()
    uri = open_doc(client, SLOW_TEXT, "slow")
    diagnostics = await published(client, uri, 1)
    assert [d.code for d in diagnostics] == ["NS061"] and "checking stopped after 1 s" in diagnostics[0].message
    assert time.monotonic() - start < 1 + 5
    uri = open_doc(client, SLOW_TEXT, "superseded")
    await asyncio.sleep(0.2)  # the slow check is running
    start = time.monotonic()
    change(client, uri, 2, None, MNIST_TEXT)
    assert [d.code for d in await published(client, uri, 2)] == []
    assert time.monotonic() - start < 0.9  # the running check was cancelled, not waited for (1 s budget)
    assert all(p.version == 2 for p in client.published if p.uri == uri)  # type: ignore[attr-defined]
    # a hover right after an edit waits for the checker thread (never checks on the event loop) and sees the edit
    change(client, uri, 3, None, MNIST_TEXT.replace("conv2d(20", "conv2d(30"))
    assert "[30, 24, 24]" in (await hover(client, uri, pos(MNIST_TEXT, "conv2d(20", 2)) or "")


def test_a_wrong_content_length_or_malformed_json_is_survived_without_tracebacks(raw_server: RawServer) -> None:
    """One message framed wrongly used to leave the server deaf (a long length swallowed what followed;
    a short one spoiled the next header): it resynchronises on the next `Content-Length:` header."""
    s = raw_server
    s.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "capabilities": {}}})
    assert "capabilities" in s.response(1)["result"]
    s.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    symbols = {"textDocument": {"uri": "file:///never-opened.net"}}

    def request(msg_id: int, delta: int = 0) -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/documentSymbol", "params": symbols})
        s.raw(b"Content-Length: %d\r\n\r\n" % (len(body) + delta) + body.encode())

    request(2, +1000)  # too long: the server must not wait for 1000 bytes that never come
    request(3)
    assert s.response(3)["result"] == []
    request(4, -10)  # too short
    request(5)
    assert s.response(5)["result"] == []
    s.raw(b"Content-Length: 12\r\n\r\n{not json}\r\n")
    s.raw(b'Content-Length: 99999999\r\nContent-Type: x\r\n\r\n{"half')
    request(6)
    assert s.response(6)["result"] == []
    s.send({"jsonrpc": "2.0", "id": 7, "method": "shutdown"})
    assert s.response(7)["result"] is None
    s.send({"jsonrpc": "2.0", "method": "exit"})
    assert s.proc.wait(10) == 0
    time.sleep(0.1)
    log = b"".join(s.stderr).decode("utf-8", "replace")
    assert "Traceback" not in log and "resynchronised" in log, log


# --- the conversion functions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column", "u16", "u8"),
    [
        ("abc", 2, 2, 2),
        ("é=1", 1, 1, 2),
        ("日本 x", 3, 3, 7),
        ("🎉 x", 1, 2, 4),
        ("🎉🎉x", 2, 4, 8),
        ("a😀b日c", 4, 5, 9),
        ("abc", 9, 3, 3),  # past the end: clamped
    ],
)
def test_code_point_columns_to_lsp_and_back(line: str, column: int, u16: int, u8: int) -> None:
    assert L.to_lsp_character(line, column, L.UTF16) == u16
    assert L.to_lsp_character(line, column, L.UTF8) == u8
    assert L.to_lsp_character(line, column, L.UTF32) == min(column, len(line))
    back = min(column, len(line))
    assert L.from_lsp_character(line, u16, L.UTF16) == back
    assert L.from_lsp_character(line, u8, L.UTF8) == back
    assert L.from_lsp_character(line, back, L.UTF32) == back


def test_positions_inside_a_character_and_past_the_end() -> None:
    assert L.from_lsp_character("🎉x", 1, L.UTF16) == 0  # between the surrogate halves: the emoji
    assert L.from_lsp_character("日x", 2, L.UTF8) == 0  # inside the 3 UTF-8 bytes
    assert L.from_lsp_character("ab", 99, L.UTF16) == 2
    assert L.from_lsp_character("ab", -5, L.UTF16) == 0
    assert L.code_units("\ud83c", L.UTF16) == 1 and L.code_units("\ud83c", L.UTF8) == 3  # a lone surrogate
    lines = ["# 🎉", "x = 日本🎉y"]
    assert L.to_lsp_position(lines, 2, 8) == types.Position(line=1, character=8)  # y: 1-based column 8
    assert L.from_lsp_position(lines, types.Position(line=1, character=8)) == (2, 8)
    assert L.to_lsp_position(lines, 9, 1) == types.Position(line=1, character=9)  # past the end: its end
    assert L.from_lsp_position(lines, types.Position(line=9, character=0)) == (2, 9)
    assert L.to_lsp_position([], 1, 1) == types.Position(line=0, character=0)
    crlf = ["abc\r", "x\r"]  # "abc\r\nx\r": the first \r ends a line, the last one is text
    assert L.to_lsp_position(crlf, 1, 9) == types.Position(line=0, character=3)
    assert L.to_lsp_position(crlf, 2, 9) == types.Position(line=1, character=2)
    assert L.from_lsp_position(crlf, types.Position(line=0, character=7)) == (1, 4)
    rng = L.span_to_range(lines, 2, 5, 2, 8)
    assert (rng.start.character, rng.end.character) == (4, 8)
    assert L.encoding_name(types.PositionEncodingKind.Utf8) == "utf-8" and L.encoding_name(None) == "utf-16"


def test_a_diagnostic_after_emoji_has_its_utf16_range() -> None:
    result = compile_text(UNICODE_SPEC)
    d = next(d for d in result.diagnostics if d.code == "NS020")
    doc = L.Document("file:///x.net", UNICODE_SPEC)
    out = L.to_lsp_diagnostic(d, doc)
    assert out.range.start == pos(UNICODE_SPEC, "nope") and out.range.end == pos(UNICODE_SPEC, "nope", 4)
    assert out.code == "NS020" and out.source == "netspec" and out.severity == types.DiagnosticSeverity.Error
    assert L.to_lsp_diagnostic(d, doc, L.UTF8).range.start == pos(UNICODE_SPEC, "nope", units=utf8)


@pytest.mark.parametrize("encoding", [L.UTF16, L.UTF8, L.UTF32])
def test_incremental_edits_with_random_unicode(encoding: str) -> None:
    units = {L.UTF16: utf16, L.UTF8: utf8, L.UTF32: len}[encoding]
    alphabet = "ab \n\r\t#é日本😀🎉\u2028\x0c"  # \u2028 and form feed are not line breaks here
    rng = random.Random(1234)
    text = "".join(rng.choice(alphabet) for _ in range(200))
    doc = L.Document("file:///r.net", text)

    def position(index: int) -> types.Position:
        line = text.count("\n", 0, index)
        start = text.rfind("\n", 0, index) + 1
        content = text[start:index]
        return types.Position(line=line, character=units(content))

    for _ in range(300):
        a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        if text[a - 1 : a + 1] == "\r\n" or text[b - 1 : b + 1] == "\r\n":
            continue  # inside a \r\n pair: not a position a client can send
        new = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        rng_lsp = types.Range(start=position(a), end=position(b))
        doc.apply(types.TextDocumentContentChangePartial(range=rng_lsp, text=new), encoding)
        text = text[:a] + new + text[b:]
        assert doc.text == text
    doc.apply(types.TextDocumentContentChangeWholeDocument(text="x"))
    assert doc.text == "x" and doc.lines == ["x"]


# --- pure features: robust on every prefix of every spec -------------------------------------------


def test_features_never_raise_on_any_prefix_of_the_specs() -> None:
    for path in SPECS:
        full = path.read_text(encoding="utf-8")
        for cut in range(0, len(full) + 1, 97):
            text = full[:cut]
            a = L.analyze(text)
            lines = text.split("\n")
            L.symbols(a)
            L.formatting(L.Document("u", text))
            for offset in range(0, len(text) + 1, 13):
                line = text.count("\n", 0, offset) + 1
                column = offset - (text.rfind("\n", 0, offset) + 1) + 1
                assert 1 <= line <= len(lines)
                L.hover_markdown(a, line, column)
                L.definition(a, line, column)
                L.completion(text, offset, a)
                L.signature_help(text, offset)


def test_chunked_parse_gives_the_whole_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    from netspec.language import parse as parse_module

    parse = parse_module.parse
    chunked = L.ChunkedParse(parse, size=64)
    texts = [p.read_text(encoding="utf-8") for p in SPECS + GOLDEN]
    texts += [
        "network N {\n    input [4]\n    dense(2)\n} \\\nlet a = 1\n",  # a line continuation after `}`
        "let a = 1\nnetwork N {\n    input [a]\n}\r\nnetwork M {\r\n    input [2]; dense(1)\r\n}",
        'block B { dense(1) } # "}"\nnetwork N { input [2]; B }\nversion 1\n',  # version not first
    ]
    for text in texts:
        assert chunked(text) == parse(text)
    rng = random.Random(7)
    pieces = ["", "}", "{", "\\\n", '"', "#", "\n", "x", ";", ")", "(", "[", "network Z {", "}\n}"]
    for _ in range(600):
        base = rng.choice(texts)
        i = rng.randrange(len(base) + 1)
        text = base[:i] + rng.choice(pieces) + base[min(len(base), i + rng.randrange(4)) :]
        assert chunked(text) == parse(text), text
    assert len(chunked.cache) <= 64
    text = (ROOT / "specs" / "resnet_cifar.net").read_text(encoding="utf-8").replace("width = 64", "width = 48")
    assert compile_text(text, parser=chunked).diagnostics == compile_text(text).diagnostics == []


def test_completion_contexts() -> None:
    def at(marked: str) -> list[str]:
        return [i.label for i in L.completion(marked.replace("|", ""), marked.index("|"))]

    assert at("|") == ["version", "let", "block", "network", "dataset", "train", "tune"]
    assert at("train {\n    optimizer |\n}") == OPTIMIZERS.names()
    assert at("train {\n    schedule |\n}") == SCHEDULES.names()
    assert at("dataset {\n    source |\n}") == SOURCES.names()
    assert at("train {\n    compile |\n}") == ["true", "false"]
    assert at("network N {\n    conv2d(8, padding=|") == ['"same"', '"valid"']
    assert at("network N {\n    conv2d(8, kernel=3, |")[:2] == ["stride=", "padding="]
    assert at("train {\n    optimizer adam(lr=1e-3, |")[0] == "betas="
    assert at("network N {\n    dense(4)  # a comment |") == []
    assert at('network N {\n    dense(4, "str|') == []
    assert at("block B(c, k=3) {\n    conv2d(c, kernel=|") == ["c", "k"]


def _at(marked: str) -> list[str]:
    return [i.label for i in L.completion(marked.replace("|", ""), marked.index("|"))]


def _signature(marked: str) -> tuple[str, int | None] | None:
    help = L.signature_help(marked.replace("|", ""), marked.index("|"))
    return (help.signatures[0].label, help.active_parameter) if help is not None else None


def _unparsable(marked: str) -> str:
    """The text without its cursor mark, checked not to parse (the parser recovers no tree from it)."""
    text = marked.replace("|", "")
    assert parse_module.parse(text)[0] is None, text
    return marked


def test_completion_inside_an_unclosed_call() -> None:
    marked = _unparsable("let n = 20\nnetwork N {\n    input [1, 28, 28]\n    conv2d(n, ker|")
    assert _at(marked)[:3] == ["kernel=", "stride=", "padding="] and "out_channels=" not in _at(marked)
    assert "n" in _at(marked)  # the constant, from the syntax tree of the text without the call
    label, active = _signature(marked) or ("", None)
    assert label.startswith("conv2d(out_channels, kernel") and active == 1
    wrapped = _signature(_unparsable("network N {\n    conv2d(4,\n        padding=|"))  # a call over two lines
    assert wrapped is not None and wrapped[1] == 3  # `padding`, by name
    # a block used before its definition, in a text whose every line after the `(` is a follow-up error
    marked = _unparsable("network N {\n    Unit(4, |\n}\nblock Unit(c, k=3) {\n    dense(c)\n}\n")
    assert _signature(marked) == ("Unit(c, k=3)", 1)
    assert _at(marked) == ["k="]


def test_completion_in_an_unclosed_section() -> None:
    assert _at(_unparsable("train {\n    loss |")) == LOSSES.names()
    assert _at(_unparsable("train {\n    metrics accuracy, |")) == METRICS.names()
    assert _at(_unparsable("dataset {\n    normalize(mean=0.5, |"))[0] == "std="
    assert _signature(_unparsable("train {\n    optimizer sgd(0.1, |")) == (
        _signature("train {\n    optimizer sgd(0.1, |)\n}\n")
    )
    assert "patience=" in _at(_unparsable("train {\n    early_stopping(|"))
    keys = _at(_unparsable("dataset {\n    source mnist\n    |"))
    assert keys[:2] == ["source", "batch"] and set(TRANSFORMS.names()) <= set(keys)
    assert _at(_unparsable("network A {\n    input [2]\n}\ntrain {\n    model |")) == ["A"]


def test_completion_after_an_arrow_in_text_that_does_not_parse() -> None:
    after = _at(_unparsable("block B {\n    dense(2)\n}\nnetwork N {\n    input [4]\n    dense(4) -> |"))
    assert after[: len(ACTIVATIONS)] == ACTIVATIONS and "B" in after and "input" not in after
    assert _at(_unparsable("network N {\n    dense(4) -> re|"))[: len(ACTIVATIONS)] == ACTIVATIONS


def test_the_cursor_context_is_read_from_the_grammars_tokens() -> None:
    """What a regular expression over the text got wrong: the lexer knows comments, strings, keywords and
    line continuations as the parser does."""
    ctx = L.context_at("network N {\n    conv2d(8, kernel=", len("network N {\n    conv2d(8, kernel="))
    assert (ctx.section, ctx.callee, ctx.bracket) == ("network", "conv2d", "(")
    assert [[t.type for t in arg] for arg in ctx.args] == [["INT"], ["NAME", "EQUAL"]]
    assert _at("network N {\n    dense(4) \\\n    -> |")[: len(ACTIVATIONS)] == ACTIVATIONS  # `\` joins lines
    assert _at('train {\n    loss "a { b" # } -> (\n    optimizer |') == OPTIMIZERS.names()
    assert _at("let x = 1  # network M {\n|") == ["version", "let", "block", "network", "dataset", "train", "tune"]
    assert _at('network N {\n    dense(4, "a, b", # c, d\n        |')[:1] == ["bias="]  # 2 arguments given
    assert not any("import re" in p.read_text(encoding="utf-8") for p in (ROOT / "netspec" / "lsp").glob("*.py"))


def test_one_parse_per_text_for_the_checker_and_the_requests() -> None:
    calls: list[str] = []

    def parse(text: str) -> Any:
        calls.append(text)
        return parse_module.parse(text)

    parser = L.ChunkedParse(parse)
    text = "network N {\n    input [4]\n    dense(2 -> |\n}\n"
    L.analyze(text.replace("|", ""), parser=parser)  # the checker's parse
    assert len(calls) == 1
    L.completion(text.replace("|", ""), text.index("|"), parse=parser)
    L.signature_help(text.replace("|", ""), text.index("|"), parse=parser)
    assert calls[0] == text.replace("|", "") and calls.count(calls[0]) == 1


def test_the_server_does_not_import_torch() -> None:
    code = (
        "import sys; from netspec import lsp; a = lsp.analyze(open('specs/resnet_cifar.net').read()); "
        "lsp.hover_markdown(a, 12, 6); lsp.completion(a.text, 200, a); lsp.formatting(lsp.Document('u', a.text)); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_lsp_command_help() -> None:
    done = subprocess.run([*SERVER, "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "LSP" in done.stdout and "--max-memory" in done.stdout


# --- the VS Code extension -------------------------------------------------------------------------


def _patterns(node: Any) -> list[str]:
    """Every regular expression in a TextMate grammar."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                out.append(value)
            else:
                out += _patterns(value)
    elif isinstance(node, list):
        for value in node:
            out += _patterns(value)
    return out


def test_textmate_grammar_covers_keywords_and_every_layer() -> None:
    grammar = json.loads((VSCODE / "syntaxes" / "netspec.tmLanguage.json").read_text(encoding="utf-8"))
    assert grammar["scopeName"] == "source.netspec"
    patterns = _patterns(grammar)
    for p in patterns:
        re.compile(p)  # Oniguruma reads these too; Python's re is a close check of the syntax

    def highlighted(word: str, scope_prefix: str) -> bool:
        return any(
            isinstance(rule, dict)
            and rule.get("name", "").startswith(scope_prefix)
            and re.search(rule["match"], f" {word} ")
            for rule in _rules(grammar)
            if "match" in rule
        )

    for word in KEYWORDS:
        assert highlighted(word, "keyword") or highlighted(word, "constant.language"), word
    for word in ("version", "let", "block", "network", "dataset", "train", "tune", "input", "repeat", "residual"):
        assert highlighted(word, "keyword"), word
    for word in ("true", "false", "none"):
        assert highlighted(word, "constant.language"), word
    for name in LAYERS.names():
        assert highlighted(name, "support.function"), name
        assert not highlighted(name + "x", "support.function"), name
    for name in ACTIVATIONS:
        assert highlighted(name, "support.function.activation"), name
    families = (LOSSES, OPTIMIZERS, SCHEDULES, METRICS, SOURCES, TRANSFORMS, TASKS, SEARCH, SAMPLERS, PRUNERS)
    for registry in (*families, LOGGERS):
        for name in registry.names():
            assert highlighted(name, "support.function"), name
    assert highlighted("->", "keyword.operator.arrow")
    assert highlighted("# comment", "comment.line")
    assert highlighted("1_000", "constant.numeric") and highlighted("5e-4", "constant.numeric")


def _rules(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        out.append(node)
        for value in node.values():
            out += _rules(value)
    elif isinstance(node, list):
        for value in node:
            out += _rules(value)
    return out


def test_vscode_extension_manifest() -> None:
    package = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = package["contributes"]["languages"]
    assert language["id"] == "netspec" and language["extensions"] == [".net"]
    (grammar,) = package["contributes"]["grammars"]
    assert (VSCODE / grammar["path"]).is_file() and grammar["scopeName"] == "source.netspec"
    # the client is bundled by esbuild (`npm run build`) from src/ into `main`: nothing ships in node_modules
    assert package["main"] == "./dist/extension.js" and "src/extension.js" in package["scripts"]["build"]
    assert "vscode-languageclient" in package["devDependencies"] and not package.get("dependencies")
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"]["lineComment"] == "#"
    assert ["{", "}"] in config["brackets"] and ["(", ")"] in config["brackets"]
    script = (VSCODE / "src" / "extension.js").read_text(encoding="utf-8")
    assert '"lsp"' in script and "vscode-languageclient/node" in script
