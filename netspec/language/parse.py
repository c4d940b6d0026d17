"""Stage 1: text -> syntax tree (``netspec.language.syntax``), with syntax diagnostics.

Lark LALR with a small post-lexer (newlines inside brackets are dropped, nesting is
bounded). After a syntax error the offending line is blanked and the text parsed
again, so one typo does not hide the errors after it.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from contextvars import ContextVar
from copy import copy
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, LexerThread

from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, make
from netspec.language.files import read_bounded
from netspec.language.span import Span
from netspec.language.syntax_errors import _KEYWORD_TYPES, _tok_span, syntax_error

MAX_NESTING = 64  # brackets and braces; deeper input is an error, never a RecursionError
MAX_EXPR_DEPTH = 100
MAX_RECOVERIES = 20
RECOVERY_LIMIT = 256 * 1024  # bytes; larger files report their first syntax error only
BOM = "\ufeff"
BOM_BYTES = BOM.encode("utf-8")
MAX_SOURCE = 1024 * 1024  # characters; a larger file is refused (parsing 1 MiB takes seconds, 3 MiB tens of them)
_OPEN = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}
_CLOSE = {"RPAR", "RSQB", "RBRACE"}


class NestingError(Exception):
    def __init__(self, token: Token) -> None:
        self.token = token


def grammar_text() -> str:
    """The grammar, from the installed package or, in a checkout, from ``grammar/``."""
    packaged = resources.files("netspec").joinpath("grammar/netspec.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "grammar" / "netspec.lark").read_text("utf-8")


class PostLex:
    """Drops newlines inside () and [] (so argument lists may wrap), bounds nesting, and keeps keywords
    reserved: where a keyword cannot stand, the contextual lexer reads it as a name (`train {version`),
    which would make a file's meaning depend on its layout (and `fmt` break it)."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        stack: list[str] = []
        for tok in stream:
            if tok.type == "NAME" and tok in _KEYWORD_TYPES:
                tok = Token.new_borrow_pos(_KEYWORD_TYPES[tok], str(tok), tok)  # then a syntax error
            if tok.type in _OPEN:
                stack.append(tok.type)
                if len(stack) > MAX_NESTING:
                    raise NestingError(tok)
            elif tok.type in _CLOSE and stack:
                stack.pop()
            elif tok.type == "_NL" and stack and stack[-1] != "LBRACE":
                continue
            yield tok


@dataclass
class _State:
    """What one parse collects besides the tree."""

    comments: list[st.Comment] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    depth: dict[int, int] = field(default_factory=dict)  # id(expr) -> nesting depth
    parens: dict[int, Span] = field(default_factory=dict)  # id(expr) -> span of its parentheses


_state: ContextVar[_State] = ContextVar("parse_state")


def _collect_comment(tok: Token) -> Token:
    _state.get().comments.append(st.Comment(str(tok), tok.line or 0, tok.column or 0))
    return tok


@cache
def parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=PostLex(),
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _collect_comment},
        cache=True,
    )


def _span(meta: Any) -> Span:
    return Span.at(meta.line, meta.column, meta.end_line, meta.end_column)


def _int(raw: str) -> int:
    digits = raw.replace("_", "")
    if len(digits) > 30:
        raise ValueError("integer literal too long")
    return int(digits)


class ToSyntax:
    """Lark tree -> syntax dataclasses. Collects literal errors instead of raising.

    Each rule's method gets the node's meta (positions) and its transformed children.
    """

    def transform(self, tree: Tree[Token]) -> Any:
        """Bottom-up without recursion: a 100,000-term sum is a tree that deep. Also faster than
        Lark's ``Transformer`` with ``v_args``, which builds a wrapper for every call."""
        order: list[Any] = []
        todo: list[Any] = [tree]
        while todo:
            node = todo.pop()
            order.append(node)
            if isinstance(node, Tree):
                todo.extend(node.children)
        stack: list[Any] = []
        for node in reversed(order):
            if isinstance(node, Tree):
                start = len(stack) - len(node.children)
                children = stack[start:]
                del stack[start:]
                stack.append(getattr(self, node.data)(node.meta, children))
            else:
                stack.append(node)
        return stack[0]

    # Per-parse state lives in a context variable, shared with the lexer's comment callback.
    @property
    def errors(self) -> list[Diagnostic]:
        return _state.get().errors

    @property
    def depth(self) -> dict[int, int]:
        return _state.get().depth

    @property
    def parens(self) -> dict[int, Span]:
        return _state.get().parens

    # expressions -----------------------------------------------------------
    def integer(self, meta: Any, c: list[Token]) -> st.Num:
        try:
            return st.Num(_int(c[0]), str(c[0]), _span(meta))
        except ValueError:
            self.errors.append(make("NS006", "number too large", _span(meta)))
            return st.Num(float("inf"), str(c[0]), _span(meta))  # infinite: the evaluator's "already reported"

    def real(self, meta: Any, c: list[Token]) -> st.Num:
        value = float(c[0].replace("_", ""))
        if value == float("inf"):
            self.errors.append(make("NS006", "number too large", _span(meta)))
        return st.Num(value, str(c[0]), _span(meta))

    def string(self, meta: Any, c: list[Token]) -> st.Str:
        try:
            value = json.loads(c[0])
        except ValueError:
            self.errors.append(
                make("NS007", "invalid escape sequence in string", _span(meta), 'use \\\\, \\", \\n, \\t or \\uXXXX')
            )
            value = ""
        return st.Str(value, str(c[0]), _span(meta))

    def true(self, meta: Any, c: list[Any]) -> st.Const:
        return st.Const(True, _span(meta))

    def false(self, meta: Any, c: list[Any]) -> st.Const:
        return st.Const(False, _span(meta))

    def none(self, meta: Any, c: list[Any]) -> st.Const:
        return st.Const(None, _span(meta))

    def name(self, meta: Any, c: list[Token]) -> st.Name:
        return st.Name(str(c[0]), _span(meta))

    def array(self, meta: Any, c: list[Any]) -> st.ListExpr:
        items = tuple(x for x in c if x is not None)
        return self._deep(st.ListExpr(items, _span(meta)), items)

    def paren(self, meta: Any, c: list[Any]) -> Any:
        self.parens[id(c[0])] = _span(meta)
        return c[0]

    def neg(self, meta: Any, c: list[Any]) -> st.Neg:
        return self._deep(st.Neg(c[0], _span(meta)), c)

    def _binop(op: str) -> Any:  # type: ignore[misc]  # noqa: N805 - builds methods
        def method(self: ToSyntax, meta: Any, c: list[Any]) -> st.BinOp:
            return self._deep(st.BinOp(op, c[0], c[1], _span(meta)), c)

        return method

    add, sub, mul = _binop("+"), _binop("-"), _binop("*")
    div, floordiv, mod = _binop("/"), _binop("//"), _binop("%")

    def _deep(self, node: Any, children: Any) -> Any:
        """Track nesting depth so that later recursive passes are always safe."""
        depth = 1 + max((self.depth.get(id(ch), 0) for ch in children), default=0)
        self.depth[id(node)] = depth
        if depth == MAX_EXPR_DEPTH + 1:
            self.errors.append(
                make(
                    "NS005",
                    f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
                    node.span,
                    "split it with `let` constants",
                )
            )
        return node

    def kwarg(self, meta: Any, c: list[Any]) -> st.Arg:
        return st.Arg(str(c[0]), c[1], _span(meta), _tok_span(c[0]))

    def args(self, meta: Any, c: list[Any]) -> tuple[st.Arg, ...]:
        return tuple(a if isinstance(a, st.Arg) else st.Arg(None, a, a.span) for a in c if a is not None)

    def call(self, meta: Any, c: list[Any]) -> st.Call:
        return st.Call(str(c[0]), c[1], _span(meta), _tok_span(c[0]))

    def callv(self, meta: Any, c: list[Any]) -> st.Call:
        return self._deep(self.call(meta, c), [a.value for a in c[1]])

    # network bodies ----------------------------------------------------------
    def input(self, meta: Any, c: list[Any]) -> st.Input:
        return st.Input(c[0], _span(meta))

    def chain(self, meta: Any, c: list[Any]) -> st.Chain:
        return st.Chain(tuple(c), _span(meta))

    def body(self, meta: Any, c: list[Any]) -> st.Body:
        return st.Body(tuple(c), _span(meta))

    def repeat(self, meta: Any, c: list[Any]) -> st.Repeat:
        return st.Repeat(c[0], c[1], _span(meta))

    def residual(self, meta: Any, c: list[Any]) -> st.Residual:
        return st.Residual(c[0], _span(meta))

    # top level ---------------------------------------------------------------
    def version(self, meta: Any, c: list[Token]) -> st.Version:
        return st.Version(self.integer(c[0], c), _span(meta))  # a token has a meta's positions: span the number

    def let(self, meta: Any, c: list[Any]) -> st.Let:
        return st.Let(str(c[0]), c[1], _span(meta), _tok_span(c[0]))

    def param(self, meta: Any, c: list[Any]) -> st.Param:
        return st.Param(str(c[0]), c[1], _span(meta))

    def params(self, meta: Any, c: list[Any]) -> tuple[st.Param, ...]:
        return tuple(p for p in c if p is not None)

    def block(self, meta: Any, c: list[Any]) -> st.Block:
        return st.Block(str(c[0]), c[1] or (), c[2], _span(meta), _tok_span(c[0]))

    def network(self, meta: Any, c: list[Any]) -> st.Network:
        return st.Network(str(c[0]), c[1], _span(meta), _tok_span(c[0]))

    def values(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)

    def entry(self, meta: Any, c: list[Any]) -> st.Entry:
        key, args, values = c[0], c[1], tuple(c[2] or ())
        paren = self.parens.get(id(values[0])) if len(values) == 1 and args is None else None
        if paren is not None and (paren.line, paren.column) == (key.end_line, key.end_column):
            args, values = (st.Arg(None, values[0], values[0].span),), ()  # `key(x)`: a call, not `key (x)`
        return st.Entry(str(key), args, values, _span(meta), _tok_span(key))

    def entries(self, meta: Any, c: list[Any]) -> tuple[tuple[st.Entry, ...], Span]:
        return tuple(c), _span(meta)

    def _section(self, kind: str, meta: Any, c: list[Any]) -> st.Section:
        name = str(c[0]) if c[0] is not None else None
        return st.Section(kind, name, c[1][0], _span(meta), c[1][1])

    def dataset(self, meta: Any, c: list[Any]) -> st.Section:
        return self._section("dataset", meta, c)

    def train(self, meta: Any, c: list[Any]) -> st.Section:
        return self._section("train", meta, c)

    def tune(self, meta: Any, c: list[Any]) -> st.Section:
        return self._section("tune", meta, [None, *c])

    def start(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)


def read_source(path: str) -> tuple[str | None, list[Diagnostic]]:
    """Read a spec as UTF-8. Undecodable bytes are a diagnostic at their position. Only a regular
    file of at most MAX_SOURCE characters' worth of bytes is read (OSError otherwise)."""
    data = read_bounded(path, 4 * MAX_SOURCE + len(BOM_BYTES))  # UTF-8: at most 4 bytes a character
    if data.startswith(BOM_BYTES):  # a UTF-8 byte-order mark is no part of the text (editors hide it)
        data = data[len(BOM_BYTES) :]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        span = Span.at(line, col, line, col + 1)
        text = data.decode("utf-8", "replace")
        return text, [
            make("NS004", f"invalid UTF-8 byte 0x{data[e.start]:02x}", span, "netspec files must be UTF-8 text")
        ]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (as a ``with`` block or a decorator). While a large spec is
    parsed and checked, it rescans the growing, cycle-free trees again and again: a third of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@paused_gc()
def parse(text: str) -> tuple[st.Module | None, list[Diagnostic]]:
    """Parse a spec. Returns the syntax tree (None if nothing could be recovered) and diagnostics.
    A leading byte-order mark (an editor's buffer may keep one) reads as a space: columns stay those of `text`."""
    if text.startswith(BOM):
        text = " " + text[1:]
    if len(text) > MAX_SOURCE:
        return None, [
            make(
                "NS008",
                f"file too large: {len(text) / 1024 / 1024:.1f} MiB of text, over the "
                f"{MAX_SOURCE // 1024 // 1024} MiB limit",
                Span.at(1, 1, 1, 2),
                "netspec specs are small; split it or generate the repetition with `block` and `repeat`",
            )
        ]
    comments: list[st.Comment] = []
    diags: list[Diagnostic] = []
    work = text
    last_line = 0
    for _ in range(MAX_RECOVERIES + 1):
        comments.clear()
        try:
            tree = _parse_once(work, comments)
            break
        except UnexpectedInput as e:
            if last_line and e.line == last_line:
                return None, diags  # the braces kept on the blanked line do not fit: a follow-up error
            diags.append(syntax_error(e, work, parser().get_terminal))
            if not _can_recover(e, last_line, text):
                return None, diags
            last_line = e.line
            work = _blank_line(work, e.line)
        except NestingError as e:
            diags.append(make("NS005", f"nested more than {MAX_NESTING} levels deep", _tok_span(e.token)))
            return None, diags
    else:
        return None, diags
    items, errors = tree
    if any(d.code == "NS005" for d in errors):  # later passes recurse on expressions: stop here
        return None, diags + errors
    return st.Module(items, tuple(comments)), diags + errors


def _parse_once(text: str, comments: list[st.Comment]) -> tuple[tuple[st.Top, ...], list[Diagnostic]]:
    state = _State(comments=comments)
    token = _state.set(state)
    try:
        items = ToSyntax().transform(parser().parse(text))
    finally:
        _state.reset(token)
    return items, state.errors


def _can_recover(e: UnexpectedInput, last_line: int, text: str) -> bool:
    at_end = isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END")
    return not at_end and e.line > last_line and len(text) <= RECOVERY_LIMIT


def _blank_line(text: str, line: int) -> str:
    """Replace one line with spaces, keeping braces so that blocks stay balanced."""
    lines = text.split("\n")
    lines[line - 1] = "".join(ch if ch in "{}\r" else " " for ch in lines[line - 1])
    return "\n".join(lines)


# --- syntax error messages ------------------------------------------------------

# --- tokens, for tools that read text that may not parse ------------------------------------------


@cache
def _lexer() -> BasicLexer:
    """The grammar's terminals as one plain lexer: no parser state, no post-lexer, no comment callback."""
    conf = copy(parser().lexer_conf)
    conf.ignore = ()  # whitespace is left out by `lex`, comments are kept
    conf.callbacks = {}
    return BasicLexer(conf)


def lex(text: str) -> tuple[list[Token], int | None]:
    """``text`` as the grammar's tokens, without parsing: comments included, whitespace and line
    continuations left out, every keyword its own terminal (`NETWORK`, `INPUT`, ...), new lines inside
    brackets kept (no post-lexer). For tools that read text being edited (the language server's cursor
    context). Lexing stops at the first character that no terminal matches (an unterminated string, a
    stray `:`): the second value is its index, None when the whole text was read."""
    out: list[Token] = []
    try:
        for tok in LexerThread.from_text(_lexer(), text).lex(None):
            if not tok.type.startswith("__IGNORE"):
                out.append(tok)
    except UnexpectedCharacters as e:
        return out, e.pos_in_stream
    return out, None
