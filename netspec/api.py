"""The public Python API: load a spec, look at it, build its model, train it, emit it.

It is the pipeline the command line uses (`netspec check`, `summary`, `run` and `emit` call it), so
the two cannot drift. `import netspec` stays cheap: this module is imported on first use, and torch
only when a model is built or trained.

    import netspec
    spec = netspec.load("specs/mnist.net", set={"train.epochs": 1})
    spec.summary()                      # the table of `netspec summary` (HTML in Jupyter)
    model = spec.build("LeNet")         # a plain torch.nn.Module
    result = spec.run(out="runs/quick") # trains; result.metrics, result.test, result.dir
    script = spec.emit("pytorch")       # the standalone script of `netspec emit`
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from netspec.ir.check import CheckOptions
from netspec.ir.nodes import Program
from netspec.ir.pipeline import Result, compile_file, compile_text
from netspec.language.diagnostics import Diagnostic, SpecError, UsageError, make

if TYPE_CHECKING:
    from torch import nn

    from netspec.runtime.loop import RunOptions

Overrides = Union[Mapping[str, Any], Iterable[str], None]
"""`set=`: {"train.epochs": 1} or ["train.epochs=1"], the `--set` overrides of the command line."""

DEFAULT_MAX_MEMORY = "4GiB"
PLOTS = ("curves", "confusion", "predictions", "samples")  # the run directory's PNGs, in the order shown


def load(path: str | os.PathLike[str], set: Overrides = None, *, max_memory: int | str | None = None) -> Spec:
    """Read and check a spec file, or a run directory (its recorded spec and overrides, as `netspec run
    RUN_DIR` continues it). `set` overrides values before checking, like `--set`: a mapping
    {"train.epochs": 1, "train.optimizer": "adam(lr=1e-4)"} (a string value is spec text) or a list of
    "key=value" strings. `max_memory` (bytes, or "8GiB"; default $NETSPEC_MAX_MEMORY, else 4GiB) is the
    memory estimate above which the spec is an error. Raises SpecError when the spec has errors, and
    OSError when the file cannot be read."""
    file, recorded, spec_dir = _recorded(str(path))
    overrides = (*recorded, *overrides_of(set))
    return Spec(compile_file(file, overrides, _options(max_memory)), overrides, spec_dir, Path(path).stem)


def loads(text: str, set: Overrides = None, *, name: str = "<input>", max_memory: int | str | None = None) -> Spec:
    """Check a spec's text; `name` is the file name its diagnostics give (relative paths in the spec,
    such as a csv source's, are read from the current directory). Raises SpecError on errors."""
    overrides = overrides_of(set)
    return Spec(compile_text(text, name, overrides, _options(max_memory)), overrides, Path.cwd())


def check(
    path: str | os.PathLike[str], set: Overrides = None, *, max_memory: int | str | None = None
) -> list[Diagnostic]:
    """The diagnostics of a spec file (errors and warnings, in order), without raising for them."""
    file, recorded, _ = _recorded(str(path))
    return compile_file(file, (*recorded, *overrides_of(set)), _options(max_memory)).diagnostics


def overrides_of(values: Overrides) -> tuple[str, ...]:
    """`set=` as `--set` strings: {"train.epochs": 1} is "train.epochs=1"; True, False and None are the
    spec's `true`, `false` and `none`; a string is spec text, as on the command line."""
    if values is None:
        return ()
    if isinstance(values, str):
        raise TypeError('set= takes a mapping {"train.epochs": 1} or a list of "key=value" strings, not a string')
    if isinstance(values, Mapping):
        return tuple(f"{key}={_spec_value(value)}" for key, value in values.items())
    return tuple(str(v) for v in values)


def _spec_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_spec_value, value)) + "]"
    return str(value)


def _options(max_memory: int | str | None) -> CheckOptions:
    size = max_memory if max_memory is not None else os.environ.get("NETSPEC_MAX_MEMORY", DEFAULT_MAX_MEMORY)
    if isinstance(size, int):
        return CheckOptions(max_memory=size)
    from netspec.cli.common import parse_size

    return CheckOptions(max_memory=parse_size(size))


def _recorded(path: str) -> tuple[str, list[str], Path]:
    """A run directory stands for its recorded spec.net and overrides (runtime/record.py)."""
    from netspec.runtime.record import recorded, run_dir_of

    folder = run_dir_of(path)
    if folder is None:
        return path, [], Path(path).resolve().parent
    return recorded(folder)


class Spec:
    """A checked spec: made by `load` and `loads` (the CLI makes one from its compile result).

    `program` is the checked IR (netspec.ir.nodes.Program), `file` and `text` its file name and
    source, `name` its name in run directories and scripts, `diagnostics` its warnings, `overrides`
    the `--set` strings it was checked with. In Jupyter it shows its summary."""

    def __init__(
        self, result: Result, overrides: Iterable[str] = (), spec_dir: Path | None = None, name: str | None = None
    ) -> None:
        if result.program is None:
            raise SpecError(result.diagnostics, {result.file: result.text})
        self.program: Program = result.program
        self.file, self.text = result.file, result.text
        self.diagnostics: list[Diagnostic] = list(result.diagnostics)
        self.overrides: tuple[str, ...] = tuple(overrides)
        self.spec_dir = spec_dir or Path(self.file).resolve().parent
        stem = Path(self.file).stem
        self.name: str = name or (stem if not stem.startswith("<") else "spec")
        """Its name in run directories and scripts: the file name without `.net` (a run directory's name)."""

    @property
    def networks(self) -> list[str]:
        """The names of its networks, in order."""
        return [n.name for n in self.program.networks]

    def summary(self) -> Summary:
        """Each network's layers, output shapes and parameters: prints as `netspec summary`."""
        return Summary(self.program)

    def build(self, network: str | None = None) -> nn.Module:
        """A network as a plain `torch.nn.Module` mapping [batch, *input] to [batch, *output], with the
        parameter names of a run's `model.safetensors`, so `model.load_state_dict(load_file(...))` loads
        trained weights (a GAN's run writes generator.safetensors and discriminator.safetensors, one per
        network). `network` defaults to the model the train section trains, else the only network.
        The weights are torch's fresh initialisation (seed torch yourself for a repeatable one)."""
        from netspec.runtime.build import build_network

        net = self.program.network(self._network_name(network))
        assert net is not None
        return build_network(net)

    def _network_name(self, network: str | None) -> str:
        if network in self.networks:
            return network  # type: ignore[return-value]
        if network is not None:
            from netspec.language.suggest import did_you_mean

            hint = did_you_mean(network, self.networks)
            raise ValueError(
                f"no network `{network}` in {self.file}{f'; {hint}' if hint else ''}; it has: "
                + ", ".join(self.networks)
            )
        trained = list(self.program.train.trained().values()) if self.program.train else []
        if len(trained) == 1:
            return trained[0]
        if len(self.networks) == 1:
            return self.networks[0]
        raise ValueError(
            f'{self.file} has several networks ({", ".join(self.networks)}): name one, build("{self.networks[0]}")'
        )

    def run(
        self,
        out: str | os.PathLike[str] | None = None,
        *,
        quiet: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        resume: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        download: bool = True,
        options: RunOptions | None = None,
        **extra: Any,
    ) -> RunResult:
        """Train and evaluate, as `netspec run`: writes the run directory `out` (default
        runs/<spec>-<time>) and returns its result. Shows a progress bar (a widget in Jupyter) unless
        `quiet`. `data_dir` defaults to $NETSPEC_DATA; `device` overrides train.device; `resume`
        continues the run in that directory. Further keywords are `netspec.runtime.loop.RunOptions`
        fields (`on_epoch=`, a logger's options); `options` passes a complete RunOptions instead.
        Raises SpecError for data that does not fit the spec, UsageError for a device or a run
        directory it cannot use, TrainingError when the loss stops being finite."""
        if options is None:
            target = resume or out
            where = Path(target) if target is not None else None
            options = self.run_options(
                where, quiet=quiet, data_dir=data_dir, device=device, overwrite=overwrite, download=download, **extra
            )
            options.resume = Path(resume) if resume else None
        return self._train(options)

    def run_options(self, out: Path | None = None, **fields: Any) -> RunOptions:
        """The RunOptions of a run of this spec: its text, overrides and folder recorded, so that the run
        directory can be continued; `fields` set any other RunOptions field."""
        from netspec.runtime.lock import fresh_run_dir
        from netspec.runtime.loop import RunOptions

        known = {f.name for f in dataclasses.fields(RunOptions)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(
                f"run() got unknown options {', '.join(unknown)}; RunOptions has: {', '.join(sorted(known))}"
            )
        data_dir = fields.pop("data_dir", None)
        return RunOptions(
            out=out or fresh_run_dir(self.name),
            data_dir=str(data_dir) if data_dir is not None else None,
            spec_dir=self.spec_dir,
            spec_name=self.name,
            source=self.text,
            overrides=list(self.overrides),
            **fields,
        )

    def _train(self, options: RunOptions) -> RunResult:
        from netspec.runtime.datasets import DataError
        from netspec.runtime.loop import run

        if self.program.train is None or self.program.dataset is None:
            raise UsageError(f"{self.file}: running needs a `dataset` and a `train` section")
        try:
            summary = run(self.program, options)
        except DataError as e:
            if getattr(e, "exit_code", 1) == 2:
                raise
            raise SpecError([self._data_diagnostic(e)], {self.file: self.text}) from None
        folder = options.resume or options.out
        return RunResult(Path(folder) if folder else None, summary)

    def _data_diagnostic(self, error: Any) -> Diagnostic:
        """Data that does not fit the spec, pointed at the dataset's source (as `netspec run` says it)."""
        span = self.program.dataset.source.span  # type: ignore[union-attr]
        assert span is not None
        return dataclasses.replace(make("NS090", error.message, span, error.hint), file=self.file)

    def emit(self, target: str = "pytorch", *, script_name: str | None = None, distributed: bool = False) -> str:
        """The standalone training script of `netspec emit` (torch and numpy only); `script_name` is
        the file name its usage line gives. Raises EmitError for what the target cannot express."""
        from netspec.emit import emit

        return emit(self.program, target, self.name, script_name, distributed)

    def __repr__(self) -> str:
        nets = ", ".join(f"{n.name} ({n.params:,} parameters)" for n in self.program.networks)
        return f"<netspec.Spec {self.file}: {nets or 'no networks'}>"

    def _repr_html_(self) -> str:
        return Summary(self.program)._repr_html_()


@dataclass(frozen=True)
class Summary:
    """`netspec summary`'s tables: `str()` is its text, `to_dict()` its `--format json`, and Jupyter
    shows it as HTML tables."""

    program: Program = field(repr=False)

    @property
    def text(self) -> str:
        """The tables as `netspec summary` prints them."""
        from netspec.tools.summary import summary_text

        return summary_text(self.program)

    @property
    def params(self) -> dict[str, int]:
        """Each network's trainable parameters."""
        return {n.name: n.params for n in self.program.networks}

    def to_dict(self) -> dict[str, Any]:
        """What `netspec summary --format json` prints: per network its layers, shapes and parameters."""
        from netspec.tools.summary import summary_json

        return summary_json(self.program)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        from netspec.tools.summary import summary_html

        return summary_html(self.program)


@dataclass(frozen=True)
class RunResult:
    """What a run left: `dir` (the run directory), `summary` (its summary.json: test metrics,
    epochs, wall time, versions), `metrics` (the rows of metrics.csv, one per epoch), `plots` (its PNGs).
    Jupyter shows the test metrics and the plots inline."""

    dir: Path | None
    summary: dict[str, Any]

    @property
    def test(self) -> dict[str, float]:
        """The test split's loss and metrics (empty without a test split)."""
        return dict(self.summary.get("test", {}))

    @property
    def metrics(self) -> list[dict[str, float]]:
        """metrics.csv: a row per epoch (epoch, train and validation loss and metrics, lr, seconds)."""
        if self.dir is None or not (self.dir / "metrics.csv").is_file():
            return []
        with (self.dir / "metrics.csv").open(newline="", encoding="utf-8") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

    @property
    def plots(self) -> dict[str, Path]:
        """The run directory's plots by name: curves, confusion, predictions (images), samples (a GAN)."""
        if self.dir is None:
            return {}
        return {name: self.dir / f"{name}.png" for name in PLOTS if (self.dir / f"{name}.png").is_file()}

    def __repr__(self) -> str:
        test = ", ".join(f"{k} {v:.4g}" for k, v in self.test.items()) or "no test split"
        return f"<netspec.RunResult {self.dir}: test {test}; {self.summary.get('epochs', 0)} epochs>"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in self.test.items())
        images = "".join(_img(name, path) for name, path in self.plots.items())
        head = f"<p><b>run</b> <code>{html.escape(str(self.dir))}</code>, {self.summary.get('epochs', 0)} epochs</p>"
        table = f"<table><tr><th>test</th><th></th></tr>{rows}</table>" if rows else ""
        return f'<div class="netspec-run">{head}{table}{images}</div>'


def _img(name: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    image = f'<img alt="{name}" src="data:image/png;base64,{data}" style="max-width:100%"/>'
    return f"<figure>{image}<figcaption>{name}.png</figcaption></figure>"


__all__ = ["RunResult", "Spec", "SpecError", "Summary", "check", "load", "loads", "overrides_of"]
