"""A diagram (``tools/graph.py``) as Mermaid flowchart text, which GitHub renders in Markdown.

Every label is a quoted string whose characters Mermaid could read as syntax are entity codes
(`#quot;`, `#lt;`, ...), so no spec text can end a label; ids are the diagram's own (`n0`, `c0`).
Nodes are declared inside their subgraphs first, then every edge, so each node stays in its cluster.
"""

from __future__ import annotations

from netspec.tools.graph import Box, Cluster, Diagram, Edge, Item, printable

ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;", "|": "#124;"}
SHAPES = {"input": ('(["', '"])'), "merge": ('(("', '"))'), "data": ('[("', '")]')}
ARROWS = {"flow": "-->", "skip": "-.->", "between": "==>"}
CLASSES = {
    "layer": "fill:#eef3fb,stroke:#5b7bb5",
    "activation": "fill:#fdf3e3,stroke:#c99a4b",
    "input": "fill:#e8f5e9,stroke:#5f9e63",
    "merge": "fill:#ffffff,stroke:#555555",
    "data": "fill:#f3e8fb,stroke:#8a5bb5",
}
CLUSTERS = {
    "network": "fill:#fcfcfc,stroke:#7a7a7a",
    "block": "fill:#f7f9fd,stroke:#5b7bb5",
    "repeat": "fill:#fdf7f7,stroke:#c0504d,stroke-dasharray:5 5",
    "residual": "fill:#f7fbf7,stroke:#5f9e63",
}


def escape(text: str) -> str:
    """Text for inside a quoted Mermaid label: syntax characters as entity codes, line breaks as spaces."""
    return "".join(ENTITIES.get(ch, ch) for ch in printable(text))


def box_label(box: Box) -> str:
    head = box.title + (f"({box.detail})" if box.detail and box.style != "data" else "")
    if box.style == "data":
        head = f"{box.title} {box.detail}"
    lines = [head] + ([box.shape] if box.shape and box.style != "merge" else [])
    return "<br/>".join(escape(line) for line in lines)


def _box(box: Box, indent: str) -> str:
    start, end = SHAPES.get(box.style, ('["', '"]'))
    return f"{indent}{box.id}{start}{box_label(box)}{end}:::{box.style}"


def _items(items: list[Item], depth: int) -> list[str]:
    indent = "    " * depth
    out: list[str] = []
    for item in items:
        if isinstance(item, Box):
            out.append(_box(item, indent))
        else:
            out += _cluster(item, depth)
    return out


def _cluster(c: Cluster, depth: int) -> list[str]:
    indent = "    " * depth
    head = [f'{indent}subgraph {c.id}["{escape(c.label)}"]', f"{indent}    direction TB"]
    return head + _items(c.items, depth + 1) + [f"{indent}end", f"{indent}style {c.id} {CLUSTERS[c.style]}"]


def _edge(e: Edge) -> str:
    label = f'|"{escape(e.label)}"|' if e.label else ""
    return f"    {e.tail} {ARROWS[e.style]}{label} {e.head}"


def mermaid(d: Diagram) -> str:
    """The flowchart, top to bottom; ends with a newline."""
    lines = ["flowchart TD"] + _items(d.items, 1) + [_edge(e) for e in d.edges]
    lines += [f"    classDef {name} {style}" for name, style in CLASSES.items()]
    return "\n".join(lines) + "\n"


def markdown(d: Diagram, title: str) -> str:
    """A Markdown file with the flowchart in a ```mermaid block."""
    return f"# {title}\n\n```mermaid\n{mermaid(d)}```\n"
