"""Losses, optimizers, learning-rate schedules, metrics and early stopping."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import Field

from netspec.registry.base import (
    Fraction,
    NonNegFloat,
    NonNegInt,
    Op,
    PosFloat,
    PosInt,
    Problem,
    Registry,
    changed,
    fmt_shape,
)
from netspec.registry.data import Task
from netspec.span import Shape

# --- losses -------------------------------------------------------------------------


class Loss(Op):
    target: ClassVar[str] = "class"  # what it compares outputs with: "class", "value" or "binary"
    torch_class: ClassVar[str] = ""  # the torch.nn loss it builds

    def torch_kwargs(self) -> dict[str, Any]:
        """Arguments for the torch loss: the parameters that differ from their defaults."""
        return changed(self)

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


@LOSSES.register
class BCELogits(_BinaryLoss):
    """Binary cross-entropy of logits (`nn.BCEWithLogitsLoss`); applies the sigmoid itself."""

    kind: Literal["bce_logits"] = "bce_logits"
    torch_class: ClassVar[str] = "BCEWithLogitsLoss"
    pos_weight: Optional[PosFloat] = Field(None, description="weight of positive examples")
    rejects_last: ClassVar = ("sigmoid",)
    applies: ClassVar[str] = "a sigmoid"


# --- optimizers ---------------------------------------------------------------------


class Optimizer(Op):
    lr: PosFloat

    positional: ClassVar = ("lr",)
    torch_class: ClassVar[str] = ""  # the torch.optim class

    def torch_kwargs(self) -> dict[str, Any]:
        """The learning rate, and the other settings that differ from their (torch's) defaults."""
        return {"lr": self.lr, **changed(self)}


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")

Betas = tuple[Fraction, Fraction]


@OPTIMIZERS.register
class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (`torch.optim.SGD`)."""

    kind: Literal["sgd"] = "sgd"
    torch_class: ClassVar[str] = "SGD"
    lr: PosFloat = Field(0.01, description="learning rate")
    momentum: Fraction = Field(0.0, description="momentum factor")
    nesterov: bool = Field(False, description="Nesterov momentum")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty")
    dampening: Fraction = Field(0.0, description="dampening for momentum")

    def problems(self) -> list[Problem]:
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            return [Problem("nesterov needs momentum > 0 and no dampening", "add e.g. `momentum=0.9`", "nesterov")]
        return []


@OPTIMIZERS.register
class Adagrad(Optimizer):
    """Adagrad: per-parameter rates scaled by accumulated squared gradients (`torch.optim.Adagrad`)."""

    kind: Literal["adagrad"] = "adagrad"
    torch_class: ClassVar[str] = "Adagrad"
    lr: PosFloat = Field(0.01, description="learning rate")
    lr_decay: NonNegFloat = Field(0.0, description="learning rate decay")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty")
    eps: PosFloat = Field(1e-10, description="added to the denominator for stability")


@OPTIMIZERS.register
class RMSprop(Optimizer):
    """RMSprop (`torch.optim.RMSprop`)."""

    kind: Literal["rmsprop"] = "rmsprop"
    torch_class: ClassVar[str] = "RMSprop"
    lr: PosFloat = Field(0.01, description="learning rate")
    alpha: Fraction = Field(0.99, description="smoothing constant")
    eps: PosFloat = Field(1e-8, description="added to the denominator for stability")
    momentum: Fraction = Field(0.0, description="momentum factor")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty")
    centered: bool = Field(False, description="normalize by the estimated variance")


class _AdamBase(Optimizer):
    lr: PosFloat = Field(0.001, description="learning rate")
    betas: Betas = Field((0.9, 0.999), description="decay rates of the gradient moments")
    eps: PosFloat = Field(1e-8, description="added to the denominator for stability")
    amsgrad: bool = Field(False, description="use the AMSGrad variant")

    def problems(self) -> list[Problem]:
        if any(b >= 1 for b in self.betas):
            return [Problem("betas must be below 1", field="betas")]
        return []


@OPTIMIZERS.register
class Adam(_AdamBase):
    """Adam (`torch.optim.Adam`)."""

    kind: Literal["adam"] = "adam"
    torch_class: ClassVar[str] = "Adam"
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty (added to the gradient)")


@OPTIMIZERS.register
class AdamW(_AdamBase):
    """Adam with decoupled weight decay (`torch.optim.AdamW`)."""

    kind: Literal["adamw"] = "adamw"
    torch_class: ClassVar[str] = "AdamW"
    weight_decay: NonNegFloat = Field(0.01, description="decoupled weight decay")


# --- schedules ----------------------------------------------------------------------


class Schedule(Op):
    every: ClassVar[str] = "epoch"  # when it steps: after each "epoch" or each optimizer "step"

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        """The torch.optim.lr_scheduler class and its arguments for a run of this length."""
        raise NotImplementedError


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


@SCHEDULES.register
class StepLR(Schedule):
    """Multiply the learning rate by gamma every step_size epochs (`StepLR`)."""

    kind: Literal["step"] = "step"
    step_size: PosInt = Field(description="epochs between decays")
    gamma: PosFloat = Field(0.1, description="decay factor")
    positional: ClassVar = ("step_size", "gamma")

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        return "StepLR", {"step_size": self.step_size, "gamma": self.gamma}


@SCHEDULES.register
class Cosine(Schedule):
    """Cosine annealing from the initial rate to eta_min (`CosineAnnealingLR`), stepped per epoch."""

    kind: Literal["cosine"] = "cosine"
    t_max: Optional[PosInt] = Field(None, description="epochs of one half-cosine (default: all epochs)")
    eta_min: NonNegFloat = Field(0.0, description="final learning rate")

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        return "CosineAnnealingLR", {
            "T_max": self.t_max or epochs,
            **({"eta_min": self.eta_min} if self.eta_min else {}),
        }


@SCHEDULES.register
class OneCycle(Schedule):
    """One-cycle policy (`OneCycleLR`), stepped per batch: warm up to max_lr, then anneal."""

    kind: Literal["onecycle"] = "onecycle"
    max_lr: PosFloat = Field(description="peak learning rate")
    pct_start: Fraction = Field(0.3, description="fraction of steps spent warming up")
    positional: ClassVar = ("max_lr",)
    every: ClassVar[str] = "step"

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        return "OneCycleLR", {
            "max_lr": self.max_lr,
            "total_steps": epochs * steps_per_epoch,
            "pct_start": self.pct_start,
        }


@SCHEDULES.register
class Warmup(Schedule):
    """Linear warm-up from start_factor × lr to lr over the first steps (`LinearLR`), stepped per batch."""

    kind: Literal["warmup"] = "warmup"
    steps: PosInt = Field(description="optimizer steps of warm-up")
    start_factor: Annotated[float, Field(gt=0, le=1)] = Field(0.01, description="initial fraction of the rate")
    positional: ClassVar = ("steps",)
    every: ClassVar[str] = "step"

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        return "LinearLR", {"start_factor": self.start_factor, "total_iters": self.steps}


@SCHEDULES.register
class Plateau(Schedule):
    """Reduce the rate when the monitored value stops improving (`ReduceLROnPlateau`)."""

    kind: Literal["plateau"] = "plateau"
    factor: Fraction = Field(0.1, description="multiply the rate by this on a plateau")
    patience: NonNegInt = Field(10, description="epochs without improvement before reducing")
    monitor: str = Field("val_loss", description="what to watch: val_loss or val_<metric>")
    mode: Literal["min", "max", "auto"] = Field("auto", description="whether lower or higher is better")
    min_lr: NonNegFloat = Field(0.0, description="lower bound on the rate")

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        mode = self.mode if self.mode != "auto" else monitor_mode(self.monitor)
        return "ReduceLROnPlateau", {
            "mode": mode,
            "factor": self.factor,
            "patience": self.patience,
            "min_lr": self.min_lr,
        }


# --- metrics ------------------------------------------------------------------------


class Metric(Op):
    task: ClassVar[str] = "class"  # "class" or "value"
    higher_is_better: ClassVar[bool] = True

    def arg(self) -> Any:
        """What the metric function needs besides the statistics: k, or how to average."""
        return getattr(self, "k", None) or getattr(self, "average", None)


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
