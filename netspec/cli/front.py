"""The commands that never import torch, so that editors and CI can call them on every save:
check, summary, fmt, schema, docs, lsp."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from netspec.cli.common import EXAMPLES, command, compile_options, compile_spec, parse_size, report, write_text
from netspec.language.diagnostics import UsageError


def add(sub: Any) -> None:
    _check_cmd(sub)
    _summary_cmd(sub)
    _fmt_cmd(sub)
    command(sub, "schema", "print the JSON Schema of the IR", cmd_schema)
    api = "\n  netspec docs --api --write docs/api.md  # refresh the Python API's page"
    docs = command(sub, "docs", "print or refresh the generated language reference", cmd_docs, EXAMPLES["docs"] + api)
    docs.add_argument("--write", metavar="FILE", help="update the generated part of FILE in place")
    docs.add_argument("--check", metavar="FILE", help="exit 1 if the generated part of FILE is stale")
    docs.add_argument("--api", action="store_true", help="the Python API's reference (docs/api.md), not the language's")
    _lsp_cmd(sub)


def _check_cmd(sub: Any) -> None:
    p = command(sub, "check", "check specs and report every error with its line and column", cmd_check)
    p.add_argument("files", nargs="+", metavar="FILE", help="spec files (.net)")
    compile_options(p)


def _summary_cmd(sub: Any) -> None:
    p = command(sub, "summary", "print each network's layers, output shapes and parameter counts", cmd_summary)
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    compile_options(p)


def _fmt_cmd(sub: Any) -> None:
    p = command(sub, "fmt", "format specs canonically (comments kept)", cmd_fmt)
    p.add_argument("files", nargs="+", metavar="FILE", help="spec files (.net)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not formatted; change nothing")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")


def _lsp_cmd(sub: Any) -> None:
    p = command(sub, "lsp", "run the language server for editors (LSP over stdin/stdout)", cmd_lsp)
    p.add_argument(
        "--max-memory",
        default=os.environ.get("NETSPEC_MAX_MEMORY", "4GiB"),
        metavar="SIZE",
        help="memory estimate above which a spec is an error, as for check (default 4GiB; env NETSPEC_MAX_MEMORY)",
    )
    p.add_argument("--stdio", action="store_true", help="accepted for editor clients; stdio is the only transport")


def cmd_check(args: argparse.Namespace) -> int:
    results = [compile_spec(args, path) for path in args.files]
    report(results, args.format)
    return 0 if all(r.ok for r in results) else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from netspec.api import Spec

    result = compile_spec(args, args.file)
    if result.program is None or result.diagnostics:
        report([result], "text", sys.stderr)
    if result.program is None:
        return 1
    summary = Spec(result, args.effective).summary()  # what `spec.summary()` prints
    print(json.dumps(summary.to_dict(), indent=2) if args.format == "json" else summary.text)
    return 0


def cmd_fmt(args: argparse.Namespace) -> int:
    from netspec.language.diagnostics import render_all, use_color
    from netspec.language.parse import read_source
    from netspec.tools.fmt import format_text

    status = 0
    for path in args.files:
        text, diags = read_source(path)
        formatted, diags = format_text(text or "") if not diags else (None, diags)
        if formatted is None:
            placed = [d.__class__(**{**d.__dict__, "file": path}) for d in diags]
            print(render_all(placed, {path: text or ""}, use_color(sys.stderr)), file=sys.stderr)
            status = 1
        elif args.check and formatted != text:
            print(f"{path}: would be reformatted", file=sys.stderr)
            status = 1
        elif args.write and formatted != text:
            write_text(path, formatted)
        elif not args.check and not args.write:
            sys.stdout.write(formatted)
    return status


def cmd_schema(args: argparse.Namespace) -> int:
    from netspec.ir.nodes import schema

    print(json.dumps(schema(), indent=2))
    return 0


def cmd_lsp(args: argparse.Namespace) -> int:
    from netspec.ir.check import CheckOptions

    options = CheckOptions(max_memory=parse_size(args.max_memory))
    try:
        from netspec.lsp import serve
    except ImportError as e:
        raise UsageError(f"the language server needs pygls 2 ({e}); install it with: pip install 'pygls>=2'") from e
    serve(options)
    return 0


def _reference(api: bool) -> Any:
    """The module that generates a reference: `reference()` and `update(text)`."""
    if api:
        from netspec import api_reference

        return api_reference
    from netspec.tools import docs

    return docs


def cmd_docs(args: argparse.Namespace) -> int:
    from netspec.language.files import read_bounded

    docs = _reference(args.api)
    target = args.write or args.check
    if not target:
        sys.stdout.write(docs.reference())
        return 0
    text = read_bounded(target, 16 * 1024 * 1024).decode("utf-8", "replace")
    try:
        fresh = docs.update(text)
    except ValueError as e:
        raise UsageError(f"{target}: {e}") from e
    if args.check:
        if fresh != text:
            again = f"netspec docs{' --api' if args.api else ''} --write {target}"
            print(f"{target} is stale; run `{again}`", file=sys.stderr)
            return 1
        return 0
    write_text(target, fresh)
    return 0
