"""A trained network outside training (runtime/trained.py): a run directory's interface.json holds
what export and serve need, so that they give the same outputs without the data files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netspec.ir.pipeline import compile_file
from netspec.registry.transforms import TRANSFORMS
from tests.test_resume import run

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _round_trip(transform, train_x):
    """A transform's evaluation function, and the same rebuilt from its JSON record alone."""
    record = json.loads(json.dumps(transform.deployed(train_x)))
    cls = TRANSFORMS.get(record["transform"])
    return transform.eval_function(train_x), cls.restored(record, train_x[:1])


@settings(max_examples=30, deadline=None)
@given(
    mean=st.one_of(st.floats(-3, 3), st.lists(st.floats(-3, 3), min_size=3, max_size=3).map(tuple)),
    std=st.one_of(st.floats(0.01, 3), st.lists(st.floats(0.01, 3), min_size=3, max_size=3).map(tuple)),
)
def test_normalize_is_rebuilt_from_its_record(mean, std):
    normalize = TRANSFORMS.get("normalize")(mean=mean, std=std)
    x = torch.rand(4, 3, 5, 5)
    before, after = _round_trip(normalize, x)
    assert torch.equal(before(x), after(x))


@settings(max_examples=20, deadline=None)
@given(features=st.integers(1, 6), seed=st.integers(0, 1000))
def test_standardize_keeps_the_training_statistics_as_numbers(features, seed):
    g = torch.Generator().manual_seed(seed)
    train_x = torch.randn(50, features, generator=g) * 4 + 2
    before, after = _round_trip(TRANSFORMS.get("standardize")(), train_x)
    x = torch.randn(7, features, generator=g)
    assert torch.allclose(before(x), after(x), atol=1e-6)


def test_a_centre_crop_is_rebuilt_from_its_record():
    crop = TRANSFORMS.get("random_crop")(size=(24, 20), padding=2)
    x = torch.rand(3, 1, 28, 28)
    before, after = _round_trip(crop, x)
    assert torch.equal(before(x), after(x))


@pytest.fixture(scope="module")
def addition_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "addition"
    assert run(str(SPECS / "addition.net"), "--out", str(out), "--set", "train.epochs=1") == 0
    return out


def test_a_run_writes_its_interface(addition_run: Path):
    interface = json.loads((addition_run / "interface.json").read_text())
    assert interface["dtype"] == "float32" and interface["image"] is False
    assert isinstance(interface["preprocessing"], list)


def test_a_run_directory_needs_no_data(addition_run: Path, tmp_path: Path):
    from netspec.runtime import trained
    from netspec.runtime.loop import RunOptions

    program = compile_file(str(addition_run / "spec.net"), []).program
    weights = addition_run / "model.safetensors"
    with_data = trained.load(program, RunOptions(data_dir=str(tmp_path)), weights, data=True)
    without = trained.load(program, RunOptions(data_dir=str(tmp_path / "nothing")), weights)
    assert with_data.output == without.output == "values"
    assert with_data.test is not None and without.test is None
    x = with_data.test.x[:16]
    assert torch.equal(with_data.module(x), without.module(x))
    assert without.metadata()["input_shape"] == list(without.input_shape)
    assert without.metrics is not None and "test" in without.metrics
