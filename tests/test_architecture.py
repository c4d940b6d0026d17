"""The architecture of docs/architecture.md, enforced: which package may import which (function-local
imports included), no import cycle, no module over 600 lines, and the torch-free front end."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "netspec"
MAX_LINES = 600

# What each stage may import inside netspec (besides itself): docs/architecture.md's table.
ALLOWED: dict[str, set[str]] = {
    "language": set(),
    "verbatim": set(),
    "registry": {"language", "verbatim"},
    "ir": {"language", "registry"},
    "tools": {"language", "registry", "ir"},
    "runtime": {"language", "registry", "ir", "verbatim"},
    "emit": {"language", "registry", "ir", "verbatim", "runtime.build"},
    "lsp": {"language", "registry", "ir", "tools"},
    "serve": {"language", "registry", "ir", "runtime", "verbatim"},  # a trained network behind HTTP
}
TORCH_FREE = ("language", "registry", "ir", "tools")  # no module-level torch import


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path, tree: ast.Module, typing: bool = True) -> set[str]:
    """The netspec modules `name` imports anywhere in its body (function-local imports count); with
    `typing=False`, not those under `if TYPE_CHECKING:`, which never run."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = set() if typing else {id(n) for n in ast.walk(tree) if _type_checking(n) for n in ast.walk(n)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    known = modules()
    return {m for m in found if m in known and m != name}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def graph(typing: bool = True) -> dict[str, set[str]]:
    return {n: imports(n, p, ast.parse(p.read_text(encoding="utf-8")), typing) for n, p in modules().items()}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_every_import_follows_the_pipeline() -> None:
    bad = []
    for module, targets in graph().items():
        own = stage(module)
        if own is None:
            continue  # cli, __init__, __main__: may import everything
        for target in targets:
            other = stage(target)
            if other is None:
                if target != "netspec":  # `netspec.__version__`
                    bad.append(f"{module} -> {target}")
                continue
            allowed = ALLOWED[own] | {own}
            if other not in allowed and target.removeprefix("netspec.") not in allowed:
                bad.append(f"{module} -> {target}")
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(sorted(bad))


def test_no_import_cycle() -> None:
    """Of the imports that run: netspec/__init__.py names its lazily imported API for type checkers only."""
    g = graph(typing=False)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines; split it (docs/architecture.md)"


def test_front_end_is_torch_free() -> None:
    bad = []
    for name, path in modules().items():
        if stage(name) not in TORCH_FREE:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad += [f"{name}: {n}" for n in names if n.split(".")[0] == "torch"]
    assert not bad, f"module-level torch imports in the torch-free front end: {bad}"


def test_verbatim_imports_only_torch_numpy_and_the_standard_library() -> None:
    import sys

    allowed = {"torch", "numpy", "__future__"} | set(sys.stdlib_module_names)
    for path in (PACKAGE / "verbatim").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}: scripts copy it, so it must not"
