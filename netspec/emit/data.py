"""The data part of a script's context: the source, its settings, and the transforms in the order they apply.

Everything specific to a source or a transform comes from its registry class (its template,
constants, imports and copied functions); nothing here branches on which one it is.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from netspec.emit.errors import EmitError
from netspec.emit.model import Call, Value
from netspec.emit.verbatim import copied, imported_modules
from netspec.ir import nodes as ir
from netspec.registry.base import format_value
from netspec.registry.sources import Source
from netspec.registry.transforms import Transform

# the modules every script imports, whatever its data
SCRIPT_MODULES = frozenset({"argparse", "json", "math", "os", "platform", "time"})


def data_context(dataset: ir.Dataset) -> dict[str, Any]:
    source = dataset.source
    transforms = _transforms(dataset)
    readers = copied("readers", set(source.script_helpers))
    return {
        "dataset": dataset,
        "source": source,
        "has_test": source.has_test,
        "hold_out": bool(dataset.validation) or not source.has_test,
        "transforms": transforms,
        "eval_transforms": [t for t in transforms if t["batch"] and t["op"].evaluated],
        "once_transforms": [t for t in transforms if t["once"]],
        "stream": _streamed(dataset),
        "augments": any(t["batch"] for t in transforms),
        "batch_preprocessing": any(t["batch"] and not t["op"].augment for t in transforms),
        "data_settings": _settings(source),
        "source_helpers": [Markup(d.source) for d in readers],
        "stdlib_imports": sorted(SCRIPT_MODULES | source.script_imports() | _modules_used(readers, "readers")),
    }


def _streamed(dataset: ir.Dataset) -> bool:
    """Streaming sources are read batch by batch, as in netspec run, which refuses whole-split statistics on them."""
    if not dataset.source.streams:
        return False
    for t in dataset.transforms:
        if t.statistics:
            raise EmitError(
                f"`{t.kind}` computes statistics over the whole training split, but `{dataset.source.kind}` "
                "streams its images from disk; use normalize(mean=..., std=...)"
            )
    return True


def _settings(source: Source) -> list[tuple[str, Any, str | None]]:
    """The source's constants: (name, value, comment above); tables (dicts) stay as they are."""
    return [(name, v if isinstance(v, dict) else Value(v), note) for name, v, note in source.script_settings()]


def _transforms(dataset: ir.Dataset) -> list[dict[str, Any]]:
    """Each transform, and when it applies, as netspec.runtime.loop._preprocess applies it: until the
    first augmentation, once to every split; from it on, to every training batch, while the
    evaluation splits get its evaluation-time effect (preprocessing, centre crop) once."""
    out: list[dict[str, Any]] = []
    batch = False
    image = dataset.source.task().image
    for t in dataset.transforms:
        batch = batch or t.augment
        stats = sum(1 for e in out if e["op"].keeps_statistics)  # the ones before it
        out.append(_transform(t, batch, image, stats))
    return out


def _transform(t: Transform, batch: bool, image: bool | None, stats: int) -> dict[str, Any]:
    """What the transform templates see of one transform; its statistics, if it keeps any,
    are named mean and std, then mean_2 and std_2, ..."""
    entry: dict[str, Any] = {
        "op": t,
        "template": t.template(),
        "batch": batch,
        "once": not batch,
        "spec": _spec_text(t),
        "image": image,
        "image_check": t.image_only and image is None,
        "functions": set(t.helpers),
        "tensors": {name: Call("torch.tensor", [Value(v)]) for name, v in t.script_tensors().items()},
    }
    if t.keeps_statistics:
        suffix = f"_{stats + 1}" if stats else ""
        entry["mean"], entry["std"] = f"mean{suffix}", f"std{suffix}"
    return entry


def _spec_text(op: Transform) -> str:
    """How the spec writes a transform, for a comment: normalize(mean=0.1307, std=0.3081)."""
    args = ", ".join(f"{k}={format_value(v)}" for k, v in op.hyper().items())
    return f"{op.kind}({args})" if args else op.kind


def _modules_used(definitions: list[Any], module: str) -> set[str]:
    """The modules that definitions copied from netspec/verbatim/<module>.py refer to
    (`csv.reader`, `io.BytesIO`), but numpy's `np`, which every script imports."""
    imported = imported_modules(module) - {"numpy"}
    return {name for d in definitions for name in d.uses if name in imported}
