"""The section schema: every key of the `dataset`, `train` and `tune` sections, described once.

A key's type, default and meaning come from its field in the IR model (``nodes.Dataset``,
``nodes.Train``, ``nodes.Tune``); this module adds what the model cannot say: how the key is written,
which registry its values name, and what to suggest when a required key is missing. The
checker, the language server (hover, completion) and the generated language reference all
read ``SECTIONS``; a new key is a field on the model and, unless it is a plain value, one
line here.

How a key is written (its ``form``):

- ``value``   `batch 64`, `compile` (a bare key is true for a flag)
- ``network`` `model LeNet`: the name of a network of the spec
- ``one``     `loss cross_entropy(label_smoothing=0.1)`: one entry of a registry (`none` for a key
              that may be left empty: `pruner none`)
- ``many``    `metrics accuracy, top_k(3)`: a list of entries of a registry
- ``call``    `early_stopping(patience=3)`: the key itself called like an entry
- ``each``    `normalize(0.1307, 0.3081)`: every entry of the registry is a key of its own,
              and the section's field collects them in order (the transforms)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic.fields import FieldInfo

from netspec.ir.nodes import Dataset, Train, Tune
from netspec.language.span import Node
from netspec.registry import (
    LOGGERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    PRUNERS,
    SAMPLERS,
    SCHEDULES,
    SOURCES,
    TASKS,
    TRANSFORMS,
    EarlyStopping,
)
from netspec.registry.base import Op, Registry, article, format_value

Form = Literal["value", "network", "one", "many", "call", "each"]
NOT_KEYS = ("kind", "span", "name")  # IR fields that are not written as keys


@dataclass(frozen=True)
class How:
    """How a key is written, as the schema below states it (everything but the field)."""

    form: Form = "value"
    what: Registry[Any] | type[Op] | None = None  # the registry (one, many, each) or the class (call)
    example: str | None = None  # for a required key: an example of it, `{names}` the registry's names
    needed: str | None = None  # how "the section needs ..." names it; `key` by default


@dataclass(frozen=True)
class Key:
    name: str  # as written; for `each`, the IR field the entries fill
    field: FieldInfo
    form: Form = "value"
    registry: Registry[Any] | None = None  # for one, many and each
    cls: type[Op] | None = None  # for call
    example: str | None = None
    needed: str | None = None

    @property
    def doc(self) -> str:
        return self.field.description or ""

    @property
    def what(self) -> str:
        """What one value names, for messages: "loss", "metric", "early stopping"."""
        return self.registry.what if self.registry is not None else self.name.replace("_", " ")

    def type_text(self) -> str:
        """What the key takes, for docs and hover: `a loss`, `a metric list`, `an integer > 0`."""
        from netspec.ir.values import describe_field

        if self.registry is not None:
            return article(self.registry.what) + (" list" if self.form in ("many", "each") else "")
        if self.cls is not None:
            return f"`{self.cls.kind_name()}(...)`"
        if self.form == "network":
            return "a network name"
        return describe_field(self.field)

    def default_text(self) -> str:
        f = self.field
        if f.is_required():
            return "required"
        if callable(f.default_factory):
            made = f.default_factory()  # type: ignore[call-arg]
            return f"`{made.kind_name()}`" if isinstance(made, Op) else f"`{format_value(made)}`"
        return f"`{format_value(f.default)}`"

    def classes(self) -> list[type[Op]]:
        """The registry classes this key may name."""
        if self.registry is not None:
            return list(self.registry.entries.values())
        return [self.cls] if self.cls is not None else []

    def missing(self, section: str) -> tuple[str, str] | None:
        """(message, hint) when a required key is not written; None for a key that may be left out."""
        if self.example is None:
            return None
        names = ", ".join(self.registry.names()) if self.registry is not None else ""
        needed = self.needed or f"`{self.name}`"
        return f"the {section} section needs {needed}", "for example " + self.example.format(names=names)


@dataclass(frozen=True)
class Either:
    """Exactly one of two keys must be written (`epochs` or `steps`)."""

    first: str
    second: str
    example: str


@dataclass(frozen=True)
class SectionSchema:
    kind: str
    model: type[Node]
    keys: dict[str, Key]  # in the IR model's field order
    either: tuple[Either, ...] = ()
    second: str | None = None  # the hint to a second section of this kind

    def key(self, written: str) -> Key | None:
        """The key `written` stands for: itself, or the `each` key whose registry holds it."""
        if written in self.keys and self.keys[written].form != "each":
            return self.keys[written]
        return self.each_key(written)

    def each_key(self, written: str) -> Key | None:
        """The `each` key whose registry holds `written` (`normalize` -> `transforms`)."""
        return next((k for k in self.each() if k.registry is not None and written in k.registry.entries), None)

    def each(self) -> list[Key]:
        return [k for k in self.keys.values() if k.form == "each"]

    def written_keys(self) -> list[str]:
        """Every key a user may write, in order: the keys, then each entry of the `each` registries."""
        names = [n for n, k in self.keys.items() if k.form != "each"]
        return names + self.each_names()

    def known_keys(self) -> list[str]:
        """The field keys (the `each` fields too), then each entry of the `each` registries: for hints."""
        return list(self.keys) + self.each_names()

    def each_names(self) -> list[str]:
        return [e for k in self.each() if k.registry is not None for e in k.registry.names()]

    def named(self) -> bool:
        """Whether the section may be given a name (`dataset digits { ... }`)."""
        return "name" in self.model.model_fields

    def entry_class(self, key: str, name: str | None) -> type[Op] | None:
        """The class meant by `name` written as the value of `key`; with no name, by `key(...)` itself."""
        k = self.key(key)
        if k is None:
            return None
        if name is None:
            if k.form == "each" and k.registry is not None:
                return k.registry.get(key)  # type: ignore[no-any-return]
            return k.cls
        if k.form in ("one", "many") and k.registry is not None:
            return k.registry.get(name)  # type: ignore[no-any-return]
        return None


def _key(name: str, field: FieldInfo, how: How) -> Key:
    registry = how.what if isinstance(how.what, Registry) else None
    cls = how.what if isinstance(how.what, type) else None
    key = Key(name, field, how.form, registry, cls, how.example, how.needed)
    if field.is_required() and how.example is None and how.form != "network":
        raise TypeError(f"required key `{name}` needs an example, to say what is missing")
    return key


def _section(
    kind: str, model: type[Node], hows: dict[str, How], either: tuple[Either, ...] = (), second: str | None = None
) -> SectionSchema:
    keys = {n: _key(n, f, hows.get(n, How())) for n, f in model.model_fields.items() if n not in NOT_KEYS}
    return SectionSchema(kind, model, keys, either, second)


SECTIONS: dict[str, SectionSchema] = {
    "dataset": _section(
        "dataset",
        Dataset,
        {
            "source": How("one", SOURCES, "`source mnist`; sources: {names}", "a `source`"),
            "transforms": How("each", TRANSFORMS),
        },
    ),
    "train": _section(
        "train",
        Train,
        {
            "task": How("one", TASKS),
            "model": How("network"),
            "generator": How("network"),
            "discriminator": How("network"),
            "loss": How("one", LOSSES, "`loss cross_entropy`"),
            "optimizer": How("one", OPTIMIZERS, "`optimizer adam(lr=1e-3)`"),
            "generator_optimizer": How("one", OPTIMIZERS),
            "discriminator_optimizer": How("one", OPTIMIZERS),
            "schedule": How("one", SCHEDULES),
            "metrics": How("many", METRICS),
            "early_stopping": How("call", EarlyStopping),
            "log": How("many", LOGGERS),
        },
        (Either("epochs", "steps", "`epochs 10`"),),
        "networks trained against each other share one: "
        + "; ".join(f"{t.title} names {t.picture}" for t in TASKS.entries.values() if len(t.networks) > 1),
    ),
    "tune": _section("tune", Tune, {"sampler": How("one", SAMPLERS), "pruner": How("one", PRUNERS)}),
}


def registries() -> list[tuple[SectionSchema, Registry[Any]]]:
    """Every registry a section's keys name, with its section, in schema order."""
    return [(s, k.registry) for s in SECTIONS.values() for k in s.keys.values() if k.registry is not None]


def all_classes() -> list[tuple[str, type[Op]]]:
    """Every registry class a section may name, with what it is ("loss", "early stopping", ...)."""
    return [(key.what, cls) for section in SECTIONS.values() for key in section.keys.values() for cls in key.classes()]
