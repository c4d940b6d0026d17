"""``netspec graph``: the model of a network diagram, drawn by ``graph_mermaid`` and ``graph_dot``.

A diagram is boxes (the input, each layer with the arguments the spec wrote and its inferred output
shape, the `+` of a residual), clusters (a network, a block use, a repeat, a residual) and edges: the
flow from step to step, a residual's skip edge, and between the networks of a task the samples that
pass from one to the other (a GAN's generator feeds its discriminator). Shapes and parameter counts
are the IR's, as in ``netspec summary``. Ids are generated (`n0`, `c0`), never taken from spec text.
A repeat whose iterations are the same is drawn once, in a cluster labelled with its count.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Union

from netspec.ir import nodes as ir
from netspec.registry.base import fmt_shape, format_value
from netspec.registry.layers import Layer
from netspec.tools.summary import roles

MAX_VALUE = 40  # characters of one argument's value in a label; longer ones end with …


@dataclass(frozen=True)
class Box:
    """A node: `title` in bold (a layer's kind), `detail` beside it (its arguments), `shape` below."""

    id: str
    title: str
    detail: str = ""
    shape: str = ""
    params: int = 0
    style: str = "layer"  # layer, activation (a registry category), input, merge, data


@dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    label: str = ""
    style: str = "flow"  # flow, skip (a residual's identity), between (from network to network)


@dataclass
class Cluster:
    id: str
    label: str
    style: str  # network, block, repeat, residual
    items: list[Item] = field(default_factory=list)


Item = Union[Box, Cluster]


@dataclass
class Diagram:
    items: list[Item] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def boxes(self) -> list[Box]:
        return list(_boxes(self.items))


def _boxes(items: list[Item]) -> Any:
    for item in items:
        if isinstance(item, Box):
            yield item
        else:
            yield from _boxes(item.items)


class _Builder:
    """Walks the IR, numbering boxes and clusters, and connects each step to the one before."""

    def __init__(self) -> None:
        self.diagram = Diagram()
        self.count = {"n": 0, "c": 0}

    def new_id(self, prefix: str) -> str:
        self.count[prefix] += 1
        return f"{prefix}{self.count[prefix] - 1}"

    def edge(self, tail: str | None, head: str, label: str = "", style: str = "flow") -> None:
        if tail is not None:
            self.diagram.edges.append(Edge(tail, head, label, style))

    def box(self, into: list[Item], prev: str | None, **fields: Any) -> str:
        box = Box(self.new_id("n"), **fields)
        into.append(box)
        self.edge(prev, box.id)
        return box.id

    def cluster(self, into: list[Item], label: str, style: str) -> Cluster:
        c = Cluster(self.new_id("c"), label, style)
        into.append(c)
        return c

    def network(self, net: ir.Network, role: str | None) -> tuple[str, str]:
        """The network's cluster; its input box's id and its last box's id."""
        label = f"network {net.name}" + (f", the {role}" if role and role != net.name.lower() else "")
        c = self.cluster(self.diagram.items, f"{label} · {net.params:,} params", "network")
        first = self.box(c.items, None, title="input", shape=fmt_shape(net.input_shape), style="input")
        return first, self.steps(net.steps, c.items, first)

    def steps(self, steps: list[Any], into: list[Item], prev: str) -> str:
        for s in steps:
            prev = self.step(s, into, prev)
        return prev

    def step(self, s: Any, into: list[Item], prev: str) -> str:
        if isinstance(s, Layer):
            return self.layer(s, into, prev)
        if isinstance(s, ir.BlockUse):
            return self.steps(s.steps, self.cluster(into, _call(s.name, s.args), "block").items, prev)
        if isinstance(s, ir.Repeat):
            return self.repeat(s, into, prev)
        return self.residual(s, into, prev)

    def layer(self, s: Layer, into: list[Item], prev: str) -> str:
        return self.box(
            into,
            prev,
            title=s.kind,
            detail=written_args(s),
            shape=fmt_shape(s.output_shape),
            params=s.params or 0,
            style=s.category,
        )

    def repeat(self, s: ir.Repeat, into: list[Item], prev: str) -> str:
        c = self.cluster(into, f"repeat ×{s.count}", "repeat")
        if len({signature(it) for it in s.iterations}) <= 1:
            return self.steps(s.iterations[0] if s.iterations else [], c.items, prev)
        for i, iteration in enumerate(s.iterations, 1):
            prev = self.steps(iteration, self.cluster(c.items, f"iteration {i}", "repeat").items, prev)
        return prev

    def residual(self, s: ir.Residual, into: list[Item], prev: str) -> str:
        c = self.cluster(into, "residual: x + f(x)", "residual")
        last = self.steps(s.steps, c.items, prev)
        merge = self.box(c.items, last, title="+", shape=fmt_shape(s.output_shape), style="merge")
        self.edge(prev, merge, "x", "skip")
        return merge


def written_args(layer: Layer) -> str:
    """The arguments the spec wrote, as it may write them: the first positional one bare, the others named."""
    written = [name for name in layer.parameters() if name in layer.model_fields_set]
    bare = layer.positional[:1]
    return ", ".join(_value(getattr(layer, n)) if n in bare else f"{n}={_value(getattr(layer, n))}" for n in written)


def _call(name: str, args: dict[str, Any]) -> str:
    inside = ", ".join(f"{k}={_value(v)}" for k, v in args.items())
    return f"{name}({inside})" if inside else name


def _value(value: Any) -> str:
    text = format_value(_short(value))
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _short(value: Any) -> Any:
    """Floats to four significant digits (0.0070710678118654745 as 0.007071), in lists too."""
    if isinstance(value, float) and len(repr(value)) > 8:
        return float(f"{value:.4g}")
    if isinstance(value, (list, tuple)):
        return [_short(v) for v in value]
    return value


def signature(steps: list[Any]) -> tuple[Any, ...]:
    """What a drawing of these steps shows, to tell whether a repeat's iterations are the same."""
    out: list[Any] = []
    for s in steps:
        if isinstance(s, Layer):
            out.append((s.kind, written_args(s), s.output_shape))
        elif isinstance(s, ir.Repeat):
            out.append(("repeat", s.count, tuple(signature(it) for it in s.iterations)))
        else:
            out.append((s.kind, _call(getattr(s, "name", ""), getattr(s, "args", {})), signature(s.steps)))
    return tuple(out)


def diagram(program: ir.Program, network: str | None = None) -> Diagram:
    """The diagram of a checked program: every network, or only `network`."""
    b = _Builder()
    parts = roles(program)
    parts = parts if len(parts) > 1 else {}  # the parts of a task that trains several networks
    ends = {n.name: b.network(n, parts.get(n.name)) for n in program.networks if network is None or n.name == network}
    _flows(b, program, ends)
    return b.diagram


def _flows(b: _Builder, program: ir.Program, ends: dict[str, tuple[str, str]]) -> None:
    """The task's edges between its networks (and from the data): its `flows`, by train key."""
    if program.train is None:
        return
    trained = program.train.trained()
    data: str | None = None  # the dataset's box, drawn once
    for tail_key, head_key, label in program.train.task.edges():
        head = ends.get(trained.get(head_key, ""))
        if head is None:
            continue
        if tail_key == "data" and program.dataset is not None:
            if data is None:
                data = b.box(b.diagram.items, None, title="dataset", detail=_data_name(program.dataset), style="data")
            b.edge(data, head[0], label, "between")
        elif tail_key in trained and trained[tail_key] in ends:
            b.edge(ends[trained[tail_key]][1], head[0], label, "between")


def _data_name(dataset: ir.Dataset) -> str:
    return dataset.name or dataset.source.kind


def printable(text: str) -> str:
    """Text with control characters and line or paragraph separators (`\\x85`, U+2028) as spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def networks(program: ir.Program) -> list[str]:
    return [n.name for n in program.networks]
