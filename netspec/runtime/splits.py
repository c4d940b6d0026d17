"""The data of a run on the training device: the splits (train, validation, test), preprocessed once,
and their batches, taken from memory or decoded from image files by DataLoader workers.

In-memory datasets are tensors on the training device: every epoch takes index slices of a seeded
permutation, and augmentation runs batched on the device, so there is no per-sample Python in the hot
loop. Image folders, which need not fit in memory, stream the same index slices through a DataLoader
whose workers decode the files; their preprocessing then runs per batch on the device, to the same
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from netspec.ir import nodes as ir
from netspec.runtime import interrupts
from netspec.runtime.datasets import Arrays, DataError, ImageFiles
from netspec.verbatim import data as vdata

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


# --- data ---------------------------------------------------------------------------------


@dataclass
class Split:
    x: torch.Tensor | ImageFiles  # ImageFiles: streamed from disk, batch by batch
    y: torch.Tensor
    pending: list[Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=list)  # per streamed batch

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Preprocess: now, when the split is in memory; on each batch, when it is streamed."""
        if isinstance(self.x, torch.Tensor):
            self.x = fn(self.x)
        else:
            self.pending.append(fn)

    def head(self, n: int, device: torch.device) -> torch.Tensor:
        """The first n inputs, preprocessed."""
        return next(batches(self, torch.arange(min(n, len(self))), n, device))[0]


@dataclass
class Data:
    train: Split
    val: Split | None
    test: Split | None
    classes: list[str] | None
    augment: list[Transform]  # applied to training batches only
    at_eval: list[Callable[[torch.Tensor], torch.Tensor]]  # what evaluation inputs went through
    files: dict[str, str] = field(default_factory=dict)
    vocab: list[str] | None = None  # of a language model: the character of each token id
    deployed: list[dict[str, Any]] = field(default_factory=list)  # at_eval as records (Transform.deployed)


def prepare_data(program: ir.Program, arrays: Arrays, device: torch.device) -> Data:
    """Split, convert and preprocess once; what stays per-batch is augmentation only."""
    dataset, train = program.dataset, program.train
    assert dataset is not None and train is not None
    x, y = _tensor(arrays.x_train), _tensor(arrays.y_train)
    test = Split(_tensor(arrays.x_test), _tensor(arrays.y_test)) if arrays.x_test is not None else None
    g = torch.Generator().manual_seed(train.seed)
    if test is None:  # no test split in the source: hold one out of the training data
        x, y, test = _hold_out(x, y, dataset.test or 0.1, g)
    x, y, val = _hold_out(x, y, dataset.validation, g)
    if dataset.limit:
        x, y = x[: dataset.limit], y[: dataset.limit]
    splits = [Split(x, y), val, test]
    augment, at_eval, deployed = _preprocess(dataset, splits)
    placed = [_place(s, device) if s is not None else None for s in splits]
    classes = arrays.classes or arrays.vocab  # a character model's classes are its characters
    return Data(placed[0], placed[1], placed[2], classes, augment, at_eval, arrays.files, arrays.vocab, deployed)  # type: ignore[arg-type]


def _place(s: Split, device: torch.device) -> Split:
    x = s.x.to(device) if isinstance(s.x, torch.Tensor) else s.x  # streamed files stay on disk
    return Split(x, s.y.to(device), s.pending)


def _tensor(a: Any) -> Any:
    if isinstance(a, ImageFiles):
        return a
    t = torch.from_numpy(a)
    return t.float() / 255 if t.dtype == torch.uint8 else t  # images: uint8 -> [0, 1]


def _hold_out(
    x: torch.Tensor, y: torch.Tensor, fraction: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, Split | None]:
    """A deterministic random fraction of (x, y), and the rest."""
    n = round(len(x) * fraction)
    if n == 0:
        return x, y, None
    perm = torch.randperm(len(x), generator=g)
    keep, held = perm[n:].sort().values, perm[:n].sort().values
    return x[keep], y[keep], Split(x[held], y[held])


def _preprocess(
    dataset: ir.Dataset, splits: list[Split | None]
) -> tuple[list[Transform], list[Any], list[dict[str, Any]]]:
    """Apply transforms in spec order. Until the first augmentation they are deterministic
    and applied once to every split; from then on they run per training batch (returned),
    while evaluation splits get their evaluation-time effect now."""
    per_batch: list[Transform] = []
    at_eval: list[Any] = []
    deployed: list[dict[str, Any]] = []
    for t in dataset.transforms:
        train_x = _probe(splits[0], dataset, t)  # type: ignore[arg-type]
        if t.image_only and train_x.dim() != 4:  # a source whose samples were unknown until loaded
            raise DataError(
                f"`{t.kind}` works on images [C, H, W], but the samples of source "
                f"`{dataset.source.kind}` have shape {list(train_x.shape[1:])}",
                "remove the transform, or give it images",
            )
        fn = t.eval_function(train_x)
        if t.augment or per_batch:
            per_batch.append(t.function(train_x))
        for s in splits[1:] if per_batch else splits:
            if s is not None and fn is not None:
                s.apply(fn)
        at_eval += [fn] if fn is not None else []
        deployed += [t.deployed(train_x)] if fn is not None else []
    return per_batch, at_eval, deployed


def _probe(train: Split, dataset: ir.Dataset, t: Any) -> torch.Tensor:
    """The training inputs a transform is built from; of a streamed split, its first image."""
    if isinstance(train.x, torch.Tensor):
        return train.x
    if t.statistics:
        raise DataError(
            f"`{t.kind}` computes statistics over the whole training split, but `{dataset.source.kind}` "
            "streams its images from disk",
            "use normalize(mean=..., std=...) with the dataset's statistics",
        )
    return train.head(1, torch.device("cpu"))


# --- streaming ----------------------------------------------------------------------------


def batches(
    split: Split,
    order: torch.Tensor | None,
    size: int,
    device: torch.device,
    part: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """(x, y) batches of `size` in `order` (None: as stored), taken from memory or decoded by DataLoader
    workers; with `part` (data-parallel training), this process's part of each batch's indices."""
    if order is None and isinstance(split.x, torch.Tensor):  # evaluation: slices are views, no copies
        for i in range(0, len(split), size):
            yield split.x[i : i + size], split.y[i : i + size]
        return
    order = torch.arange(len(split)) if order is None else order
    slices = [order[i : i + size] for i in range(0, len(order), size)]
    slices = [part(idx) for idx in slices] if part is not None else slices
    if isinstance(split.x, torch.Tensor):
        for idx in slices:
            yield split.x[idx], split.y[idx]
        return
    loader = torch.utils.data.DataLoader(
        _Images(split.x),
        batch_sampler=[idx.tolist() for idx in slices],
        num_workers=vdata.workers(device),
        collate_fn=vdata.collate,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # workers' seeds must not come from (and advance) the global generator
        worker_init_fn=interrupts.ignore_in_worker,
    )
    for idx, (x, error) in zip(slices, loader):
        if error is not None:
            raise DataError(error)
        x = x.to(device, non_blocking=True).float() / 255  # as in-memory images are converted
        for fn in split.pending:
            x = fn(x)
        yield x, split.y[idx.to(split.y.device)]


class _Images(torch.utils.data.Dataset[tuple[Any, Any]]):
    """A DataLoader's view of ImageFiles: (uint8 image, None), or (None, the error) for a bad file."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        try:
            return torch.from_numpy(self.files.read(i)), None
        except DataError as e:  # raised here, it would reach the user wrapped in a worker's traceback
            return None, str(e)
