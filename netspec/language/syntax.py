"""The syntax tree: what the parser produces, before names and shapes are resolved.

Plain frozen dataclasses (cheap to build, thousands per file); the checker turns
them into the validated Pydantic IR in ``netspec.ir.nodes``. ``fmt`` prints them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from netspec.language.span import Span

# The reserved words of the language (the grammar's keyword terminals).
KEYWORDS = (
    "version",
    "let",
    "block",
    "network",
    "dataset",
    "train",
    "tune",
    "input",
    "repeat",
    "residual",
    "true",
    "false",
    "none",
)


@dataclass(frozen=True, slots=True)
class Num:
    value: int | float
    raw: str
    span: Span


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    raw: str
    span: Span


@dataclass(frozen=True, slots=True)
class Const:
    """``true``, ``false`` or ``none``."""

    value: bool | None
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class Arg:
    name: str | None
    value: Expr
    span: Span
    name_span: Span | None = None


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Arg, ...] | None  # None: written without parentheses
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span


Expr = Union[Num, Str, Const, Name, Call, ListExpr, BinOp, Neg]


@dataclass(frozen=True, slots=True)
class Input:
    shape: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Chain:
    calls: tuple[Call, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Body:
    steps: tuple[Step, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Repeat:
    count: Expr
    body: Body
    span: Span


@dataclass(frozen=True, slots=True)
class Residual:
    body: Body
    span: Span


Step = Union[Input, Chain, Repeat, Residual]


@dataclass(frozen=True, slots=True)
class Version:
    number: Num
    span: Span


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Block:
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    body: Body
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a dataset or train section: ``key``, ``key(args)`` or ``key v, w``."""

    key: str
    args: tuple[Arg, ...] | None
    values: tuple[Expr, ...]
    span: Span
    key_span: Span


@dataclass(frozen=True, slots=True)
class Section:
    kind: str  # "dataset" | "train" | "tune"
    name: str | None
    entries: tuple[Entry, ...]
    span: Span
    body_span: Span


Top = Union[Version, Let, Block, Network, Section]


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Module:
    items: tuple[Top, ...]
    comments: tuple[Comment, ...] = field(default=())
