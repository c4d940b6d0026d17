"""Pass 3: the `dataset`, `train` and `tune` sections, read generically from the section schema.

Every entry is read by its key's form (``forms.READERS``); then required keys, keys of
which exactly one is written, and the sections the spec must have are checked.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from netspec.ir.checks.context import TOP, CheckContext
from netspec.ir.checks.forms import READERS
from netspec.ir.sections import SECTIONS, Either, Key, SectionSchema
from netspec.ir.values import INVALID, describe_field, describe_value
from netspec.language import syntax as st
from netspec.language.span import Span
from netspec.language.suggest import did_you_mean
from netspec.registry import LAYERS, TASKS
from netspec.registry.tasks import Supervised

Values = dict[str, Any]


def run(module: st.Module, ctx: CheckContext) -> None:
    found = _find(module, ctx)
    read = {kind: read_section(ctx, schema, found[kind]) for kind, schema in SECTIONS.items() if kind in found}
    ctx.parts.dataset, ctx.parts.train, ctx.parts.tune = read.get("dataset"), read.get("train"), read.get("tune")
    _missing(module, ctx, found)


def _find(module: st.Module, ctx: CheckContext) -> dict[str, st.Section]:
    found: dict[str, st.Section] = {}
    for item in module.items:
        if not isinstance(item, st.Section):
            continue
        if item.kind in found:
            schema = SECTIONS.get(item.kind)
            more = f"; {schema.second}" if schema is not None and schema.second else ""
            ctx.report(
                "NS031",
                f"a spec has one `{item.kind}` section; this is a second one",
                item.span,
                f"the first is at line {found[item.kind].span.line}{more}",
            )
        found.setdefault(item.kind, item)
    return found


def read_section(ctx: CheckContext, schema: SectionSchema, node: st.Section) -> Any:
    """The section's IR node, or None after errors."""
    values, spans, collected = _entries(ctx, schema, node)
    _required(ctx, schema, node, values)
    for key in schema.each():
        values[key.name] = collected[key.name]
    if schema.named():
        values["name"] = node.name
    return _validate(ctx, schema, {**values, "span": node.span}, spans)


def _entries(
    ctx: CheckContext, schema: SectionSchema, node: st.Section
) -> tuple[Values, dict[str, Span], dict[str, list[Any]]]:
    """Each entry's value by key, the entries' spans, and the `each` entries collected per key."""
    values: Values = {}
    spans: dict[str, Span] = {}
    collected: dict[str, list[Any]] = defaultdict(list)
    for entry in node.entries:
        key = schema.keys.get(entry.key)
        if key is None:
            _each_entry(ctx, schema, entry, collected)
        elif entry.key in values:
            ctx.report("NS031", f"`{entry.key}` is given twice", entry.key_span)
        elif (value := _read(ctx, key, entry)) is not INVALID:
            values[entry.key], spans[entry.key] = value, entry.span
    return values, spans, collected


def _read(ctx: CheckContext, key: Key, entry: st.Entry) -> Any:
    if key.form == "each":  # `transforms normalize(...)`: each entry is a key of its own
        example = key.registry.entries[key.registry.names()[0]].signature() if key.registry else key.name
        ctx.report(
            "NS030",
            f"`{entry.key}` is not written as a key: each {key.what} is a key of its own",
            entry.key_span,
            f"write one per line, in the order they apply, e.g. `{example}`",
        )
        return INVALID
    return READERS[key.form](ctx, key, entry)


def _each_entry(ctx: CheckContext, schema: SectionSchema, entry: st.Entry, collected: dict[str, list[Any]]) -> None:
    key = schema.each_key(entry.key)
    if key is None:
        _unknown_key(ctx, schema, entry)
        return
    op = READERS["each"](ctx, key, entry)
    if op is not INVALID:
        collected[key.name].append(op)


def _unknown_key(ctx: CheckContext, schema: SectionSchema, entry: st.Entry) -> None:
    keys = schema.known_keys()
    hint = did_you_mean(entry.key, keys)
    if hint is None and entry.key in LAYERS.entries:
        hint = "layers belong in a `network` block"
    ctx.report(
        "NS030",
        f"unknown key `{entry.key}` in the {schema.kind} section",
        entry.key_span,
        hint or "valid keys: " + ", ".join(keys[:12]) + ("..." if len(keys) > 12 else ""),
    )


def _required(ctx: CheckContext, schema: SectionSchema, node: st.Section, values: Values) -> None:
    """Keys that must be written (or, for a network, may be left out when the spec has one)."""
    given = {e.key for e in node.entries}
    task = values.setdefault("task", _task_of(given)) if "task" in schema.keys else Supervised()
    for key in schema.keys.values():
        if key.name in given:
            _unused(ctx, task, key, node, values)
        elif key.form == "network":
            if key.name in task.networks:
                _default_network(ctx, schema, node, key, values)
        elif (missing := key.missing(schema.kind)) is not None:
            ctx.report("NS033", missing[0], node.span, missing[1])
    for rule in schema.either:
        _either(ctx, schema, node, rule, given)


def _task_of(given: set[str]) -> Any:
    """The task of a train section that names none: the one whose networks it names (`generator G`:
    a GAN), else the first (supervised)."""
    found = [t for t in TASKS.entries.values() if given & set(t.networks)]
    return (found or list(TASKS.entries.values()))[0]()  # type: ignore[call-arg]


def _unused(ctx: CheckContext, task: Any, key: Key, node: st.Section, values: Values) -> None:
    """A key written that the section's task does not read: `generator G` without `task gan`."""
    if key.name not in task.unused and (key.form != "network" or key.name in task.networks):
        return
    users = [t for t in TASKS.entries.values() if key.name in t.networks]
    hint = f"it belongs to `task {users[0].kind_name()}`: {users[0].picture}" if users else f"remove `{key.name}`"
    span = next(e.key_span for e in node.entries if e.key == key.name)
    ctx.report("NS030", f"task `{task.kind}` does not use `{key.name}`", span, hint)
    values.pop(key.name, None)


def _default_network(ctx: CheckContext, schema: SectionSchema, node: st.Section, key: Key, values: Values) -> None:
    names = ctx.parts.network_names
    free = [n for n in names if n not in values.values()] or names  # not the generator's name again
    if len(names) == 1:
        values[key.name] = names[0]
    elif names:
        ctx.report(
            "NS033",
            f"the {schema.kind} section needs `{key.name}`: this spec has several networks",
            node.span,
            f"add `{key.name} {free[0]}`",
        )


def _either(ctx: CheckContext, schema: SectionSchema, node: st.Section, rule: Either, given: set[str]) -> None:
    first, second = rule.first, rule.second
    if first not in given and second not in given:
        ctx.report(
            "NS033",
            f"the {schema.kind} section needs `{first}` or `{second}`",
            node.span,
            f"for example {rule.example}",
        )
    elif first in given and second in given:
        span = next(e.span for e in node.entries if e.key == second)
        ctx.report("NS034", f"give either `{first}` or `{second}`, not both", span)


def _validate(ctx: CheckContext, schema: SectionSchema, values: Values, spans: dict[str, Span]) -> Any:
    from pydantic import ValidationError

    try:
        return schema.model.model_validate(values)
    except ValidationError as e:
        for err in e.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            if key in spans:
                field = schema.model.model_fields[key]
                ctx.report(
                    "NS015", f"`{key}` must be {describe_field(field)}, got {describe_value(values[key])}", spans[key]
                )
        return None


def _missing(module: st.Module, ctx: CheckContext, sections: dict[str, st.Section]) -> None:
    """The parts a spec must have: a network; a dataset for the train section; a train section to run."""
    has_network = any(isinstance(x, st.Network) for x in module.items)
    if not has_network:
        ctx.report("NS035", "the spec defines no network", TOP, "add one, e.g. `network Net { input [4]; dense(2) }`")
    if "train" in sections and "dataset" not in sections:
        ctx.report("NS035", "the `train` section needs a `dataset` section", sections["train"].span)
    elif "train" not in sections and has_network:
        ctx.report(
            "NS036",
            "no `train` section: `netspec run` needs one",
            TOP,
            "add `train { loss ... optimizer ... epochs ... }`",
            "warning",
        )
