"""Learning-rate schedules: when they step and their torch scheduler."""

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
    Registry,
)
from netspec.registry.metrics import monitor_mode


class Schedule(Op):
    every: ClassVar[str] = "epoch"  # when it steps: after each "epoch" or each optimizer "step"
    monitored: ClassVar[bool] = False  # whether each step is given the monitored value
    # scheduler state that follows from the run's length: a run resumed with more epochs or steps keeps
    # the new run's, so that a one-cycle schedule is not stepped past its saved end
    run_length_keys: ClassVar[tuple[str, ...]] = ()

    def run_length_args(self) -> dict[str, str]:
        """The scheduler arguments that follow from the run's length: argument -> "epochs" or
        "total_steps" (the run's optimizer steps)."""
        return {}

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
    run_length_keys: ClassVar[tuple[str, ...]] = ("T_max",)

    def run_length_args(self) -> dict[str, str]:
        return {} if self.t_max else {"T_max": "epochs"}

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
    run_length_keys: ClassVar[tuple[str, ...]] = ("total_steps", "_schedule_phases")

    def run_length_args(self) -> dict[str, str]:
        return {"total_steps": "total_steps"}

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
class WarmupCosine(Schedule):
    """nanoGPT's schedule, stepped per batch: a linear warm-up over `warmup` steps to the optimizer's rate,
    then a cosine decay to `min_lr` at the end of the run (`WarmupCosine`)."""

    kind: Literal["warmup_cosine"] = "warmup_cosine"
    warmup: NonNegInt = Field(100, description="optimizer steps of warm-up (the rate × (step + 1) / (warmup + 1))")
    min_lr: NonNegFloat = Field(0.0, description="the rate at the end of the run")
    positional: ClassVar = ("warmup",)
    every: ClassVar[str] = "step"
    run_length_keys: ClassVar[tuple[str, ...]] = ("total",)

    def run_length_args(self) -> dict[str, str]:
        return {"total": "total_steps"}

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        return "WarmupCosine", {"warmup": self.warmup, "total": epochs * steps_per_epoch, "min_lr": self.min_lr}


@SCHEDULES.register
class Plateau(Schedule):
    """Reduce the rate when the monitored value stops improving (`ReduceLROnPlateau`)."""

    kind: Literal["plateau"] = "plateau"
    factor: Fraction = Field(0.1, description="multiply the rate by this on a plateau")
    patience: NonNegInt = Field(10, description="epochs without improvement before reducing")
    monitor: str = Field("val_loss", description="what to watch: val_loss or val_<metric>")
    mode: Literal["min", "max", "auto"] = Field("auto", description="whether lower or higher is better")
    min_lr: NonNegFloat = Field(0.0, description="lower bound on the rate")
    monitored: ClassVar[bool] = True

    def torch_scheduler(self, epochs: int, steps_per_epoch: int) -> tuple[str, dict[str, Any]]:
        mode = self.mode if self.mode != "auto" else monitor_mode(self.monitor)
        return "ReduceLROnPlateau", {
            "mode": mode,
            "factor": self.factor,
            "patience": self.patience,
            "min_lr": self.min_lr,
        }
