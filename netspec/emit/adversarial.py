"""The training part of a GAN script's context (the `adversarial` trainer, as netspec.runtime.adversarial
trains): both networks' classes and optimizers, and the losses and noise it copies from
netspec/verbatim/adversarial.py, never written again in a template."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from netspec.emit.model import Call, Param, Value
from netspec.emit.verbatim import copied
from netspec.ir import nodes as ir


def adversarial_context(program: ir.Program, classes: dict[str, str], augments: bool) -> dict[str, Any]:
    """A generator against a discriminator: what the GAN templates see."""
    train = program.train
    assert train is not None
    generator, discriminator = program.network(train.generator), program.network(train.discriminator)
    assert generator is not None and discriminator is not None
    task, loss = train.task, train.loss
    labels = conditional_classes(program)
    copies = copied("adversarial", _helpers(train, labels))
    return {
        "train": train,
        "task": task,
        "title": f"a GAN, {generator.name} against {discriminator.name},",
        "evaluates": False,
        "pt_files": ".pt files",  # the weights without safetensors: generator.pt, discriminator.pt
        "trainer_settings": _settings(task, generator, labels),
        "label_classes": labels,  # a conditional GAN's, appended to both networks' inputs; 0: not conditional
        "generator_class": classes[generator.name],
        "discriminator_class": classes[discriminator.name],
        "sample_shape": generator.output_shape,
        "noise_shape": generator.input_shape,
        "judged_shape": discriminator.input_shape,
        "image_samples": _images(generator),
        "noise_function": task.noise_function,  # type: ignore[attr-defined]
        "d_loss_call": Call(loss.discriminator_function, [Param("real_score"), Param("fake_score")], _kwargs(loss)),  # type: ignore[attr-defined]
        "g_loss_function": loss.generator_function,  # type: ignore[attr-defined]
        "penalty_weight": loss.penalty_weight(),  # type: ignore[attr-defined]
        "g_optimizer_call": _optimizer(train.optimizer_of("generator"), "generator"),
        "d_optimizer_call": _optimizer(train.optimizer_of("discriminator"), "discriminator"),
        **_calls(augments, train),
        "loss_helpers": [Markup(d.source) for d in copies],
        "metric_funcs": [],
        "used_modules": set(),
        "copies": copies,
    }


def _helpers(train: ir.Train, classes: int) -> set[str]:
    """The functions of netspec/verbatim/adversarial.py that the training calls."""
    loss = train.loss
    penalty = {"gradient_penalty"} if loss.penalty_weight() else set()  # type: ignore[attr-defined]
    labels = {"with_labels"} if classes else set()
    return {loss.discriminator_function, loss.generator_function, train.task.noise_function} | penalty | labels  # type: ignore[attr-defined]


def _settings(task: Any, generator: ir.Network, classes: int) -> list[tuple[str, Any, str]]:
    """The script's GAN constants: (name, value, comment); those of samples.png for images only."""
    settings = [("LATENT", int(generator.input_shape[0]) - classes, "the size of the generator's noise input")]
    if classes:
        settings.append(("CLASSES", classes, "one-hot labels beside the noise and the images (a conditional GAN)"))
    if task.d_steps > 1:
        settings.append(("D_STEPS", task.d_steps, "discriminator steps per generator step"))
    if not _images(generator):
        return settings
    return settings + [
        ("N_SAMPLES", task.samples, "drawn from fixed noise at the end, into samples.png"),
        ("SAMPLES_SEED", task.samples_seed, "of that noise, as netspec run draws it"),
    ]


def conditional_classes(program: ir.Program) -> int:
    """A conditional GAN's number of classes, told to both networks; 0 otherwise."""
    assert program.train is not None and program.dataset is not None
    return program.train.task.label_classes(program.dataset.source)


def _images(generator: ir.Network) -> bool:
    """Whether the generator draws images [C, H, W], which the script shows in samples.png."""
    return len(generator.output_shape) == 3


def _kwargs(loss: Any) -> list[tuple[str, Any]]:
    return [(k, Value(v)) for k, v in loss.discriminator_args().items()]


def _optimizer(optimizer: Any, net: str) -> Call:
    """The optimizer of netspec.runtime.adversarial._optimizer, over one network's parameters."""
    kwargs = [(k, Value(v)) for k, v in optimizer.torch_kwargs().items()]
    return Call(f"torch.optim.{optimizer.torch_class}", [Call(f"{net}.parameters")], kwargs)


NETWORKS = ("generator", "discriminator", "g_optimizer", "d_optimizer")


def _calls(augments: bool, train: ir.Train) -> dict[str, Any]:
    """The signatures of the training loop and the checkpoints: only the arguments the spec needs."""
    optional = [name for name, used in (("augment", augments), ("steps", bool(train.steps))) if used]
    train_args = [*NETWORKS, "train", "rng", "state", *optional]
    checkpoint_args = ["out", *NETWORKS, "rng", "state"]
    return {
        "train_params": _params(train_args),
        "train_call": _call("train_epoch", train_args),
        "checkpoint_params": _params(checkpoint_args),
        "save_call": _call("save_checkpoint", checkpoint_args),
        "load_params": _params(checkpoint_args[:-1]),
        "load_call": _call("load_checkpoint", checkpoint_args[:-1]),
    }


def _params(names: list[str]) -> list[tuple[str, None]]:
    return [(n, None) for n in names]


def _call(func: str, args: list[str]) -> Call:
    """A call whose arguments are the script's variables of those names."""
    return Call(func, [Param(a) for a in args])
