"""A diagram (``tools/graph.py``) as Graphviz DOT text, and DOT rendered to SVG or PNG by `dot`.

Labels are HTML-like (`<...>`) with every character of spec text escaped as an entity, so no spec
text can end a label; ids are the diagram's own (`n0`, `cluster_c0`). `dot` runs in a subprocess
with a timeout; a missing `dot` is a usage error that points at Graphviz, or at Mermaid.
"""

from __future__ import annotations

import shutil
import subprocess

from netspec.language.diagnostics import UsageError
from netspec.tools.graph import Box, Cluster, Diagram, Edge, Item, printable

FONT = "Helvetica"
TIMEOUT = 60.0  # seconds `dot` may take
FILLS = {
    "layer": ("#eef3fb", "#5b7bb5"),
    "activation": ("#fdf3e3", "#c99a4b"),
    "input": ("#e8f5e9", "#5f9e63"),
    "merge": ("#ffffff", "#555555"),
    "data": ("#f3e8fb", "#8a5bb5"),
}
CLUSTERS = {  # border colour, fill, line style
    "network": ("#7a7a7a", "#fcfcfc", "rounded"),
    "block": ("#5b7bb5", "#f7f9fd", "rounded"),
    "repeat": ("#c0504d", "#fdf7f7", "rounded,dashed"),
    "residual": ("#5f9e63", "#f7fbf7", "rounded"),
}
EDGES = {
    "flow": "",
    "skip": ' [style=dashed, weight=0, color="#5f9e63", fontcolor="#5f9e63", tailport=e, headport=e]',
    "between": ' [style=bold, color="#8a5bb5", fontcolor="#8a5bb5"]',
}
ESCAPES = {ch: f"&#{ord(ch)};" for ch in "&<>\"'[]{}|"} | {"\\": "\\\\"}
HEADER = [
    "digraph netspec {",
    f'    graph [rankdir=TB, fontname="{FONT}", fontsize=12, nodesep=0.3, ranksep=0.22, newrank=true,'
    " margin=0.1, pad=0.1, labeljust=l]",
    f'    node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=11, height=0.3, margin="0.1,0.03"]',
    f'    edge [color="#555555", arrowsize=0.6, fontname="{FONT}", fontsize=10]',
]


def escape(text: str) -> str:
    """Text for an HTML-like label: markup characters as entities, control characters as spaces, and a
    backslash doubled (dot reads `\\N`, `\\G`, `\\\\` in labels as escapes, entities included)."""
    return "".join(ESCAPES.get(ch) or ch for ch in printable(text))


def box_label(box: Box) -> str:
    if box.style == "merge":
        return f"<<b>{escape(box.title)}</b>>"
    head = f"<b>{escape(box.title)}</b>" + (f" {escape(box.detail)}" if box.style == "data" else "")
    if box.detail and box.style != "data":
        head += f"({escape(box.detail)})"
    facts = [box.shape] + ([f"{box.params:,} params"] if box.params else [])
    small = escape("  ·  ".join(f for f in facts if f))
    return f'<{head}<br/><font point-size="9" color="#444444">{small}</font>>' if small else f"<{head}>"


def _box(box: Box, indent: str) -> str:
    fill, line = FILLS.get(box.style, FILLS["layer"])
    shape = ", shape=circle, width=0.3, fixedsize=true" if box.style == "merge" else ""
    shape += ", shape=cylinder" if box.style == "data" else ""
    return f'{indent}{box.id} [label={box_label(box)}, fillcolor="{fill}", color="{line}"{shape}]'


def _items(items: list[Item], depth: int) -> list[str]:
    indent = "    " * depth
    out: list[str] = []
    for item in items:
        out += [_box(item, indent)] if isinstance(item, Box) else _cluster(item, depth)
    return out


def _cluster(c: Cluster, depth: int) -> list[str]:
    indent = "    " * depth
    color, fill, style = CLUSTERS[c.style]
    big = ' point-size="13"' if c.style == "network" else ""
    head = [
        f"{indent}subgraph cluster_{c.id} {{",
        f'{indent}    label=<<font{big} color="{color}"><b>{escape(c.label)}</b></font>>',
        f'{indent}    style="{style},filled"; color="{color}"; fillcolor="{fill}"; margin=7',
    ]
    return head + _items(c.items, depth + 1) + [f"{indent}}}"]


def _edge(e: Edge) -> str:
    attrs = EDGES[e.style]
    if e.label:
        label = f"label=< {escape(e.label)} >"
        attrs = f"{attrs[:-1]}, {label}]" if attrs else f" [{label}]"
    return f"    {e.tail} -> {e.head}{attrs}"


def dot(d: Diagram) -> str:
    """The DOT text, top to bottom; ends with a newline."""
    return "\n".join(HEADER + _items(d.items, 1) + [_edge(e) for e in d.edges] + ["}"]) + "\n"


def render(text: str, fmt: str, timeout: float = TIMEOUT) -> bytes:
    """DOT text rendered by Graphviz's `dot` as `svg` or `png`."""
    program = shutil.which("dot")
    if program is None:
        raise UsageError(
            f"drawing {fmt.upper()} needs Graphviz's dot program (apt-get install graphviz / brew install graphviz); "
            "use -o FILE.md for Mermaid, which needs nothing"
        )
    extra = ["-Gdpi=110"] if fmt == "png" else []
    try:
        done = subprocess.run(
            [program, f"-T{fmt}", *extra], input=text.encode(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise UsageError(f"Graphviz's dot took longer than {timeout:g} s; use -o FILE.md for Mermaid") from e
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[:3]
        raise UsageError(f"Graphviz's dot failed ({done.returncode}): {' '.join(reason)}")
    return done.stdout
