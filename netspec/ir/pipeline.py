"""The pipeline, top to bottom: read -> parse -> override -> check.

Every command that compiles a spec goes through ``compile_file``; ``load`` is the
API form that raises ``SpecError`` instead of returning diagnostics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from netspec.ir.check import CheckOptions, Trace, check, run
from netspec.ir.nodes import Program
from netspec.ir.sections import SECTIONS
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, SpecError, has_errors, sort_key
from netspec.language.overrides import apply_overrides
from netspec.language.parse import parse, paused_gc, read_source

SYNTAX_CODES = frozenset({"NS001", "NS002", "NS003", "NS004"})  # errors after which a line is blanked and parsed again
# Checks of the whole spec (shapes, missing parts, cross-section rules): after a syntax error, the blanked
# lines would make them report follow-up errors, so only each line's own errors are kept.
WHOLE_SPEC_CODES = frozenset(
    {"NS033", "NS035", "NS036", "NS040", "NS041", "NS042", "NS046", "NS050", "NS051", "NS052", "NS060", "NS101"}
)


@dataclass
class Result:
    file: str
    text: str
    module: st.Module | None = None
    program: Program | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    trace: Trace | None = None

    @property
    def ok(self) -> bool:
        return self.program is not None and not has_errors(self.diagnostics)


@paused_gc()
def compile_text(
    text: str,
    file: str = "<input>",
    overrides: list[str] | tuple[str, ...] = (),
    options: CheckOptions = CheckOptions(),
    parser: Callable[[str], tuple[st.Module | None, list[Diagnostic]]] = parse,
) -> Result:
    """Parse, apply overrides and check a spec's text. Never raises on bad input.
    `parser` is `netspec.language.parse.parse` or an equivalent (the language server's memoized one)."""
    result = Result(file, text)
    module, diags = parser(text)
    result.module = module
    recovered = any(d.code in SYNTAX_CODES for d in diags)
    if module is not None:
        module, more = apply_overrides(module, list(overrides), alternatives())
        diags += more
        if not has_errors(diags) or module.items:
            program, ctx = run(module, options)
            diags += [d for d in ctx.diagnostics if not (recovered and d.code in WHOLE_SPEC_CODES)]
            result.trace = ctx.trace
            result.program = program if not has_errors(diags) else None
    result.diagnostics = _finish(diags, file)
    return result


def compile_file(
    path: str, overrides: list[str] | tuple[str, ...] = (), options: CheckOptions = CheckOptions()
) -> Result:
    """Read and compile a spec file. Raises OSError when the file cannot be read."""
    text, diags = read_source(path)
    if diags:
        return Result(path, text or "", diagnostics=_finish(diags, path))
    return compile_text(text or "", path, overrides, options)


def load(path: str, overrides: list[str] | tuple[str, ...] = (), options: CheckOptions = CheckOptions()) -> Program:
    """The checked IR of a spec file, or SpecError with its diagnostics."""
    result = compile_file(path, overrides, options)
    if result.program is None:
        raise SpecError(result.diagnostics, {result.file: result.text})
    return result.program


def _finish(diags: list[Diagnostic], file: str) -> list[Diagnostic]:
    placed = [dataclasses.replace(d, file=file if d.origin is None else "--set") for d in diags]
    return sorted(placed, key=sort_key)


__all__ = ["Result", "check", "compile_file", "compile_text", "load"]


def alternatives() -> dict[str, dict[str, tuple[str, ...]]]:
    """For `--set`: the keys each key replaces, from the section schema's either-or rules."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, section in SECTIONS.items():
        for rule in section.either:
            out.setdefault(name, {})[rule.first] = (rule.second,)
            out[name][rule.second] = (rule.first,)
    return out
