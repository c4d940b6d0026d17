"""Plots for the run directory (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed, and none is opened

import matplotlib.pyplot as plt
import torch


def curves(path: Path, rows: list[dict[str, float]]) -> None:
    """Loss per epoch (train and validation), and each validation metric."""
    metrics = [k for k in rows[0] if k.startswith("val_") and k != "val_loss"] if rows else []
    fig, axes = plt.subplots(1, 1 + bool(metrics), figsize=(5 * (1 + bool(metrics)), 3.5), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for key in ("train_loss", "val_loss"):
        if rows and key in rows[0]:
            axes[0][0].plot(epochs, [r[key] for r in rows], marker="o", label=key.replace("_", " "))
    axes[0][0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0][0].legend()
    for key in metrics:
        axes[0][1].plot(epochs, [r[key] for r in rows], marker="o", label=key[4:])
    if metrics:
        axes[0][1].set(xlabel="epoch", title="validation metrics")
        axes[0][1].legend()
    _save(fig, path)


def confusion(path: Path, outputs: torch.Tensor, labels: torch.Tensor, names: list[str] | None) -> None:
    """The test confusion matrix: rows are true classes, columns predictions."""
    classes = outputs.shape[-1] if outputs.shape[-1] > 1 else 2
    pred = outputs.argmax(-1) if outputs.shape[-1] > 1 else (outputs[:, 0] > 0.5).long()
    matrix = torch.bincount(
        labels.cpu().reshape(-1).long() * classes + pred.reshape(-1), minlength=classes * classes
    ).view(classes, classes)
    size = min(12, 2 + classes * 0.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    if classes <= 20:
        ticks = names if names and len(names) == classes else [str(i) for i in range(classes)]
        ax.set_xticks(range(classes), ticks, rotation=90)
        ax.set_yticks(range(classes), ticks)
        for i in range(classes):
            for j in range(classes):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    _save(fig, path)


def predictions(
    path: Path,
    images: torch.Tensor,
    outputs: torch.Tensor,
    labels: torch.Tensor,
    names: list[str] | None,
    count: int = 16,
) -> None:
    """A grid of test images with predicted and true labels (wrong ones in red)."""
    count = min(count, images.shape[0])
    fig, axes = plt.subplots(2, (count + 1) // 2, figsize=(count * 0.8, 3.6), squeeze=False)
    pred = outputs.argmax(-1)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= count:
            continue
        img = images[i].detach().cpu().float()
        img = (img - img.min()) / (img.max() - img.min() + 1e-8)
        pixels = (img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy()
        ax.imshow(pixels, cmap="gray" if img.shape[0] == 1 else None)
        p, t = int(pred[i]), int(labels[i])
        ax.set_title(f"{_label(p, names)}\n({_label(t, names)})", fontsize=7, color="black" if p == t else "red")
    _save(fig, path)


def _label(k: int, names: list[str] | None) -> str:
    return names[k] if names and k < len(names) else str(k)


def _save(fig: plt.Figure, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
