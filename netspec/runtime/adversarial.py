"""The `gan` task's trainer: a generator and a discriminator trained in turns on the dataset's samples.

Each training batch is one discriminator step, on the batch (real) and on as many generated samples
(fake); every `d_steps`-th batch is also a generator step, on the same fakes scored again by the
updated discriminator (the order of the PyTorch DCGAN tutorial). The epoch's row holds both
losses; after every epoch the generator draws the same fixed noise batch into
`samples/epoch-NNN.png`, and at the end into `samples.png`. Both networks live in one
`nn.ModuleDict`, so the weights and the checkpoint hold both (`generator.*`, `discriminator.*`),
and their optimizers are saved as one (`OptimizerPair`): a GAN resumes exactly like any run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from netspec.ir import nodes as ir
from netspec.runtime import rundir
from netspec.runtime.build import build_network, build_optimizer
from netspec.runtime.console import plural
from netspec.runtime.rundir import State
from netspec.verbatim import adversarial as vadv


class OptimizerPair:
    """The generator's and the discriminator's optimizers, saved and restored as one optimizer whose
    parameter groups are the generator's, then the discriminator's (torch's state_dict layout)."""

    def __init__(self, generator: torch.optim.Optimizer, discriminator: torch.optim.Optimizer) -> None:
        self.generator, self.discriminator = generator, discriminator

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.generator.param_groups + self.discriminator.param_groups  # the generator's lr is logged

    def state_dict(self) -> dict[str, Any]:
        g, d = self.generator.state_dict(), self.discriminator.state_dict()
        n = sum(len(group["params"]) for group in g["param_groups"])
        shifted = [{**group, "params": [i + n for i in group["params"]]} for group in d["param_groups"]]
        state = {**g["state"], **{i + n: v for i, v in d["state"].items()}}
        return {"state": state, "param_groups": g["param_groups"] + shifted}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        count = len(self.generator.param_groups)
        n = sum(len(group["params"]) for group in saved["param_groups"][:count])
        own = {int(i): v for i, v in saved["state"].items()}
        self.generator.load_state_dict(
            {"state": {i: v for i, v in own.items() if i < n}, "param_groups": saved["param_groups"][:count]}
        )
        groups = [{**group, "params": [i - n for i in group["params"]]} for group in saved["param_groups"][count:]]
        self.discriminator.load_state_dict(
            {"state": {i - n: v for i, v in own.items() if i >= n}, "param_groups": groups}
        )


class GanTrainer:
    """What the loop asks of a trainer: a step, an epoch's row, what to draw after an epoch and at the end."""

    def __init__(self, program: ir.Program, at_eval: list[Callable[[Any], Any]]) -> None:
        train = program.train
        assert train is not None
        self.task, self.loss, self.clip = train.task, train.loss, train.clip_grad
        self.program, self.classes = program, classes(program)
        self.d_loss = getattr(vadv, train.loss.discriminator_function)  # type: ignore[attr-defined]
        self.g_loss = getattr(vadv, train.loss.generator_function)  # type: ignore[attr-defined]
        self.at_eval = at_eval

    def step(self, exp: Any, state: State, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One discriminator step and, every `d_steps`-th batch, one generator step; the
        discriminator's loss, and the generator's added to `state.sums`."""
        g, d, opt = exp.model["generator"], exp.model["discriminator"], exp.optimizer
        labels = y if self.classes else None  # a conditional GAN draws and judges each sample's class
        fake = g(generator_input(self.program, len(x), x.device, labels=labels))
        real, fake_judged = self._judged(x, labels), self._judged(fake.detach(), labels)
        d_loss = self.d_loss(d(real), d(fake_judged), **self.loss.discriminator_args())  # type: ignore[attr-defined]
        if self.loss.penalty_weight():  # type: ignore[attr-defined]
            d_loss = d_loss + self.loss.penalty_weight() * vadv.gradient_penalty(d, real, fake_judged)  # type: ignore[attr-defined]
        self._update(d, opt.discriminator, d_loss)
        if (state.step + 1) % self.task.d_steps == 0:  # type: ignore[attr-defined]
            g_loss = self.g_loss(d(self._judged(fake, labels)))
            self._update(g, opt.generator, g_loss)
            sums = state.sums
            sums["g_loss"], sums["g_seen"] = (
                sums.get("g_loss", 0.0) + g_loss.item() * len(x),
                sums.get("g_seen", 0) + len(x),
            )
        return d_loss.detach()

    def _columns(self) -> str:
        """What a conditional GAN's grid shows: a column per class."""
        return f" · column k: class k (0 to {self.classes - 1})" if self.classes else ""

    def _judged(self, samples: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """What the discriminator sees: the samples, with their labels as one-hot channels if conditional."""
        return samples if labels is None else vadv.with_labels(samples, labels, self.classes)

    def _update(self, net: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            nn.utils.clip_grad_norm_(net.parameters(), self.clip)
        optimizer.step()

    def summary(self) -> dict[str, Any]:
        """What the run's summary adds: where the final samples are."""
        return {"samples": "samples.png"}

    def row(
        self, exp: Any, state: State, train_loss: float, seconds: float, sums: dict[str, float]
    ) -> dict[str, float]:
        g_loss = sums["g_loss"] / sums["g_seen"] if sums.get("g_seen") else math.nan
        lr = exp.optimizer.generator.param_groups[0]["lr"]
        return {"epoch": state.epoch, "d_loss": train_loss, "g_loss": g_loss, "lr": lr, "seconds": seconds}

    @torch.no_grad()
    def samples(self, exp: Any) -> torch.Tensor:
        """The generator's images of the fixed noise batch, the dataset's normalization undone:
        [N, C, H, W] in [0, 1]."""
        g = exp.model["generator"]
        was_training = g.training
        g.eval()
        fixed = torch.Generator().manual_seed(self.task.samples_seed)  # type: ignore[attr-defined]
        z = generator_input(self.program, self.task.samples, exp.device, fixed)  # type: ignore[attr-defined]
        images = undo(g(z).float().cpu(), self.at_eval)
        g.train(was_training)
        return images

    def after_epoch(self, out: Path, exp: Any, state: State) -> None:
        picture = out / "samples" / f"epoch-{state.epoch:03d}.png"
        draw(picture, self.samples(exp), f"epoch {state.epoch}{self._columns()}", self.classes)

    def finish(self, out: Path, exp: Any, state: State) -> None:
        """samples.png, and each network's weights on its own."""
        title = f"after {plural(state.epoch, 'epoch')}{self._columns()}"
        draw(out / "samples.png", self.samples(exp), title, self.classes)
        save_weights(out, exp.model)


def classes(program: ir.Program) -> int:
    """The classes a conditional GAN appends to its networks' inputs as one-hot values; 0 otherwise."""
    train, dataset = program.train, program.dataset
    return train.task.label_classes(dataset.source) if train is not None and dataset is not None else 0


def label_problem(program: ir.Program, label: int | None) -> str | None:
    """Why `label` cannot be asked of this GAN's generator (`netspec sample --label`, POST /sample), or None."""
    k = classes(program)
    if label is not None and not k:
        return "label needs a conditional GAN (`task gan(conditional=true)`): this GAN is not told a class"
    if label is not None and label >= k:
        return f"label must be a class of the dataset, 0 to {k - 1}, not {label}"
    return None


def latent_size(program: ir.Program) -> int:
    """The size of the generator's noise: its input, less a conditional GAN's one-hot label."""
    assert program.train is not None
    net = program.network(program.train.generator)
    assert net is not None
    return int(net.input_shape[0]) - classes(program)


def generator_input(
    program: ir.Program,
    count: int,
    device: torch.device,
    rng: torch.Generator | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The generator's input for `count` samples: noise of the task's distribution, drawn on the CPU
    from `rng` (or on `device` from torch's global generator, as in training), and for a conditional
    GAN each sample's one-hot label (by default the classes in turn: 0, 1, ..., 0, 1, ...)."""
    assert program.train is not None
    noise = getattr(vadv, program.train.task.noise_function)  # type: ignore[attr-defined]
    z = noise(count, latent_size(program), torch.device("cpu") if rng is not None else device, rng).to(device)
    k = classes(program)
    if not k:
        return z
    wanted = labels if labels is not None else torch.arange(count) % k
    return vadv.with_labels(z, wanted.to(device), k)


def undo(images: torch.Tensor, at_eval: list[Callable[[Any], Any]]) -> torch.Tensor:
    """Samples from the preprocessed space back to the data's (images: to [0, 1]). The deterministic
    preprocessing (normalize, standardize) is affine per value, f(x) = a x + b: a and b are read off
    f(0) and f(1)."""
    zeros, ones = torch.zeros(1, *images.shape[1:]), torch.ones(1, *images.shape[1:])
    for fn in at_eval:
        zeros, ones = fn(zeros), fn(ones)
    scale = ones - zeros
    values = (images - zeros) / torch.where(scale == 0, 1.0, scale)
    return values.clamp(0, 1) if values.dim() == 4 else values  # pixels in [0, 1]; other values as they are


def draw(path: Path, images: torch.Tensor, title: str, columns: int = 0) -> None:
    """A grid of generated images (nothing for samples that are not images [C, H, W], nor without
    matplotlib, which is optional for running)."""
    if images.dim() != 4:
        return
    try:
        from netspec.runtime import plots
    except ImportError:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.sample_grid(path, images, title, columns or 8)


def build(program: ir.Program, device: torch.device) -> tuple[nn.ModuleDict, OptimizerPair]:
    """Both networks (the generator's weights drawn first, from the seed) and their optimizers."""
    train = program.train
    assert train is not None
    torch.manual_seed(train.seed)
    nets = {key: build_network(program.network(name)) for key, name in train.trained().items()}  # type: ignore[arg-type]
    model = nn.ModuleDict(nets).to(device)
    optimizers = [build_optimizer(train.optimizer_of(key), model[key]) for key in train.task.networks]
    return model, OptimizerPair(*optimizers)


def save_weights(out: Path, model: nn.ModuleDict) -> None:
    """generator.safetensors and discriminator.safetensors, each loadable into its own network."""
    for key in model:
        rundir.save_tensors(out / f"{key}.safetensors", dict(model[key].state_dict()))
