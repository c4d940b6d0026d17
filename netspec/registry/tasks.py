"""Tasks: what a `train` section trains, and so which networks it names, which losses fit, and
which trainer of the runtime (and which template of the emitter) runs it, both chosen by name.

`task supervised` (the default) fits one network, `model`, to the dataset's targets. `task gan`
trains a `generator` against a `discriminator` on the dataset's samples, its labels unused.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from netspec.registry.base import Op, PosInt, Registry
from netspec.registry.sources import Source


class TrainingTask(Op):
    networks: ClassVar[tuple[str, ...]] = ()  # the train keys that name the networks it trains
    loss_target: ClassVar[tuple[str, ...]] = ()  # the `target`s of the losses that fit it
    trainer: ClassVar[str] = ""  # the runtime's trainer and the emitter's training template, by name
    unused: ClassVar[tuple[str, ...]] = ()  # train keys that mean nothing for it
    picture: ClassVar[str] = ""  # how its train section names its networks, for hints
    title: ClassVar[str] = ""  # what it trains, in words
    # what passes between its networks, for `netspec graph`: (from key, to key, label); "data" is the dataset
    flows: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    def label_classes(self, source: Source) -> int:
        """How many classes its networks are told as one-hot inputs (a conditional GAN's); 0: none."""
        return 0

    def described(self) -> str:
        """What it trains, in words, with its settings (`title` is the kind's)."""
        return self.title

    def edges(self) -> tuple[tuple[str, str, str], ...]:
        """Its `flows` with its settings: what `netspec graph` draws between its networks."""
        return self.flows


TASKS: Registry[type[TrainingTask]] = Registry("task")


@TASKS.register
class Supervised(TrainingTask):
    """Fit one network to the dataset's targets (classification or regression): `model Net`."""

    kind: Literal["supervised"] = "supervised"
    networks: ClassVar = ("model",)
    loss_target: ClassVar = ("class", "value", "binary")
    trainer: ClassVar[str] = "supervised"
    unused: ClassVar = ("generator_optimizer", "discriminator_optimizer")
    picture: ClassVar[str] = "`model Net`"
    title: ClassVar[str] = "a model"


@TASKS.register
class Gan(TrainingTask):
    """A generative adversarial network: the `generator` turns noise into samples, the
    `discriminator` scores samples as real (the dataset's) or fake (the generator's); they train
    in turns, the discriminator `d_steps` times per generator step. Labels are unused, unless
    `conditional=true`: then the generator draws the class it is given."""

    kind: Literal["gan"] = "gan"
    noise: Literal["normal", "uniform"] = Field("normal", description="the latent distribution: N(0, 1) or U(-1, 1)")
    d_steps: PosInt = Field(1, description="discriminator steps per generator step (5 for WGAN-GP)")
    samples: PosInt = Field(64, description="generated samples drawn after every epoch, from fixed noise")
    conditional: bool = Field(
        False,
        description="a conditional GAN (Mirza & Osindero 2014): both networks also see each sample's class "
        "as a one-hot vector, appended to the noise and as extra channels of the samples",
    )
    networks: ClassVar = ("generator", "discriminator")
    loss_target: ClassVar = ("adversarial",)
    trainer: ClassVar[str] = "adversarial"
    unused: ClassVar = ("model", "metrics", "early_stopping", "schedule", "precision", "compile")
    picture: ClassVar[str] = "`generator G` and `discriminator D` (that is `task gan`)"
    title: ClassVar[str] = "a GAN"
    flows: ClassVar = (("generator", "discriminator", "fake samples"), ("data", "discriminator", "real samples"))
    samples_seed: ClassVar[int] = 1_000_003  # of the fixed noise behind the samples, apart from training's

    def label_classes(self, source: Source) -> int:
        return (source.task().classes or 0) if self.conditional else 0

    def edges(self) -> tuple[tuple[str, str, str], ...]:
        told = (("data", "generator", "class labels"), ("data", "discriminator", "class labels"))
        return self.flows + (told if self.conditional else ())

    def described(self) -> str:
        return "a conditional GAN (both networks are told each sample's class)" if self.conditional else self.title

    @property
    def noise_function(self) -> str:
        """Its noise's function in netspec/verbatim/adversarial.py: `normal_noise` or `uniform_noise`."""
        return f"{self.noise}_noise"


def task_for(networks: int) -> type[TrainingTask] | None:
    """The task that trains this many networks together (for the hint to `model A, B`)."""
    return next((t for t in TASKS.entries.values() if len(t.networks) == networks), None)
