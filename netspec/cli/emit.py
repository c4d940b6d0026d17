"""`netspec emit`: a standalone training script for a spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, load_for_run, spec_options, write_text


def add(sub: Any) -> None:
    p = command(sub, "emit", "write a standalone training script for a spec (PyTorch)", cmd_emit)
    p.description += " emit writes training code; export writes deployable models: see `netspec export`."
    p.add_argument("file", metavar="FILE", help="a spec file (.net)")
    p.add_argument("--target", choices=("pytorch",), default="pytorch", help="what to write (default: pytorch)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the script to FILE (default: standard output)")
    p.add_argument(
        "--distributed", action="store_true", help="a script that also trains data-parallel when torchrun starts it"
    )
    spec_options(p, "emitting")


def cmd_emit(args: argparse.Namespace) -> int:
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.api import Spec
    from netspec.emit import EmitError

    output = Path(args.output) if args.output else None
    spec = Spec(result, args.effective, name=Path(args.file).stem)
    try:
        script = spec.emit(args.target, script_name=output.name if output else None, distributed=args.distributed)
    except EmitError as e:
        print(f"{args.file}: error: {e}", file=sys.stderr)
        return 1
    if output is None:
        sys.stdout.write(script)
    else:
        write_text(str(output), script)
    return 0
