"""Signature help: the signature of the layer (or block, transform, loss, ...) whose argument list holds
the cursor, found from the tokens before it (``netspec.lsp.context``)."""

from __future__ import annotations

from lsprotocol import types as lsp

from netspec.language import syntax as st
from netspec.lsp.analysis import PARSER
from netspec.lsp.context import Cursor, context_at, keyword_name
from netspec.lsp.describe import class_markdown, md, param_markdown
from netspec.lsp.document import code_units
from netspec.lsp.scope import Names, Parse, Target, call_target, parameters, positional
from netspec.registry.base import format_value


def signature_help(text: str, offset: int, parse: Parse = PARSER) -> lsp.SignatureHelp | None:
    """The signature of the call around the cursor; the active parameter is the one named before `=`,
    else the one at the comma count."""
    ctx = context_at(text, offset)
    if ctx.in_comment or ctx.in_string or ctx.callee is None:
        return None
    target = call_target(ctx, Names(text, offset, ctx, parse))
    if target is None:
        return None
    name, doc, parts = _parts(target)
    label, params = name + "(", []
    for i, (part, pdoc) in enumerate(parts):
        label += ", " if i else ""
        start = code_units(label)
        label += part
        pinfo = md(pdoc) if pdoc else None
        params.append(lsp.ParameterInformation(label=(start, code_units(label)), documentation=pinfo))
    info = lsp.SignatureInformation(label=label + ")", documentation=md(doc), parameters=params)
    if params:
        info.active_parameter = min(_active(ctx, target, [n for n, _ in parameters(target)]), len(params) - 1)
    return lsp.SignatureHelp(signatures=[info], active_signature=0, active_parameter=info.active_parameter)


def _parts(target: Target) -> tuple[str, str, list[tuple[str, str | None]]]:
    """The callee's name, its documentation, and each parameter as written in the label, with its documentation."""
    if isinstance(target, st.Block):
        from netspec.tools.fmt import expr

        parts: list[tuple[str, str | None]] = [
            (p.name if p.default is None else f"{p.name}={expr(p.default)}", None) for p in target.params
        ]
        return target.name, f"block `{target.name}`", parts
    pairs: list[tuple[str, str | None]] = []
    for n, f in target.parameters().items():
        pairs.append((n if f.is_required() else f"{n}={format_value(f.default)}", param_markdown(n, f)))
    return target.kind_name(), class_markdown(target), pairs


def _active(ctx: Cursor, target: Target, names: list[str]) -> int:
    """The parameter named before `=` in the argument being typed, else the one at its position."""
    active = len(ctx.args) - 1
    kw = keyword_name(ctx.args[-1])
    order = positional(target)
    if kw is not None and kw in names:
        return names.index(kw)
    if active < len(order) and order[active] in names:
        return names.index(order[active])
    return active
