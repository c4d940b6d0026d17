"""The run directory's plots, drawn and inspected before they are saved: curves.png per step with
integer epoch ticks and a log scale where the loss spans orders of magnitude; predictions.png
labelled, mistakes first, nothing overlapping; confusion.png as the most confused pairs past 20 classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.layout_engine import ConstrainedLayoutEngine  # noqa: E402

from netspec.runtime import plots  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plot functions would save, drawn, and saved too."""
    figures: list[Any] = []
    save = plots._save

    def keep(fig: Any, path: Path) -> None:
        fig.canvas.draw()
        figures.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _steps(epochs: int, per_epoch: int, loss: Any) -> list[dict[str, float]]:
    return [
        {"step": e * per_epoch + k + 1, "epoch": e + 1, "loss": loss(e * per_epoch + k), "lr": 0.01}
        for e in range(epochs)
        for k in range(per_epoch)
    ]


def test_one_epoch_is_a_curve_of_steps_on_an_axis_from_0_to_1(tmp_path: Path, drawn: list[Any]) -> None:
    rows = [{"epoch": 1.0, "train_loss": 1.5, "val_loss": 1.2, "val_accuracy": 0.61, "lr": 0.01, "seconds": 3.0}]
    plots.curves(tmp_path / "curves.png", rows, _steps(1, 100, lambda i: 2.3 - i / 100))
    loss, metric = drawn[0].axes
    assert len(loss.lines[0].get_xdata()) == 100  # every step, not one dot
    assert loss.get_xlim()[0] == 0 and 1 <= loss.get_xlim()[1] < 1.1
    for ax in (loss, metric):
        assert all(float(t).is_integer() for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1])
    assert loss.get_ylim()[0] == 0 and loss.get_yscale() == "linear"
    assert 0 <= metric.get_ylim()[0] < 0.61 < metric.get_ylim()[1] <= 1.0


def test_a_regression_loss_spanning_orders_of_magnitude_is_drawn_on_a_log_scale(
    tmp_path: Path, drawn: list[Any]
) -> None:
    steps = _steps(3, 50, lambda i: 600000.0 * 0.8**i + 0.01)
    rows = [{"epoch": float(e), "train_loss": 1.0, "val_loss": 0.02} for e in (1, 2, 3)]
    plots.curves(tmp_path / "curves.png", rows, steps)
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log"
    assert [t for t in ax.get_xticks() if 0 <= t <= 3] == [0, 1, 2, 3]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train loss (per step, smoothed)", "validation loss"]


def test_step_positions_are_fractions_of_their_epoch() -> None:
    steps = _steps(2, 4, lambda i: 1.0)
    assert plots.step_positions(steps) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def _classified(n: int = 40, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    logits = torch.randn(n, classes, generator=g)
    logits[torch.arange(n), labels] += 8.0
    wrong = torch.tensor([5, 17, 30])
    logits[wrong, (labels[wrong] + 1) % classes] += 16.0  # three confident mistakes
    images = torch.rand(n, 1, 8, 8, generator=g)
    return images, logits, labels


def test_predictions_show_mistakes_first_labelled_with_probabilities(tmp_path: Path, drawn: list[Any]) -> None:
    images, logits, labels = _classified()
    asked: list[list[int]] = []

    def at(idx: torch.Tensor) -> torch.Tensor:
        asked.append(idx.tolist())
        return images[idx]

    plots.predictions(tmp_path / "predictions.png", at, logits, labels, None)
    fig = drawn[0]
    assert sorted(asked[0][:3]) == [5, 17, 30]
    assert len(asked[0]) == 16 and set(asked[0][3:]) <= set(range(40)) - {5, 17, 30}
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 16
    assert all(t.startswith("pred ") and "%)\ntrue " in t for t in titles)
    colors = [ax.title.get_color() for ax in fig.axes if ax.get_title()]
    assert colors[:3] == ["red"] * 3 and set(colors[3:]) == {"black"}
    assert "predicted" in fig._suptitle.get_text() and "true" in fig._suptitle.get_text()
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)


def test_nothing_in_the_predictions_grid_overlaps(tmp_path: Path, drawn: list[Any]) -> None:
    images, logits, labels = _classified()
    plots.predictions(tmp_path / "predictions.png", images, logits, labels, [f"class {k}" for k in range(10)])
    fig = drawn[0]
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes] + [
        ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()
    ]
    boxes.append(fig._suptitle.get_window_extent(renderer))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_w <= 1 or overlap_h <= 1, (a, b)


def test_up_to_20_classes_get_the_matrix(tmp_path: Path, drawn: list[Any]) -> None:
    _, logits, labels = _classified()
    plots.confusion(tmp_path / "confusion.png", logits, labels, None)
    ax = drawn[0].axes[0]
    assert len(ax.images) == 1 and len(ax.get_xticklabels()) == 10


def test_more_than_20_classes_get_the_most_confused_pairs(tmp_path: Path, drawn: list[Any]) -> None:
    classes = 65
    labels = torch.arange(650) % classes
    pred = labels.clone()
    pred[:30] = (labels[:30] + 1) % classes  # 30 mistakes, one each: true k -> k + 1
    pred[100:110] = 7  # true 35..44 -> 7 ... and a frequent one:
    pred[200:204] = 3
    labels[200:204] = 2  # true 2 -> 3, four more times
    outputs = torch.nn.functional.one_hot(pred, classes).float()
    names = [chr(ord("A") + k) if k < 26 else chr(ord("a") + k - 26) if k < 52 else f"{k}" for k in range(classes)]
    names[1] = " "
    plots.confusion(tmp_path / "confusion.png", outputs, labels, names)
    ax = drawn[0].axes[0]
    assert not ax.images
    labels_shown = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels_shown) == 20 and len(ax.patches) == 20
    assert labels_shown[0] == "true 'C' → predicted 'D'"  # 2 -> 3: 1 + 4 times, the most frequent
    assert "true 'A' → predicted ' '" in labels_shown  # a space is quoted, never an empty label


def test_confused_pairs_are_counted_from_the_matrix() -> None:
    matrix = torch.tensor([[5, 2, 0], [0, 4, 3], [1, 0, 6]])
    assert plots.confused_pairs(matrix) == [(1, 2, 3), (0, 1, 2), (2, 0, 1)]
