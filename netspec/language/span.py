"""Base of the IR: frozen, strict Pydantic nodes and source spans.

The checker builds it from the syntax tree; the runtime, the emitter, ``summary`` and
the language server read it. ``netspec schema`` prints its JSON Schema.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
        """A span from trusted positions, unvalidated; the parser makes one per node, so this is hot."""
        if cls is not Span:
            return cls.model_construct(line=line, column=column, end_line=end_line, end_column=end_column, origin=None)
        # What model_construct does for this class, at a fifth of its cost (no aliases, defaults or post-init).
        span = _new(cls)
        _setattr(
            span,
            "__dict__",
            {"line": line, "column": column, "end_line": end_line, "end_column": end_column, "origin": None},
        )
        _setattr(span, "__pydantic_fields_set__", set(_SPAN_FIELDS))
        _setattr(span, "__pydantic_extra__", None)
        _setattr(span, "__pydantic_private__", None)
        return span


_new = BaseModel.__new__
_setattr = object.__setattr__
_SPAN_FIELDS = frozenset(("line", "column", "end_line", "end_column", "origin"))


Shape = tuple[int, ...]
