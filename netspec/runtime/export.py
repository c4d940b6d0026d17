"""`netspec export`: a trained network written as a deployable file, and checked before it is written.

The format's class in `registry/exports.py` writes the bytes and loads them back; here the exported
model and the PyTorch model are run on the same inputs (test data when the data files are at hand,
else generated ones; a GAN's generator: noise) in two batch sizes, neither the one the exporter
traced, and must agree within ATOL + RTOL * |expected|. Only then is the file written (atomically):
a mismatch leaves nothing behind. With `--quantize int8`, the quantized model must also keep its
accuracy on the test split within `max_drop` points of the float one.

A layer that the format or the quantization cannot take (a registry fact) is refused before anything
runs, located at the layer in the spec; an exporter that fails otherwise is retried on the network's
steps one by one, to name the step that fails.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from netspec.ir import nodes as ir
from netspec.language.diagnostics import UsageError
from netspec.language.span import Span
from netspec.registry import Layer
from netspec.registry.exports import EXPORTS, QUANTIZATIONS, ExportFormat, Quantization, Runner, last_line
from netspec.runtime.rundir import write_atomic
from netspec.runtime.trained import Trained

ATOL = 1e-4  # verification: |exported - pytorch| <= ATOL + RTOL * |pytorch|, elementwise (torch.allclose's rule)
RTOL = 1e-4
TRACED = 2  # the batch the exporters trace (dynamic batch: any size runs)
VERIFIED = (64, 1)  # the batch sizes compared
TIMED = 32  # the batch of the latency figures
REPEATS = 20  # latency: the median of this many runs, after 3 warm-up runs
EVALUATED = 10_000  # test samples scored for the quantization's accuracy (or loss) change
GENERATED = "256 noise vectors"  # what a generator's int8 change is measured on


@dataclass
class Request:
    format: str
    output: Path
    quantize: str | None = None
    max_drop: float = 0.5  # accuracy points a quantized model may lose
    calibration: int = 256  # training samples that calibrate the static quantization


class ExportError(Exception):
    """Something the format or the quantization cannot take, located in the spec (the CLI exits 1)."""

    def __init__(self, message: str, span: Span, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint


class Mismatch(Exception):
    """The exported model does not compute what the PyTorch model does, or the quantized one lost too
    much accuracy (the CLI exits 1; nothing is written)."""


@dataclass
class Check:
    source: str  # where the compared inputs come from
    count: int
    batches: tuple[int, ...]
    max_diff: float
    runtime: str

    def describe(self) -> str:
        sizes = " and ".join(str(b) for b in self.batches)
        return (
            f"checked with {self.runtime} against PyTorch on {self.count} inputs ({self.source}; batches of {sizes}): "
            f"largest absolute difference {self.max_diff:.2e} (tolerance {ATOL:g} + {RTOL:g} * |value|)"
        )


@dataclass
class Figures:
    """What quantization changed: bytes, latency, and accuracy (or loss) on the test split."""

    what: str  # the modules quantized, in words
    size: tuple[int, int]  # bytes of the file before (float) and after
    latency: tuple[float, float]  # milliseconds per batch of TIMED, before and after
    quality: tuple[float, float] | None  # accuracy or loss, before and after
    measure: str  # "accuracy", "loss", or for a generator GENERATED
    kept: list[str] = field(default_factory=list)
    scored: int = 0  # test samples scored

    def lines(self) -> list[str]:
        (b0, b1), (l0, l1) = self.size, self.latency
        out = [
            f"int8: quantized {self.what}",
            f"  size    {b0 / 1e6:8.3f} MB -> {b1 / 1e6:8.3f} MB  ({b1 / b0:.2f}x)",
            f"  latency {l0:8.2f} ms -> {l1:8.2f} ms  (batch of {TIMED}, median of {REPEATS}, CPU)",
        ]
        out += [f"  kept in float: {k}" for k in self.kept]
        if self.quality is None:
            return out
        q0, q1 = self.quality
        if self.measure == GENERATED:
            return [*out, f"  outputs  mean absolute change {q1:.4g} ({GENERATED})"]
        digits = "8.4f" if self.measure == "accuracy" else "8.4g"  # a loss may be small
        before, after = format(q0, digits), format(q1, digits)
        return [*out, f"  {self.measure:8s}{before}    -> {after}     (test split, {self.scored} samples)"]


@dataclass
class Report:
    output: Path
    format: str
    size: int
    seconds: float
    check: Check
    note: str | None = None
    figures: Figures | None = None


def format_class(name: str) -> type[ExportFormat]:
    """The export format named, or a UsageError listing them."""
    cls = EXPORTS.get(name)
    if cls is None:
        from netspec.language.suggest import did_you_mean

        hint = did_you_mean(name, EXPORTS.names()) or f"use one of {', '.join(EXPORTS.names())}"
        raise UsageError(f"unknown export format `{name}`; {hint}")
    return cls


def check_request(request: Request) -> tuple[ExportFormat, Quantization | None]:
    """The format and quantization a request names, refused when they cannot go together or the
    format's modules are missing (both before any model is loaded)."""
    fmt = format_class(request.format)
    missing = fmt.missing()
    if missing:
        raise UsageError(
            f"netspec export --format {fmt.kind_name()} needs {_and(list(fmt.modules))}: "
            f'pip install "netspec[{fmt.extra}]"'
        )
    if request.quantize is None:
        return fmt(), None  # type: ignore[call-arg]
    scheme = QUANTIZATIONS.get(request.quantize)
    if scheme is None:
        raise UsageError(f"unknown quantization `{request.quantize}`; use {', '.join(QUANTIZATIONS.names())}")
    holders = [n for n, c in EXPORTS.entries.items() if c.quantized is None]
    if fmt.quantized is not None:
        raise UsageError(
            f"--format {fmt.kind_name()} cannot hold an {scheme.kind_name()} model: {fmt.quantized}; "
            f"use --format {' or '.join(holders)}"
        )
    return fmt(), scheme()  # type: ignore[call-arg]


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def export(trained: Trained, request: Request) -> Report:
    """Export, check and write; ExportError, Mismatch or UsageError when it cannot."""
    fmt, scheme = check_request(request)
    refuse(trained, fmt, scheme)
    start = time.perf_counter()
    module = trained.module.cpu().eval()
    traced = _examples(trained, TRACED)
    metadata = {**trained.metadata(), "format": fmt.kind_name(), "output_shape": _output_shape(trained)}
    quantized = None
    if scheme is not None:
        quantized = _quantize(trained, scheme, request.calibration)
        module, metadata["quantization"] = quantized.module, scheme.kind_name()
    data, note = write(trained, fmt, module, traced, metadata)
    runner = fmt.load(data)
    check = verify(trained, fmt, module, runner)
    seconds = time.perf_counter() - start
    figures = _figures(trained, fmt, quantized, runner, data, metadata, request) if quantized else None
    write_atomic(request.output, data)
    return Report(request.output, fmt.kind_name(), len(data), seconds, check, note, figures)


def _examples(trained: Trained, n: int, seed: int = 0) -> torch.Tensor:
    """`trained.examples` on the CPU, copied: a slice of the test split would drag the whole split's
    storage into an ExportedProgram."""
    return trained.examples(n, seed).cpu().clone()


def _output_shape(trained: Trained) -> list[int]:
    return [int(d) for d in trained.network.output_shape]


# --- refusals, located ---------------------------------------------------------------------------


def refuse(trained: Trained, fmt: ExportFormat, scheme: Quantization | None) -> None:
    """An ExportError at the first layer that the format (or the quantization) lists as unsupported."""
    for layer in ir.leaves(trained.network.steps):
        name = layer.kind_name()
        for what, facts in ((f"exported to {fmt.kind_name()}", fmt.unsupported), _quantization_facts(scheme)):
            if name in facts:
                raise ExportError(
                    f"`{name}` cannot be {what}: {facts[name]}",
                    _span(layer, trained),
                    _hint(fmt, scheme, name),
                )


def _quantization_facts(scheme: Quantization | None) -> tuple[str, dict[str, str]]:
    return (f"quantized to {scheme.kind_name()}", scheme.unsupported) if scheme else ("", {})


def _hint(fmt: ExportFormat, scheme: Quantization | None, name: str) -> str | None:
    if scheme is not None and name in scheme.unsupported:
        return f"export it without --quantize {scheme.kind_name()}"
    others = [n for n, c in EXPORTS.entries.items() if c is not type(fmt) and name not in c.unsupported]
    return f"try --format {' or '.join(others)}" if others else None


def _span(step: Any, trained: Trained) -> Span:
    return getattr(step, "span", None) or trained.network.span


# --- writing, with the failing step found --------------------------------------------------------


def write(
    trained: Trained, fmt: ExportFormat, module: nn.Module, example: torch.Tensor, metadata: dict[str, Any]
) -> tuple[bytes, str | None]:
    """The format's bytes; when the exporter fails, an ExportError at the step that fails alone."""
    try:
        return fmt.write(module, example, metadata)
    except Exception as error:  # any exporter failure is reported located, without its traceback
        raise _located(trained, fmt, module, example, error) from None


def _located(
    trained: Trained, fmt: ExportFormat, module: nn.Module, example: torch.Tensor, error: Exception
) -> ExportError:
    attempt = lambda m, x: fmt.write(m, x, {})  # noqa: E731
    step = failing_step(trained.network.steps, module, example, attempt)
    what = f"`{_name(step)}`" if step is not None else f"network `{trained.name}`"
    return ExportError(
        f"{what} cannot be exported to {fmt.kind_name()} with torch {torch.__version__}: {last_line(error)}",
        _span(step, trained),
        _hint(fmt, None, ""),
    )


def failing_step(
    steps: list[Any], module: nn.Module, x: torch.Tensor, attempt: Callable[[nn.Module, torch.Tensor], Any]
) -> Any:
    """The first of the network's steps whose module, alone on its own input, makes `attempt` fail;
    inside a block or a residual, its first failing step. None when each passes alone."""
    children = _children(module, steps)
    if children is None:
        return None
    for step, child in zip(steps, children):
        try:
            attempt(child, x)
        except Exception:
            return failing_step(getattr(step, "steps", []), child, x, attempt) or step
        with torch.no_grad():
            x = child(x)
    return None


def _children(module: nn.Module, steps: list[Any]) -> list[nn.Module] | None:
    """The modules of `steps` inside `module` (a Sequential, or a residual's body), in order."""
    body = getattr(module, "body", module)
    if isinstance(body, nn.Sequential) and len(body) == len(steps) and steps:
        return list(body)
    return None


def _name(step: Any) -> str:
    if isinstance(step, Layer):
        return step.kind_name()
    return str(getattr(step, "name", None) or type(step).__name__.lower())


# --- checking --------------------------------------------------------------------------------------


def verify(trained: Trained, fmt: ExportFormat, module: nn.Module, runner: Runner) -> Check:
    """Compare the exported model with the PyTorch one; Mismatch beyond the tolerance."""
    inputs = _examples(trained, max(VERIFIED))
    worst, bad = 0.0, 0
    for size in VERIFIED:  # batch by batch on both sides: int8 activations are quantized per batch
        for start in range(0, len(inputs), size):
            batch = inputs[start : start + size]
            with torch.no_grad():
                want = module(batch).float()
            diff = (runner(batch).float() - want).abs()
            worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
            bad += int((~(diff <= ATOL + RTOL * want.abs())).sum())
    check = Check(trained.example_source, len(inputs), VERIFIED, worst, fmt.runtime)
    if bad or not math.isfinite(worst):
        raise Mismatch(f"the exported model differs from the PyTorch model in {bad} values: {check.describe()}")
    return check


# --- int8 ------------------------------------------------------------------------------------------


def _quantize(trained: Trained, scheme: Quantization, calibration: int) -> Any:
    from netspec.runtime import quantize

    if trained.noise is None and trained.test is None:
        raise UsageError(
            "--quantize needs the test split to measure the accuracy change, and the training split to "
            "calibrate: the data files are not at hand (--data-dir, or $NETSPEC_DATA)"
        )
    try:
        return quantize.quantize(trained.module, scheme, _calibration(trained, calibration))
    except Exception as error:  # a layer the quantization cannot take: find it, report it located
        raise _unquantizable(trained, scheme, error) from None


def _calibration(trained: Trained, n: int) -> torch.Tensor:
    """Training inputs (a GAN's generator: noise; no training split in memory: the examples)."""
    split = trained.train
    if trained.noise is None and split is not None and isinstance(split.x, torch.Tensor):
        return split.x[:n].cpu()
    return _examples(trained, n, seed=1)


def _unquantizable(trained: Trained, scheme: Quantization, error: Exception) -> ExportError:
    from netspec.runtime import quantize

    def attempt(m: nn.Module, x: torch.Tensor) -> None:
        with torch.no_grad():
            quantize.quantize(m, scheme, x).module(x)

    step = failing_step(trained.network.steps, trained.module.cpu(), _examples(trained, TRACED), attempt)
    what = f"`{_name(step)}`" if step is not None else f"network `{trained.name}`"
    return ExportError(
        f"{what} cannot be quantized to {scheme.kind_name()} with torch {torch.__version__}: {last_line(error)}",
        _span(step, trained),
        f"export it without --quantize {scheme.kind_name()}",
    )


def _figures(
    trained: Trained,
    fmt: ExportFormat,
    quantized: Any,
    runner: Runner,
    data: bytes,
    metadata: dict[str, Any],
    request: Request,
) -> Figures:
    """Size, latency and accuracy of the float export against the quantized one; Mismatch when
    the accuracy drops by more than `request.max_drop` points."""
    example = _examples(trained, TRACED)
    float_data, _ = fmt.write(trained.module.cpu().eval(), example, metadata)
    before = fmt.load(float_data)
    batch = _examples(trained, TIMED)
    measure, quality = _quality(trained, before, runner)
    figures = Figures(
        quantized.describe(),
        (len(float_data), len(data)),
        (latency(before, batch), latency(runner, batch)),
        quality,
        measure,
        quantized.kept,
        min(len(trained.test), EVALUATED) if trained.test is not None else 0,
    )
    _check_drop(figures, request)
    return figures


def _check_drop(figures: Figures, request: Request) -> None:
    if figures.quality is None or figures.measure != "accuracy":
        return
    drop = (figures.quality[0] - figures.quality[1]) * 100
    if drop > request.max_drop:
        raise Mismatch(
            "\n".join(figures.lines())
            + f"\nthe int8 model loses {drop:.2f} points of accuracy, more than --max-drop {request.max_drop:g}: "
            "not written"
        )


def latency(runner: Runner, batch: torch.Tensor) -> float:
    """Milliseconds per call on `batch`: the median of REPEATS runs after 3 warm-up runs."""
    for _ in range(3):
        runner(batch)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        runner(batch)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def _quality(trained: Trained, before: Runner, after: Runner) -> tuple[str, tuple[float, float] | None]:
    """("accuracy" or "loss", (before, after)) on the test split; a generator: the mean absolute
    change of its outputs on noise (before: 0)."""
    if trained.noise is not None:
        z = _examples(trained, 256, seed=2)
        return GENERATED, (0.0, float((after(z) - before(z)).abs().mean()))
    assert trained.test is not None and trained.program.train is not None
    loss = trained.program.train.loss
    score = _accuracy if trained.output in ("classes", "tokens") else _loss(loss)
    return ("accuracy" if score is _accuracy else "loss"), (
        _score(trained, before, score),
        _score(trained, after, score),
    )


def _score(trained: Trained, runner: Runner, score: Callable[..., torch.Tensor]) -> float:
    from netspec.runtime.splits import batches

    assert trained.test is not None and trained.program.train is not None
    loss = trained.program.train.loss
    total, count = 0.0, 0
    for x, y in batches(trained.test, torch.arange(min(len(trained.test), EVALUATED)), 500, torch.device("cpu")):
        values = score(runner(x).float(), y, loss)
        total, count = total + float(values.sum()), count + values.numel()
    return total / max(count, 1)


def _accuracy(out: torch.Tensor, y: torch.Tensor, loss: Any) -> torch.Tensor:
    """Per-sample (per-position) correctness: the top class, or a binary output past its threshold."""
    if getattr(loss, "threshold", None) is not None:
        from netspec.runtime.loop import binary_probabilities

        return ((binary_probabilities(loss, out)[..., 1] > 0.5).view_as(y) == y).float()
    return (out.argmax(-1) == y).float()


def _loss(loss: Any) -> Callable[..., torch.Tensor]:
    criterion = getattr(nn, loss.torch_class)(**loss.torch_kwargs(), reduction="none")
    return lambda out, y, _: criterion(out, y.float().view_as(out)).flatten(1).mean(1)
