"""GAN training's losses and noise, used by `netspec run` and copied into scripts.

The discriminator outputs one score (a logit) per sample; `real` and `fake` are its
scores of a batch of the dataset's samples and of the generator's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bce_discriminator_loss(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))): real samples toward 1 (1 - smoothing), fakes
    toward 0."""
    real_target = torch.full_like(real, 1.0 - smoothing)
    real_loss = F.binary_cross_entropy_with_logits(real, real_target)
    return real_loss + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def bce_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)), the non-saturating generator loss: strong while D wins."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))): only scores on the wrong side of the
    margin count."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-D(G(z)): raise the discriminator's score of the fakes."""
    return -fake.mean()


def wasserstein_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D(G(z)) - D(x): the critic's estimate of the Wasserstein distance, negated."""
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-D(G(z)): move the fakes toward where the critic scores real samples."""
    return -fake.mean()


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """(|grad D(x_hat)| - 1)^2 at random points x_hat between real and fake samples
    (WGAN-GP)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def normal_noise(n: int, size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Latent vectors from N(0, 1)."""
    return torch.randn(n, size, device=device, generator=generator)


def uniform_noise(n: int, size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Latent vectors from U(-1, 1)."""
    return torch.rand(n, size, device=device, generator=generator) * 2 - 1


def with_labels(x: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """x with each sample's label appended as one-hot values after its own (the first
    axis after the batch): noise [n, latent] -> [n, latent + classes], images
    [n, C, H, W] -> [n, C + classes, H, W] (a conditional GAN's inputs)."""
    onehot = F.one_hot(labels, classes).to(x.dtype)
    onehot = onehot.reshape(*onehot.shape, *[1] * (x.dim() - 2))
    return torch.cat([x, onehot.expand(-1, -1, *x.shape[2:])], dim=1)
