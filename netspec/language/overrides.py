"""``--set train.epochs=2``: overrides applied to the syntax tree before checking.

The value is parsed with the spec grammar, so it is exactly as safe and as checked
as the same text in the file; its diagnostics point into the override itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, make
from netspec.language.parse import parse
from netspec.language.span import Span
from netspec.language.suggest import did_you_mean

SECTIONS = ("train", "dataset", "tune")
Alternatives = Mapping[str, Mapping[str, tuple[str, ...]]]  # section -> key -> the keys it replaces


def apply_overrides(
    module: st.Module, overrides: list[str], alternatives: Alternatives | None = None
) -> tuple[st.Module, list[Diagnostic]]:
    """Apply each ``path=value`` in order. Returns the new tree and any diagnostics.

    `alternatives` names the keys a key replaces (`train.steps=200` on a spec written with
    `epochs` replaces it: the section schema says they are alternatives). A value of `none`
    for a key the spec writes removes it, so the key takes its default."""
    diags: list[Diagnostic] = []
    for text in overrides:
        module, found = _apply(module, text, alternatives or {})
        diags += found
    return module, diags


def _apply(module: st.Module, text: str, alternatives: Alternatives) -> tuple[st.Module, list[Diagnostic]]:
    whole = Span(line=1, column=1, end_line=1, end_column=len(text) + 1, origin=text)
    brk = next((i for i, ch in enumerate(text) if ch in "\r\n"), None)
    if brk is not None:  # the value would be parsed as several lines, and positions point past line 1
        at = Span(line=1, column=brk + 1, end_line=1, end_column=brk + 2, origin=text)
        return module, [make("NS080", "an override must be a single line", at, "remove the line break")]
    path, eq, value = text.partition("=")
    if not eq or not path or not value.strip():
        return module, [
            make(
                "NS080",
                "an override reads `section.key=value` or `constant=value`",
                whole,
                "for example `--set train.epochs=2`",
            )
        ]
    section, dot, key = path.rpartition(".")
    if dot and section in SECTIONS:
        return _set_entry(module, section, key, value, text, alternatives.get(section, {}).get(key, ()))
    if not dot:
        return _set_constant(module, path, value, text)
    return module, [
        make(
            "NS080",
            f"cannot override `{path}`",
            whole,
            did_you_mean(section, SECTIONS) or "override `train.KEY`, `dataset.KEY`, `tune.KEY` or a constant",
        )
    ]


def _parse_fragment(source: str, offset: int, text: str) -> tuple[Any, list[Diagnostic]]:
    tree, diags = parse(source)
    relocated = [
        dataclasses.replace(
            d,
            line=1,
            end_line=1,
            column=max(1, d.column + offset),
            end_column=max(2, d.end_column + offset),
            origin=text,
        )
        for d in diags
    ]
    if tree is None or relocated:
        return None, relocated
    return _relocate(tree.items[0], offset, text), _one_value(tree, offset, text)


def _one_value(tree: st.Module, offset: int, text: str) -> list[Diagnostic]:
    """An override is exactly one value: `train.epochs=3; epochs 5` or a `let` after it is refused."""
    first = tree.items[0]
    extra = list(tree.items[1:]) + list(getattr(first, "entries", ())[1:])
    if not extra:
        return []
    at = _relocate(extra[0].span, offset, text)
    return [make("NS080", "an override sets one value", at, "give each value its own `--set`")]


def _set_entry(
    module: st.Module, section: str, key: str, value: str, text: str, replaces: tuple[str, ...] = ()
) -> tuple[st.Module, list[Diagnostic]]:
    target = next((x for x in module.items if isinstance(x, st.Section) and x.kind == section), None)
    if target is None:
        whole = Span(line=1, column=1, end_line=1, end_column=len(section) + 1, origin=text)
        return module, [make("NS080", f"the spec has no `{section}` section to override", whole)]
    # "train{\nKEY VALUE\n}": the entry sits on line 2 at the same columns as KEY=VALUE after "train."
    parsed, diags = _parse_fragment(f"{section}{{\n{key} {value}\n}}", len(section) + 1, text)
    if parsed is None or diags:
        return module, diags
    entry = parsed.entries[0]
    kept = [e for e in target.entries if e.key != key and e.key not in replaces]
    entries = kept if _is_none(entry) and any(e.key == key for e in target.entries) else [*kept, entry]
    new = dataclasses.replace(target, entries=tuple(entries))
    return _replace_item(module, target, new), []


def _is_none(entry: st.Entry) -> bool:
    """`key=none`: the written key is removed, so it takes its default (or its alternative's place)."""
    return (
        entry.args is None
        and len(entry.values) == 1
        and isinstance(entry.values[0], st.Const)
        and entry.values[0].value is None
    )


def _set_constant(module: st.Module, name: str, value: str, text: str) -> tuple[st.Module, list[Diagnostic]]:
    target = next((x for x in module.items if isinstance(x, st.Let) and x.name == name), None)
    if target is None:
        names = [x.name for x in module.items if isinstance(x, st.Let)]
        whole = Span(line=1, column=1, end_line=1, end_column=len(name) + 1, origin=text)
        return module, [
            make(
                "NS080",
                f"the spec has no constant `{name}`",
                whole,
                did_you_mean(name, names) or "override `train.KEY`, `dataset.KEY` or a `let` constant",
            )
        ]
    parsed, diags = _parse_fragment(f"let {name}={value}", -4, text)
    if parsed is None or diags:
        return module, diags
    return _replace_item(module, target, dataclasses.replace(target, value=parsed.value)), []


def _replace_item(module: st.Module, old: Any, new: Any) -> st.Module:
    return dataclasses.replace(module, items=tuple(new if x is old else x for x in module.items))


def _relocate(node: Any, offset: int, origin: str) -> Any:
    """Move every span of a parsed fragment onto line 1 of the override text."""
    if isinstance(node, Span):
        return Span(
            line=1,
            column=max(1, node.column + offset),
            end_line=1,
            end_column=max(2, node.end_column + offset),
            origin=origin,
        )
    if isinstance(node, tuple):
        return tuple(_relocate(x, offset, origin) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: _relocate(getattr(node, f.name), offset, origin) for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    return node
