"""The ``netspec`` command line. Exit codes: 0 fine, 1 spec errors, 2 usage or I/O problems.

``check``, ``summary``, ``fmt``, ``schema`` and ``docs`` never import torch, so that
editors and CI can call them on every save.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from netspec import __version__
from netspec.language.diagnostics import UsageError
from netspec.language.files import WriteError, write_atomic

EXAMPLES = {
    "check": "netspec check specs/mnist.net\n  netspec check specs/*.net --format json\n"
    "  netspec check specs/mnist.net --set train.epochs=2 --set dataset.batch=128",
    "summary": "netspec summary specs/mnist.net\n  netspec summary specs/cifar10.net --format json",
    "fmt": "netspec fmt specs/mnist.net            # print the formatted file\n"
    "  netspec fmt --write specs/*.net        # rewrite in place\n"
    "  netspec fmt --check specs/*.net        # exit 1 if any file would change (for CI)",
    "schema": "netspec schema > netspec-ir.schema.json",
    "run": "netspec run specs/mnist.net\n  netspec run specs/mnist.net --set train.epochs=1 --out runs/quick\n"
    "  netspec run runs/quick --set train.epochs=3   # continue a run: its spec and --set are recorded",
    "eval": "netspec eval specs/mnist.net --weights runs/quick/model.safetensors",
    "predict": "netspec predict specs/mnist.net --weights runs/quick/model.safetensors digit.png more.npy",
    "emit": "netspec emit specs/mnist.net --target pytorch -o mnist.py && python mnist.py --epochs 1\n"
    "  netspec emit specs/resnet_cifar.net -o resnet.py --set train.epochs=30",
    "docs": "netspec docs                            # print the generated reference\n"
    "  netspec docs --write docs/language.md   # refresh its generated part",
    "show": "netspec show specs/mnist.net                 # writes mnist-preview.png\n"
    "  netspec show specs/cifar10.net -o cifar.png -n 16\n"
    "  netspec show specs/addition.net               # not images: a table of samples",
    "lsp": "netspec lsp                             # editors start it and speak LSP on stdin/stdout\n"
    "  NETSPEC_LSP_DEBUG=1 netspec lsp 2> lsp.log   # with a debug log (see docs/editors.md)",
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt as e:  # Ctrl-C (130) or SIGTERM (143), whenever it comes: no traceback
        return 128 + int(getattr(e, "signum", 2))


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    words, commands = list(sys.argv[1:] if argv is None else argv), _commands(parser)
    if words and not words[0].startswith("-") and words[0] not in commands:  # `netspec chek`: a typo
        from netspec.language.suggest import did_you_mean

        parser.error(f"unknown command `{words[0]}`; {did_you_mean(words[0], commands) or 'see --help'}")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"netspec: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `netspec schema | head -1`: the reader has gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except WriteError as e:
        print(f"netspec: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"netspec: error: cannot read {e.filename}: {e.strerror}" if e.filename else f"netspec: error: {e}",
            file=sys.stderr,
        )
        return 2
    except Exception as e:  # a bug in netspec: say so briefly, no traceback for users
        if os.environ.get("NETSPEC_DEBUG"):
            raise
        print(
            f"netspec: internal error: {type(e).__name__}: {e}\n"
            "Please report it with the spec that caused it (set NETSPEC_DEBUG=1 for a traceback).",
            file=sys.stderr,
        )
        return 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netspec",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="netspec: a declarative model-spec compiler for deep learning.",
        epilog="examples:\n  netspec check specs/mnist.net\n  netspec summary specs/mnist.net\n\n"
        "Run `netspec COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"netspec {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _check_cmd(sub)
    _summary_cmd(sub)
    _fmt_cmd(sub)
    _run_cmds(sub)
    _emit_cmd(sub)
    _show_cmd(sub)
    _command(sub, "schema", "print the JSON Schema of the IR", cmd_schema)
    docs = _command(sub, "docs", "print or refresh the generated language reference", cmd_docs)
    docs.add_argument("--write", metavar="FILE", help="update the generated part of FILE in place")
    docs.add_argument("--check", metavar="FILE", help="exit 1 if the generated part of FILE is stale")
    _lsp_cmd(sub)
    return parser


def _lsp_cmd(sub: Any) -> None:
    p = _command(sub, "lsp", "run the language server for editors (LSP over stdin/stdout)", cmd_lsp)
    p.add_argument(
        "--max-memory",
        default=os.environ.get("NETSPEC_MAX_MEMORY", "4GiB"),
        metavar="SIZE",
        help="memory estimate above which a spec is an error, as for check (default 4GiB; env NETSPEC_MAX_MEMORY)",
    )
    p.add_argument("--stdio", action="store_true", help="accepted for editor clients; stdio is the only transport")


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]


def _command(sub: Any, name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog="examples:\n  " + EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def _spec_options(p: Any, before: str, memory_help: str = argparse.SUPPRESS) -> None:
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


def _compile_options(p: Any) -> None:
    memory = "memory estimate above which a spec is an error (default 4GiB; env NETSPEC_MAX_MEMORY)"
    _spec_options(p, "checking", memory)
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def _check_cmd(sub: Any) -> None:
    p = _command(sub, "check", "check specs and report every error with its line and column", cmd_check)
    p.add_argument("files", nargs="+", metavar="FILE", help="spec files (.net)")
    _compile_options(p)


def _summary_cmd(sub: Any) -> None:
    p = _command(sub, "summary", "print each network's layers, output shapes and parameter counts", cmd_summary)
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    _compile_options(p)


def _fmt_cmd(sub: Any) -> None:
    p = _command(sub, "fmt", "format specs canonically (comments kept)", cmd_fmt)
    p.add_argument("files", nargs="+", metavar="FILE", help="spec files (.net)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not formatted; change nothing")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")


def _run_cmds(sub: Any) -> None:
    p = _command(sub, "run", "train and evaluate a spec on PyTorch, writing a run directory", cmd_run)
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="a spec file (.net), or a run directory to continue (or copy, with --out)",
    )
    _data_options(p)
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<spec>-<timestamp>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out DIR that holds an earlier run")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    for name, help_text, func in (
        ("eval", "evaluate trained weights on the test split", cmd_eval),
        ("predict", "predict classes or values for image or .npy inputs", cmd_predict),
    ):
        q = _command(sub, name, help_text, func)
        q.add_argument("file", metavar="FILE", help="a spec file (.net)")
        q.add_argument("--weights", required=True, metavar="FILE", help="a model.safetensors from a run")
        if name == "predict":
            q.add_argument("inputs", nargs="+", metavar="INPUT", help="images, .npy arrays (or batches), .txt texts")
            q.add_argument("--top-k", type=int, default=3, metavar="K", help="classes to list per input (default 3)")
        _data_options(q)


def _emit_cmd(sub: Any) -> None:
    p = _command(sub, "emit", "write a standalone training script for a spec (PyTorch)", cmd_emit)
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    p.add_argument("--target", choices=("pytorch",), default="pytorch", help="what to write (default: pytorch)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the script to FILE (default: standard output)")
    _spec_options(p, "emitting")


def _show_cmd(sub: Any) -> None:
    help_text = "write a grid of training samples with their labels, as training sees them (a table if not images)"
    p = _command(sub, "show", help_text, cmd_show)
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    p.add_argument("-o", "--output", metavar="FILE", help="the image to write (default: <spec>-preview.png)")
    p.add_argument("-n", "--count", type=int, default=32, metavar="N", help="how many samples (default 32)")
    _spec_options(p, "loading")
    p.add_argument("--data-dir", metavar="DIR", help="data root (default: $NETSPEC_DATA, else ~/.cache/netspec)")
    p.add_argument("--no-download", action="store_true", help="never download missing data files")


def _data_options(p: Any) -> None:
    _spec_options(p, "running")
    p.add_argument("--data-dir", metavar="DIR", help="data root (default: $NETSPEC_DATA, else ~/.cache/netspec)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="override train.device")
    p.add_argument("--no-download", action="store_true", help="never download missing data files")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format of the result")


# --- commands -------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*", text, re.I)
    if not m:
        raise UsageError(f"invalid size {text[:40]!r}; use e.g. 8GiB or 512MiB")
    if len(m.group(1)) > 24:  # float() of a 400-digit number overflows; no machine has 10**24 bytes
        raise UsageError(f"size too large: {text[:40]!r}; use e.g. 8GiB or 512MiB")
    unit = (m.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(unit or " "))


def _compile(args: argparse.Namespace, path: str) -> Any:
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


def _report(results: list[Any], fmt: str, stream: Any = None) -> None:
    from netspec.language.diagnostics import render_all, to_json, use_color

    stream = stream or sys.stdout
    diags = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        print(to_json(diags), file=stream)
    elif diags:
        sources = {r.file: r.text for r in results}
        print(render_all(diags, sources, use_color(stream)), file=stream)


def cmd_check(args: argparse.Namespace) -> int:
    results = [_compile(args, path) for path in args.files]
    _report(results, args.format)
    return 0 if all(r.ok for r in results) else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from netspec.tools import summary

    result = _compile(args, args.file)
    if result.program is None or result.diagnostics:
        _report([result], "text", sys.stderr)
    if result.program is None:
        return 1
    print(summary.dumps(result.program) if args.format == "json" else summary.summary_text(result.program))
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
            _write_atomic(path, formatted)
        elif not args.check and not args.write:
            sys.stdout.write(formatted)
    return status


def _write_atomic(path: str, text: str) -> None:
    write_atomic(path, text)  # language/files.py: a failure is a WriteError that names the file


def cmd_emit(args: argparse.Namespace) -> int:
    result = _load_for_run(args)
    if result is None:
        return 1
    from netspec.emit import EmitError, emit

    output = Path(args.output) if args.output else None
    try:
        script = emit(result.program, args.target, Path(args.file).stem, output.name if output else None)
    except EmitError as e:
        print(f"{args.file}: error: {e}", file=sys.stderr)
        return 1
    if output is None:
        sys.stdout.write(script)
    else:
        _write_atomic(str(output), script)
    return 0


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


def cmd_docs(args: argparse.Namespace) -> int:
    from netspec.language.files import read_bounded
    from netspec.tools import docs

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
            print(f"{target} is stale; run `netspec docs --write {target}`", file=sys.stderr)
            return 1
        return 0
    _write_atomic(target, fresh)
    return 0


# --- running (these import torch) -------------------------------------------------------


def _load_for_run(args: argparse.Namespace) -> Any:
    result = _compile(args, args.file)
    if result.program is None:
        _report([result], "text", sys.stderr)
        return None
    if result.program.train is None or result.program.dataset is None:
        print(f"{args.file}: error: running needs a `dataset` and a `train` section", file=sys.stderr)
        return None
    return result


def _run_options(args: argparse.Namespace, out: Path | None, source: str | None = None) -> Any:
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


def _data_error(args: argparse.Namespace, result: Any, error: Any) -> int:
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


def cmd_run(args: argparse.Namespace) -> int:
    from netspec.runtime.interrupts import terminating

    with terminating():  # SIGTERM while starting up stops as Ctrl-C does (exit 143)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    _run_target(args)
    result = _load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError
    from netspec.runtime.lock import fresh_run_dir
    from netspec.runtime.loop import TrainingError, run
    from netspec.runtime.rundir import ResumeError

    out = Path(args.resume or args.out or fresh_run_dir(Path(args.file).stem))
    try:
        summary = run(result.program, _run_options(args, out, result.text))
    except DataError as e:
        return _data_error(args, result, e)
    except ResumeError as e:
        print(f"netspec: cannot resume: {e}; start a new run with --out", file=sys.stderr)
        return 1
    except TrainingError as e:
        return _training_stopped(e, out)
    except WriteError as e:
        return _write_failed(args, e, out)
    except KeyboardInterrupt as e:
        return _interrupted(args, out, int(getattr(e, "signum", 2)))
    _print_result(summary, out, args.format)
    return 0


def _run_target(args: argparse.Namespace) -> None:
    """`netspec run RUN_DIR` continues that run; `--resume DIR` alone needs no spec file."""
    from netspec.runtime.record import run_dir_of

    if args.file is None and not args.resume:
        raise UsageError("run needs a spec file, a run directory, or --resume DIR")
    args.file = args.file or args.resume
    if Path(args.file).is_dir() and run_dir_of(args.file) is None:
        raise UsageError(f"{args.file} holds no checkpoint to resume (no spec.net: its run stopped while starting)")
    folder = run_dir_of(args.file)
    if folder is not None and not args.out and not args.resume:
        args.resume = str(folder)


def _write_failed(args: argparse.Namespace, error: WriteError, out: Path) -> int:
    from netspec.runtime.checkpoint import saved_position

    saved = f"; {saved_position(out)}, continue with: {_resume_command(args, out)}" if _has_checkpoint(out) else ""
    print(f"netspec: error: {error}{saved}", file=sys.stderr)
    return 2


def _training_stopped(error: Exception, out: Path) -> int:
    saved = (
        f"the last good checkpoint is in {out}"
        if _has_checkpoint(out)
        else "no epoch had completed, so nothing was saved"
    )
    print(f"netspec: training stopped: {error}; {saved}", file=sys.stderr)
    return 1


def _interrupted(args: argparse.Namespace, out: Path, signum: int) -> int:
    """Ctrl-C or SIGTERM: what was saved, and the command that continues exactly."""
    from netspec.runtime.checkpoint import saved_position

    what = "interrupted" if signum == 2 else "terminated"
    if not _has_checkpoint(out):
        print(f"\n{what} before the first training step completed: nothing was saved", file=sys.stderr)
        return 128 + signum
    print(f"\n{what}: {saved_position(out)}\ncontinue with: {_resume_command(args, out)}", file=sys.stderr)
    return 128 + signum


def _has_checkpoint(out: Path) -> bool:
    return (out / "state.json").is_file()


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    """The command that continues this run: the same overrides and data, with --resume."""
    import shlex

    same = Path(args.file).resolve() == out.resolve()  # `netspec run RUN_DIR`: it records its overrides
    words = ["netspec", "run", args.file]
    words += [] if same else [w for o in getattr(args, "effective", args.overrides) for w in ("--set", o)]
    words += ["--data-dir", args.data_dir] if args.data_dir else []
    words += ["--device", args.device] if args.device else []
    return shlex.join(words if same else [*words, "--resume", str(out)])


def _print_result(summary: dict[str, Any], out: Path | None, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(summary, indent=2))
        return
    from netspec.runtime.console import number, plural

    test = ", ".join(f"{k} {number(k, v)}" for k, v in summary["test"].items())
    where = f" -> {out}" if out else ""
    took = f"{plural(summary['epochs'], 'epoch')}, {number('seconds', summary['wall_seconds'])}"
    print(f"test: {test or 'no test split'} ({took}){where}")


def cmd_show(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError("-n must be at least 1")
    result = _load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime import show
    from netspec.runtime.datasets import DataError

    spec = Path(args.file)
    try:
        samples = show.samples(result.program, args.data_dir, spec.resolve().parent, args.count, not args.no_download)
    except DataError as e:
        return _data_error(args, result, e)
    if not show.is_images(samples):
        print(show.table(samples))
        return 0
    output = Path(args.output or f"{spec.stem}-preview.png")
    show.preview(output, samples, spec.name)
    print(f"wrote {len(samples.y)} training samples to {output}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    result = _load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError
    from netspec.runtime.predict import evaluate_weights

    try:
        metrics = evaluate_weights(result.program, _run_options(args, None), Path(args.weights))
    except DataError as e:
        return _data_error(args, result, e)
    if args.format == "json":
        print(json.dumps({"test": metrics}, indent=2))
    else:
        print("test: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    result = _load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError
    from netspec.runtime.predict import predict, print_predictions

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    try:
        rows = predict(result.program, _run_options(args, None), Path(args.weights), args.inputs, args.top_k)
    except DataError as e:
        return _data_error(args, result, e)
    print_predictions(rows, args.format)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
