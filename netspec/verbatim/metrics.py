"""Metrics shared by `netspec run` and the scripts `netspec emit` writes: a Meter that
accumulates a loss and the statistics metrics are computed from, and one function per
metric. Copied verbatim into scripts (see netspec/verbatim/data.py for the rules).
"""

from __future__ import annotations

from typing import Callable

import torch


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


def _average(m: Meter, how: object, score: Callable[..., torch.Tensor]) -> float:
    """score(tp, predicted, actual) per class, averaged as scikit-learn does (zero_division=0)."""
    tp = m.confusion.diag().double()  # type: ignore[union-attr]
    predicted, actual = m.confusion.sum(0).double(), m.confusion.sum(1).double()  # type: ignore[union-attr]
    values, present = score(tp, predicted, actual), (actual > 0) | (predicted > 0)
    if not present.any():
        return 0.0
    if how == "weighted":
        return (values * actual).sum().item() / actual.sum().item()
    if how == "micro":  # single-label: micro precision = recall = f1 = accuracy
        return tp.sum().item() / actual.sum().item()
    return values[present].mean().item()


def _precision(m: Meter, how: object) -> float:
    return _average(m, how, lambda tp, predicted, actual: tp / predicted.clamp(min=1))


def _recall(m: Meter, how: object) -> float:
    return _average(m, how, lambda tp, predicted, actual: tp / actual.clamp(min=1))


def _f1(m: Meter, how: object) -> float:
    return _average(m, how, lambda tp, pred, true: 2 * tp / (pred + true).clamp(min=1))


def _accuracy(m: Meter, _: object) -> float:
    return m.confusion.diag().sum().item() / max(1, m.confusion.sum().item())  # type: ignore[union-attr]


def _top_k(m: Meter, k: object) -> float:
    return m.top_k[k] / max(1, m.confusion.sum().item())  # type: ignore[index, union-attr]


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
