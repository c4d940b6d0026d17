"""GAN losses: what the discriminator and the generator minimise (the `gan` task's losses).

Each names its two functions in netspec/verbatim/adversarial.py (`<functions>_discriminator_loss`
and `<functions>_generator_loss`), which `netspec run` calls and emitted scripts copy.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import Fraction, PosFloat, Problem, changed, fmt_shape
from netspec.registry.losses import LOSSES, Loss
from netspec.registry.sources import Task


class AdversarialLoss(Loss):
    target: ClassVar[str] = "adversarial"
    functions: ClassVar[str] = ""  # the prefix of its functions in verbatim/adversarial.py
    rejects_last: ClassVar = ("sigmoid",)
    applies: ClassVar[str] = "no sigmoid: the discriminator's last layer gives a raw score, and"

    @property
    def discriminator_function(self) -> str:
        return f"{self.functions}_discriminator_loss"

    @property
    def generator_function(self) -> str:
        return f"{self.functions}_generator_loss"

    def discriminator_args(self) -> dict[str, Any]:
        """Keyword arguments of the discriminator's loss: the settings that differ from their defaults."""
        return changed(self)

    def penalty_weight(self) -> float:
        """The weight of the gradient penalty (0: none)."""
        return 0.0

    def check_output(self, output: Shape, task: Task, last: str | None) -> list[Problem]:
        """`output` is the discriminator's: one score per sample."""
        found = []
        if output != (1,):
            found.append(
                Problem(
                    f"the discriminator must give one score per sample ([1]) for `{self.kind_name()}`, "
                    f"but it outputs {fmt_shape(output)}",
                    "end it with `dense(1)`",
                )
            )
        return found + self._activation_problems(last)

    def _activation_problems(self, last: str | None) -> list[Problem]:
        if last not in self.rejects_last:
            return []
        return [
            Problem(
                f"`{self.kind_name()}` takes the discriminator's raw score (a logit); the final `{last}` "
                "saturates and stalls training",
                f"remove the final `{last}`",
                severity="warning",
            )
        ]


@LOSSES.register
class GanBCE(AdversarialLoss):
    """The original GAN loss with the non-saturating generator loss (the PyTorch DCGAN tutorial's):
    binary cross-entropy of the discriminator's logits, real samples toward 1 and fakes toward 0;
    the generator minimises -log D(G(z))."""

    kind: Literal["gan_bce"] = "gan_bce"
    smoothing: Fraction = Field(0.0, description="one-sided label smoothing: real targets are 1 - smoothing")
    functions: ClassVar[str] = "bce"
    positional: ClassVar = ("smoothing",)


@LOSSES.register
class Hinge(AdversarialLoss):
    """The hinge loss of SAGAN and BigGAN: the discriminator pushes real scores above 1 and fake
    scores below -1; the generator raises the fakes' scores."""

    kind: Literal["hinge"] = "hinge"
    functions: ClassVar[str] = "hinge"


@LOSSES.register
class WganGP(AdversarialLoss):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): the critic estimates the
    Wasserstein distance, kept 1-Lipschitz by a penalty on its gradient norm; use `d_steps=5`,
    Adam(lr=1e-4, betas=[0.0, 0.9]) and no batchnorm in the critic."""

    kind: Literal["wgan_gp"] = "wgan_gp"
    weight: PosFloat = Field(10.0, description="the gradient penalty's weight (lambda)")
    functions: ClassVar[str] = "wasserstein"
    positional: ClassVar = ("weight",)

    def discriminator_args(self) -> dict[str, Any]:
        return {}

    def penalty_weight(self) -> float:
        return self.weight
