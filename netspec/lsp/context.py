"""Where the cursor is, read from the grammar's tokens (``netspec.lsp.tokens``): the text is being
edited and may not parse, so completion and signature help walk the tokens before the cursor, with
the brackets still open, instead of the syntax tree.

A statement starts after a `{`, a `}`, or a new line or `;` outside `(` and `[`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from netspec.lsp.tokens import ARROW, COMMENT, IDENTS, NL, OPEN_STRING, WORDS, Brackets, Tok, tokens

_STRUCTURE = frozenset({"LPAR", "RPAR", "LSQB", "RSQB", "LBRACE", "RBRACE", NL, "SEMICOLON"})
SECTION_TYPES = {"NETWORK": "network", "BLOCK": "block", "DATASET": "dataset", "TRAIN": "train", "TUNE": "tune"}


@dataclass
class Cursor:
    """Where the cursor is, as far as completion and signature help are concerned."""

    section: str = "top"  # top | network | block | dataset | train | tune
    opener: list[Tok] = field(default_factory=list)  # the statement that opened the outermost `{`
    statement: list[Tok] = field(default_factory=list)  # the current statement, outside ( and [: no comments
    start: tuple[int, int] = (0, 0)  # where the current statement starts: 0-based line and column
    start_offset: int = 0  # the same as a string index of the text
    top: tuple[int, int] = (0, 0)  # where the top-level statement that holds the cursor starts
    top_offset: int = 0
    braces: int = 0  # the `{` open at the cursor
    touching: bool = False  # the last token ends at the cursor (a word being typed)
    in_comment: bool = False
    in_string: bool = False
    bracket: str | None = None  # the innermost open `(` or `[`, if any
    callee: str | None = None  # the name before the innermost open `(`
    callee_statement: list[Tok] = field(default_factory=list)  # the statement's tokens before the callee
    args: list[list[Tok]] = field(default_factory=list)  # that call's arguments so far (the last one is being typed)

    def block_name(self) -> str | None:
        """The name of the block whose body holds the cursor."""
        at = next((i for i, t in enumerate(self.opener) if t.type == "BLOCK"), None)
        name = self.opener[at + 1] if at is not None and at + 1 < len(self.opener) else None
        return name.text if name is not None and name.type == "NAME" else None

    def word_only(self, toks: Sequence[Tok]) -> bool:
        """Nothing, or one word being typed (the cursor at its end): where a name may be completed."""
        return not toks or (len(toks) == 1 and toks[0].type in WORDS and self.touching)

    def after_word(self, toks: Sequence[Tok]) -> list[Tok]:
        """The tokens without the word being typed at their end."""
        return list(toks[:-1]) if toks and toks[-1].type in WORDS and self.touching else list(toks)

    def after_arrow(self) -> bool:
        """After `->`, with perhaps a word being typed."""
        rest = self.after_word(self.statement)
        return bool(rest) and rest[-1].text == ARROW

    def head(self, *types: str) -> list[Tok] | None:
        """The statement's tokens after its first one when that one has one of ``types`` and is not the
        word being typed; None otherwise."""
        s = self.statement
        if not s or s[0].type not in types or (len(s) == 1 and self.touching):
            return None
        if len(s) > 1 and (s[1].line, s[1].start) == (s[0].line, s[0].end):  # no space after it
            return None
        return s[1:]


def context_at(text: str, offset: int) -> Cursor:
    """The cursor context at a string index of ``text``."""
    before = text[: max(0, min(offset, len(text)))]
    line = before.count("\n")
    column = len(before) - (before.rfind("\n") + 1)
    lines = text.split("\n")
    ctx = _Walk(tokens(lines, line, column), (line, column)).context()
    ctx.start_offset = sum(len(x) + 1 for x in lines[: ctx.start[0]]) + ctx.start[1]
    ctx.top_offset = sum(len(x) + 1 for x in lines[: ctx.top[0]]) + ctx.top[1]
    return ctx


class _Walk:
    """One pass over the tokens before the cursor."""

    def __init__(self, toks: Iterable[Tok], cursor: tuple[int, int]) -> None:
        self.toks = list(toks)
        self.cursor = cursor
        self.brackets = Brackets()
        self.start = 0  # index of the current statement's first token
        self.opener_start = 0  # index of the first token of the statement that opened the outermost `{`

    def context(self) -> Cursor:
        for i, t in enumerate(self.toks):
            if t.type in _STRUCTURE:
                self.feed(t, i)
        last = self.toks[-1] if self.toks else None
        ctx = Cursor(
            in_comment=last is not None and last.type == COMMENT,
            in_string=last is not None and last.type == OPEN_STRING,
            touching=last is not None and (last.line, last.end) == self.cursor,
            braces=self.brackets.braces(),
        )
        ctx.start = self.position(self.start)
        ctx.top = self.position(self.opener_start if ctx.braces else self.start)
        self.section(ctx)
        if self.brackets.top in ("(", "["):
            self.call(ctx)
        else:
            ctx.statement = self.words(self.start, len(self.toks))
        return ctx

    def feed(self, t: Tok, i: int) -> None:
        outside = self.brackets.top in (None, "{")
        if t.type == "LBRACE" and not self.brackets.braces():
            self.opener_start = self.start
        self.brackets.feed(t, i)
        if t.type in ("LBRACE", "RBRACE") or (outside and t.type in (NL, "SEMICOLON")):
            self.start = i + 1

    def position(self, index: int) -> tuple[int, int]:
        """Where the token at ``index`` starts (the cursor if there is none)."""
        return (self.toks[index].line, self.toks[index].start) if index < len(self.toks) else self.cursor

    def words(self, start: int, end: int) -> list[Tok]:
        return [t for t in self.toks[start:end] if t.type not in (COMMENT, NL)]

    def section(self, ctx: Cursor) -> None:
        braces = [i for ch, i in self.brackets.stack if ch == "{"]
        if not braces:
            return
        ctx.opener = self.words(self.opener_start, braces[0])
        kinds = [SECTION_TYPES[t.type] for t in ctx.opener if t.type in SECTION_TYPES]
        ctx.section = kinds[-1] if kinds else "network"

    def call(self, ctx: Cursor) -> None:
        ctx.bracket = self.brackets.top
        calls = [i for ch, i in self.brackets.stack if ch == "("]
        if not calls:
            return
        head = self.words(self.start, calls[-1])
        if head and head[-1].type in IDENTS:
            ctx.callee = head[-1].text
            ctx.callee_statement = head[:-1]
            ctx.args = split_args(self.words(calls[-1] + 1, len(self.toks)))


def split_args(toks: Sequence[Tok]) -> list[list[Tok]]:
    """The arguments written so far, split at the call's own commas (the last one is being typed)."""
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.type == "COMMA" and depth == 0:
            parts.append([])
            continue
        if t.type in ("LPAR", "LSQB", "LBRACE"):
            depth += 1
        elif t.type in ("RPAR", "RSQB", "RBRACE"):
            depth = max(0, depth - 1)
        parts[-1].append(t)
    return parts


def keyword_name(arg: Sequence[Tok]) -> str | None:
    """`kernel` for an argument written `kernel=...`."""
    if len(arg) >= 2 and arg[0].type in IDENTS and arg[1].type == "EQUAL":
        return arg[0].text
    return None
