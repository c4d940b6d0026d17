"""Training and using trained weights (these import torch): run, eval, predict, show."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, data_error, data_options, load_for_run, log_option, run_options, spec_options
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
    log_option(p)
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train data-parallel in N processes on this machine, through torchrun (gloo on CPU, NCCL on CUDA)",
    )
    p.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="data-parallel: BatchNorm statistics over the whole batch, not each process's part (CUDA)",
    )
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
    if args.nproc < 1:
        raise UsageError(f"--nproc must be at least 1, not {args.nproc}")
    if not _other_rank():
        return _train(args)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        try:  # rank 0 says it: every process of a data-parallel run meets the same errors
            return _train(args)
        except UsageError:
            return 2


def _other_rank() -> bool:
    """A process of a data-parallel run other than rank 0 (torchrun's environment), which is silent."""
    other = "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0"
    return other and not os.environ.get("NETSPEC_DEBUG")  # with it, every process prints


def _train(args: argparse.Namespace) -> int:
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.lock import fresh_run_dir

    out = Path(args.resume or args.out or fresh_run_dir(Path(args.file).stem))
    if args.nproc > 1:
        return _launch(args, result.program, out)
    from netspec.api import Spec
    from netspec.language.diagnostics import SpecError, render_all, use_color
    from netspec.runtime.datasets import DataError
    from netspec.runtime.distributed import PeerError
    from netspec.runtime.loop import TrainingError
    from netspec.runtime.rundir import ResumeError

    options = run_options(args, out, result.text)
    options.sync_batchnorm = args.sync_batchnorm
    try:  # the API's `spec.run`, with the options of the command line
        summary = Spec(result, options.overrides, options.spec_dir, options.spec_name).run(options=options).summary
    except SpecError as e:  # data that does not fit the spec, pointed at its source
        print(render_all(e.diagnostics, e.sources, use_color(sys.stderr)), file=sys.stderr)
        return 1
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
    except PeerError as e:
        return _peer_failed(args, e, out)
    _print_result(summary, out, args.format)
    return 0


def _launch(args: argparse.Namespace, program: Any, out: Path) -> int:
    """`--nproc N`: the same run in N processes started by torchrun's launcher."""
    from netspec.runtime import distributed

    if distributed.world().size > 1:
        raise UsageError("--nproc in a process that torchrun started: torchrun already started the processes")
    if len(program.train.task.networks) != 1:  # type: ignore[union-attr]
        raise UsageError("--nproc: data-parallel training trains one network; a GAN trains in one process")
    words = [args.file, *(w for o in args.overrides for w in ("--set", o))]
    words += ["--resume", str(out)] if args.resume else ["--out", str(out)]
    words += ["--max-memory", args.max_memory, "--format", args.format]
    words += [w for flag in ("data_dir", "device") if getattr(args, flag) for w in (_flag(flag), getattr(args, flag))]
    words += [_flag(f) for f in ("overwrite", "quiet", "no_download", "sync_batchnorm") if getattr(args, f)]
    return distributed.launch(args.nproc, words)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _peer_failed(args: argparse.Namespace, error: Exception, out: Path) -> int:
    """Another process of a data-parallel run died: this one stops too, and says what was saved."""
    from netspec.runtime.checkpoint import saved_position

    saved = f"{saved_position(out)}; continue with: {_resume_command(args, out)}" if _has_checkpoint(out) else (
        "no epoch had completed, so nothing was saved"
    )  # fmt: skip
    print(f"netspec: training stopped: {error}; {saved}", file=sys.stderr)
    return 1


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
    nproc = int(os.environ.get("WORLD_SIZE", "1"))  # a data-parallel run continues in as many processes
    words += ["--nproc", str(nproc)] if nproc > 1 else []
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
