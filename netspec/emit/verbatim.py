"""Copying netspec's own code (netspec/verbatim/) into scripts: the definitions a script needs, and what they use."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VERBATIM = Path(__file__).resolve().parents[1] / "verbatim"  # netspec's own code that scripts copy


# --- copied source: netspec's own helpers --------------------------------------------------


@dataclass(frozen=True)
class _Definition:
    name: str
    source: str
    uses: frozenset[str]  # the global names it refers to


@cache
def definitions(module: str) -> dict[str, _Definition]:
    """The top-level functions and classes of netspec/<module>.py, in file order."""
    path = VERBATIM / f"{module}.py"
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    out: dict[str, _Definition] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            text = "\n".join(_clean(line) for line in lines[start - 1 : node.end_lineno])
            names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            out[node.name] = _Definition(node.name, text, names)
    return out


def _clean(line: str) -> str:
    """A line without the `# type: ignore` that only netspec's type checker needs."""
    return re.sub(r"\s+# type: ignore(\[[^\]]*\])?$", "", line)


def copied(module: str, wanted: set[str], provided: frozenset[str] = frozenset()) -> list[_Definition]:
    """The definitions `wanted` and those they use, from netspec/verbatim/<module>.py, in file order;
    except those `provided` by the templates."""
    defs = definitions(module)
    todo, keep = [w for w in wanted if w in defs], set()
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo += [n for n in defs[name].uses if n in defs and n not in keep | provided]
    return [d for name, d in defs.items() if name in keep]
