"""Hover: what the thing under the cursor is, with its shapes, parameters, value or documentation."""

from __future__ import annotations

from typing import Callable

from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.lsp.analysis import Analysis, Hit, find
from netspec.lsp.describe import (
    any_class,
    block_markdown,
    class_markdown,
    entry_class,
    key_markdown,
    network_markdown,
    param_markdown,
    section_key,
    shapes,
    value_markdown,
)
from netspec.registry import LAYERS, SEARCH
from netspec.registry.base import Op, fmt_shape


def hover_markdown(a: Analysis, line: int, column: int) -> tuple[str, Span] | None:
    """Markdown for the thing at a 1-based position, and its span."""
    hit = find(a.module, line, column)
    if hit is None:
        return None
    text = _hover_text(a, hit)
    return (text, hit.span) if text else None


def _hover_text(a: Analysis, hit: Hit) -> str | None:
    handler = _HANDLERS.get(hit.kind)
    return handler(a, hit) if handler is not None else None


def _layer_hover(a: Analysis, hit: Hit) -> str | None:
    return _call_hover(a, hit.call) if hit.call is not None else None


def _composite_hover(a: Analysis, hit: Hit) -> str:
    step = hit.node
    if isinstance(step, st.Input):
        net = a.network(hit.item.name) if isinstance(hit.item, st.Network) else None
        shape = f": `{fmt_shape(net.input_shape)}`" if net is not None else ""
        return "`input` — the shape of one sample (batch excluded)" + shape
    word = "repeat" if isinstance(step, st.Repeat) else "residual"
    nodes = a.composites_at(step.span)
    about = "the body, expanded N times" if word == "repeat" else "y = x + body(x)"
    return "\n\n".join([f"`{word}` — {about}", *(["\n".join(shapes(nodes))] if nodes else [])])


def _let_hover(a: Analysis, hit: Hit) -> str:
    known, value = a.constant(hit.node.name)
    return f"```netspec\nlet {hit.node.name}\n```\n\nvalue: " + (value_markdown(value) if known else "unknown")


def _param_hover(a: Analysis, hit: Hit) -> str | None:
    if not isinstance(hit.item, st.Block):
        return None
    return f"parameter `{hit.node.name}` of block `{hit.item.name}`"


def _key_hover(a: Analysis, hit: Hit) -> str | None:
    if not isinstance(hit.item, st.Section) or hit.entry is None:
        return None
    cls = entry_class(hit.item.kind, hit.entry.key, None)
    return class_markdown(cls) if cls is not None else key_markdown(hit.item.kind, hit.entry.key)


def _value_hover(a: Analysis, hit: Hit) -> str | None:
    if not isinstance(hit.item, st.Section) or hit.entry is None:
        return None
    name = hit.node.name if isinstance(hit.node, st.Call) else hit.node.id
    key = section_key(hit.item.kind, hit.entry.key)
    if key is not None and key.form == "network":
        return network_markdown(a, name)
    cls = entry_class(hit.item.kind, hit.entry.key, name) or SEARCH.get(name)  # `batch choice(32, 64)`
    return class_markdown(cls) if cls is not None else None


def _inner_call_hover(a: Analysis, hit: Hit) -> str | None:
    """A call inside an expression (a metric list, ...)."""
    cls = any_class(hit.call.name) if hit.call is not None else None
    return class_markdown(cls) if cls is not None else None


def _call_hover(a: Analysis, call: st.Call) -> str | None:
    block = block_for(a, call.name)
    if block is not None:
        return block_markdown(a, block, a.composites_at(call.span) or None)
    cls = LAYERS.get(call.name)
    if cls is None:
        return None
    parts = [class_markdown(cls)]
    layers = a.layers_at(call.span)
    if layers:
        parts.append("\n".join(shapes(layers)))
    return "\n\n".join(parts)


def _name_hover(a: Analysis, hit: Hit) -> str | None:
    name = hit.node.id
    if isinstance(hit.item, st.Block) and any(p.name == name for p in hit.item.params):
        return f"parameter `{name}` of block `{hit.item.name}`"
    known, value = a.constant(name)
    if known:
        return f"```netspec\nlet {name}\n```\n\nvalue: {value_markdown(value)}"
    cls = any_class(name)
    return class_markdown(cls) if cls is not None else None


def _kwarg_hover(a: Analysis, hit: Hit) -> str | None:
    target = class_of_call(a, hit)
    name = hit.node.name
    if isinstance(target, st.Block):
        return f"parameter `{name}` of block `{target.name}`"
    if target is None:
        return None
    f = target.parameters().get(name)
    return param_markdown(name, f) if f is not None else None


def block_for(a: Analysis, name: str) -> st.Block | None:
    return next((x for x in a.items if isinstance(x, st.Block) and x.name == name), None)


def class_of_call(a: Analysis, hit: Hit) -> type[Op] | st.Block | None:
    """What a call under the cursor (or holding the keyword argument under it) calls."""
    call = hit.call
    if call is None:
        return None
    if isinstance(hit.item, st.Section):
        e = hit.entry
        if e is None:
            return None
        if call.name_span == e.key_span:  # `key(...)`
            return entry_class(hit.item.kind, e.key, None)
        return entry_class(hit.item.kind, e.key, call.name)
    if isinstance(hit.item, (st.Network, st.Block)):
        block = block_for(a, call.name)
        return block if block is not None else LAYERS.get(call.name)
    return None


_HANDLERS: dict[str, Callable[[Analysis, Hit], str | None]] = {
    "layer": _layer_hover,
    "composite": _composite_hover,
    "network": lambda a, hit: network_markdown(a, hit.node.name),
    "block": lambda a, hit: block_markdown(a, hit.node),
    "let": _let_hover,
    "param": _param_hover,
    "name": _name_hover,
    "kwarg": _kwarg_hover,
    "key": _key_hover,
    "value": _value_hover,
    "call": _inner_call_hover,
}
