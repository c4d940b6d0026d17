"""Go to definition: a block's use to its definition, a constant to its `let`, `model Net` to the
network, a name inside a block to the block's parameter."""

from __future__ import annotations

from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.lsp.analysis import Analysis, Hit, find
from netspec.lsp.describe import section_key
from netspec.lsp.hover import block_for, class_of_call


def definition(a: Analysis, line: int, column: int) -> Span | None:
    """Where the block, network, constant or block parameter at a position is defined."""
    hit = find(a.module, line, column)
    if hit is None:
        return None
    if hit.kind in ("let", "network", "block", "param"):
        return hit.span
    if hit.kind == "layer" and hit.call is not None:
        block = block_for(a, hit.call.name)
        return block.name_span if block is not None else None
    if hit.kind == "kwarg":
        return _kwarg_definition(a, hit)
    if hit.kind == "value":
        return _network_definition(a, hit)
    if hit.kind == "name":
        return _name_definition(a, hit)
    return None


def _kwarg_definition(a: Analysis, hit: Hit) -> Span | None:
    target = class_of_call(a, hit)
    if not isinstance(target, st.Block):
        return None
    p = next((p for p in target.params if p.name == hit.node.name), None)
    return param_span(p) if p is not None else None


def _network_definition(a: Analysis, hit: Hit) -> Span | None:
    """`model Net` (a key that names a network) -> the network."""
    if hit.entry is None or not isinstance(hit.item, st.Section) or not isinstance(hit.node, st.Name):
        return None
    key = section_key(hit.item.kind, hit.entry.key)
    if key is None or key.form != "network":
        return None
    net = next((x for x in a.items if isinstance(x, st.Network) and x.name == hit.node.id), None)
    return net.name_span if net is not None else None


def _name_definition(a: Analysis, hit: Hit) -> Span | None:
    name = hit.node.id
    if isinstance(hit.item, st.Block):
        p = next((p for p in hit.item.params if p.name == name), None)
        if p is not None:
            return param_span(p)
    let = next((x for x in a.items if isinstance(x, st.Let) and x.name == name), None)
    return let.name_span if let is not None else None


def param_span(p: st.Param) -> Span:
    return Span.at(p.span.line, p.span.column, p.span.line, p.span.column + len(p.name))
