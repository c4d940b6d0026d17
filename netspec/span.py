"""Base of the IR: frozen, strict Pydantic nodes and source spans.

The checker builds it from the syntax tree; the runtime, the emitter, ``summary`` and
the language server read it. ``netspec schema`` prints its JSON Schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Span(Node):
    """A source range: 1-based lines and columns, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    origin: str | None = None  # e.g. "--set train.epochs=2" when the text came from an override

    @classmethod
    def at(cls, line: int, column: int, end_line: int, end_column: int) -> Span:
        return cls.model_construct(line=line, column=column, end_line=end_line,
                                   end_column=end_column, origin=None)


Shape = tuple[int, ...]
