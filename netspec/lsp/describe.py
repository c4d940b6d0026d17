"""What names mean where they are written, and their markdown: registry classes, section keys (from
the one section schema, ``netspec.ir.sections``), constants, networks, blocks and shapes."""

from __future__ import annotations

import functools
from typing import Any

from lsprotocol import types as lsp

from netspec.ir.sections import SECTIONS, Key, all_classes
from netspec.language import syntax as st
from netspec.lsp.analysis import Analysis, walk_ir
from netspec.registry import LAYERS, SEARCH
from netspec.registry.base import Op, fmt_shape, format_value

MAX_SHAPES_SHOWN = 6  # a layer inside a block used many times: its first few distinct shapes


def md(text: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)


# --- which class a name means ------------------------------------------------------------------------


def section_key(section: str, key: str) -> Key | None:
    """The schema's key that `key` written in a `dataset` or `train` section stands for."""
    s = SECTIONS.get(section)
    return s.key(key) if s is not None else None


def entry_class(section: str, key: str, name: str | None) -> type[Op] | None:
    """The registry class of ``name`` written as the value of ``key`` (or of ``key(...)`` itself)."""
    s = SECTIONS.get(section)
    return s.entry_class(key, name) if s is not None else None


@functools.cache
def _section_classes() -> dict[str, tuple[str, type[Op]]]:
    """Every class a section may name, by name, with what it is (the first of a name wins: a loss `mse`)."""
    out: dict[str, tuple[str, type[Op]]] = {}
    for what, cls in all_classes():
        out.setdefault(cls.kind_name(), (what, cls))
    return out


def any_class(name: str) -> type[Op] | None:
    """The class a name means wherever it is written: a layer, else what a section may name, else a search
    expression (`loguniform`)."""
    found = _section_classes().get(name)
    return LAYERS.get(name) or (found[1] if found else None) or SEARCH.get(name)


def what(cls: type[Op]) -> str:
    """`layer`, `activation`, `loss`, `early stopping`, `search expression`, ...: what a class is."""
    if LAYERS.get(cls.kind_name()) is cls:
        return str(getattr(cls, "category", "layer"))
    if SEARCH.get(cls.kind_name()) is cls:
        return SEARCH.what
    return next((w for w, c in all_classes() if c is cls), "entry")


# --- markdown ------------------------------------------------------------------------------------------


def count(n: int) -> str:
    return f"{n:,} parameter{'' if n == 1 else 's'}"


def shapes_line(node: Any) -> str:
    shapes = f"input `{fmt_shape(node.input_shape)}` → output `{fmt_shape(node.output_shape)}`"
    return f"{shapes} · {count(node.params or 0)}"


def shapes(nodes: list[Any]) -> list[str]:
    seen: list[str] = []
    for node in nodes:
        line = shapes_line(node)
        if line not in seen:
            seen.append(line)
    shown = seen[:MAX_SHAPES_SHOWN]
    if len(seen) > len(shown):
        shown.append(f"… and {len(seen) - len(shown)} more")
    if len(nodes) > 1:
        shown = [f"used {len(nodes)} times:"] + [f"- {s}" for s in shown]
    return shown


def class_markdown(cls: type[Op]) -> str:
    """Signature, kind and documentation of a registry entry."""
    parts = [f"```netspec\n{cls.signature()}\n```", f"*{what(cls)}* — {cls.doc()}"]
    expects = getattr(cls, "expects", None)
    if expects and expects != "any input" and what(cls) == "layer":
        parts.append(f"Input: {expects}.")
    return "\n\n".join(parts)


def param_markdown(name: str, f: Any) -> str:
    from netspec.ir.values import describe_field

    default = "required" if f.is_required() else f"default `{format_value(f.default)}`"
    text = f"**{name}**: {describe_field(f)} ({default})"
    return text + (f"\n\n{f.description}" if f.description else "")


def value_markdown(value: Any) -> str:
    from netspec.ir.values import INVALID

    if value is INVALID:
        return "(invalid: see the diagnostics)"
    return f"`{format_value(list(value) if isinstance(value, tuple) else value)}`"


def network_markdown(a: Analysis, name: str) -> str:
    net = a.network(name)
    head = f"```netspec\nnetwork {name}\n```"
    if net is None:
        return head + "\n\nshapes and parameters appear when the network checks without errors"
    return head + "\n\n" + shapes_line(net)


def block_params(block: st.Block) -> str:
    """`channels, stride=1`: a block's parameters as the syntax tree has them."""
    from netspec.tools.fmt import expr

    return ", ".join(p.name + (f"={expr(p.default)}" if p.default is not None else "") for p in block.params)


def block_head(block: st.Block) -> str:
    return f"block {block.name}({block_params(block)})" if block.params else f"block {block.name}"


def block_markdown(a: Analysis, block: st.Block, uses: list[Any] | None = None) -> str:
    parts = [f"```netspec\n{block_head(block)}\n```"]
    if uses is None:
        nets = a.result.trace.networks.values() if a.result.trace is not None else ()
        uses = [n for net in nets for n in walk_ir(net.steps) if n.kind == "block" and n.name == block.name]
    if uses:
        parts.append("\n".join(shapes(uses)))
    return "\n\n".join(parts)


def key_type(key: Key) -> str:
    """What a section key takes, with its default for a plain value."""
    f = key.field
    has_default = key.form == "value" and not f.is_required() and f.default is not None
    return key.type_text() + (f" (default {key.default_text()})" if has_default else "")


def key_markdown(section: str, name: str) -> str | None:
    key = section_key(section, name)
    if key is None or key.form == "each":
        return None
    return f"`{name}` — {key_type(key)}" + (f"\n\n{key.doc}" if key.doc else "")
