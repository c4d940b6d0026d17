"""The truth for the grammar test (tokenize.test.mjs): every token of each spec as netspec's own lexer
(`netspec.language.parse.lex`) reads it, with the TextMate scope it must have in VS Code.

What a name is comes from netspec, not from the grammar: keywords are the lexer's own terminals,
layer and activation names the layer registry's, a section's keys and the registries their values
name the section schema's (`netspec.ir.sections.SECTIONS`); block parameters, constants, blocks and
networks are read from the spec's declarations. Prints JSON: {"specs": [{"path", "tokens": [[line,
start, end, kind, text], ...]}], "scopes": {kind: scope prefix}}, positions 0-based in UTF-16 code
units as VS Code counts them. A token whose kind is null is not checked (punctuation, a tune
metric's name).

Usage: python spec_tokens.py SPEC...
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from lark import Token

from netspec.ir.sections import SECTIONS
from netspec.language.parse import lex
from netspec.language.syntax import KEYWORDS
from netspec.registry import ACTIVATIONS, LAYERS, SEARCH

SCOPES = {  # kind -> the scope (or the start of the scope) VS Code must give it
    "comment": "comment.line",
    "string": "string.quoted",
    "number": "constant.numeric",
    "keyword": "keyword",
    "constant": "constant.language",
    "layer": "support.function.layer",
    "activation": "support.function.activation",
    "registry": "support.function",
    "search": "support.function.search",
    "parameter": "variable.parameter",  # a block's parameter where the block declares it
    "argument": "variable.parameter",  # `kernel=` in a call
    "variable": "variable.other.netspec",  # a constant or a block parameter used as a value
    "constant_def": "variable.other.constant",
    "key": "variable.other.property",
    "block": "entity.name.function",
    "network": "entity.name.type",
    "section": "entity.name.section",
}
TYPES = {"COMMENT": "comment", "STRING": "string", "INT": "number", "FLOAT": "number"}
KEYWORD_TYPES = {k.upper(): ("constant" if k in ("true", "false", "none") else "keyword") for k in KEYWORDS}
LINE_START = {None, "_NL", "LBRACE", "SEMICOLON"}
NAMERS = {"BLOCK": "block", "NETWORK": "network", "LET": "constant_def", "DATASET": "section", "TRAIN": "section"}


@dataclass
class Names:
    """What the spec declares: its blocks, networks and constants."""

    blocks: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    constants: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, tokens: list[Token]) -> Names:
        names = cls()
        sets = {"BLOCK": names.blocks, "NETWORK": names.networks, "LET": names.constants}
        for prev, tok in pairwise(tokens):
            if tok.type == "NAME" and prev.type in sets:
                sets[prev.type].add(str(tok))
        return names


@dataclass
class State:
    """Where the lexer is: the top-level item, the brackets open, the block's parameters, the key."""

    names: Names
    item: str | None = None  # the keyword of the top-level item: BLOCK, NETWORK, DATASET, ...
    stack: list[str] = field(default_factory=list)  # open brackets: LBRACE, LPAR, LSQB
    params: set[str] = field(default_factory=set)
    in_params: bool = False  # inside `block Name( ... )`
    key: str | None = None  # the section entry of this line
    valued: bool = False  # after `repeat` or `input` on this line of a body
    last: str | None = None  # the type of the token before, new lines and comments left out

    def step(self, tok: Token) -> None:
        t = tok.type
        if t in ("VERSION", "LET", "BLOCK", "NETWORK", "DATASET", "TRAIN", "TUNE") and not self.stack:
            self.item, self.params, self.key = t, set(), None
        if t in ("REPEAT", "INPUT"):
            self.valued = True
        if t == "LPAR" and self.item == "BLOCK" and not self.stack:
            self.in_params = True
        if t in ("LBRACE", "LPAR", "LSQB"):
            self.stack.append(t)
        elif t in ("RBRACE", "RPAR", "RSQB") and self.stack:
            self.stack.pop()
            self.in_params = self.in_params and bool(self.stack)
        if t in ("_NL", "SEMICOLON", "LBRACE"):
            self.key, self.valued = None, False
        self.last = self.last if t in ("_NL", "COMMENT") else t

    def in_brackets(self) -> bool:
        return bool(self.stack) and self.stack[-1] != "LBRACE"


def name_kind(state: State, prev: Token | None, tok: Token, nxt: Token | None) -> str | None:
    name, before = str(tok), prev.type if prev is not None else None
    if before in NAMERS:
        return NAMERS[before]
    if state.in_params and len(state.stack) == 1 and state.last in ("LPAR", "COMMA"):
        state.params.add(name)
        return "parameter"
    if nxt is not None and nxt.type == "EQUAL":
        return "argument"
    section = {"DATASET": "dataset", "TRAIN": "train", "TUNE": "tune"}.get(state.item or "")
    if section and not state.in_brackets():
        return section_kind(state, section, name, before, nxt)
    if state.item in ("NETWORK", "BLOCK") and not state.in_brackets() and not state.valued:
        return chain_kind(state, name)
    return value_kind(state, name, nxt)


def section_kind(state: State, section: str, name: str, before: str | None, nxt: Token | None) -> str | None:
    schema = SECTIONS[section]
    if before in LINE_START:
        state.key = name
        key = schema.key(name)
        return "registry" if key is not None and key.form == "each" else "key"
    key = schema.key(state.key or "")
    if key is not None and key.form == "network" and name in state.names.networks:
        return "network"
    if key is not None and key.registry is not None and name in key.registry.entries:
        return "registry"
    return value_kind(state, name, nxt)


def chain_kind(state: State, name: str) -> str | None:
    if name in LAYERS.entries:
        return "activation" if name in ACTIVATIONS else "layer"
    return "block" if name in state.names.blocks else None


def value_kind(state: State, name: str, nxt: Token | None) -> str | None:
    if name in SEARCH.entries and nxt is not None and nxt.type == "LPAR":
        return "search"
    if name in state.params or name in state.names.constants:
        return "variable"
    return None


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def spec_tokens(text: str) -> list[list[Any]]:
    tokens, stopped = lex(text)
    if stopped is not None:
        raise SystemExit(f"the lexer stopped at character {stopped}")
    lines = text.split("\n")
    state = State(Names.of(tokens))
    out: list[list[Any]] = []
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.type == "NAME":
            kind = name_kind(state, prev, tok, nxt)
        else:
            kind = TYPES.get(tok.type) or KEYWORD_TYPES.get(tok.type)
        if tok.type != "_NL":
            line = lines[(tok.line or 1) - 1]
            start = utf16(line[: (tok.column or 1) - 1])
            out.append([(tok.line or 1) - 1, start, start + utf16(str(tok)), kind, str(tok)])
        state.step(tok)
    return out


def main(paths: list[str]) -> None:
    specs = [{"path": p, "tokens": spec_tokens(Path(p).read_text(encoding="utf-8"))} for p in paths]
    json.dump({"specs": specs, "scopes": SCOPES}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
