"""Plots for the run directory and `netspec show` (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Union

import matplotlib

matplotlib.use("Agg")  # no display needed, and none is opened

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

Images = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]  # a batch, or the inputs at some indices
MAX_MATRIX = 20  # classes; with more, the confusion plot shows the most confused pairs


# --- curves.png -------------------------------------------------------------------------------


def curves(path: Path, rows: list[dict[str, float]], steps: list[dict[str, float]] | None = None) -> None:
    """The training loss per step (from steps.csv; per epoch without it) with the validation loss
    per epoch, and each validation metric per epoch."""
    metrics = [k for k in rows[0] if k.startswith("val_") and k != "val_loss"] if rows else []
    fig, axes = plt.subplots(
        1, 1 + bool(metrics), figsize=(5.5 * (1 + bool(metrics)), 3.8), squeeze=False, layout="constrained"
    )
    last = max([r["epoch"] for r in rows] + [s["epoch"] for s in steps or []] + [1])
    _loss_axes(axes[0][0], rows, steps or [])
    if metrics:
        _metric_axes(axes[0][1], rows, metrics)
    for ax in axes[0]:
        ax.set_xlim(0, last * 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    _save(fig, path)


def _loss_axes(ax: Any, rows: list[dict[str, float]], steps: list[dict[str, float]]) -> None:
    values: list[float] = []
    if steps:
        x, y = step_positions(steps), [s["loss"] for s in steps]
        ax.plot(x, y, color="tab:blue", alpha=0.25, linewidth=0.8)
        name = "train loss" if not _other_losses(rows) else _other_losses(rows)[0].replace("_", " ")
        ax.plot(x, smooth(y), color="tab:blue", label=f"{name} (per step, smoothed)")
        values += y
    else:
        y = [r["train_loss"] for r in rows]
        ax.plot([r["epoch"] for r in rows], y, marker="o", color="tab:blue", label="train loss")
        values += y
    for key, color in zip(_other_losses(rows), ("tab:green", "tab:red", "tab:purple")):  # a GAN's d_loss, g_loss
        other = [(r["epoch"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*other), marker="o", color=color, label=key.replace("_", " ") + " (per epoch)")
        values += [v for _, v in other]
    val = [(r["epoch"], r["val_loss"]) for r in rows if "val_loss" in r]
    if val:
        ax.plot(*zip(*val), marker="o", color="tab:orange", label="validation loss")
        values += [v for _, v in val]
    _loss_scale(ax, values)
    ax.set(ylabel="loss", title="loss")
    if values:  # below the axes: over them it hides the curves it names
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize="small")


def _other_losses(rows: list[dict[str, float]]) -> list[str]:
    """The per-epoch losses besides the training and validation loss (a GAN's two networks')."""
    keys = dict.fromkeys(k for r in rows for k in r)
    return [k for k in keys if k.endswith("_loss") and k not in ("train_loss", "val_loss")]


def step_positions(steps: list[dict[str, float]]) -> list[float]:
    """Each step's place on the epoch axis: step k of n in epoch e is at e - 1 + k / n."""
    per_epoch: dict[float, int] = {}
    for s in steps:
        per_epoch[s["epoch"]] = per_epoch.get(s["epoch"], 0) + 1
    seen: dict[float, int] = {}
    out = []
    for s in steps:
        seen[s["epoch"]] = seen.get(s["epoch"], 0) + 1
        out.append(s["epoch"] - 1 + seen[s["epoch"]] / per_epoch[s["epoch"]])
    return out


def smooth(values: list[float]) -> list[float]:
    """A trailing mean over about 2% of the values (at least 1, at most 50)."""
    window = max(1, min(50, len(values) // 50))
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _loss_scale(ax: Any, values: list[float]) -> None:
    """A log scale where the loss spans two orders of magnitude or more; else linear from 0."""
    if not values:
        return
    low, high = min(values), max(values)
    if low > 0 and high / low >= 100:
        ax.set_yscale("log")
    elif low >= 0:
        ax.set_ylim(0, high * 1.05 or 1)


def _metric_axes(ax: Any, rows: list[dict[str, float]], metrics: list[str]) -> None:
    values = []
    for key in metrics:
        points = [(r["epoch"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*points), marker="o", label=key[4:])
        values += [v for _, v in points]
    low, high = min(values), max(values)
    pad = max(0.05 * (high - low), 0.01 * max(abs(high), 1e-12), 1e-3)
    bottom, top = low - pad, high + pad
    if low >= 0 and high <= 1:  # fractions (accuracy, f1, ...): not below 0, not far above 1
        bottom, top = max(0.0, bottom), min(top, 1.0 + pad / 2)
    ax.set_ylim(bottom, top)
    ax.set(title="validation metrics")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False, fontsize="small")


# --- confusion.png ----------------------------------------------------------------------------


def confusion(path: Path, outputs: torch.Tensor, labels: torch.Tensor, names: list[str] | None) -> None:
    """The test confusion matrix (rows: true classes, columns: predictions); with more than 20
    classes, a bar chart of the most confused pairs instead."""
    matrix = confusion_matrix(outputs, labels)
    classes = matrix.shape[0]
    if classes > MAX_MATRIX:
        _confused_pairs(path, matrix, names)
        return
    size = 2 + classes * 0.5
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    ax.imshow(matrix.numpy(), cmap="Blues")
    ticks = [_label(i, names) for i in range(classes)]
    ax.set_xticks(range(classes), ticks, rotation=90)
    ax.set_yticks(range(classes), ticks)
    threshold = matrix.max().item() / 2
    for i in range(classes):
        for j in range(classes):
            count = int(matrix[i, j])
            ax.text(
                j, i, str(count), ha="center", va="center", fontsize=7, color="white" if count > threshold else "black"
            )
    ax.set(xlabel="predicted", ylabel="true", title=f"test confusion matrix (accuracy {_accuracy(matrix):.2%})")
    _save(fig, path)


def confusion_matrix(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[classes, classes] counts, rows true, columns predicted."""
    classes = outputs.shape[-1] if outputs.shape[-1] > 1 else 2
    pred = outputs.argmax(-1) if outputs.shape[-1] > 1 else (outputs[..., 0] > 0.5).long()
    flat = labels.cpu().reshape(-1).long() * classes + pred.cpu().reshape(-1)
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes)


def confused_pairs(matrix: torch.Tensor, count: int = 20) -> list[tuple[int, int, int]]:
    """The `count` most frequent mistakes: (true, predicted, how often), most frequent first."""
    off = matrix.clone()
    off.fill_diagonal_(0)
    values, index = off.flatten().sort(descending=True, stable=True)
    classes = matrix.shape[0]
    return [(int(i) // classes, int(i) % classes, int(v)) for v, i in zip(values[:count], index[:count]) if v > 0]


def _confused_pairs(path: Path, matrix: torch.Tensor, names: list[str] | None) -> None:
    pairs = confused_pairs(matrix)
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.3 * max(len(pairs), 1)), layout="constrained")
    labels = [f"true {_label(t, names, quote=True)} → predicted {_label(p, names, quote=True)}" for t, p, _ in pairs]
    ax.barh(range(len(pairs)), [n for _, _, n in pairs], color="tab:red")
    ax.set_yticks(range(len(pairs)), labels, fontsize=8)
    ax.invert_yaxis()  # the most frequent on top
    for i, (t, _, n) in enumerate(pairs):
        share = n / max(1, int(matrix[t].sum()))
        ax.text(n, i, f" {n} ({share:.0%} of true {_label(t, names, quote=True)})", va="center", fontsize=7)
    ax.margins(x=0.3)
    total = f"{matrix.shape[0]} classes, accuracy {_accuracy(matrix):.2%}"
    ax.set(xlabel="test samples", title=f"the most confused pairs ({total})")
    _save(fig, path)


def _accuracy(matrix: torch.Tensor) -> float:
    return float(matrix.diag().sum()) / max(1, int(matrix.sum()))


# --- predictions.png and image grids ----------------------------------------------------------


def predictions(
    path: Path, images: Images, outputs: torch.Tensor, labels: torch.Tensor, names: list[str] | None, count: int = 16
) -> None:
    """A grid of test images, the mistakes first (the most confident first), then correct ones, each
    titled with the predicted class and its probability over the true class."""
    probs = probabilities(outputs)
    conf, pred = probs.max(-1)
    labels = labels.cpu().reshape(-1)
    order = pick(pred, labels, conf, count)
    x = images(order) if callable(images) else images[order.to(images.device)]
    wrong = int((pred != labels).sum())
    titles, colors = [], []
    for i in order.tolist():
        p, t = int(pred[i]), int(labels[i])
        titles.append(f"pred {_label(p, names)} ({float(conf[i]):.0%})\ntrue {_label(t, names)}")
        colors.append("black" if p == t else "red")
    heading = (
        f"test predictions (predicted, its probability / true): {wrong} of {len(labels)} wrong; mistakes first, in red"
    )
    image_grid(path, x, titles, colors, heading)


def probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities from outputs that are probabilities already or logits."""
    outputs = outputs.detach().float().cpu()
    is_probability = bool(((outputs >= 0) & (outputs <= 1)).all()) and bool(
        torch.allclose(outputs.sum(-1), torch.ones(outputs.shape[:-1]), atol=1e-3)
    )
    return outputs if is_probability else outputs.softmax(-1)


def pick(pred: torch.Tensor, labels: torch.Tensor, conf: torch.Tensor, count: int) -> torch.Tensor:
    """Indices to show: the mistakes, most confident first, then correct predictions in order."""
    wrong = (pred != labels).nonzero().flatten()
    wrong = wrong[conf[wrong].argsort(descending=True, stable=True)]
    right = (pred == labels).nonzero().flatten()
    return torch.cat([wrong, right])[:count]


def image_grid(path: Path, images: torch.Tensor, titles: list[str], colors: list[str], heading: str) -> None:
    """Images [N, C, H, W] in rows of up to 8, each with its title; laid out so that nothing overlaps."""
    n = images.shape[0]
    cols = min(8, max(n, 1))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.75 * rows + 0.5), squeeze=False, layout="constrained")
    pixels = displayable(images) if n else images
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = pixels[i]
        ax.imshow((img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(titles[i], fontsize=8, color=colors[i])
    fig.suptitle(heading, fontsize=9)
    _save(fig, path)


def sample_grid(path: Path, images: torch.Tensor, heading: str, columns: int = 8) -> None:
    """Generated images [N, C, H, W] in [0, 1], as one montage of `columns` per row (a GAN's samples;
    a conditional GAN's: a column per class)."""
    montage = tile(images, columns)
    h, w = montage.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(3.0, w / 40), max(3.0, h / 40) + 0.3), layout="constrained")
    ax.imshow((montage[0] if montage.shape[0] == 1 else montage.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(heading, fontsize=9)
    _save(fig, path)


def tile(images: torch.Tensor, columns: int = 8, pad: int = 2) -> torch.Tensor:
    """Images [N, C, H, W] side by side, `columns` to a row, `pad` pixels of white between: [C, H', W']."""
    n, c, h, w = images.shape
    cols = min(columns, max(n, 1))
    rows = -(-n // cols)
    out = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(n):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        out[:, top : top + h, left : left + w] = images[i].detach().cpu().float()
    return out


def displayable(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] for display: each channel scaled by its range over the whole batch, which undoes
    a normalization (an affine map per channel) while keeping the images' brightness relative to each other."""
    x = images.detach().cpu().float()
    low = x.amin(dim=(0, 2, 3), keepdim=True)
    high = x.amax(dim=(0, 2, 3), keepdim=True)
    return ((x - low) / (high - low).clamp_min(1e-8)).clamp(0, 1)


def _label(k: int, names: list[str] | None, quote: bool = False) -> str:
    name = names[k] if names and k < len(names) else str(k)
    if quote or not name.isprintable() or not name.strip():
        return repr(name) if names else name
    return name


def _save(fig: plt.Figure, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not fig.get_constrained_layout():
        fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
