"""Every fact about a data source or a transform lives on its registry class: each has its runtime
function and its script template, and nothing outside netspec/registry branches on a registry name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from netspec import emit
from netspec.emit.filters import environment
from netspec.emit.verbatim import definitions
from netspec.ir.nodes import Program
from netspec.ir.pipeline import compile_text
from netspec.registry import (
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    SCHEDULES,
    SOURCES,
    TASKS,
    TRANSFORMS,
    Source,
    Transform,
)
from netspec.registry.base import Op
from netspec.runtime.datasets import loader_of

PACKAGE = Path(emit.__file__).resolve().parents[1]
TEMPLATES = PACKAGE / "emit" / "templates" / "pytorch"

BASE = """network Net {
    input [2]
    dense(1)
}

dataset d {
    source arithmetic
}

train {
    model Net
    loss mse
    optimizer sgd
    epochs 1
}
"""


def example(cls: type[Op], **given: Any) -> Any:
    """An instance of `cls` with a made-up value for each required field (all strings or numbers)."""
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if name not in Op.model_fields and info.is_required():
            values[name] = given.get(name, 1 if info.annotation is not str else "data.csv")
    return cls(**values)


def program(source: Source, transforms: list[Transform]) -> Program:
    """BASE with its dataset's source and transforms replaced (shapes unchecked: the script is only rendered)."""
    result = compile_text(BASE)
    assert result.program is not None and result.program.dataset is not None
    dataset = result.program.dataset.model_copy(update={"source": source, "transforms": transforms})
    return result.program.model_copy(update={"dataset": dataset})


def transforms() -> list[Transform]:
    return [example(cls) for cls in TRANSFORMS.entries.values() if cls.kind_name() != "standardize"]


# --- sources -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES.names())
def test_every_source_has_its_loader(kind: str) -> None:
    cls = SOURCES.entries[kind]
    assert loader_of(cls) is not None, f"{kind} has no loader: name a function of runtime.data_files ({cls.loader!r})"


@pytest.mark.parametrize("kind", SOURCES.names())
def test_every_source_has_its_template_and_it_renders(kind: str) -> None:
    cls = SOURCES.entries[kind]
    assert (TEMPLATES / cls.template()).is_file(), f"{kind} has no template {cls.template()}"
    for extra in ([], transforms()):
        text = emit.emit(program(example(cls), extra), spec=kind)
        compile(text, f"{kind}.py", "exec")
        assert "def load_data(" in text


@pytest.mark.parametrize("kind", SOURCES.names())
def test_every_source_copies_only_functions_that_exist(kind: str) -> None:
    cls = SOURCES.entries[kind]
    assert cls.script_helpers <= set(definitions("readers")), cls.script_helpers - set(definitions("readers"))


# --- transforms --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSFORMS.names())
def test_every_transform_has_its_batch_function(kind: str) -> None:
    cls = TRANSFORMS.entries[kind]
    assert cls.function is not Transform.function, f"{kind} has no batch function: define {cls.__name__}.function"
    assert cls.helpers and cls.helpers <= set(definitions("data")), cls.helpers - set(definitions("data"))


@pytest.mark.parametrize("kind", TRANSFORMS.names())
def test_every_transform_has_its_template_and_it_renders(kind: str) -> None:
    cls = TRANSFORMS.entries[kind]
    assert (TEMPLATES / cls.template()).is_file(), f"{kind} has no template {cls.template()}"
    macros = environment("pytorch").get_template(cls.template()).module
    wanted = {"prepare", "train"} | ({"evaluate"} if cls.evaluated else set())
    assert all(callable(getattr(macros, name, None)) for name in wanted), (kind, wanted)
    source = SOURCES.entries["cifar10"]() if cls.image_only else SOURCES.entries["arithmetic"]()
    text = emit.emit(program(source, [example(cls)]), spec=kind)
    compile(text, f"{kind}.py", "exec")
    assert all(f"def {name}(" in text for name in cls.helpers)


def test_no_template_without_its_registry_entry() -> None:
    for folder, registry in (("sources", SOURCES), ("transforms", TRANSFORMS)):
        names = {p.name.removesuffix(".py.j2") for p in (TEMPLATES / folder).glob("*.py.j2")}
        assert {n for n in names if not n.startswith("_")} == set(registry.names()), folder


def test_every_trainer_has_its_templates_and_context() -> None:
    """A task's trainer names its training loop and command line, training/<trainer>.py.j2 and
    cli/<trainer>.py.j2, and the emitter's context of them; nothing else has templates there."""
    trainers = {task.trainer for task in TASKS.entries.values()}
    for folder in ("training", "cli"):
        names = {p.name.removesuffix(".py.j2") for p in (TEMPLATES / folder).glob("*.py.j2")}
        assert {n for n in names if not n.startswith("_")} == trainers, folder
    assert set(emit.TRAINERS) == trainers


# --- no branching on registry names outside the registry ---------------------------------------

NAMES = {n for r in (LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TRANSFORMS, TASKS) for n in r.names()}
STRING = r"""["'](\w+)["']"""
COMPARISONS = [
    re.compile(r"""kind(?:_name\(\))?\s*(?:==|!=)\s*""" + STRING),  # x.kind == "csv"
    re.compile(STRING + r"""\s*(?:==|!=)\s*[\w.]*kind\b"""),  # "csv" == x.kind
    re.compile(r"""kind(?:_name\(\))?\s+(?:not\s+)?in\s*[\(\[\{]\s*((?:["']\w+["']\s*,?\s*)+)"""),  # kind in ("a", "b")
]


def kind_comparisons(text: str) -> set[str]:
    """The registry names a text compares a `kind` against."""
    found: set[str] = set()
    for pattern in COMPARISONS:
        for match in pattern.finditer(text):
            found |= set(re.findall(r"\w+", match.group(1))) & NAMES
    return found


def test_the_scan_finds_comparisons() -> None:
    assert kind_comparisons('{% if source.kind == "csv" %}') == {"csv"}
    assert kind_comparisons('if t.kind in ("random_crop", "normalize"):') == {"random_crop", "normalize"}
    assert kind_comparisons('"mnist" != source.kind') == {"mnist"}
    assert kind_comparisons('x.dtype.kind in "fb"') == set()


def test_nothing_outside_the_registry_compares_a_kind_with_a_registry_name() -> None:
    files = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.j2")]
    offenders = {
        f"{path.relative_to(PACKAGE.parent)}: {sorted(found)}"
        for path in files
        if "registry" not in path.relative_to(PACKAGE).parts
        and (found := kind_comparisons(path.read_text(encoding="utf-8")))
    }
    assert not offenders, sorted(offenders)
