"""`netspec tune`: search a spec's search expressions with Optuna (imports torch and optuna)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, compile_spec, data_error, data_options, parse_size, report
from netspec.language.diagnostics import UsageError

EXAMPLES = (
    "netspec tune specs/addition_tune.net                  # its tune section: trials, metric, pruner\n"
    "  netspec tune specs/addition_tune.net --trials 40 --jobs 2   # two worker processes share the study\n"
    "  netspec tune specs/addition_tune.net --timeout 600          # no new trial after 10 minutes\n"
    "  netspec tune specs/addition_tune.net --storage postgresql://user@db/studies --study lr-search"
    "   # on every machine"
)
STORAGE_HELP = (
    "the study's database (default sqlite:///<out>/study.db); a postgresql:// or mysql:// URL lets workers on "
    "many machines share the study"
)


def add(sub: Any) -> None:
    help_text = "search a spec's search expressions with Optuna; every trial a run directory, the best written back"
    p = command(sub, "tune", help_text, cmd_tune, EXAMPLES)
    p.add_argument("file", metavar="FILE", help="a spec file (.net) with search expressions")
    p.add_argument("--trials", type=int, metavar="N", help="trials of the study in all (default: the tune section's)")
    p.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="worker processes on this machine, sharing the study; each trains one trial at a time on cores/J threads",
    )
    p.add_argument("--storage", metavar="URL", help=STORAGE_HELP)
    p.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: the spec's name)")
    p.add_argument("--out", metavar="DIR", help="where trials and results go (default: runs/<spec>-tune)")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)  # a worker this command started
    data_options(p)


def cmd_tune(args: argparse.Namespace) -> int:
    _check(args)
    result = compile_spec(args, args.file)
    if result.program is None:
        report([result], "text", sys.stderr)
        return 1
    opts = _options(args, result)
    from netspec.runtime.datasets import DataError
    from netspec.runtime.tune import prepare

    storage, study = prepare(opts)
    try:
        return _study(args, opts, storage, study)
    except DataError as e:
        return data_error(args, result, e)


def _check(args: argparse.Namespace) -> None:
    for flag, value in (("--trials", args.trials), ("--jobs", args.jobs), ("--timeout", args.timeout)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be above 0, not {value}")


def _options(args: argparse.Namespace, result: Any) -> Any:
    from netspec.runtime.tune import TuneOptions

    program = result.program
    if not program.search:
        raise UsageError(
            f"{args.file} has no search expression, so there is nothing to tune: write one where a value goes, "
            "e.g. `optimizer adam(lr=loguniform(1e-4, 1e-1))`"
        )
    if program.train is None or program.dataset is None:
        raise UsageError(f"{args.file}: tuning needs a `dataset` and a `train` section")
    return TuneOptions(
        file=Path(args.file), text=result.text, program=program, overrides=list(args.overrides),
        out=Path(args.out or f"runs/{Path(args.file).stem}-tune"), storage=args.storage, study=args.study,
        trials=args.trials, timeout=args.timeout, jobs=args.jobs, worker=args.worker, data_dir=args.data_dir,
        device=args.device, download=not args.no_download, max_memory=parse_size(args.max_memory),
        log=(lambda line: print(line, file=sys.stderr)) if args.format == "json" else print,
    )  # fmt: skip


def _study(args: argparse.Namespace, opts: Any, storage: Any, study: Any) -> int:
    from netspec.runtime.tune import start_workers, stop_workers, wait_workers, work
    from netspec.runtime.tune_report import trial_line

    if not opts.worker:
        opts.log(_heading(opts, study))
    workers = start_workers(opts, _worker_argv(args, opts)) if not opts.worker else []
    prefix = f"[worker {opts.worker}] " if opts.jobs > 1 else ""
    try:
        work(opts, storage, study, lambda t: opts.log(prefix + trial_line(t, opts.settings.metric)))
    except KeyboardInterrupt:
        stop_workers(workers)
        if not opts.worker:
            print(
                f"\ninterrupted: the study is saved in {opts.url}; continue it with: {_again(args, opts)}",
                file=sys.stderr,
            )
        raise
    code = wait_workers(workers)
    return code if opts.worker else _finish(args, opts, study, code)


def _heading(opts: Any, study: Any) -> str:
    from netspec.runtime.tune import counts

    trials, timeout = opts.budget
    budget = " and ".join(x for x in (f"{trials} trials" if trials else "", f"{timeout:g} s" if timeout else "") if x)
    names = ", ".join(p.name for p in opts.program.search)
    s = opts.settings
    pruner = s.pruner.kind if s.pruner is not None else "none"
    done = counts(study)["done"]
    already = f"; {done} done already" if done else ""
    return (
        f"tuning {names} of {opts.file} for {s.metric} ({opts.direction}): {budget}, sampler {s.sampler.kind}, "
        f"pruner {pruner}, {opts.jobs} worker{'s' * (opts.jobs > 1)}; study `{opts.name}` in {opts.url}{already}"
    )


def _worker_argv(args: argparse.Namespace, opts: Any) -> list[str]:
    trials, timeout = opts.budget
    words = [args.file, "--out", str(opts.out), "--storage", opts.url, "--study", opts.name, "--jobs", str(opts.jobs)]
    words += ["--trials", str(trials)] if trials else []
    words += ["--timeout", str(timeout)] if timeout else []
    words += [w for o in args.overrides for w in ("--set", o)]
    words += ["--data-dir", args.data_dir] if args.data_dir else []
    words += ["--device", args.device] if args.device else []
    words += ["--no-download"] if args.no_download else []
    return [*words, "--max-memory", args.max_memory]


def _again(args: argparse.Namespace, opts: Any) -> str:
    import shlex

    words = ["netspec", "tune", args.file, "--out", str(opts.out)]
    words += ["--storage", opts.url] if args.storage else []
    words += ["--study", opts.name] if args.study else []
    return shlex.join(words + [w for o in args.overrides for w in ("--set", o)])


def _finish(args: argparse.Namespace, opts: Any, study: Any, code: int) -> int:
    from netspec.runtime.tune_report import report as study_report

    summary = study_report(opts, study, sys.stderr if args.format == "json" else sys.stdout)
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        for line in summary["plots"]:
            print(f"  {line}")
        print(_best_line(opts, summary))
    return code


def _best_line(opts: Any, summary: dict[str, Any]) -> str:
    best = summary.get("best")
    if best is None:
        return f"no trial completed; the trials are in {opts.out} (tune.csv)"
    return (
        f"best: trial {best['trial']}, {opts.settings.metric} {best['value']:.6g}; its spec: {best['spec']} "
        f"(netspec run {best['spec']} trains it); every trial: {opts.out / 'tune.csv'}"
    )
