"""What the commands share: the parser's pieces, compiling a spec, reporting its diagnostics,
loading it for a run, and the run options."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from netspec.language.diagnostics import UsageError
from netspec.language.files import write_atomic

EXAMPLES = {
    "check": "netspec check specs/mnist.net\n  netspec check specs/*.net --format json\n"
    "  netspec check specs/mnist.net --set train.epochs=2 --set dataset.batch=128",
    "summary": "netspec summary specs/mnist.net\n  netspec summary specs/cifar10.net --format json",
    "fmt": "netspec fmt specs/mnist.net            # print the formatted file\n"
    "  netspec fmt --write specs/*.net        # rewrite in place\n"
    "  netspec fmt --check specs/*.net        # exit 1 if any file would change (for CI)",
    "schema": "netspec schema > netspec-ir.schema.json",
    "run": "netspec run specs/mnist.net\n  netspec run specs/mnist.net --set train.epochs=1 --out runs/quick\n"
    "  netspec run runs/quick --set train.epochs=3   # continue a run: its spec and --set are recorded\n"
    "  netspec run specs/mnist.net --nproc 2         # data-parallel, 2 processes (docs/distributed.md)",
    "eval": "netspec eval specs/mnist.net --weights runs/quick/model.safetensors",
    "predict": "netspec predict specs/mnist.net --weights runs/quick/model.safetensors digit.png more.npy",
    "emit": "netspec emit specs/mnist.net --target pytorch -o mnist.py && python mnist.py --epochs 1\n"
    "  netspec emit specs/resnet_cifar.net -o resnet.py --set train.epochs=30\n"
    "  netspec emit specs/mnist.net --distributed -o mnist.py && torchrun --nproc-per-node 2 mnist.py",
    "docs": "netspec docs                            # print the generated reference\n"
    "  netspec docs --write docs/language.md   # refresh its generated part",
    "show": "netspec show specs/mnist.net                 # writes mnist-preview.png\n"
    "  netspec show specs/cifar10.net -o cifar.png -n 16\n"
    "  netspec show specs/addition.net               # not images: a table of samples",
    "lsp": "netspec lsp                             # editors start it and speak LSP on stdin/stdout\n"
    "  NETSPEC_LSP_DEBUG=1 netspec lsp 2> lsp.log   # with a debug log (see docs/editors.md)",
}


def command(sub: Any, name: str, help_text: str, func: Callable[[argparse.Namespace], int], examples: str = "") -> Any:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog="examples:\n  " + (examples or EXAMPLES[name]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def spec_options(p: Any, before: str, memory_help: str = argparse.SUPPRESS) -> None:
    """--set and --max-memory: what every command that compiles a spec accepts."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a value before {before}: train.epochs=2, dataset.batch=128, or a constant",
    )
    p.add_argument(
        "--max-memory", default=os.environ.get("NETSPEC_MAX_MEMORY", "4GiB"), metavar="SIZE", help=memory_help
    )


def compile_options(p: Any) -> None:
    memory = "memory estimate above which a spec is an error (default 4GiB; env NETSPEC_MAX_MEMORY)"
    spec_options(p, "checking", memory)
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def data_options(p: Any) -> None:
    spec_options(p, "running")
    p.add_argument("--data-dir", metavar="DIR", help="data root (default: $NETSPEC_DATA, else ~/.cache/netspec)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="override train.device")
    p.add_argument("--no-download", action="store_true", help="never download missing data files")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format of the result")


def log_option(p: Any) -> None:
    """--log: the run's loggers, as `--set train.log=...` (recorded with the run, so a resumed run keeps them)."""
    p.add_argument(
        "--log",
        metavar="NAMES",
        help="log the run to these loggers, in place of the spec's `log`: tensorboard, mlflow, csv "
        "(csv alone: none but the run directory's files; docs/tracking.md)",
    )


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*", text, re.I)
    if not m:
        raise UsageError(f"invalid size {text[:40]!r}; use e.g. 8GiB or 512MiB")
    if len(m.group(1)) > 24:  # float() of a 400-digit number overflows; no machine has 10**24 bytes
        raise UsageError(f"size too large: {text[:40]!r}; use e.g. 8GiB or 512MiB")
    unit = (m.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(unit or " "))


def compile_spec(args: argparse.Namespace, path: str) -> Any:
    from netspec.ir.check import CheckOptions
    from netspec.ir.pipeline import compile_file

    path, args.effective = _recorded(args, path)
    return compile_file(path, args.effective, CheckOptions(max_memory=parse_size(args.max_memory)))


def _recorded(args: argparse.Namespace, path: str) -> tuple[str, list[str]]:
    """A run directory (or its spec.json) stands for its recorded spec.net and overrides; resuming,
    the recorded overrides come before the new ones (runtime/record.py)."""
    from netspec.runtime.record import recorded, run_dir_of

    folder = run_dir_of(path) or (run_dir_of(args.resume) if getattr(args, "resume", None) else None)
    if folder is None:
        return path, args.overrides
    spec, overrides, args.spec_dir = recorded(folder)
    return (spec if run_dir_of(path) else path), overrides + args.overrides


def report(results: list[Any], fmt: str, stream: Any = None) -> None:
    from netspec.language.diagnostics import render_all, to_json, use_color

    stream = stream or sys.stdout
    diags = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        print(to_json(diags), file=stream)
    elif diags:
        sources = {r.file: r.text for r in results}
        print(render_all(diags, sources, use_color(stream)), file=stream)


def write_text(path: str, text: str) -> None:
    write_atomic(path, text)  # language/files.py: a failure is a WriteError that names the file


def load_for_run(args: argparse.Namespace) -> Any:
    if getattr(args, "log", None):
        args.overrides.append(f"train.log={args.log}")
        args.log = None  # once: a data-parallel launch passes it on as the override
    result = compile_spec(args, args.file)
    if result.program is None:
        report([result], "text", sys.stderr)
        return None
    if result.program.train is None or result.program.dataset is None:
        print(f"{args.file}: error: running needs a `dataset` and a `train` section", file=sys.stderr)
        return None
    if result.program.search:
        from netspec.ir.search import defaults_note

        print(f"{args.file}: note: {defaults_note(result.program)}", file=sys.stderr)
    return result


def run_options(args: argparse.Namespace, out: Path | None, source: str | None = None) -> Any:
    from netspec.runtime.loop import RunOptions

    return RunOptions(
        out=out,
        data_dir=args.data_dir,
        device=args.device,
        quiet=getattr(args, "quiet", False),
        resume=Path(args.resume) if getattr(args, "resume", None) else None,
        download=not args.no_download,
        spec_dir=getattr(args, "spec_dir", None) or Path(args.file).resolve().parent,
        spec_name=Path(args.file).stem,
        # with --format json, stdout carries only the result; the per-epoch lines go to stderr
        log=(lambda line: print(line, file=sys.stderr)) if args.format == "json" else print,
        overwrite=getattr(args, "overwrite", False),
        source=source,
        overrides=list(getattr(args, "effective", args.overrides)),
    )


def data_error(args: argparse.Namespace, result: Any, error: Any) -> int:
    from netspec.language.diagnostics import Diagnostic, render, use_color

    if getattr(error, "exit_code", 1) == 2:  # a file or data that does not fit: the message names it
        print(f"netspec: error: {error}", file=sys.stderr)
        return 2
    span = result.program.dataset.source.span
    d = Diagnostic(
        "NS090", error.message, span.line, span.column, span.end_line, span.end_column, hint=error.hint, file=args.file
    )
    print(render(d, result.text, use_color(sys.stderr)), file=sys.stderr)
    return 1
