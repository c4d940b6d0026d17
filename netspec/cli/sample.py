"""`netspec sample`: text from a trained language model, images from a trained GAN (these import torch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, data_error, data_options, load_for_run, run_options
from netspec.language.diagnostics import UsageError

EXAMPLES = (
    "netspec sample runs/shakespeare_gpt --prompt 'ROMEO:' --length 300 --temperature 0.8 --top-k 20\n"
    "  netspec sample runs/gan -n 64 -o digits.png       # a GAN: a grid of generated images\n"
    "  netspec sample specs/gan.net --weights runs/gan/generator.safetensors -n 1000 -o digits.npy\n"
    "  netspec sample runs/cgan --label 7 -n 16 -o sevens.png  # a conditional GAN: the class to draw"
)


def add(sub: Any) -> None:
    help_text = "continue a prompt with a trained language model, or draw images from a trained GAN"
    p = command(sub, "sample", help_text, cmd_sample, EXAMPLES)
    p.add_argument("file", metavar="FILE", help="a run directory, or a spec file (.net) with --weights")
    p.add_argument("--weights", metavar="FILE", help="trained weights (default: the run directory's model.safetensors)")
    p.add_argument("--prompt", help="text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=500, metavar="N", help="characters to generate (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="below 1: safer; above: wilder")
    p.add_argument("--top-k", type=int, metavar="K", help="sample only among the K likeliest characters")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument("-n", "--count", type=int, default=64, metavar="N", help="images to draw (default 64)")
    p.add_argument("--label", type=int, metavar="K", help="a conditional GAN's class to draw (default: each in turn)")
    p.add_argument("-o", "--output", metavar="FILE", help="a .png grid or a .npy array (default: <spec>-samples.png)")
    data_options(p)


def cmd_sample(args: argparse.Namespace) -> int:
    _check(args)
    weights = _weights(args)
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime import sample
    from netspec.runtime.datasets import DataError

    request = sample.Request(args.prompt, args.length, args.temperature, args.top_k, args.seed, args.count, args.label)
    options = run_options(args, None)
    try:
        if sample.kind(result.program) == "images":
            return _images(args, result.program, options, weights, request)
        sample.text(result.program, options, weights, request, _writer())
    except DataError as e:
        return data_error(args, result, e)
    print()
    return 0


def _check(args: argparse.Namespace) -> None:
    for name, value, low in (("--length", args.length, 1), ("-n", args.count, 1), ("--top-k", args.top_k, 1)):
        if value is not None and value < low:
            raise UsageError(f"{name} must be at least {low}, not {value}")
    if args.label is not None and args.label < 0:
        raise UsageError(f"--label must be a class number, 0 or more, not {args.label}")
    if not args.temperature > 0:
        raise UsageError(f"--temperature must be above 0, not {args.temperature}")


def _weights(args: argparse.Namespace) -> Path:
    if args.weights:
        return Path(args.weights)
    if Path(args.file).is_dir():
        return Path(args.file) / "model.safetensors"
    raise UsageError("sampling a spec file needs --weights (a run's model.safetensors), or give the run directory")


def _images(args: argparse.Namespace, program: Any, options: Any, weights: Path, request: Any) -> int:
    from netspec.runtime import sample

    classes = sample.conditional_classes(program, request)
    batch = sample.images(program, options, weights, request)
    stem = Path(args.file).resolve().name if Path(args.file).is_dir() else Path(args.file).stem
    output = Path(args.output or f"{stem}-samples.png")
    which = f" of class {request.label}" if request.label is not None else ""
    columns = classes if classes and request.label is None else 8  # a column per class
    sample.save_images(output, batch, f"{len(batch)} samples{which} of {stem}", columns)
    print(f"wrote {len(batch)} samples {list(batch.shape[1:])} to {output}")
    return 0


def _writer() -> Any:
    """Each character as it comes on a terminal (flushed); buffered otherwise (a pipe, a file)."""
    if sys.stdout.isatty():
        return lambda text: (sys.stdout.write(text), sys.stdout.flush())
    return sys.stdout.write
