"""Syntax errors as a person reads them: what was found, what was expected, and a hint —
what is missing and where it was opened, a keyword used as a name, `=` in a section.
`parse` calls `syntax_error` with Lark's exception and the text."""

from __future__ import annotations

import re
from typing import Any, Callable

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from netspec.language.diagnostics import Diagnostic, make
from netspec.language.span import Span
from netspec.language.suggest import nearest
from netspec.language.syntax import KEYWORDS

_KEYWORD_TYPES = {k: k.upper() for k in KEYWORDS}  # the grammar's terminal for each keyword


def _tok_span(tok: Token) -> Span:
    line, column = tok.line or 1, tok.column or 1
    return Span.at(line, column, tok.end_line or line, tok.end_column or column + 1)


_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "_NL": "a new line",
    "$END": "the end of the file",
    "SEMICOLON": "`;`",
    "VALUE": "a value",
    "OPERATOR": "an operator",
}
_VALUE_START = {"INT", "FLOAT", "STRING", "NAME", "LSQB", "LPAR", "MINUS", "TRUE", "FALSE", "NONE"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "__ANON_1", "PERCENT"}  # __ANON_1 is `//`
_CLOSER = {"(": "RPAR", "[": "RSQB"}


Terminals = Callable[[str], Any]  # the grammar's terminal by name (Lark's `get_terminal`)


def describe_terminal(name: str, terminals: Terminals) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = terminals(name).pattern
    except KeyError:
        return name.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else name.lower()


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    kinds = {"NAME": "name", "INT": "number", "FLOAT": "number", "STRING": "string"}
    text = str(tok) if len(tok) <= 40 else str(tok)[:37] + "..."
    return f"{kinds[tok.type]} `{text}`" if tok.type in kinds else f"`{text}`"


def syntax_error(e: UnexpectedInput, text: str, terminals: Terminals) -> Diagnostic:
    if isinstance(e, UnexpectedCharacters):
        return _bad_character(e, text)
    tok: Token = e.token if isinstance(e, UnexpectedToken) else Token("$END", "")
    pos = _token_pos(tok, text)
    stack = _open_brackets(text, pos)
    bracket = stack[-1][0] if stack and stack[-1][0] != "{" else None
    names = _expected_names(set(getattr(e, "expected", None) or ()), bracket)
    expected = sorted({describe_terminal(t, terminals) for t in names})
    braces = [p for ch, p in stack if ch == "{"]
    if braces and "RBRACE" in names and (tok.type == "$END" or _starts_top_item(tok, text, pos, braces[-1])):
        return _unclosed_brace(tok, text, e, braces[-1])
    message = f"unexpected {_describe_token(tok)}"
    if expected and len(expected) <= 8:
        message += f"; expected {_one_of(expected)}"
    start = text.rfind("\n", 0, pos) + 1
    header = text[text.rfind("\n", 0, braces[-1]) + 1 : braces[-1]] if braces else ""
    hint = _syntax_hint(tok, names, bracket, text[start:pos], text[pos:].split("\n", 1)[0], header, set(expected))
    return make("NS001", message, _error_span(tok, text, e), hint)


_TOP_KEYWORDS = frozenset(_KEYWORD_TYPES[k] for k in ("version", "let", "block", "network", "dataset", "train", "tune"))


def _line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _starts_top_item(tok: Token, text: str, pos: int, brace: int) -> bool:
    """A top-level keyword at the start of a line inside a body whose `{` is never closed."""
    first_on_line = not text[text.rfind("\n", 0, pos) + 1 : pos].strip()
    return (
        tok.type in _TOP_KEYWORDS
        and first_on_line
        and (brace, "{") in ((p, c) for c, p in _open_brackets(text, len(text)))
    )


def _unclosed_brace(tok: Token, text: str, e: UnexpectedInput, brace: int) -> Diagnostic:
    """A `{` left open: say where it was opened, and where its `}` is missing."""
    line, _ = _line_col(text, brace)
    opener = text[text.rfind("\n", 0, brace) + 1 : brace].strip() or "{"
    where = "the end of the file" if tok.type == "$END" else f"`{tok}` on line {tok.line}"
    return make(
        "NS001",
        f"missing `}}`: the `{{` of `{opener}` on line {line} is not closed before {where}",
        _error_span(tok, text, e),
        "add `}` at the end of its body",
    )


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


def _expected_names(names: set[str], bracket: str | None) -> set[str]:
    """Lark's expected terminals, grouped (`a value`, `an operator`) and without impossible ones."""
    names = {n for n in names if not n.startswith("__IGNORE")}
    if {"INT", "FLOAT", "STRING", "LSQB"} <= names:
        names = (names - _VALUE_START) | {"VALUE"}
    if {"STAR", "SLASH", "PERCENT"} <= names:
        names = (names - _OPERATORS) | {"OPERATOR"}
    if bracket is not None:  # inside () or []: new lines are dropped, and LALR lookaheads leak from outside
        names -= {"_NL", "SEMICOLON", "LBRACE", "RBRACE", "$END"} | (set(_CLOSER.values()) - {_CLOSER[bracket]})
    return names


def _token_pos(tok: Token, text: str) -> int:
    return len(text) if tok.type == "$END" or tok.start_pos is None else tok.start_pos


def _open_brackets(text: str, pos: int) -> list[tuple[str, int]]:
    """The brackets still open at ``pos`` (outside strings and comments), innermost last, with positions."""
    stack: list[tuple[str, int]] = []
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[][(){}]', text[:pos]):
        ch = m.group()
        if ch in ("(", "[", "{"):
            stack.append((ch, m.start()))
        elif ch in (")", "]", "}") and stack:
            stack.pop()
    return stack


def _error_span(tok: Token, text: str, e: UnexpectedInput) -> Span:
    if tok.type == "$END":  # just after the last thing written, not on a blank last line
        body = text.rstrip()
        line = body.count("\n") + 1
        col = len(body) - (body.rfind("\n") + 1) + 1
        return Span.at(line, col, line, col + 1)
    if tok.type == "_NL":
        return _tok_span(Token("_NL", " ", line=tok.line, column=tok.column))
    return _tok_span(tok)


def _syntax_hint(
    tok: Token, expected: set[str], bracket: str | None, before: str, after: str, header: str, described: set[str]
) -> str | None:
    """``before`` and ``after``: the rest of the token's line; ``header``: the line of the enclosing `{`;
    ``described``: the expected terminals as the message names them."""
    if tok.type == "$END" and bracket is not None:
        return f"a `{bracket}` is never closed; add the matching `{')' if bracket == '(' else ']'}`"
    if tok.type == "$END" and "RBRACE" in expected:
        return "a `{` is never closed; add the matching `}`"
    if tok.type in _KEYWORD_TYPES.values() and tok.type not in expected and "NAME" in expected:
        return f"`{tok}` is a keyword; use another name"
    if tok.type == "NAME":
        keyword = nearest(str(tok), [k for k in KEYWORDS if k.upper() in expected])
        if keyword:
            return f"did you mean `{keyword}`?"
    if bracket is not None:
        if tok.type in ("RPAR", "RSQB") and tok.type != _CLOSER[bracket]:
            return f"a `{bracket}` is closed with `{')' if bracket == '(' else ']'}`"
        if tok.type in ("NAME", "INT", "FLOAT", "STRING", "LSQB") and "COMMA" in expected:
            return f"separate the {'arguments' if bracket == '(' else 'items'} with `,`"
        return None
    key = before.strip()
    if tok.type == "EQUAL" and re.fullmatch(r"[A-Za-z_]\w*", key) and re.match(r"\s*(dataset|train)\b", header):
        value = after[1:].split("#", 1)[0].strip() or "VALUE"
        return f"section keys take their value without `=`: write `{key} {value}`"
    if tok.type in ("NAME", "LPAR") and "_NL" in expected and "`->`" in described:
        return "join layers with `->` or put each on its own line"
    if tok.type == "LBRACE" and key in ("network", "block"):
        return f"give the {key} a name, e.g. `{key} {'LeNet' if key == 'network' else 'ConvBN'} {{`"
    return None


def _bad_character(e: UnexpectedCharacters, text: str) -> Diagnostic:
    pos = e.pos_in_stream or 0
    ch = text[pos] if pos < len(text) else ""
    span = Span.at(e.line, e.column, e.line, e.column + 1)
    if ch == '"':
        return make("NS003", "unterminated string", span, 'close the string with `"` on the same line')
    if ch == ":":
        return make("NS002", "unexpected character `:`", span, "keyword arguments use `=`, e.g. `kernel=3`")
    stack = _open_brackets(text, pos)
    if ch == ">" and text[pos - 1 : pos] == "-" and stack and stack[-1][0] in "([":
        return _unclosed_bracket(text, pos - 1, stack[-1])
    if ch == "\x00" or not ch.isprintable():
        return make(
            "NS004",
            f"unexpected control character U+{ord(ch):04X}" if ch else "unexpected input",
            span,
            "is this a binary file?",
        )
    return make("NS002", f"unexpected character `{ch}`", span)


def _unclosed_bracket(text: str, pos: int, opened: tuple[str, int]) -> Diagnostic:
    """`dense(500 -> relu`: the `->` stands inside a bracket that was never closed."""
    bracket, at = opened
    closer = ")" if bracket == "(" else "]"
    line, col = _line_col(text, at)
    here, here_col = _line_col(text, pos)
    opener = text[text.rfind("\n", 0, at) + 1 : at + 1].strip()
    return make(
        "NS002",
        f"missing `{closer}`: the `{bracket}` of `{opener}` at line {line}, column {col} is not closed before `->`",
        Span.at(here, here_col, here, here_col + 2),
        f"add `{closer}` before `->`",
    )
