"""The ``netspec`` command line. Exit codes: 0 fine, 1 spec errors, 2 usage or I/O problems,
128 + the signal's number when stopped by Ctrl-C (130) or SIGTERM (143).

One module per group of commands: ``front`` (check, summary, fmt, schema, docs, lsp: these never
import torch, so that editors and CI can call them on every save), ``train`` (run, eval, predict,
show), ``sample`` and ``emit``; ``common`` holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from netspec import __version__
from netspec.cli import compare, emit, export, front, graph, sample, serve, train, tune
from netspec.language.diagnostics import UsageError
from netspec.language.files import WriteError

GROUPS = (front, train, sample, emit, export, serve, tune, graph, compare)


def main(argv: Sequence[str] | None = None) -> int:
    from netspec.runtime import interrupts  # torch-free

    with interrupts.watching():
        try:
            return _main(argv)
        except KeyboardInterrupt as e:  # Ctrl-C (130) or SIGTERM (143), whenever it comes: no traceback
            return 128 + int(getattr(e, "signum", 2))
        except Exception:  # a signal that a library turned into an error of its own
            if interrupts.received:
                return 128 + interrupts.received[-1]
            raise


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
        if os.environ.get("NETSPEC_DEBUG") or _signalled():
            raise
        print(
            f"netspec: internal error: {type(e).__name__}: {e}\n"
            "Please report it with the spec that caused it (set NETSPEC_DEBUG=1 for a traceback).",
            file=sys.stderr,
        )
        return 3


def _signalled() -> bool:
    from netspec.runtime.interrupts import received

    return bool(received)


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
    for group in GROUPS:
        group.add(sub)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]
