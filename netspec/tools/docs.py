"""The generated part of docs/language.md: every registry entry with its parameters, and
the keys of each section, read from the section schema (``netspec.ir.sections``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from netspec.ir.sections import SECTIONS, Key, SectionSchema
from netspec.ir.values import describe_field
from netspec.registry import LAYERS, SEARCH
from netspec.registry.base import Op, format_value

BEGIN = "<!-- BEGIN GENERATED REFERENCE: `netspec docs --write docs/language.md` -->"
END = "<!-- END GENERATED REFERENCE -->"


def reference() -> str:
    """Markdown for every layer and activation, then per section its keys and what they name."""
    layers = {k: v for k, v in LAYERS.entries.items() if v.category == "layer"}
    acts = {k: v for k, v in LAYERS.entries.items() if v.category == "activation"}
    parts = [_section("Layers", layers, shapes=True), _section("Activations", acts)]
    for section in SECTIONS.values():
        parts.append(_keys(section))
        parts += [_section(_title(key), {c.kind_name(): c for c in key.classes()}) for key in _naming(section)]
    parts.append(_section("Search expressions (`netspec tune`)", SEARCH.entries))
    return "\n".join(parts).rstrip() + "\n"


def _naming(section: SectionSchema) -> list[Key]:
    """The keys whose values name registry classes, in order."""
    return [key for key in section.keys.values() if key.classes()]


def _title(key: Key) -> str:
    """The heading of what a key names: "Losses", or "Early stopping" for `early_stopping(...)`."""
    return (key.registry.plural if key.registry is not None else key.what).capitalize()


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


def _keys(section: SectionSchema) -> str:
    rows = [f"## {section.kind.capitalize()} keys\n", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key in section.keys.values():
        rows.append(f"| `{key.name}` | {key.type_text()} | {key.default_text()} | {key.doc} |")
    return "\n".join(rows) + "\n"


def update(text: str) -> str:
    """Replace the generated part of a document (between the markers) with the current reference."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("the document has no generated-reference markers")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{reference()}\n{END}", text)
