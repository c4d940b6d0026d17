"""Completion: layers, keywords, section keys, registry entries, argument names, choices and constants,
from the cursor's context (``netspec.lsp.context``, tokens) and the document's names (``netspec.lsp.scope``,
the syntax tree)."""

from __future__ import annotations

import functools
from typing import Any, Iterable, Literal, Sequence, get_args, get_origin

import attrs
from lsprotocol import types as lsp

from netspec.ir.sections import SECTIONS
from netspec.lsp.analysis import PARSER, Analysis
from netspec.lsp.context import Cursor, context_at, keyword_name
from netspec.lsp.describe import block_head, class_markdown, key_markdown, key_type, md, param_markdown, value_markdown
from netspec.lsp.scope import BODIES, Names, Parse, Target, call_target, parameters, positional
from netspec.lsp.tokens import IDENTS, OPERATORS, WORDS, Tok
from netspec.registry import ACTIVATIONS, LAYERS, Registry
from netspec.registry.base import Op, format_value

Item = lsp.CompletionItem
Kind = lsp.CompletionItemKind
KEYWORDS_TOP = ("version", "let", "block", "network", "dataset", "train", "tune")
KEYWORDS_BODY = ("input", "repeat", "residual")


def completion(text: str, offset: int, last: Analysis | None = None, parse: Parse = PARSER) -> list[Item]:
    """Completion items at a string index of a document's current text.

    The context comes from the text's tokens (it is usually mid-edit), the names from its syntax tree;
    ``last``, the latest compile result (perhaps of an older text), only adds constant values to the items."""
    ctx = context_at(text, offset)
    if ctx.in_comment or ctx.in_string:
        return []
    c = _Completer(ctx, Names(text, offset, ctx, parse), last)
    if ctx.bracket is not None:
        return c.in_brackets()
    if ctx.section in BODIES:
        return c.in_body()
    if ctx.section in SECTIONS:
        return c.in_section()
    return c.at_top()


class _Completer:
    def __init__(self, ctx: Cursor, names: Names, last: Analysis | None) -> None:
        self.ctx, self.names, self.last = ctx, names, last

    def at_top(self) -> list[Item]:
        if self.ctx.word_only(self.ctx.statement):
            return _keywords(KEYWORDS_TOP, "0")
        rest = self.ctx.head("LET")
        if rest is not None and len(rest) >= 2 and rest[0].type in IDENTS and rest[1].type == "EQUAL":
            return [i for i in self.values() if i.label != rest[0].text]  # the other constants
        return []

    def in_body(self) -> list[Item]:
        ctx = self.ctx
        if ctx.word_only(ctx.statement):
            return [*self.layers_and_blocks("1"), *_keywords(KEYWORDS_BODY)]
        if ctx.after_arrow():
            return [*_regroup(_layer_items(True), "0"), *self.layers_and_blocks("1", activations=False)]
        rest = ctx.head("REPEAT", "INPUT")
        if rest is not None and all(t.type in WORDS or t.text in OPERATORS for t in rest):
            return self.values()
        return []

    def in_section(self) -> list[Item]:
        ctx = self.ctx
        if ctx.word_only(ctx.statement):
            return list(_key_items(ctx.section))
        rest = ctx.head(*IDENTS)
        key = SECTIONS[ctx.section].key(ctx.statement[0].text) if rest is not None else None
        if rest is None or key is None or key.form == "each":
            return []
        if key.registry is not None:
            listed = key.form == "many" and _list_item(ctx, rest)
            return list(_entry_items(key.registry)) if listed or ctx.word_only(rest) else []
        if key.form == "network":
            networks = self.names.networks() if ctx.word_only(rest) else []
            return [Item(label=n, kind=Kind.Module, detail="network") for n in networks]
        return _literal_items(key.field.annotation) + self.values()

    def in_brackets(self) -> list[Item]:
        ctx = self.ctx
        target = call_target(ctx, self.names)
        if ctx.bracket == "[" or target is None:
            return self.values()
        current = ctx.args[-1]
        params = parameters(target)
        kw = keyword_name(current)
        if kw is not None:  # a value for `name=`
            annotation = next((f.annotation for n, f in params if n == kw and f is not None), None)
            return (_literal_items(annotation) if annotation is not None else []) + self.values()
        if not ctx.word_only(current):
            return []
        return _argument_items(ctx, target, params) + self.values()

    def values(self) -> list[Item]:
        """Names that may stand in an expression: constants, and a block's parameters inside it."""
        items = [self.constant(name) for name in self.names.lets()]
        block = self.names.block(self.ctx.block_name()) if self.ctx.section == "block" else None
        for p in block.params if block is not None else ():
            items.append(Item(label=p.name, kind=Kind.Variable, detail="block parameter", sort_text=f"0{p.name}"))
        return items

    def constant(self, name: str) -> Item:
        known, value = self.last.constant(name) if self.last is not None else (False, None)
        detail = f"= {value_markdown(value).strip('`')}" if known else "constant"
        return Item(label=name, kind=Kind.Constant, detail=detail, sort_text=f"1{name}")

    def layers_and_blocks(self, order: str, activations: bool = True) -> list[Item]:
        items = _regroup(_layer_items(False), order)
        if activations:
            items += _regroup(_layer_items(True), order)
        for b in self.names.blocks():
            items.append(Item(label=b.name, kind=Kind.Class, detail=block_head(b), sort_text=f"0{b.name}"))
        return items


def _list_item(ctx: Cursor, rest: Sequence[Tok]) -> bool:
    """At the start of a list's next item: nothing yet, or after a `,` (perhaps with a word being typed)."""
    before = ctx.after_word(rest)
    return not before or before[-1].type == "COMMA"


def _argument_items(ctx: Cursor, target: Target, params: list[tuple[str, Any]]) -> list[Item]:
    """`name=` for each parameter not given yet, by name or by position."""
    given = {keyword_name(a) for a in ctx.args[:-1]}
    count = sum(1 for a in ctx.args[:-1] if a and keyword_name(a) is None)
    taken = given | set(positional(target)[:count])
    return [_argument_item(i, name, f) for i, (name, f) in enumerate(params) if name not in taken]


def _argument_item(i: int, name: str, f: Any) -> Item:
    from netspec.ir.values import describe_field

    doc = param_markdown(name, f) if f is not None else f"block parameter `{name}`"
    detail = describe_field(f) if f is not None else None
    return Item(label=f"{name}=", kind=Kind.Field, detail=detail, documentation=md(doc), sort_text=f"0{i:03d}")


# --- items built once ----------------------------------------------------------------------------------


def _class_item(cls: type[Op], order: str) -> Item:
    doc = md(class_markdown(cls))
    return Item(label=cls.kind_name(), kind=Kind.Function, detail=cls.signature(), documentation=doc, sort_text=order)


@functools.cache
def _layer_items(activations: bool) -> tuple[Item, ...]:
    """The activations, or the other layers."""
    if activations:
        classes = [LAYERS.entries[n] for n in ACTIVATIONS]
    else:
        classes = [c for c in LAYERS.entries.values() if c.category != "activation"]
    return tuple(_class_item(c, f"1{i:03d}") for i, c in enumerate(classes))


@functools.cache
def _entry_items(registry: Registry[Any]) -> tuple[Item, ...]:
    return tuple(_class_item(c, f"1{i:03d}") for i, c in enumerate(registry.entries.values()))


@functools.cache
def _key_items(section: str) -> tuple[Item, ...]:
    """A section's keys, then the entries of its `each` registries (the transforms), from the schema."""
    s = SECTIONS[section]
    keys = [k for k in s.keys.values() if k.form != "each"]
    items = [
        Item(
            label=k.name,
            kind=Kind.Property,
            detail=key_type(k),
            documentation=md(key_markdown(section, k.name) or ""),
            sort_text=f"0{i:03d}",
        )
        for i, k in enumerate(keys)
    ]
    return tuple(items) + tuple(i for k in s.each() if k.registry is not None for i in _entry_items(k.registry))


def _keywords(words: Iterable[str], order: str = "2") -> list[Item]:
    return [Item(label=w, kind=Kind.Keyword, sort_text=f"{order}{w}") for w in words]


def _regroup(items: Iterable[Item], order: str) -> list[Item]:
    return [attrs.evolve(i, sort_text=order + (i.sort_text or "")) for i in items]


def _literal_items(annotation: Any) -> list[Item]:
    """`true`/`false` for a flag, the choices of a Literal (e.g. padding "same")."""
    out: list[Item] = []
    todo = [annotation]
    while todo:
        t = todo.pop()
        if t is bool:
            out += [Item(label=w, kind=Kind.Value, sort_text=f"0{w}") for w in ("true", "false")]
        elif get_origin(t) is Literal:
            choices = [v for v in get_args(t) if isinstance(v, str)]
            out += [
                Item(label=format_value(v), kind=Kind.EnumMember, sort_text=f"0{i:03d}") for i, v in enumerate(choices)
            ]
        else:
            todo.extend(get_args(t))
    return out
