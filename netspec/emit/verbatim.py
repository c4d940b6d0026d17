"""Copying netspec's own code (netspec/verbatim/) into scripts: the definitions a script needs, and what they use.

netspec's code is typed; a script is written in the plain style of the PyTorch examples, so the copies
leave out the annotations of functions and of assignments in them (a dataclass's fields keep theirs).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VERBATIM = Path(__file__).resolve().parents[1] / "verbatim"  # netspec's own code that scripts copy
LINE_LENGTH = 88  # ruff's default, which scripts are formatted to


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
    source = untyped(path.read_text(encoding="utf-8"))
    lines = source.splitlines()
    out: dict[str, _Definition] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            text = "\n".join(_clean(line) for line in lines[start - 1 : node.end_lineno])
            names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            out[node.name] = _Definition(node.name, text, names)
    return out


def untyped(source: str) -> str:
    """The source without the annotations of its functions' signatures and of the assignments in them."""
    lines = source.splitlines()
    edits: dict[int, tuple[int, list[str]]] = {}  # first line (0-based) -> (lines replaced, new lines)
    for func in ast.walk(ast.parse(source)):
        if isinstance(func, ast.FunctionDef):
            edits[func.lineno - 1] = _signature(func, lines)
            for node in ast.walk(func):
                if isinstance(node, ast.AnnAssign) and node.value is not None and node.lineno == node.value.lineno:
                    line = lines[node.lineno - 1]
                    stripped = line[: node.target.end_col_offset] + " = " + line[node.value.col_offset :]
                    edits[node.lineno - 1] = (1, [stripped])
    out: list[str] = []
    i = 0
    while i < len(lines):
        replaced, new = edits.get(i, (1, [lines[i]]))
        out += new
        i += replaced
    return "\n".join(out) + "\n"


def _signature(func: ast.FunctionDef, lines: list[str]) -> tuple[int, list[str]]:
    """`def name(params):` without annotations, on one line when it fits; the lines it replaces."""
    end, depth = func.lineno - 1, 0
    while True:  # to the line that ends the signature: brackets closed, then a colon
        code = lines[end].split("#")[0]
        depth += sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")
        if depth == 0 and code.rstrip().endswith(":"):
            break
        end += 1
    indent = " " * func.col_offset
    params = _parameters(func.args, "\n".join(lines))
    one = f"{indent}def {func.name}({', '.join(params)}):"
    if len(one) <= LINE_LENGTH:
        return end - func.lineno + 2, [one]
    return end - func.lineno + 2, [f"{indent}def {func.name}(", *(f"{indent}    {p}," for p in params), f"{indent}):"]


def _parameters(args: ast.arguments, source: str) -> list[str]:
    """Each parameter as written, its default included, without its annotation."""
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = [_parameter(a.arg, d, source) for a, d in zip(positional, defaults)]
    out += [f"*{args.vararg.arg}"] if args.vararg else (["*"] if args.kwonlyargs else [])
    out += [_parameter(a.arg, d, source) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return out + ([f"**{args.kwarg.arg}"] if args.kwarg else [])


def _parameter(name: str, default: ast.expr | None, source: str) -> str:
    return name if default is None else f"{name}={ast.get_source_segment(source, default)}"


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


@cache
def imported_modules(module: str) -> frozenset[str]:
    """The modules netspec/verbatim/<module>.py imports with a plain `import X`: a copied
    definition that uses one needs the script to import it too."""
    tree = ast.parse((VERBATIM / f"{module}.py").read_text(encoding="utf-8"))
    return frozenset(a.name for node in tree.body if isinstance(node, ast.Import) for a in node.names)
