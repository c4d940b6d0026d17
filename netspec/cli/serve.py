"""`netspec serve`: a trained network as an HTTP service with a web page (FastAPI on uvicorn, imported
only here: they are optional, `pip install "netspec[serve]"`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from netspec.cli.common import command, data_error, load_for_run, parse_size, run_options, spec_options
from netspec.language.diagnostics import UsageError

EXAMPLES = (
    "netspec serve runs/quick                       # a run directory: http://127.0.0.1:8000\n"
    "  netspec serve specs/mnist.net --weights runs/quick/model.safetensors --port 8080\n"
    "  netspec serve runs/quick --port 0 --max-batch 64 --wait-ms 2   # any free port (printed)\n"
    "  curl -s localhost:8000/info; curl -s -F files=@digit.png localhost:8000/predict/image"
)
NEEDS = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart"}


def add(sub: Any) -> None:
    help_text = "serve a trained model over HTTP: JSON predictions, image uploads, text generation and a web page"
    p = command(sub, "serve", help_text, cmd_serve, EXAMPLES)
    p.add_argument("file", metavar="RUN_DIR|FILE", help="a run directory, or a spec file (.net) with --weights")
    p.add_argument("--weights", metavar="FILE", help="trained .safetensors (default: the run's model.safetensors)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    p.add_argument("--max-batch", type=int, default=32, metavar="N", help="inputs per forward pass (default 32)")
    p.add_argument(
        "--wait-ms", type=float, default=5.0, metavar="MS", help="how long an input waits for more (default 5)"
    )
    p.add_argument("--max-body", default="10MB", metavar="SIZE", help="largest request body (default 10MB)")
    p.add_argument("--max-items", type=int, default=256, metavar="N", help="inputs per request (default 256)")
    p.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    spec_options(p, "running")
    p.add_argument("--data-dir", metavar="DIR", help="data root, for weights outside a run directory")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="override train.device (default: the best)")
    p.add_argument("--no-download", action="store_true", help="never download missing data files")
    p.set_defaults(format="text")


def cmd_serve(args: argparse.Namespace) -> int:
    limits = _limits(args)
    _dependencies()
    weights = _weights(args)
    result = load_for_run(args)
    if result is None:
        return 1
    from netspec.runtime.datasets import DataError

    try:
        model = _model(args, result.program, weights)
    except DataError as e:
        return data_error(args, result, e)
    from netspec.serve import server
    from netspec.serve.app import create_app

    sock = server.bind(args.host, args.port)
    url = server.url(sock, args.host)
    said = f"netspec serve: {model.name} ({args.file}) on {url}  — open it in a browser; Ctrl-C stops"
    return server.run(create_app(model, limits), sock, args.access_log, lambda: print(said, flush=True))


def _limits(args: argparse.Namespace) -> Any:
    from netspec.serve.model import Limits

    for name, value in (("--max-batch", args.max_batch), ("--max-items", args.max_items)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, not {value}")
    if not 0 <= args.wait_ms <= 10_000:
        raise UsageError(f"--wait-ms must be between 0 and 10000, not {args.wait_ms}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    return Limits(args.max_batch, args.wait_ms, max(parse_size(args.max_body), 1), args.max_items)


def _dependencies() -> None:
    missing = [package for module, package in NEEDS.items() if not _importable(module)]
    if missing:
        names = "fastapi and uvicorn" if set(missing) & {"fastapi", "uvicorn"} else " and ".join(missing)
        raise UsageError(f'netspec serve needs {names}: pip install "netspec[serve]"')


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _weights(args: argparse.Namespace) -> Path:
    """The weights: --weights, else the run directory's model.safetensors. Only safetensors: no pickle."""
    if args.weights:
        weights = Path(args.weights)
    elif Path(args.file).is_dir():
        weights = Path(args.file) / "model.safetensors"
    elif not Path(args.file).exists():
        raise UsageError(f"{args.file}: no such run directory or spec file")
    else:
        raise UsageError("serving a spec file needs --weights (a run's model.safetensors), or give the run directory")
    if weights.suffix != ".safetensors":
        raise UsageError(
            f"{weights}: netspec serve loads only .safetensors weights (a .pt file is a pickle); "
            "use the model.safetensors of a run"
        )
    return weights


def _model(args: argparse.Namespace, program: Any, weights: Path) -> Any:
    from netspec.runtime import trained
    from netspec.serve.model import Model, feature_names

    options = run_options(args, None)
    spec = None if Path(args.file).is_dir() else Path(args.file)
    loaded = trained.load(program, options, weights, data=False, spec=spec)
    width = loaded.input_shape[0] if len(loaded.input_shape) == 1 else 0
    features = feature_names(program, options, width) if width and not loaded.image else None
    print(f"loaded {weights} on {loaded.device}", file=sys.stderr)
    if loaded.output != "images":
        return Model(loaded, args.file, features)
    from netspec.runtime.sample import preprocessing  # a GAN: its samples with the normalization undone

    return Model(loaded, args.file, undo=preprocessing(program, options))
