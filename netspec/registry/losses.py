"""Losses: the targets they compare with, the final activations they expect, torch construction."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Sequence

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    Fraction,
    Op,
    PosFloat,
    Problem,
    Registry,
    changed,
    fmt_shape,
)
from netspec.registry.metrics import Metric, TopK
from netspec.registry.sources import Task


class Loss(Op):
    target: ClassVar[str] = "class"  # what it compares outputs with: "class", "value" or "binary"
    torch_class: ClassVar[str] = ""  # the torch.nn loss it builds

    def torch_kwargs(self) -> dict[str, Any]:
        """Arguments for the torch loss: the parameters that differ from their defaults."""
        return changed(self)

    # where one binary output divides the classes: 0.5 for probabilities, 0.0 for logits; None: no binary output
    threshold: ClassVar[float | None] = None

    def meter_args(self, outputs: int, metrics: Sequence[Metric]) -> tuple[int, tuple[int, ...], float | None]:
        """What the evaluation Meter counts for this loss, a network of `outputs` scores and these metrics:
        the classes of its confusion matrix (0: errors of values), the k of top_k and the binary threshold."""
        classes = {"value": 0, "binary": 2}.get(self.target, outputs)
        return classes, tuple(m.k for m in metrics if isinstance(m, TopK)), self.threshold

    wants_last: ClassVar[tuple[str, ...]] = ()  # final activations it expects
    rejects_last: ClassVar[tuple[str, ...]] = ()  # final activations it already applies itself

    def check_output(self, output: Shape, task: Task, last: str | None) -> list[Problem]:
        """Problems between this loss, the network's output and the dataset's targets."""
        found = self._task_problems(task) or self._shape_problems(output, task)
        return found + self._activation_problems(last)

    def _task_problems(self, task: Task) -> list[Problem]:
        if task.target is None or task.target == self.target or {task.target, self.target} == {"class", "token"}:
            return []
        if self.target == "binary" and task.target in ("class", "token") and task.classes in (None, 2):
            return []
        needs = {"class": "class labels", "token": "class labels", "value": "numeric targets", "binary": "0/1 targets"}
        fix = {"class": "cross_entropy", "token": "cross_entropy", "value": "mse"}[task.target]
        return [
            Problem(
                f"loss `{self.kind_name()}` needs {needs[self.target]}, but the dataset has {needs[task.target]}",
                f"use `loss {fix}`",
            )
        ]

    def _shape_problems(self, output: Shape, task: Task) -> list[Problem]:
        return []

    def _activation_problems(self, last: str | None) -> list[Problem]:
        name = self.kind_name()
        if last in self.rejects_last:
            return [
                Problem(
                    f"`{name}` applies {self.applies} itself; the final `{last}` makes it train poorly",
                    f"remove the final `{last}`",
                    severity="warning",
                )
            ]
        if self.wants_last and last not in self.wants_last:
            return [
                Problem(
                    f"`{name}` expects the network to end with `{self.wants_last[0]}`",
                    f"add `{self.wants_last[0]}` as the last layer",
                    severity="warning",
                )
            ]
        return []

    applies: ClassVar[str] = ""


LOSSES: Registry[type[Loss]] = Registry("loss")


class _ClassLoss(Loss):
    def _shape_problems(self, output: Shape, task: Task) -> list[Problem]:
        rank = 2 if task.target == "token" else 1
        want = "[seq, classes]" if rank == 2 else "[classes]"
        if len(output) != rank:
            return [
                Problem(
                    f"`{self.kind_name()}` needs class scores {want} per sample, "
                    f"but the network outputs {fmt_shape(output)}",
                    "end the network with `dense(classes)`" if rank == 1 else None,
                )
            ]
        if task.classes is not None and output[-1] != task.classes:
            return [
                Problem(
                    f"the network outputs {output[-1]} class scores, but the dataset has {task.classes} classes",
                    f"make the last layer `dense({task.classes})`",
                )
            ]
        return []


@LOSSES.register
class CrossEntropy(_ClassLoss):
    """Cross-entropy between class logits and labels (`nn.CrossEntropyLoss`); applies log-softmax itself."""

    kind: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Fraction = Field(0.0, description="mix targets with the uniform distribution")
    torch_class: ClassVar[str] = "CrossEntropyLoss"
    rejects_last: ClassVar = ("softmax", "log_softmax")
    applies: ClassVar[str] = "log-softmax"


@LOSSES.register
class NLL(_ClassLoss):
    """Negative log-likelihood of log-probabilities (`nn.NLLLoss`); end the network with `log_softmax`."""

    kind: Literal["nll"] = "nll"
    torch_class: ClassVar[str] = "NLLLoss"
    wants_last: ClassVar = ("log_softmax",)


class _ValueLoss(Loss):
    target: ClassVar[str] = "value"

    def _shape_problems(self, output: Shape, task: Task) -> list[Problem]:
        if task.target_shape is not None and output != task.target_shape:
            return [
                Problem(
                    f"the network outputs {fmt_shape(output)} per sample, but the targets are "
                    f"{fmt_shape(task.target_shape)}",
                    f"make the output {fmt_shape(task.target_shape)}",
                )
            ]
        return []


@LOSSES.register
class MSE(_ValueLoss):
    """Mean squared error (`nn.MSELoss`), for regression."""

    kind: Literal["mse"] = "mse"
    torch_class: ClassVar[str] = "MSELoss"


@LOSSES.register
class L1(_ValueLoss):
    """Mean absolute error (`nn.L1Loss`), for regression."""

    kind: Literal["l1"] = "l1"
    torch_class: ClassVar[str] = "L1Loss"


@LOSSES.register
class Huber(_ValueLoss):
    """Huber loss (`nn.HuberLoss`): squared for small errors, linear for large ones."""

    kind: Literal["huber"] = "huber"
    torch_class: ClassVar[str] = "HuberLoss"
    delta: PosFloat = Field(1.0, description="where the loss turns from squared to linear")
    positional: ClassVar = ("delta",)


class _BinaryLoss(Loss):
    target: ClassVar[str] = "binary"

    def _shape_problems(self, output: Shape, task: Task) -> list[Problem]:
        if task.target in ("class", "token") and output != (1,):
            return [
                Problem(
                    f"`{self.kind_name()}` needs one probability per sample ([1]), "
                    f"but the network outputs {fmt_shape(output)}",
                    "end the network with `dense(1)`",
                )
            ]
        return []


@LOSSES.register
class BCE(_BinaryLoss):
    """Binary cross-entropy of probabilities (`nn.BCELoss`); end the network with `sigmoid`."""

    kind: Literal["bce"] = "bce"
    torch_class: ClassVar[str] = "BCELoss"
    wants_last: ClassVar = ("sigmoid",)
    threshold: ClassVar[float | None] = 0.5


@LOSSES.register
class BCELogits(_BinaryLoss):
    """Binary cross-entropy of logits (`nn.BCEWithLogitsLoss`); applies the sigmoid itself."""

    kind: Literal["bce_logits"] = "bce_logits"
    torch_class: ClassVar[str] = "BCEWithLogitsLoss"
    pos_weight: Optional[PosFloat] = Field(None, description="weight of positive examples")
    rejects_last: ClassVar = ("sigmoid",)
    applies: ClassVar[str] = "a sigmoid"
    threshold: ClassVar[float | None] = 0.0
