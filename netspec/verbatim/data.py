"""Data pieces shared by `netspec run` and the scripts `netspec emit` writes: batch
augmentation and preprocessing, and the helpers that stream images from disk.

Everything under netspec/verbatim/ imports only torch, numpy and the standard library,
because the emitter copies these functions verbatim into standalone scripts: one
implementation, two backends, the same numbers. Augmentations work on whole batches on
the device; random numbers come from an explicit CPU generator so that a seed fixes
them everywhere.

The copies are checked with ruff's default settings (88 columns), so the code here is
written to read the same at 88 columns as at the project's 120: short lines, and
trailing commas where a signature needs several.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F


def random_flip(
    x: torch.Tensor,
    g: torch.Generator,
    p: float,
    dim: int,
) -> torch.Tensor:
    """Flip each image along `dim` (-1: horizontal, -2: vertical) with probability p."""
    flip = (torch.rand(x.shape[0], generator=g) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(dim), x)


def _gather_windows(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    h: int,
    w: int,
) -> torch.Tensor:
    """Per-sample h x w windows of x starting at (top[i], left[i])."""
    rows = (top[:, None] + torch.arange(h))[:, None, :, None].to(x.device)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :].to(x.device)
    n = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[n, c, rows, cols]


def random_shift(x: torch.Tensor, g: torch.Generator, pixels: int) -> torch.Tensor:
    """Shift each image by up to `pixels` in each direction, filling with zeros."""
    n, _, h, w = x.shape
    top = torch.randint(0, 2 * pixels + 1, (n,), generator=g)
    left = torch.randint(0, 2 * pixels + 1, (n,), generator=g)
    return _gather_windows(F.pad(x, (pixels,) * 4), top, left, h, w)


def random_crop(
    x: torch.Tensor,
    g: torch.Generator,
    size: tuple[int, int],
    padding: int,
) -> torch.Tensor:
    """Zero-pad, then crop a random size[0] x size[1] window from each image."""
    x = F.pad(x, (padding,) * 4) if padding else x
    n, _, h, w = x.shape
    top = torch.randint(0, h - size[0] + 1, (n,), generator=g)
    left = torch.randint(0, w - size[1] + 1, (n,), generator=g)
    return _gather_windows(x, top, left, size[0], size[1])


def center_crop(x: torch.Tensor, size: tuple[int, int], padding: int) -> torch.Tensor:
    """The evaluation-time counterpart of random_crop."""
    x = F.pad(x, (padding,) * 4) if padding else x
    top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
    return x[:, :, top : top + size[0], left : left + size[1]]


def random_rotation(
    x: torch.Tensor,
    g: torch.Generator,
    degrees: float,
) -> torch.Tensor:
    """Rotate each image by a random angle in [-degrees, degrees] (bilinear, zero fill)."""
    angle = (torch.rand(x.shape[0], generator=g) * 2 - 1) * math.radians(degrees)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    rows = [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)]
    theta = torch.stack(rows, 1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std; mean and std broadcast over the batch."""
    return (x - mean) / std


def workers(device: torch.device) -> int:
    """Processes that decode streamed images: up to 4, one core left to training; none
    when training on a CPU with two cores or fewer, where a worker takes a core from
    the model (measured: bench/stream_speed.py)."""
    cores = os.cpu_count() or 1
    return 0 if device.type == "cpu" and cores <= 2 else min(4, cores - 1)


def collate(
    items: list[tuple[torch.Tensor | None, str | None]],
) -> tuple[torch.Tensor | None, str | None]:
    """A batch of (image, error) pairs: the images stacked, or the first error met."""
    errors = [error for _, error in items if error is not None]
    if errors:
        return None, errors[0]
    return torch.stack([x for x, _ in items if x is not None]), None
