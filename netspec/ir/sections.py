"""The section schema: every key of the `dataset` and `train` sections, described once.

A key's type, default and meaning come from its field in the IR model (``nodes.Dataset``,
``nodes.Train``); this module adds the one thing the model cannot say: how the key is
written and which registry its values name. The checker, the language server (hover,
completion) and the generated language reference all read ``SECTIONS``.

How a key is written (its ``form``):

- ``value``   `batch 64`, `compile` (a bare key is true for a flag)
- ``network`` `model LeNet`: the name of a network of the spec
- ``one``     `loss cross_entropy(label_smoothing=0.1)`: one entry of a registry
- ``many``    `metrics accuracy, top_k(3)`: a list of entries of a registry
- ``call``    `early_stopping(patience=3)`: the key itself called like an entry
- ``each``    `normalize(0.1307, 0.3081)`: every entry of the registry is a key of its own,
              and the section's field collects them in order (the transforms)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic.fields import FieldInfo

from netspec.ir.nodes import Dataset, Train
from netspec.language.span import Node
from netspec.registry import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TRANSFORMS, EarlyStopping
from netspec.registry.base import Op, Registry, format_value

Form = Literal["value", "network", "one", "many", "call", "each"]
NOT_KEYS = ("kind", "span", "name")  # IR fields that are not written as keys


@dataclass(frozen=True)
class Key:
    name: str  # as written; for `each`, the IR field the entries fill
    field: FieldInfo
    form: Form = "value"
    registry: Registry[Any] | None = None  # for one, many and each
    cls: type[Op] | None = None  # for call

    @property
    def doc(self) -> str:
        return self.field.description or ""

    def type_text(self) -> str:
        """What the key takes, for docs and hover: `a loss`, `a metric list`, `an integer > 0`."""
        from netspec.ir.values import describe_field

        if self.registry is not None:
            return f"a {self.registry.what}" + (" list" if self.form in ("many", "each") else "")
        if self.cls is not None:
            return f"`{self.cls.kind_name()}(...)`"
        if self.form == "network":
            return "a network name"
        return describe_field(self.field)

    def default_text(self) -> str:
        f = self.field
        if f.is_required():
            return "required"
        return "`[]`" if callable(f.default_factory) else f"`{format_value(f.default)}`"

    def classes(self) -> list[type[Op]]:
        """The registry classes this key may name."""
        if self.registry is not None:
            return list(self.registry.entries.values())
        return [self.cls] if self.cls is not None else []


@dataclass(frozen=True)
class Section:
    kind: str
    model: type[Node]
    keys: dict[str, Key]  # in the IR model's field order

    def key(self, written: str) -> Key | None:
        """The key `written` stands for: itself, or the `each` key whose registry holds it."""
        if written in self.keys and self.keys[written].form != "each":
            return self.keys[written]
        return next((k for k in self.each() if k.registry is not None and written in k.registry.entries), None)

    def each(self) -> list[Key]:
        return [k for k in self.keys.values() if k.form == "each"]

    def written_keys(self) -> list[str]:
        """Every key a user may write, in order: the keys, then each entry of the `each` registries."""
        names = [n for n, k in self.keys.items() if k.form != "each"]
        return names + [e for k in self.each() if k.registry is not None for e in k.registry.names()]

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


def _section(kind: str, model: type[Node], special: dict[str, tuple[Form, Any]]) -> Section:
    keys = {}
    for name, f in model.model_fields.items():
        if name in NOT_KEYS:
            continue
        form, what = special.get(name, ("value", None))
        registry = what if isinstance(what, Registry) else None
        cls = what if isinstance(what, type) else None
        keys[name] = Key(name, f, form, registry, cls)
    return Section(kind, model, keys)


SECTIONS: dict[str, Section] = {
    "dataset": _section("dataset", Dataset, {"source": ("one", SOURCES), "transforms": ("each", TRANSFORMS)}),
    "train": _section(
        "train",
        Train,
        {
            "model": ("network", None),
            "loss": ("one", LOSSES),
            "optimizer": ("one", OPTIMIZERS),
            "schedule": ("one", SCHEDULES),
            "metrics": ("many", METRICS),
            "early_stopping": ("call", EarlyStopping),
        },
    ),
}


def all_classes() -> list[tuple[str, type[Op]]]:
    """Every registry class a section may name, with what it is ("loss", "early stopping", ...)."""
    out: list[tuple[str, type[Op]]] = []
    for section in SECTIONS.values():
        for key in section.keys.values():
            what = key.registry.what if key.registry is not None else key.name.replace("_", " ")
            out += [(what, cls) for cls in key.classes()]
    return out
