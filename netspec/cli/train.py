"""Training and using trained weights (these import torch): run, eval, predict, show."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, data_error, data_options, load_for_run, run_options, spec_options
from netspec.language.diagnostics import UsageError
from netspec.language.files import WriteError


def add(sub: Any) -> None:
    _run_cmds(sub)
    _show_cmd(sub)


def _run_cmds(sub: Any) -> None:
    p = command(sub, "run", "train and evaluate a spec on PyTorch, writing a run directory", cmd_run)
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="a spec file (.net), or a run directory to continue (or copy, with --out)",
    )
    data_options(p)
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<spec>-<timestamp>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out DIR that holds an earlier run")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    for name, help_text, func in (
        ("eval", "evaluate trained weights on the test split", cmd_eval),
        ("predict", "predict classes or values for image or .npy inputs", cmd_predict),
    ):
        q = command(sub, name, help_text, func)
        q.add_argument("file", metavar="FILE", help="a spec file (.net)")
        q.add_argument("--weights", required=True, metavar="FILE", help="a model.safetensors from a run")
        if name == "predict":
            q.add_argument("inputs", nargs="+", metavar="INPUT", help="images, .npy arrays (or batches), .txt texts")
            q.add_argument("--top-k", type=int, default=3, metavar="K", help="classes to list per input (default 3)")
        data_options(q)


def _show_cmd(sub: Any) -> None:
    help_text = "write a grid of training samples with their labels, as training sees them (a table if not images)"
    p = command(sub, "show", help_text, cmd_show)
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    p.add_argument("-o", "--output", metavar="FILE", help="the image to write (default: <spec>-preview.png)")
    p.add_argument("-n", "--count", type=int, default=32, metavar="N", help="how many samples (default 32)")
    spec_options(p, "loading")
    p.add_argument("--data-dir", metavar="DIR", help="data root (default: $NETSPEC_DATA, else ~/.cache/netspec)")
    p.add_argument("--no-download", action="store_true", help="never download missing data files")


def cmd_run(args: argparse.Namespace) -> int:
    _run_target(args)
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError
    from netspec.runtime.lock import fresh_run_dir
    from netspec.runtime.loop import TrainingError, run
    from netspec.runtime.rundir import ResumeError

    out = Path(args.resume or args.out or fresh_run_dir(Path(args.file).stem))
    try:
        summary = run(result.program, run_options(args, out, result.text))
    except DataError as e:
        return data_error(args, result, e)
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
    if "samples" in summary:  # a GAN: what it made, not a test score
        made = f"{out / summary['samples']}" if out else "no run directory"
        print(f"samples: {made} ({took})")
        return
    print(f"test: {test or 'no test split'} ({took}){where}")


def cmd_show(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError("-n must be at least 1")
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime import show
    from netspec.runtime.datasets import DataError

    spec = Path(args.file)
    try:
        samples = show.samples(result.program, args.data_dir, spec.resolve().parent, args.count, not args.no_download)
    except DataError as e:
        return data_error(args, result, e)
    if not show.is_images(samples):
        print(show.table(samples))
        return 0
    output = Path(args.output or f"{spec.stem}-preview.png")
    show.preview(output, samples, spec.name)
    print(f"wrote {len(samples.y)} training samples to {output}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError
    from netspec.runtime.predict import evaluate_weights

    try:
        metrics = evaluate_weights(result.program, run_options(args, None), Path(args.weights))
    except DataError as e:
        return data_error(args, result, e)
    if args.format == "json":
        print(json.dumps({"test": metrics}, indent=2))
    else:
        print("test: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError
    from netspec.runtime.predict import predict, print_predictions

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    try:
        rows = predict(result.program, run_options(args, None), Path(args.weights), args.inputs, args.top_k)
    except DataError as e:
        return data_error(args, result, e)
    print_predictions(rows, args.format)
    return 1 if any("error" in row for row in rows) else 0
