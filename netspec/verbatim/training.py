"""Training pieces shared by `netspec run` and the scripts `netspec emit` writes.

Everything here imports only torch and the standard library, because the emitter copies
these functions verbatim into standalone scripts: one implementation, two backends, the
same numbers. Augmentations work on whole batches on the device; random numbers come
from an explicit CPU generator so that a seed fixes them everywhere.

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


class Meter:
    """Accumulates a loss and the statistics that metrics are computed from, batch by batch."""

    def __init__(
        self,
        classes: int = 0,
        top_k: tuple[int, ...] = (),
        threshold: float | None = None,
    ) -> None:
        # one binary output: 0.5 for probabilities, 0 for logits; None: guess
        self.threshold = threshold
        self.count = 0
        self.loss_sum = 0.0
        self.confusion: torch.Tensor | None = None
        if classes:
            self.confusion = torch.zeros(classes, classes, dtype=torch.long)
        self.top_k = {k: 0 for k in top_k}
        self.abs_err = 0.0
        self.sq_err = 0.0

    def update(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.count += n
        self.loss_sum += loss.item() * n
        if self.confusion is not None:
            self._classes(out.detach(), y)
        else:
            err = out.detach().float() - y.float()
            self.abs_err += err.abs().sum().item() / max(1, err[0].numel())
            self.sq_err += err.pow(2).sum().item() / max(1, err[0].numel())

    def _classes(self, out: torch.Tensor, y: torch.Tensor) -> None:
        assert self.confusion is not None
        classes = self.confusion.shape[0]
        # one binary output: a probability or a logit
        if out.shape[-1] == 1 and classes == 2:
            threshold = self.threshold
            if threshold is None:
                threshold = 0.0 if out.min() < 0 or out.max() > 1 else 0.5
            out = torch.cat([threshold - out, out - threshold], -1)
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1).long()
        pred = out.argmax(-1)
        counts = torch.bincount((y * classes + pred).cpu(), minlength=classes * classes)
        self.confusion += counts.view(classes, classes)
        for k in self.top_k:
            hits = (out.topk(k, -1).indices == y[:, None]).any(-1)
            self.top_k[k] += int(hits.sum().item())

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.count)

    def metrics(self, wanted: dict[str, object]) -> dict[str, float]:
        """Metric name -> value; `wanted` maps each name to its argument (k, or the averaging)."""
        return {name: float(METRICS[name](self, arg)) for name, arg in wanted.items()}


def _per_class(confusion: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """True positives, predicted and actual counts per class."""
    tp = confusion.diag().double()
    return tp, confusion.sum(0).double(), confusion.sum(1).double()


def _average(
    values: torch.Tensor,
    tp: torch.Tensor,
    predicted: torch.Tensor,
    actual: torch.Tensor,
    how: object,
) -> float:
    """Combine per-class values over the classes present as labels or predictions, as scikit-learn
    does (zero_division=0)."""
    present = (actual > 0) | (predicted > 0)
    if not present.any():
        return 0.0
    if how == "weighted":
        return (values * actual).sum().item() / actual.sum().item()
    if how == "micro":  # single-label: micro precision = recall = f1 = accuracy
        return tp.sum().item() / actual.sum().item()
    return values[present].mean().item()


def _precision(m: Meter, how: object) -> float:
    tp, predicted, actual = _per_class(m.confusion)  # type: ignore[arg-type]
    return _average(tp / predicted.clamp(min=1), tp, predicted, actual, how)


def _recall(m: Meter, how: object) -> float:
    tp, predicted, actual = _per_class(m.confusion)  # type: ignore[arg-type]
    return _average(tp / actual.clamp(min=1), tp, predicted, actual, how)


def _f1(m: Meter, how: object) -> float:
    tp, predicted, actual = _per_class(m.confusion)  # type: ignore[arg-type]
    f1 = 2 * tp / (predicted + actual).clamp(min=1)
    return _average(f1, tp, predicted, actual, how)


def _accuracy(m: Meter, _: object) -> float:
    assert m.confusion is not None
    return m.confusion.diag().sum().item() / max(1, m.confusion.sum().item())


def _top_k(m: Meter, k: object) -> float:
    assert m.confusion is not None
    return m.top_k[k] / max(1, m.confusion.sum().item())  # type: ignore[index]


def _mse(m: Meter, _: object) -> float:
    return m.sq_err / max(1, m.count)


def _mae(m: Meter, _: object) -> float:
    return m.abs_err / max(1, m.count)


METRICS = {
    "accuracy": _accuracy,
    "top_k": _top_k,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "mse": _mse,
    "mae": _mae,
}
