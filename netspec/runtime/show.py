"""`netspec show`: look at the data before training on it.

The first training samples of a spec, in the order training takes them, after preprocessing and
augmentation, read with the runtime's own loading and transforms: of images, a grid with their
labels (normalization undone for display); of anything else, a small table on the console.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netspec.ir import nodes as ir
from netspec.runtime.datasets import load, resolve_root
from netspec.runtime.splits import Data, batches, prepare_data

CPU = torch.device("cpu")


@dataclass
class Samples:
    x: torch.Tensor  # inputs as training sees them
    y: torch.Tensor
    classes: list[str] | None  # class names, or the characters of a text's token ids


def samples(program: ir.Program, data_dir: str | None, spec_dir: Path | None, count: int, download: bool) -> Samples:
    """The first `count` training samples in training order, preprocessed and augmented."""
    dataset, train = program.dataset, program.train
    assert dataset is not None and train is not None
    arrays = load(dataset.source, resolve_root(data_dir), spec_dir, train.seed, download)
    data = prepare_data(program, arrays, CPU)
    return first(data, count, train.seed, dataset.shuffle, arrays.classes or arrays.vocab)


def first(data: Data, count: int, seed: int, shuffle: bool, names: list[str] | None = None) -> Samples:
    """As the first epoch takes them: the same seeded order, the same augmentation."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.train), generator=g) if shuffle else torch.arange(len(data.train))
    x, y = next(batches(data.train, order[:count], count, CPU))
    for augment in data.augment:
        x = augment(x, g)
    return Samples(x, y, names or data.classes)


def is_images(s: Samples) -> bool:
    return s.x.dim() == 4 and s.x.is_floating_point()


def preview(path: Path, s: Samples, title: str) -> None:
    """A grid of the samples, each titled with its label."""
    from netspec.runtime import plots

    titles = [label(y, s.classes) for y in s.y]
    heading = f"{title}: the first {len(titles)} training samples, after preprocessing and augmentation"
    plots.image_grid(path, s.x, titles, ["black"] * len(titles), heading)


def table(s: Samples, width: int = 60) -> str:
    """The samples as lines of text: index, input, target."""
    rows = [("#", f"input {list(s.x.shape[1:])}", "target")]
    rows += [(str(i), cell(x, s.classes, width), label(y, s.classes)) for i, (x, y) in enumerate(zip(s.x, s.y))]
    widths = [max(len(r[c]) for r in rows) for c in range(2)]
    return "\n".join(f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows)


def label(y: torch.Tensor, classes: list[str] | None) -> str:
    """A target as a person reads it: a class name, a value, or a short sequence."""
    if y.numel() == 1:
        y = y.reshape(())
        return _name(int(y), classes) if not y.is_floating_point() else f"{float(y):.4g}"
    return cell(y, classes, 24)


def cell(x: torch.Tensor, classes: list[str] | None, width: int) -> str:
    """An input as text: token ids decoded with the class names where they are characters, else numbers."""
    flat = x.reshape(-1)
    if not flat.is_floating_point() and classes and all(len(c) == 1 for c in classes):
        return _cut(repr("".join(_name(int(i), classes) for i in flat[: width * 2])), width)
    values = " ".join(_number(v) for v in flat[:width].tolist())
    return _cut(f"[{values}]", width)


def _name(k: int, classes: list[str] | None) -> str:
    return classes[k] if classes and 0 <= k < len(classes) else str(k)


def _number(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
