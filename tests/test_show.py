"""`netspec show`: the first training samples as training sees them (same order, preprocessing and
augmentation), as an image grid with labels, or as a table when they are not images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.ir.pipeline import compile_file  # noqa: E402
from netspec.runtime import loop, plots, show  # noqa: E402

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent

IMAGES = """
network Net {
    input [1, 8, 8]
    flatten
    dense(3)
}

dataset shapes {
    source npz("images.npz")
    normalize(0.5, 0.25)
    random_flip
    batch 8
    validation 0.2
}

train {
    loss cross_entropy
    optimizer sgd(lr=0.1)
    epochs 1
    seed 5
    device cpu
}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 1, 8, 8), dtype=np.uint8)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0, 255  # every image spans the full range
    np.savez(tmp_path / "images.npz", x=x, y=np.arange(60) % 3)
    path = tmp_path / "shapes.net"
    path.write_text(IMAGES)
    return path


def _program(path: Path) -> Any:
    result = compile_file(str(path))
    assert result.program is not None, result.diagnostics
    return result.program


def test_the_samples_are_the_first_batch_training_sees(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []
    step = loop._step
    monkeypatch.setattr(loop, "_step", lambda exp, x, y, *rest: seen.append(x.clone()) or step(exp, x, y, *rest))
    loop.run(_program(spec), loop.RunOptions(quiet=True, device="cpu", spec_dir=spec.parent))
    samples = show.samples(_program(spec), None, spec.parent, 8, download=False)
    assert torch.equal(samples.x, seen[0])  # preprocessed and augmented, in the seeded order


def test_show_writes_a_grid_of_labelled_images_with_normalization_undone(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    grids: list[tuple[torch.Tensor, list[str]]] = []
    draw = plots.image_grid
    monkeypatch.setattr(
        plots, "image_grid", lambda path, x, titles, *a: grids.append((x, titles)) or draw(path, x, titles, *a)
    )
    out = tmp_path / "preview.png"
    assert cli.main(["show", str(spec), "-o", str(out), "-n", "6"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert f"wrote 6 training samples to {out}" in capsys.readouterr().out
    x, titles = grids[0]
    assert x.shape == (6, 1, 8, 8) and x.min() < 0  # normalized, as training sees it
    assert len(titles) == 6 and set(titles) <= {"0", "1", "2"}
    shown = plots.displayable(x)
    assert torch.allclose(shown, x * 0.25 + 0.5, atol=1e-6)  # the inverse of normalize(0.5, 0.25)


def test_show_defaults_to_32_samples_in_a_file_named_after_the_spec(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["show", str(spec)]) == 0
    assert (tmp_path / "shapes-preview.png").is_file()


def test_non_image_data_is_printed_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", str(ROOT / "specs" / "addition.net"), "-n", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "input", "[2]", "target"]
    assert len(lines) == 5
    for line in lines[1:]:  # a + b = the target
        a, b, target = line.split("[")[1].split("]")[0].split() + [line.split()[-1]]
        assert float(a) + float(b) == pytest.approx(float(target), abs=0.01)


def test_text_tokens_are_shown_as_characters() -> None:
    samples = show.Samples(torch.tensor([[0, 1, 2, 1]]), torch.tensor([[1, 2, 1, 0]]), ["\n", "a", "b"])
    assert show.table(samples).splitlines()[1].split() == ["0", "'\\naba'", "'aba\\n'"]


def test_a_count_below_one_is_a_usage_error(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", str(spec), "-n", "0"]) == 2
    assert "-n must be at least 1" in capsys.readouterr().err
