"""The generated part of docs/language.md: every registry entry with its parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from netspec.ir.nodes import Dataset, Train
from netspec.ir.values import describe_field
from netspec.registry import LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TRANSFORMS, EarlyStopping
from netspec.registry.base import Op, Registry, format_value

BEGIN = "<!-- BEGIN GENERATED REFERENCE: `netspec docs --write docs/language.md` -->"
END = "<!-- END GENERATED REFERENCE -->"


def reference() -> str:
    """Markdown for every layer, activation, loss, optimizer, schedule, metric, source and transform."""
    layers = {k: v for k, v in LAYERS.entries.items() if v.category == "layer"}
    acts = {k: v for k, v in LAYERS.entries.items() if v.category == "activation"}
    parts = [
        _section("Layers", layers, shapes=True),
        _section("Activations", acts),
        _keys("Dataset keys", Dataset),
        _section("Sources", SOURCES.entries),
        _section("Transforms", TRANSFORMS.entries),
        _keys("Train keys", Train),
        _section("Losses", LOSSES.entries),
        _section("Optimizers", OPTIMIZERS.entries),
        _section("Schedules", SCHEDULES.entries),
        _section("Metrics", METRICS.entries),
        _section("Early stopping", {"early_stopping": EarlyStopping}),
    ]
    return "\n".join(parts).rstrip() + "\n"


def _section(title: str, entries: Mapping[str, type[Op]], shapes: bool = False) -> str:
    out = [f"## {title}\n"]
    for cls in entries.values():
        out.append(f"### `{cls.kind_name()}`\n\n`{cls.signature()}`\n\n{cls.doc()}\n")
        if shapes and getattr(cls, "expects", None):
            out.append(f"Input: {cls.expects}.\n")  # type: ignore[attr-defined]
        out += _params(cls)
    return "\n".join(out)


def _params(cls: type[Op]) -> list[str]:
    params = cls.parameters()
    if not params:
        return []
    rows = ["| parameter | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, f in params.items():
        default = "required" if f.is_required() else f"`{format_value(f.default)}`"
        pos = " (positional)" if name in cls.positional else ""
        rows.append(f"| `{name}`{pos} | {describe_field(f)} | {default} | {f.description or ''} |")
    return ["\n".join(rows) + "\n"]


def _keys(title: str, model: Any) -> str:
    rows = [f"## {title}\n", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, f in model.model_fields.items():
        if name in ("kind", "span", "name"):
            continue
        default = (
            "required"
            if f.is_required()
            else f"`{format_value(f.default)}`"
            if not callable(f.default_factory)
            else "`[]`"
        )
        rows.append(f"| `{name}` | {_key_type(name, f)} | {default} | {f.description or ''} |")
    return "\n".join(rows) + "\n"


def _key_type(name: str, f: Any) -> str:
    registries: dict[str, Registry[Any]] = {
        "loss": LOSSES,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "metrics": METRICS,
        "source": SOURCES,
        "transforms": TRANSFORMS,
    }
    if name in registries:
        return f"a {registries[name].what}" + (" list" if name in ("metrics", "transforms") else "")
    if name == "early_stopping":
        return "`early_stopping(...)`"
    if name == "model":
        return "a network name"
    return describe_field(f)


def update(text: str) -> str:
    """Replace the generated part of a document (between the markers) with the current reference."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("the document has no generated-reference markers")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{reference()}\n{END}", text)
