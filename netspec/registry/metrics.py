"""Metrics, and early stopping on a monitored value."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from netspec.registry.base import (
    NonNegFloat,
    Op,
    PosInt,
    Problem,
    Registry,
)


class Metric(Op):
    task: ClassVar[str] = "class"  # "class" or "value"
    higher_is_better: ClassVar[bool] = True

    def arg(self) -> Any:
        """What the metric function needs besides the statistics: k, or how to average."""
        return getattr(self, "k", None) or getattr(self, "average", None)

    def check_output(self, classes: int) -> list[Problem]:
        """Rules against a classifier's number of classes (the network's last dimension)."""
        return []


def monitor_mode(monitor: str) -> str:
    """Whether lower ("min") or higher ("max") is better for a monitored value like val_accuracy."""
    name = monitor.removeprefix("val_").removeprefix("train_")
    cls = METRICS.get(name)
    return "max" if cls is not None and cls.higher_is_better and name not in ("loss",) else "min"


METRICS: Registry[type[Metric]] = Registry("metric")


@METRICS.register
class Accuracy(Metric):
    """Fraction of samples whose predicted class is the label."""

    kind: Literal["accuracy"] = "accuracy"


@METRICS.register
class TopK(Metric):
    """Fraction of samples whose label is among the k highest scores."""

    kind: Literal["top_k"] = "top_k"
    k: PosInt = Field(5, description="how many top classes count")
    positional: ClassVar = ("k",)

    def check_output(self, classes: int) -> list[Problem]:
        if self.k > classes:
            return [Problem(f"top_k with k={self.k} needs more than the {classes} classes the network scores")]
        return []


class _Averaged(Metric):
    average: Literal["macro", "micro", "weighted"] = Field("macro", description="how to combine classes")


@METRICS.register
class Precision(_Averaged):
    """Of the samples predicted as a class, the fraction that are (averaged over classes)."""

    kind: Literal["precision"] = "precision"


@METRICS.register
class Recall(_Averaged):
    """Of the samples of a class, the fraction predicted as it (averaged over classes)."""

    kind: Literal["recall"] = "recall"


@METRICS.register
class F1(_Averaged):
    """Harmonic mean of precision and recall (averaged over classes)."""

    kind: Literal["f1"] = "f1"


@METRICS.register
class MSEMetric(Metric):
    """Mean squared error of the predictions."""

    kind: Literal["mse"] = "mse"
    task: ClassVar[str] = "value"
    higher_is_better: ClassVar[bool] = False


@METRICS.register
class MAE(Metric):
    """Mean absolute error of the predictions."""

    kind: Literal["mae"] = "mae"
    task: ClassVar[str] = "value"
    higher_is_better: ClassVar[bool] = False


class EarlyStopping(Op):
    """Stop when the monitored value has not improved for `patience` epochs."""

    kind: Literal["early_stopping"] = "early_stopping"
    monitor: str = Field("val_loss", description="val_loss, train_loss or val_<metric>")
    patience: PosInt = Field(5, description="epochs without improvement before stopping")
    mode: Literal["min", "max", "auto"] = Field("auto", description="whether lower or higher is better")
    min_delta: NonNegFloat = Field(0.0, description="smallest change that counts as improvement")
    positional: ClassVar = ("patience",)
