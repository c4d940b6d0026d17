"""The data part of a script's context: the source, its settings, and the transforms in the order they apply."""

from __future__ import annotations

from typing import Any

from netspec.emit.errors import EmitError
from netspec.emit.model import Call, Value
from netspec.ir import nodes as ir
from netspec.registry.transforms import Normalize, RandomCrop
from netspec.runtime import datasets

SOURCE_HAS_TEST = {"mnist": True, "fashion_mnist": True, "cifar10": True, "arithmetic": True}


def data_context(dataset: ir.Dataset) -> dict[str, Any]:
    source = dataset.source
    transforms = _transforms(dataset)
    has_test = SOURCE_HAS_TEST.get(source.kind, False)
    return {
        "dataset": dataset,
        "source": source,
        "has_test": has_test,
        "hold_out": bool(dataset.validation) or not has_test,
        "transforms": transforms,
        "eval_transforms": [t for t in transforms if t["batch"] and t["kind"] in ("random_crop", *STATS)],
        "once_transforms": [t for t in transforms if t["once"]],
        "stream": _streamed(dataset),
        "augments": any(t["batch"] for t in transforms),
        "batch_preprocessing": any(t["batch"] and not t["op"].augment for t in transforms),
        "data_settings": _data_settings(source),
        "idx": _idx(source.kind),
        "cifar": _cifar() if source.kind == "cifar10" else None,
    }


def _streamed(dataset: ir.Dataset) -> bool:
    """Image folders stream from disk, as in netspec run, which refuses whole-split statistics on them."""
    if dataset.source.kind != "image_folder":
        return False
    for t in dataset.transforms:
        if t.statistics:
            raise EmitError(
                f"`{t.kind}` computes statistics over the whole training split, but `image_folder` "
                "streams its images from disk; use normalize(mean=..., std=...)"
            )
    return True


STATS = ("normalize", "standardize")  # transforms whose statistics the script keeps as mean/std


def _data_settings(source: Any) -> list[tuple[str, Value, str | None]]:
    """The source's parameters as the script's constants: (name, value, comment above)."""
    found = "relative to this script's folder, then to the data root (--data-dir)"
    settings: dict[str, list[tuple[str, Any, str | None]]] = {
        "csv": [("DATA_PATH", "path", found), ("TARGET", "target", None), ("DELIMITER", "delimiter", None)],
        "npz": [("DATA_PATH", "path", found), ("X_NAME", "x", None), ("Y_NAME", "y", None)],
        "text": [("DATA_PATH", "path", found), ("SEQ_LEN", "seq_len", "characters per sample")],
        "arithmetic": [("SAMPLES", "samples", "training pairs"), ("LOW", "low", None), ("HIGH", "high", None)],
        "image_folder": [("DATA_PATH", "path", found)],
    }
    out = [(name, Value(getattr(source, attr)), note) for name, attr, note in settings.get(source.kind, [])]
    if source.kind == "image_folder":
        size = source.size if isinstance(source.size, tuple) else (source.size, source.size)
        out += [("SIZE", Value(size), "[height, width] after resizing")]
        out += [("IMAGE_SUFFIXES", Value(tuple(sorted(datasets.IMAGE_SUFFIXES))), None)]
    return out


def _transforms(dataset: ir.Dataset) -> list[dict[str, Any]]:
    """Each transform, and when it applies, as netspec.runtime.loop._preprocess applies it: until the
    first augmentation, once to every split; from it on, to every training batch, while the
    evaluation splits get its evaluation-time effect (preprocessing, centre crop) once."""
    out: list[dict[str, Any]] = []
    batch = False
    image = dataset.source.task().image
    stats = 0
    for t in dataset.transforms:
        batch = batch or t.augment
        entry: dict[str, Any] = {
            "op": t,
            "kind": t.kind,
            "batch": batch,
            "once": not batch,
            "spec": _spec_text(t),
            "image_check": t.image_only and image is None,
            "functions": _functions(t.kind),
        }
        if t.kind in STATS:
            stats += 1
            suffix = "" if stats == 1 else f"_{stats}"
            entry["mean"], entry["std"] = f"mean{suffix}", f"std{suffix}"
        if isinstance(t, Normalize):
            mean, std = t.mean, t.std
            entry["mean_call"] = Call("torch.tensor", [Value(_stat(mean))])
            entry["std_call"] = Call("torch.tensor", [Value(_stat(std))])
            per_channel = isinstance(mean, tuple) or isinstance(std, tuple)
            entry["per_channel"] = (None if image is None else bool(image)) if per_channel else False
        if isinstance(t, RandomCrop):
            entry["size"] = t.hw()
        out.append(entry)
    return out


def _functions(kind: str) -> set[str]:
    """The functions of netspec/training.py a transform uses."""
    return {
        "normalize": {"normalize"},
        "standardize": {"normalize"},
        "random_flip": {"random_flip"},
        "random_crop": {"random_crop", "center_crop"},
        "random_rotation": {"random_rotation"},
        "random_shift": {"random_shift"},
    }.get(kind, set())


def _stat(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, tuple) else float(value)


def _spec_text(op: Any) -> str:
    """How the spec writes a transform, for a comment: normalize(mean=0.1307, std=0.3081)."""
    from netspec.registry.base import format_value

    args = ", ".join(f"{k}={format_value(v)}" for k, v in op.hyper().items())
    return f"{op.kind}({args})" if args else op.kind


def _idx(kind: str) -> dict[str, Any] | None:
    spec = datasets.IDX_SETS.get(kind)
    if spec is None:
        return None
    names = [n for pair in datasets.IDX_FILES.values() for n in pair]
    return {
        "title": spec.title,
        "folder": spec.folder,
        "mirrors": Value(spec.mirrors),
        "sha256": [(n, datasets.CHECKSUMS[f"{spec.folder}/{n}"].sha256) for n in names],
        "files": datasets.IDX_FILES,
    }


def _cifar() -> dict[str, Any]:
    return {
        "url": datasets.CIFAR_URL,
        "md5": datasets.CIFAR_MD5,
        "archive": datasets.CIFAR_ARCHIVE,
        "folder": datasets.CIFAR_FOLDER,
        "train": Value(list(datasets.CIFAR_TRAIN)),
        "test": datasets.CIFAR_TEST,
    }
