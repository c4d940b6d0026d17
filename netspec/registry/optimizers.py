"""Optimizers: parameters and torch construction."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from netspec.registry.base import (
    Fraction,
    NonNegFloat,
    Op,
    PosFloat,
    Problem,
    Registry,
    changed,
)


class Optimizer(Op):
    lr: PosFloat

    positional: ClassVar = ("lr",)
    torch_class: ClassVar[str] = ""  # the torch.optim class
    grouping: ClassVar[tuple[str, ...]] = ()  # settings that choose parameter groups, not torch arguments
    states: ClassVar[int] = 0  # tensors of state it keeps per parameter (for the memory estimate)

    def state_copies(self) -> int:
        """How many copies of the weights its state takes, with these settings."""
        return self.states

    def torch_kwargs(self) -> dict[str, Any]:
        """The learning rate, and the other settings that differ from their (torch's) defaults."""
        return {"lr": self.lr, **{k: v for k, v in changed(self).items() if k not in self.grouping}}

    def param_groups(self) -> str | None:
        """The function of netspec.verbatim.modules that groups the model's parameters, called with
        the model and the weight decay; None: every parameter alike."""
        return None


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")

Betas = tuple[Fraction, Fraction]


@OPTIMIZERS.register
class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (`torch.optim.SGD`)."""

    kind: Literal["sgd"] = "sgd"
    torch_class: ClassVar[str] = "SGD"
    states: ClassVar[int] = 0  # and the momentum buffer, with momentum
    lr: PosFloat = Field(0.01, description="learning rate")
    momentum: Fraction = Field(0.0, description="momentum factor")
    nesterov: bool = Field(False, description="Nesterov momentum")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty")
    dampening: Fraction = Field(0.0, description="dampening for momentum")

    def state_copies(self) -> int:
        return 1 if self.momentum else 0  # the momentum buffer

    def problems(self) -> list[Problem]:
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            return [Problem("nesterov needs momentum > 0 and no dampening", "add e.g. `momentum=0.9`", "nesterov")]
        return []


@OPTIMIZERS.register
class Adagrad(Optimizer):
    """Adagrad: per-parameter rates scaled by accumulated squared gradients (`torch.optim.Adagrad`)."""

    kind: Literal["adagrad"] = "adagrad"
    torch_class: ClassVar[str] = "Adagrad"
    states: ClassVar[int] = 1
    lr: PosFloat = Field(0.01, description="learning rate")
    lr_decay: NonNegFloat = Field(0.0, description="learning rate decay")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty")
    eps: PosFloat = Field(1e-10, description="added to the denominator for stability")


@OPTIMIZERS.register
class RMSprop(Optimizer):
    """RMSprop (`torch.optim.RMSprop`)."""

    kind: Literal["rmsprop"] = "rmsprop"
    torch_class: ClassVar[str] = "RMSprop"
    states: ClassVar[int] = 1
    lr: PosFloat = Field(0.01, description="learning rate")
    alpha: Fraction = Field(0.99, description="smoothing constant")
    eps: PosFloat = Field(1e-8, description="added to the denominator for stability")
    momentum: Fraction = Field(0.0, description="momentum factor")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty")
    centered: bool = Field(False, description="normalize by the estimated variance")


class _AdamBase(Optimizer):
    states: ClassVar[int] = 2  # the two moments
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
    decay: Literal["all", "matrices"] = Field(
        "all", description='what weight_decay applies to: "matrices" spares biases and norms, as nanoGPT'
    )
    grouping: ClassVar[tuple[str, ...]] = ("decay",)

    def param_groups(self) -> str | None:
        return "matrix_decay" if self.decay == "matrices" else None
