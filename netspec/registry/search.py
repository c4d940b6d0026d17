"""What `netspec tune` searches and how: search expressions, samplers and pruners.

A search expression (`loguniform(1e-4, 1e-1)`, `choice(64, 128, 256)`) stands where a value
goes. Each class says which values it can take, the value `netspec run` uses (its default),
the values the checker tries (its ends: every value it can take must check), and the Optuna
call that draws one in a trial. Samplers and pruners name their Optuna classes (optuna is
imported only by `netspec tune`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from netspec.registry.base import NonNegInt, Op, PosFloat, PosInt, Problem, Registry, format_value

SCALARS = (int, float, str, bool, type(None))  # what Optuna's categorical distribution holds


class Distribution(Op):
    """A search expression: the values a parameter may take in a study."""

    positional: ClassVar[tuple[str, ...]] = ("low", "high")
    variadic: ClassVar[str | None] = None  # a parameter that takes every positional argument (choice's options)

    def default_value(self) -> Any:
        """The value `netspec run`, `check` and `emit` use."""
        raise NotImplementedError

    def ends(self) -> list[Any]:
        """The values the checker tries besides the default: every value this can take must be valid."""
        raise NotImplementedError

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw this parameter's value in an Optuna trial; returns it as Optuna stores it."""
        raise NotImplementedError

    def text(self) -> str:
        """As it could be written: `loguniform(0.0001, 0.1)`, `int_uniform(16, 256, step=16)`."""
        params = self.parameters()
        args = [format_value(getattr(self, n)) for n in self.positional]
        args += [
            f"{n}={format_value(v)}"
            for n, v in self.hyper().items()
            if n not in self.positional and v != params[n].default
        ]
        return f"{self.kind_name()}({', '.join(args)})"


SEARCH: Registry[type[Distribution]] = Registry("search expression")


def _range_problems(low: float, high: float, default: float | None) -> list[Problem]:
    if not low < high:
        return [Problem(f"the range is empty: `low` ({low:g}) must be below `high` ({high:g})", "swap them")]
    if default is not None and not low <= default <= high:
        return [Problem(f"`default` {default:g} is outside the range {low:g} to {high:g}", None, "default")]
    return []


@SEARCH.register
class Uniform(Distribution):
    """A number drawn uniformly from `low` to `high`. `netspec run` uses `default`, else the middle
    of the range (on the grid of `step`, if given)."""

    kind: Literal["uniform"] = "uniform"
    low: float = Field(description="the smallest value")
    high: float = Field(description="the largest value")
    step: Optional[PosFloat] = Field(None, description="draw only low, low + step, low + 2 step, ...")
    default: Optional[float] = Field(None, description="the value `netspec run` uses")

    def problems(self) -> list[Problem]:
        return _range_problems(self.low, self.high, self.default)

    def default_value(self) -> Any:
        if self.default is not None:
            return self.default
        return self._on_grid((self.low + self.high) / 2)

    def _on_grid(self, x: float) -> float:
        if self.step is None:
            return x
        return self.low + math.floor((x - self.low) / self.step) * self.step

    def ends(self) -> list[Any]:
        return [self.low, self._on_grid(self.high)]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, step=self.step)


@SEARCH.register
class LogUniform(Distribution):
    """A positive number drawn uniformly on a log scale from `low` to `high` (learning rates, weight
    decay): each factor of ten is as likely. `netspec run` uses `default`, else the geometric middle
    sqrt(low * high)."""

    kind: Literal["loguniform"] = "loguniform"
    low: PosFloat = Field(description="the smallest value, above 0")
    high: PosFloat = Field(description="the largest value")
    default: Optional[PosFloat] = Field(None, description="the value `netspec run` uses")

    def problems(self) -> list[Problem]:
        return _range_problems(self.low, self.high, self.default)

    def default_value(self) -> Any:
        return self.default if self.default is not None else math.sqrt(self.low * self.high)

    def ends(self) -> list[Any]:
        return [self.low, self.high]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, log=True)


@SEARCH.register
class IntUniform(Distribution):
    """An integer drawn uniformly from `low` to `high`, both included (widths, depths, batch sizes);
    with `log=true`, uniformly on a log scale. `netspec run` uses `default`, else the middle of the
    range (rounded down onto the grid of `step`; the geometric middle, rounded, with `log`)."""

    kind: Literal["int_uniform"] = "int_uniform"
    low: int = Field(description="the smallest value")
    high: int = Field(description="the largest value")
    step: PosInt = Field(1, description="draw only low, low + step, low + 2 step, ...")
    log: bool = Field(False, description="each factor of ten as likely (low must be 1 or more)")
    default: Optional[int] = Field(None, description="the value `netspec run` uses")

    def problems(self) -> list[Problem]:
        found = _range_problems(self.low, self.high, self.default)
        if not found and self.log and self.low < 1:
            found.append(Problem("with `log=true`, `low` must be 1 or more", None, "low"))
        if not found and self.log and self.step != 1:
            found.append(Problem("`log=true` draws every integer: leave `step` at 1", None, "step"))
        return found

    def default_value(self) -> Any:
        if self.default is not None:
            return self.default
        if self.log:
            return round(math.sqrt(self.low * self.high))
        return self.low + (self.high - self.low) // self.step // 2 * self.step

    def ends(self) -> list[Any]:
        return [self.low, self.low + (self.high - self.low) // self.step * self.step]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)


@SEARCH.register
class Choice(Distribution):
    """One of the values listed, each as likely: numbers, strings, `true`/`false`, or lists.
    `netspec run` uses the first."""

    kind: Literal["choice"] = "choice"
    options: tuple[Any, ...] = Field(description="the values (every argument), the first of them the default")
    positional: ClassVar[tuple[str, ...]] = ("options",)
    variadic: ClassVar[str | None] = "options"

    @classmethod
    def signature(cls) -> str:
        return "choice(value, value, ...)"

    def problems(self) -> list[Problem]:
        if len(self.options) < 2:
            return [Problem("`choice` needs two values at least", "list the values to try: `choice(64, 128)`")]
        texts = [format_value(o) for o in self.options]
        twice = next((t for i, t in enumerate(texts) if t in texts[:i]), None)
        if twice is not None:
            return [Problem(f"{twice} is listed twice", "list each value once")]
        return []

    def default_value(self) -> Any:
        return self.options[0]

    def ends(self) -> list[Any]:
        return list(self.options[1:])

    def choices(self) -> list[Any]:
        """The values as Optuna stores them: numbers, strings, true/false and none as they are (a bare
        name as its string), lists as their text."""
        return [
            (str(o) if isinstance(o, str) else o) if isinstance(o, SCALARS) else format_value(o) for o in self.options
        ]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices())

    def index(self, stored: Any) -> int | None:
        """Which option a value stored by Optuna is."""
        return next((i for i, c in enumerate(self.choices()) if c == stored and type(c) is type(stored)), None)

    def text(self) -> str:
        return f"choice({', '.join(format_value(o) for o in self.options)})"


# --- samplers and pruners ---------------------------------------------------------------------


class Sampler(Op):
    """How a study picks the values of its next trial."""

    optuna_class: ClassVar[str] = ""  # in optuna.samplers
    seed: Optional[NonNegInt] = Field(
        None, description="seeds the sampler (each local worker adds its number); none: a random seed"
    )

    def optuna_kwargs(self, worker: int) -> dict[str, Any]:
        return {"seed": None if self.seed is None else self.seed + worker}


SAMPLERS: Registry[type[Sampler]] = Registry("sampler")


@SAMPLERS.register
class Tpe(Sampler):
    """Tree-structured Parzen Estimator (Optuna's default): after `startup` random trials, it draws
    where good trials were dense and bad ones sparse."""

    kind: Literal["tpe"] = "tpe"
    startup: PosInt = Field(10, description="trials drawn at random before the model is used")
    optuna_class: ClassVar[str] = "TPESampler"

    def optuna_kwargs(self, worker: int) -> dict[str, Any]:
        return {**super().optuna_kwargs(worker), "n_startup_trials": self.startup}


@SAMPLERS.register
class RandomSampler(Sampler):
    """Every trial drawn at random, independently of the others (a baseline for the TPE sampler)."""

    kind: Literal["random"] = "random"
    optuna_class: ClassVar[str] = "RandomSampler"


class Pruner(Op):
    """When a trial stops early: after each epoch, the trial's validation metric is reported and the
    pruner compares it with the other trials' at the same epoch."""

    optuna_class: ClassVar[str] = ""  # in optuna.pruners

    def optuna_kwargs(self, epochs: int) -> dict[str, Any]:
        """The Optuna pruner's arguments; `epochs`, the spec's, for pruners that need the longest run."""
        return {}


PRUNERS: Registry[type[Pruner]] = Registry("pruner")


@PRUNERS.register
class Median(Pruner):
    """Stop a trial whose metric after an epoch is worse than the median of the earlier trials at that
    epoch (Optuna's MedianPruner)."""

    kind: Literal["median"] = "median"
    startup: NonNegInt = Field(5, description="trials that finish before any is pruned")
    warmup: NonNegInt = Field(0, description="epochs of each trial before it may be pruned")
    optuna_class: ClassVar[str] = "MedianPruner"

    def optuna_kwargs(self, epochs: int) -> dict[str, Any]:
        return {"n_startup_trials": self.startup, "n_warmup_steps": self.warmup}


@PRUNERS.register
class Hyperband(Pruner):
    """Hyperband (Li et al. 2018; Optuna's HyperbandPruner): successive halving in several brackets,
    each keeping the best 1/`reduction` of its trials at epochs min_epochs, min_epochs * reduction, ..."""

    kind: Literal["hyperband"] = "hyperband"
    min_epochs: PosInt = Field(1, description="epochs every trial runs")
    max_epochs: Optional[PosInt] = Field(None, description="the longest trial; none: the spec's `epochs`")
    reduction: PosInt = Field(3, description="the fraction kept at each rung is 1/reduction")
    optuna_class: ClassVar[str] = "HyperbandPruner"

    def problems(self) -> list[Problem]:
        if self.reduction < 2:
            return [Problem("`reduction` must be 2 or more", None, "reduction")]
        if self.max_epochs is not None and self.max_epochs <= self.min_epochs:
            return [Problem("`max_epochs` must be above `min_epochs`", None, "max_epochs")]
        return []

    def optuna_kwargs(self, epochs: int) -> dict[str, Any]:
        top = self.max_epochs or epochs
        return {"min_resource": self.min_epochs, "max_resource": top, "reduction_factor": self.reduction}
