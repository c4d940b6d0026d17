"""``netspec summary``: per network, each layer's output shape and parameters (like torchinfo); the
networks the train section trains are named by their part (the model, a GAN's generator and discriminator)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from netspec.ir import nodes as ir
from netspec.registry.base import fmt_shape, format_value, numel
from netspec.registry.layers import Layer


@dataclass(frozen=True)
class Row:
    kind: str
    line: int
    output_shape: tuple[int, ...]
    params: int
    depth: int
    leaf: bool


def rows(steps: list[Any], depth: int = 0) -> list[Row]:
    """Flatten a network's steps into rows; composites get a row above their contents."""
    out: list[Row] = []
    for s in steps:
        if isinstance(s, Layer):
            out.append(Row(s.kind, s.span.line, s.output_shape, s.params, depth, True))  # type: ignore[arg-type,attr-defined,union-attr]
            continue
        label = {
            "block": getattr(s, "name", ""),
            "repeat": f"repeat ×{getattr(s, 'count', 0)}",
            "residual": "residual (x + f(x))",
        }[s.kind]
        out.append(Row(label, s.span.line, s.output_shape, s.params, depth, False))
        for part in s.iterations if isinstance(s, ir.Repeat) else [s.steps]:
            out += rows(part, depth + 1)
    return out


def roles(program: ir.Program) -> dict[str, str]:
    """The train key that names each network it trains: {"Generator": "generator", ...}."""
    return {name: key for key, name in program.train.trained().items()} if program.train else {}


def summary_json(program: ir.Program) -> dict[str, Any]:
    parts = roles(program)
    return {
        "task": program.train.task.kind if program.train else None,
        "networks": [
            {
                "name": n.name,
                "role": parts.get(n.name),
                "input": list(n.input_shape),
                "output": list(n.output_shape),
                "params": n.params,
                "layers": [
                    {"kind": r.kind, "line": r.line, "output_shape": list(r.output_shape), "params": r.params}
                    for r in rows(n.steps)
                    if r.leaf
                ],
            }
            for n in program.networks
        ],
        "search": [
            {"name": p.name, "line": p.span.line, "expression": p.distribution.text(), "default": p.default}
            for p in program.search
        ],
    }


def summary_text(program: ir.Program) -> str:
    parts = roles(program)
    tables = [_table(n, parts.get(n.name)) for n in program.networks]
    return "\n\n".join(tables + _trained_together(program) + _searched(program))


def _searched(program: ir.Program) -> list[str]:
    """The search expressions, and the defaults the tables above are drawn at."""
    if not program.search:
        return []
    lines = [
        f"  {p.name} = {p.distribution.text()}, line {p.span.line}: {format_value(p.default)}" for p in program.search
    ]
    return ["Searched by `netspec tune` (shown at the defaults):\n" + "\n".join(lines)]


def _trained_together(program: ir.Program) -> list[str]:
    """Of a task that trains several networks (a GAN), a line that names them and their parameters."""
    train = program.train
    trained = train.trained() if train else {}
    if train is None or len(trained) < 2:
        return []
    total = sum(net.params for net in map(program.network, trained.values()) if net)
    names = ", ".join(f"{key} {name}" for key, name in trained.items())
    return [f"Trains {train.task.described()}: {names}; {total:,} parameters in all"]


def _table(net: ir.Network, role: str | None = None) -> str:
    body = [
        (
            "  " * r.depth + r.kind,
            str(r.line),
            fmt_shape(r.output_shape),
            f"{r.params:,}" if r.leaf else f"({r.params:,})",
        )
        for r in rows(net.steps)
    ]
    head = ("Layer", "Line", "Output shape", "Params")
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]
    width = sum(widths) + 6

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    size = net.params * 4 / 2**20
    return "\n".join(
        [
            f"network {net.name}{f', the {role}' if role else ''}: input {fmt_shape(net.input_shape)} "
            f"-> output {fmt_shape(net.output_shape)}",
            "=" * width,
            line(head),
            "-" * width,
            *(line(b) for b in body),
            "=" * width,
            f"Total params: {net.params:,} ({size:.2f} MiB as float32)",
            f"Activations per sample: {sum(numel(r.output_shape) for r in rows(net.steps) if r.leaf):,} values",
        ]
    )


def summary_html(program: ir.Program) -> str:
    """The tables of `summary_text` as HTML, for Jupyter (`Summary._repr_html_`): every name escaped."""
    parts = roles(program)
    tables = [_html_table(n, parts.get(n.name)) for n in program.networks]
    notes = [f"<p>{html.escape(note)}</p>" for note in _trained_together(program) + _searched(program)]
    return '<div class="netspec-summary">' + "".join(tables + notes) + "</div>"


def _html_table(net: ir.Network, role: str | None) -> str:
    cells = "".join(_html_row(r) for r in rows(net.steps))
    caption = f"network {net.name}{f', the {role}' if role else ''}: input {fmt_shape(net.input_shape)} "
    caption += f"-> output {fmt_shape(net.output_shape)}"
    total = f"Total params: {net.params:,} ({net.params * 4 / 2**20:.2f} MiB as float32)"
    head = "<tr><th>Layer</th><th>Line</th><th>Output shape</th><th>Params</th></tr>"
    return (
        f"<table><caption style='text-align:left'><b>{html.escape(caption)}</b></caption>"
        f"<thead>{head}</thead><tbody>{cells}</tbody>"
        f"<tfoot><tr><td colspan='4' style='text-align:left'>{html.escape(total)}</td></tr></tfoot></table>"
    )


def _html_row(r: Row) -> str:
    params = f"{r.params:,}" if r.leaf else f"({r.params:,})"
    kind = f"{'&nbsp;' * 4 * r.depth}{html.escape(r.kind)}"
    return (
        f"<tr><td style='text-align:left'>{kind}</td><td>{r.line}</td>"
        f"<td style='text-align:left'>{html.escape(fmt_shape(r.output_shape))}</td><td>{params}</td></tr>"
    )


def dumps(program: ir.Program) -> str:
    return json.dumps(summary_json(program), indent=2)
