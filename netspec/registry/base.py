"""The registry machinery: every layer, loss, optimizer, schedule, metric, source and
transform is one Pydantic class, registered by its `kind`. Its fields are its
parameters (types, defaults, ranges, docs); its methods are its rules.
"""

from __future__ import annotations

import math
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field

from netspec.language.span import Node, Shape, Span

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Pair = Union[PosInt, tuple[PosInt, PosInt]]


class Problem(Exception):
    """A rule violation found by a registry entry; the checker turns it into a diagnostic."""

    def __init__(
        self, message: str, hint: str | None = None, field: str | None = None, severity: str = "error"
    ) -> None:
        super().__init__(message)
        self.message, self.hint, self.field, self.severity = message, hint, field, severity


class Op(Node):
    """Base of every registry entry. Subclasses set `kind: Literal[...]` and fields."""

    model_config = Node.model_config | {"strict": True, "defer_build": True}

    span: Span | None = Field(default=None, description="where the spec names it")
    if TYPE_CHECKING:
        kind: str  # each subclass declares it as a Literal

    positional: ClassVar[tuple[str, ...]] = ()  # parameters that may be given without a name
    base_fields: ClassVar[frozenset[str]] = frozenset({"kind", "span"})

    @classmethod
    def kind_name(cls) -> str:
        return typing.cast(str, cls.model_fields["kind"].default)

    @classmethod
    def doc(cls) -> str:
        return " ".join((cls.__doc__ or "").split())

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """The user-facing parameters (FieldInfo by name), in declaration order."""
        return {k: f for k, f in cls.model_fields.items() if k not in cls.base_fields}

    @classmethod
    def signature(cls) -> str:
        """`conv2d(out_channels, kernel, stride=1, ...)` for docs, hover and signature help."""
        parts = []
        for name, f in cls.parameters().items():
            parts.append(name if f.is_required() else f"{name}={format_value(f.default)}")
        return f"{cls.kind_name()}({', '.join(parts)})" if parts else cls.kind_name()

    def problems(self) -> list[Problem]:
        """Cross-parameter rules that a field type cannot express."""
        return []

    def hyper(self) -> dict[str, Any]:
        """The parameter values, without span and inferred fields."""
        return {k: getattr(self, k) for k in self.parameters()}


T = TypeVar("T", bound=type[Op])


class Registry(Generic[T]):
    """Name -> class, in registration order, for one kind of thing (layers, losses, ...)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.entries: dict[str, T] = {}

    def register(self, cls: T) -> T:
        self.entries[cls.kind_name()] = cls
        return cls

    def get(self, name: str) -> T | None:
        return self.entries.get(name)

    def names(self) -> list[str]:
        return list(self.entries)

    @property
    def plural(self) -> str:
        """The family's name in the plural: "losses", "metrics"."""
        return self.what + ("es" if self.what.endswith("s") else "s")

    def union(self) -> Any:
        """A discriminated union type over every entry, for IR fields."""
        members = tuple(self.entries.values())
        if len(members) == 1:
            return members[0]
        return Annotated[Union[members], Field(discriminator="kind")]  # type: ignore[valid-type]


def accepts_str(annotation: Any) -> bool:
    """Whether a field type admits a string (so a bare name like `nearest` may be given)."""
    if annotation is str:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(a, str) for a in get_args(annotation))
    return any(accepts_str(a) for a in get_args(annotation))


def changed(op: Op, **ignore: Any) -> dict[str, Any]:
    """The parameters whose values differ from their defaults (required ones always count)."""
    out = {}
    for name, f in op.parameters().items():
        value = getattr(op, name)
        if name != "lr" and (f.is_required() or value != f.default):
            out[name] = value
    return out


def torch_changed(op: Op, **torch_defaults: Any) -> dict[str, Any]:
    """The settings whose values differ from the torch constructor's defaults given."""
    return {k: getattr(op, k) for k, v in torch_defaults.items() if getattr(op, k) != v}


def format_value(value: Any) -> str:
    """A value as it is written in a spec."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return "none"
    return repr(value)


def article(noun: str) -> str:
    """The noun with its indefinite article: "a loss", "an optimizer"."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def numel(shape: Shape) -> int:
    return math.prod(shape)
