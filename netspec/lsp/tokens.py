"""The text being edited as the grammar's tokens (``netspec.language.parse.lex``), line by line.

No token of the grammar spans a line break except the new line itself and a line continuation, so
each line is lexed alone and its tokens are cached by its content: after an edit only the edited
line is lexed again. Where the lexer stops (a stray character, an unterminated string), the line
goes on after that character; an unterminated string runs to the end of its line, as the grammar's
strings do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

from netspec.language.parse import lex
from netspec.language.syntax import KEYWORDS

COMMENT = "COMMENT"
NL = "NL"  # a line break (between two lines; never one inside a line continuation)
OPEN_STRING = "OPEN_STRING"  # `"...` not closed on its line
ERROR = "ERROR"  # one character that no terminal matches
OPENERS = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
CLOSERS = {"RPAR": "(", "RSQB": "[", "RBRACE": "{"}
KEYWORD_TYPES = frozenset(k.upper() for k in KEYWORDS)
IDENTS = KEYWORD_TYPES | {"NAME"}  # what a name or a keyword being typed lexes as
WORDS = IDENTS | {"INT"}
ARROW = "->"
OPERATORS = frozenset({"+", "-", "*", "/", "//", "%"})


@dataclass(slots=True)  # not frozen: built for every token before the cursor, and never changed
class Tok:
    type: str  # the grammar's terminal (NAME, LPAR, COMMENT, ...), or NL, OPEN_STRING, ERROR
    text: str
    start: int  # 0-based columns in code points, end exclusive
    end: int
    line: int = 0  # 0-based; the cached tokens of a line have 0 here


def content(line: str) -> str:
    """A line without the \\r of a \\r\\n ending."""
    return line[:-1] if line.endswith("\r") else line


@functools.lru_cache(maxsize=16384)
def line_tokens(text: str) -> tuple[Tok, ...]:
    """The tokens of one line's content (no line break in it)."""
    out: list[Tok] = []
    at = 0
    while at < len(text):
        found, stop = lex(text[at:])
        out += [Tok(t.type, str(t), at + (t.start_pos or 0), at + (t.end_pos or 0)) for t in found]
        if stop is None:
            break
        bad = at + stop
        if text[bad] == '"':
            out.append(Tok(OPEN_STRING, text[bad:], bad, len(text)))
            break
        out.append(Tok(ERROR, text[bad], bad, bad + 1))
        at = bad + 1
    return tuple(out)


def continues(toks: Sequence[Tok], text: str) -> bool:
    """Whether a line ends in a line continuation (a `\\` just before its line break)."""
    return bool(toks) and toks[-1].type == ERROR and toks[-1].text == "\\" and toks[-1].end == len(text)


def tokens(lines: Sequence[str], line: int, column: int) -> list[Tok]:
    """The tokens before a 0-based (line, column) of the lines, with their line numbers; NL between lines
    (a line continuation is left out, as the grammar ignores it)."""
    out: list[Tok] = []
    for i in range(min(line, len(lines) - 1) + 1):
        text = content(lines[i])
        if i == line:
            text = text[:column]
        toks = line_tokens(text)
        joined = i < line and continues(toks, text)  # the `\` and the line break are left out
        out += [Tok(t.type, t.text, t.start, t.end, i) for t in (toks[:-1] if joined else toks)]
        if i < line and not joined:
            out.append(Tok(NL, "\n", len(text), len(text), i))
    return out


class Brackets:
    """The brackets open so far, innermost last, as (opener, token index). A `)` or `]` closes its
    bracket and those left open inside it, never across a `{`; a `}` closes its brace and
    everything left open inside it."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, int]] = []

    def feed(self, tok: Tok, index: int) -> None:
        if tok.type in OPENERS:
            self.stack.append((OPENERS[tok.type], index))
        elif tok.type in CLOSERS:
            self.close(CLOSERS[tok.type])

    def close(self, want: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == want:
                del self.stack[i:]
                return
            if self.stack[i][0] == "{":
                return

    @property
    def top(self) -> str | None:
        return self.stack[-1][0] if self.stack else None

    def braces(self) -> int:
        return sum(1 for ch, _ in self.stack if ch == "{")


def split_chunks(text: str) -> list[tuple[int, str]] | None:
    """The text cut after each line that closes a top-level `{ ... }`, as (first line, chunk) pairs whose
    concatenation is the text; None when brackets do not balance. Never cut at a line continuation."""
    lines = text.split("\n")
    chunks: list[tuple[int, str]] = []
    depth, start, offset, first = 0, 0, 0, 1
    for i, line in enumerate(lines):
        body = content(line)
        toks = line_tokens(body)
        depth, closed = _depth(toks, depth)
        if depth < 0:
            return None
        offset += len(line) + 1
        if depth == 0 and closed and i < len(lines) - 1 and not continues(toks, body):
            chunks.append((first, text[start:offset]))
            start, first = offset, i + 2
    if depth:
        return None
    chunks.append((first, text[start:]))
    return chunks


def _depth(toks: Sequence[Tok], depth: int) -> tuple[int, bool]:
    """The bracket depth after a line, and whether a `}` on it closed a top-level brace (-1: unbalanced)."""
    closed = False
    for t in toks:
        if t.type in OPENERS:
            depth += 1
        elif t.type in CLOSERS:
            depth -= 1
            if depth < 0:
                return -1, closed
            closed = closed or (depth == 0 and t.type == "RBRACE")
    return depth, closed
