"""`netspec graph`: a picture of the network (torch-free). Mermaid on stdout; with -o, the suffix
picks the format: .md (Markdown with a mermaid block), .dot, .svg or .png (Graphviz's dot)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, compile_spec, report, spec_options
from netspec.language.diagnostics import UsageError
from netspec.language.files import write_atomic

FORMATS = (".md", ".dot", ".svg", ".png")
EXAMPLES = (
    "netspec graph specs/resnet_cifar.net              # Mermaid on stdout\n"
    "  netspec graph specs/resnet_cifar.net -o resnet.svg  # or .png (Graphviz's dot), .md, .dot\n"
    "  netspec graph specs/gan.net -o gan.md               # Markdown that GitHub renders\n"
    "  netspec graph specs/gan.net --network Generator -o generator.png"
)


def add(sub: Any) -> None:
    help_text = "draw the network: each layer with its arguments and output shape, blocks and repeats as clusters"
    p = command(sub, "graph", help_text, cmd_graph, EXAMPLES)
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    p.add_argument(
        "-o", "--output", metavar="OUT", help="write OUT: .svg or .png (needs Graphviz's dot), .md (Mermaid), .dot"
    )
    p.add_argument("--network", metavar="NAME", help="draw only this network (default: every network)")
    spec_options(p, "drawing")


def cmd_graph(args: argparse.Namespace) -> int:
    from netspec.tools.graph import diagram

    suffix = _suffix(args.output)
    result = compile_spec(args, args.file)
    if result.diagnostics:
        report([result], "text", sys.stderr)
    if result.program is None:
        return 1
    _check_network(result.program, args.network)
    _write(diagram(result.program, args.network), suffix, args.output, f"{Path(args.file).name}")
    return 0


def _suffix(output: str | None) -> str | None:
    if output is None:
        return None
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the format of `{output}`: -o takes a file ending in {', '.join(FORMATS)}")
    return suffix


def _check_network(program: Any, name: str | None) -> None:
    from netspec.language.suggest import did_you_mean
    from netspec.tools.graph import networks

    names = networks(program)
    if name is not None and name not in names:
        hint = did_you_mean(name, names) or "it has " + ", ".join(f"`{n}`" for n in names)
        raise UsageError(f"the spec has no network `{name}`; {hint}")


def _write(d: Any, suffix: str | None, output: str | None, title: str) -> None:
    from netspec.tools import graph_dot, graph_mermaid

    if suffix is None or output is None:
        sys.stdout.write(graph_mermaid.mermaid(d))
    elif suffix == ".md":
        write_atomic(output, graph_mermaid.markdown(d, f"The network of {title}"))
    elif suffix == ".dot":
        write_atomic(output, graph_dot.dot(d))
    else:
        write_atomic(output, graph_dot.render(graph_dot.dot(d), suffix[1:]))
