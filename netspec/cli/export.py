"""`netspec export`: a trained network as a deployable file (ONNX, TorchScript, ExportedProgram),
checked against PyTorch before it is written; optionally quantized to int8 (these import torch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, data_error, load_for_run, run_options, spec_options
from netspec.language.diagnostics import UsageError
from netspec.registry.exports import EXPORTS, QUANTIZATIONS, format_for

EXAMPLES = (
    "netspec export runs/mnist --format onnx -o lenet.onnx\n"
    "  netspec export specs/mnist.net --weights runs/mnist/model.safetensors --format exported -o lenet.pt2\n"
    "  netspec export runs/mnist --format torchscript --quantize int8 -o lenet-int8.pt   # size, latency, accuracy"
)
HELP = "write a trained network as a deployable model (ONNX, TorchScript, ExportedProgram), checked against PyTorch"


def add(sub: Any) -> None:
    p = command(sub, "export", HELP, cmd_export, EXAMPLES)
    p.add_argument("file", metavar="FILE", help="a run directory, or a spec file (.net) with --weights")
    p.add_argument("--weights", metavar="FILE", help="trained weights (default: the run directory's model.safetensors)")
    formats = ", ".join(f"{n} ({c.suffix})" for n, c in EXPORTS.entries.items())
    default = "default: from -o's suffix, else onnx (torchscript with --quantize)"
    p.add_argument("--format", metavar="FORMAT", help=f"{formats}; {default}")
    p.add_argument("-o", "--output", metavar="FILE", help="the file to write (default: <spec>.<suffix>)")
    p.add_argument("--quantize", metavar="SCHEME", help=f"quantize first: {', '.join(QUANTIZATIONS.names())}")
    p.add_argument("--max-drop", type=float, default=0.5, metavar="POINTS", help="accuracy points int8 may lose (0.5)")
    p.add_argument("--calibration", type=int, default=256, metavar="N", help="training samples that calibrate int8")
    spec_options(p, "exporting")
    p.add_argument("--data-dir", metavar="DIR", help="data root (default: $NETSPEC_DATA, else ~/.cache/netspec)")
    p.add_argument("--no-download", action="store_true", help="never download missing data files")
    p.set_defaults(device="cpu")  # exported files are traced on the CPU, where int8 kernels run


def cmd_export(args: argparse.Namespace) -> int:
    from netspec.runtime import export

    request = _request(args)
    export.check_request(request)  # a missing extra or a format that cannot hold int8: before loading
    weights = _weights(args)
    result = load_for_run(args)
    if result is None:
        return 1
    try:
        report = _export(args, result, weights, request)
    except export.ExportError as e:
        _located(args, result, e)
        return 1
    except export.Mismatch as e:
        print(f"netspec: error: {e}", file=sys.stderr)
        return 1
    except _data_errors() as e:
        return data_error(args, result, e)
    _print(report)
    return 0


def _export(args: argparse.Namespace, result: Any, weights: Path, request: Any) -> Any:
    from netspec.runtime import export, trained

    spec = None if Path(args.file).is_dir() else Path(args.file)
    model = trained.load(result.program, run_options(args, None), weights, data=True, spec=spec)
    return export.export(model, request)


def _data_errors() -> type[Exception]:
    from netspec.runtime.datasets import DataError

    return DataError


def _request(args: argparse.Namespace) -> Any:
    from netspec.runtime.export import Request, format_class

    suffix = Path(args.output).suffix if args.output else ""
    by_suffix = format_for(suffix) if suffix else None
    fmt = format_class(args.format) if args.format else (by_suffix or _default(args.quantize))
    if args.output and by_suffix is not None and by_suffix is not fmt:
        raise UsageError(f"-o {args.output} names a {by_suffix.kind_name()} file, but --format is {fmt.kind_name()}")
    if not args.max_drop >= 0:
        raise UsageError(f"--max-drop must be 0 or more accuracy points, not {args.max_drop}")
    if args.calibration < 1:
        raise UsageError(f"--calibration must be at least 1, not {args.calibration}")
    return Request(fmt.kind_name(), _output(args, fmt), args.quantize, args.max_drop, args.calibration)


def _default(quantize: str | None) -> Any:
    """onnx; quantized, the first format that can hold an int8 model."""
    holders = [c for c in EXPORTS.entries.values() if c.quantized is None]
    return holders[0] if quantize and holders else EXPORTS.entries["onnx"]


def _output(args: argparse.Namespace, fmt: Any) -> Path:
    if args.output:
        return Path(args.output)
    stem = Path(args.file).resolve().name if Path(args.file).is_dir() else Path(args.file).stem
    return Path(stem + (f"-{args.quantize}" if args.quantize else "") + fmt.suffix)


def _weights(args: argparse.Namespace) -> Path:
    if args.weights:
        return Path(args.weights)
    if Path(args.file).is_dir():
        return Path(args.file) / "model.safetensors"
    raise UsageError("exporting a spec file needs --weights (a run's model.safetensors), or give the run directory")


def _located(args: argparse.Namespace, result: Any, error: Any) -> None:
    import dataclasses

    from netspec.language.diagnostics import make, render, use_color

    d = dataclasses.replace(make("NS091", error.message, error.span, error.hint), file=result.file)
    print(render(d, result.text, use_color(sys.stderr)), file=sys.stderr)


def _print(report: Any) -> None:
    print(f"wrote {report.output} ({report.format}, {report.size / 1e6:.3f} MB) in {report.seconds:.1f} s")
    if report.note:
        print(f"note: {report.note}")
    print(report.check.describe())
    for line in report.figures.lines() if report.figures else []:
        print(line)
