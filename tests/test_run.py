"""`netspec run`, `eval` and `predict` end to end, on tiny generated data (and real MNIST when NETSPEC_DATA is set).

Every loss, optimizer, schedule, metric and transform runs through `netspec.runtime.loop.run`; metric
values are checked against numpy; reruns, resumes and interrupted runs are compared exactly
(the `seconds` column aside); the run directory and the command line contracts are checked.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.ir.nodes import Program  # noqa: E402
from netspec.ir.pipeline import compile_text  # noqa: E402
from netspec.language.diagnostics import has_errors  # noqa: E402
from netspec.runtime import loop as run_mod  # noqa: E402
from netspec.runtime.datasets import DataError  # noqa: E402
from netspec.runtime.loop import RunOptions, build, evaluate, prepare_data, run  # noqa: E402
from netspec.verbatim import data as vdata  # noqa: E402
from netspec.verbatim import metrics as vmetrics  # noqa: E402

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("a", "b", "c")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- data and specs -------------------------------------------------------------------------


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small generated datasets: grey and colour image folders and the grey images as an npz
    (class k: a bright bar at columns 2k, 2k+1), a binary feature set, and features of very
    different scales for standardize."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    images, labels = [], []
    for k, name in enumerate(CLASSES):
        for i in range(40):
            img = rng.integers(0, 60, (8, 8), dtype=np.uint8)
            img[:, 2 * k : 2 * k + 2] = rng.integers(180, 256, (8, 2), dtype=np.uint8)
            img[0, 7] = 255  # an asymmetric mark, so that every flip changes the image
            _write_png(root / "grey" / name / f"{i:02d}.png", img)
            images.append(img[None])
            labels.append(k)
            if i < 12:
                rgb = np.stack([img, img // 2, 255 - img], -1)
                _write_png(root / "rgb" / name / f"{i:02d}.png", rgb)
    np.savez(root / "images.npz", x=np.stack(images), y=np.array(labels, np.uint8))
    y = rng.integers(0, 2, 240)
    x = rng.normal(size=(240, 4)).astype(np.float32)
    x[:, 0] += 2.0 * y - 1.0
    np.savez(root / "binary.npz", x=x, y=y)
    scales = np.array([1.0, 100.0, 0.01], np.float32)
    feats = (rng.normal(size=(150, 3)) * scales + np.array([5.0, -300.0, 0.0])).astype(np.float32)
    np.savez(root / "features.npz", x=feats, y=(feats[:, 0] > 5.0).astype(np.int64))
    return root


GREY_NET = """
network Net {{
    input [1, {size}, {size}]
    conv2d(4, kernel=3, padding=1) -> relu
    maxpool(2)
    flatten
    dropout(0.2)
    dense({classes}){last}
}}
"""

PAIRS_NET = """
network Adder {
    input [2]
    dense(16) -> relu
    dense(1)
}
"""


def image_spec(
    data: Path,
    *,
    loss: str = "cross_entropy",
    optimizer: str = "sgd(lr=0.05, momentum=0.9)",
    transforms: str = "normalize(0.5, 0.25)",
    extra: str = "epochs 2",
    metrics: str = "accuracy",
    last: str = "",
    size: int = 8,
    dataset: str = "",
    npz: bool = False,
) -> str:
    source = f'npz("{data / "images.npz"}")' if npz else f'image_folder("{data / "grey"}", size=8, channels=1)'
    return (
        GREY_NET.format(size=size, classes=len(CLASSES), last=last)
        + f"""
dataset shapes {{
    source {source}
    {transforms}
    batch 16
    validation 0.2
    {dataset}
}}

train {{
    loss {loss}
    optimizer {optimizer}
    metrics {metrics}
    seed 3
    device cpu
    {extra}
}}
"""
    )


def pairs_spec(
    *, loss: str = "mse", optimizer: str = "adam(lr=0.01)", extra: str = "epochs 3", samples: int = 400
) -> str:
    return (
        PAIRS_NET
        + f"""
dataset pairs {{
    source arithmetic(samples={samples}, low=0, high=1)
    batch 32
    validation 0.2
}}

train {{
    loss {loss}
    optimizer {optimizer}
    metrics mae, mse
    seed 1
    device cpu
    {extra}
}}
"""
    )


def binary_spec(data: Path, *, loss: str, last: str = "", extra: str = "") -> str:
    return f"""
network Logistic {{
    input [4]
    dense(8) -> relu
    dense(1){last}
}}

dataset points {{
    source npz("{data / "binary.npz"}")
    batch 32
    validation 0.2
}}

train {{
    loss {loss}
    optimizer adam(lr=0.02)
    epochs 3
    metrics accuracy, precision, recall, f1
    seed 0
    device cpu
    {extra}
}}
"""


def program_of(text: str, *overrides: str) -> Program:
    result = compile_text(text, overrides=list(overrides))
    assert result.program is not None and not has_errors(result.diagnostics), [d.message for d in result.diagnostics]
    return result.program


def quick(text: str, *overrides: str, out: Path | None = None) -> dict[str, Any]:
    """Run a spec in-process (no run directory unless `out`)."""
    return run(program_of(text, *overrides), RunOptions(out=out, quiet=True, device="cpu"))


def write_spec(tmp_path: Path, text: str, name: str = "tiny.net") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def cli_run(spec: str, *args: str) -> int:
    return cli.main(["run", spec, "--device", "cpu", "--quiet", *args])


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without the timing column."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def csv_header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def all_finite(values: dict[str, Any]) -> bool:
    return all(math.isfinite(v) for v in values.values())


def experiment(text: str, *overrides: str) -> Any:
    program = program_of(text, *overrides)
    assert program.dataset is not None and program.train is not None
    from netspec.runtime.datasets import load, resolve_root

    device = torch.device("cpu")
    arrays = load(program.dataset.source, resolve_root(None), None, program.train.seed)
    return build(program, prepare_data(program, arrays, device), device)


# --- every loss, optimizer, schedule and metric ---------------------------------------------


def _loss_cases(data: Path) -> dict[str, str]:
    return {
        "cross_entropy": image_spec(data),
        "cross_entropy_smoothed": image_spec(data, loss="cross_entropy(label_smoothing=0.2)"),
        "nll": image_spec(data, loss="nll", last=" -> log_softmax"),
        "mse": pairs_spec(loss="mse"),
        "l1": pairs_spec(loss="l1"),
        "huber": pairs_spec(loss="huber(0.5)"),
        "bce": binary_spec(data, loss="bce", last=" -> sigmoid"),
        "bce_logits": binary_spec(data, loss="bce_logits"),
        "bce_logits_weighted": binary_spec(data, loss="bce_logits(pos_weight=3.0)"),
    }


LOSSES = [
    "cross_entropy",
    "cross_entropy_smoothed",
    "nll",
    "mse",
    "l1",
    "huber",
    "bce",
    "bce_logits",
    "bce_logits_weighted",
]


@pytest.mark.parametrize("case", LOSSES)
def test_every_loss_trains_to_finite_numbers(data: Path, case: str) -> None:
    summary = quick(_loss_cases(data)[case])
    assert summary["epochs"] > 0 and summary["test"] and all_finite(summary["test"])
    if case.startswith(("cross", "nll", "bce")):
        assert summary["test"]["accuracy"] > 0.5  # the data is easy; chance is 1/3 or 1/2


def test_loss_arguments_reach_torch(data: Path) -> None:
    """label_smoothing and pos_weight change the loss: they are passed to torch, not dropped."""
    cases = _loss_cases(data)
    plain, smoothed = experiment(cases["cross_entropy"]), experiment(cases["cross_entropy_smoothed"])
    out, y = torch.tensor([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0]]), torch.tensor([0, 1])
    assert plain.loss_fn(out, y).item() == pytest.approx(torch.nn.functional.cross_entropy(out, y).item())
    want = torch.nn.functional.cross_entropy(out, y, label_smoothing=0.2).item()
    assert smoothed.loss_fn(out, y).item() == pytest.approx(want)
    weighted = experiment(cases["bce_logits_weighted"])
    logits, target = torch.tensor([[0.3], [-1.0], [2.0]]), torch.tensor([1, 0, 1])
    p = torch.sigmoid(logits[:, 0])
    t = target.float()
    want = -(3.0 * t * p.log() + (1 - t) * (1 - p).log()).mean().item()
    assert weighted.loss_fn(logits, target).item() == pytest.approx(want, rel=1e-5)


OPTIMIZERS = {
    "sgd": ("sgd(lr=0.05)", {}),
    "sgd_nesterov": ("sgd(lr=0.02, momentum=0.9, nesterov=true)", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("adagrad(lr=0.1)", {"lr": 0.1}),
    "rmsprop": ("rmsprop(lr=0.005, momentum=0.5, centered=true)", {"momentum": 0.5, "centered": True}),
    "adam": ("adam(lr=0.01, amsgrad=true)", {"amsgrad": True}),
    "adamw": ("adamw(lr=0.01, weight_decay=0.05)", {"weight_decay": 0.05}),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_trains_to_finite_numbers(name: str) -> None:
    text, settings = OPTIMIZERS[name]
    spec = pairs_spec(optimizer=text)
    exp = experiment(spec)
    assert type(exp.optimizer).__name__.lower() == name.split("_")[0]
    group = exp.optimizer.param_groups[0]
    assert {k: group[k] for k in settings} == settings
    summary = quick(spec)
    assert all_finite(summary["test"])


def _lr_rows(spec: str) -> list[float]:
    program = program_of(spec)
    rows: list[float] = []
    original = run_mod.epoch_row

    def record(exp: Any, state: Any, train_loss: float, seconds: float) -> dict[str, float]:
        row = original(exp, state, train_loss, seconds)
        rows.append(row)
        return row

    import unittest.mock

    with unittest.mock.patch.object(run_mod, "epoch_row", record):
        run(program, RunOptions(quiet=True, device="cpu"))
    return rows  # type: ignore[return-value]


def _torch_lrs(make: Callable[[torch.optim.Optimizer], Any], lr: float, epochs: int, per_epoch: int) -> list[float]:
    """The learning rate at the end of each epoch of an independent torch scheduler."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    lrs = []
    for _ in range(epochs):
        for _ in range(per_epoch):
            opt.step()
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


SCHEDULE_EPOCHS = 4
PER_EPOCH = 10  # 400 training pairs (the test pairs are generated apart), 80 for validation: 320 / 32


def test_every_schedule_sets_the_learning_rates_it_should() -> None:
    lr, n = 0.01, SCHEDULE_EPOCHS

    def lrs(schedule: str) -> tuple[list[float], list[dict[str, float]]]:
        rows = _lr_rows(pairs_spec(optimizer=f"sgd(lr={lr})", extra=f"epochs {n}\n    schedule {schedule}"))
        assert len(rows) == n and all(all_finite(r) for r in rows)
        return [r["lr"] for r in rows], rows

    # per epoch: the row's lr is the rate the epoch trained with
    got, _ = lrs("step(1, gamma=0.5)")
    assert got == pytest.approx([lr * 0.5**e for e in range(n)])
    got, _ = lrs("step(2, gamma=0.1)")
    assert got == pytest.approx([lr, lr, lr * 0.1, lr * 0.1])
    got, _ = lrs("cosine(eta_min=0.001)")
    assert got == pytest.approx([0.001 + (lr - 0.001) * (1 + math.cos(math.pi * e / n)) / 2 for e in range(n)])
    # per step: the row's lr is the rate after the epoch's last step
    got, _ = lrs("onecycle(max_lr=0.1, pct_start=0.25)")
    want = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=n * PER_EPOCH, pct_start=0.25),
        lr,
        n,
        PER_EPOCH,
    )
    assert got == pytest.approx(want)
    assert max(got) <= 0.1 and got[-1] < lr / 10
    got, _ = lrs("warmup(25, start_factor=0.1)")
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=25), lr, n, PER_EPOCH)
    assert (
        got == pytest.approx(want)
        and got[0] == pytest.approx(lr * (0.1 + 0.9 * 10 / 25))
        and got[-1] == pytest.approx(lr)
    )
    # plateau watching val_loss the wrong way round: every improvement is a plateau
    got, rows = lrs('plateau(monitor="val_loss", mode="max", patience=0, factor=0.5)')
    losses = [r["val_loss"] for r in rows]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert got == pytest.approx([lr, lr, lr / 2, lr / 4])
    got, _ = lrs('plateau(monitor="val_loss", patience=0, factor=0.5)')
    assert got == pytest.approx([lr] * n)  # always improving: never reduced


def _sklearn_like(y: np.ndarray, pred: np.ndarray, average: str) -> tuple[float, float, float]:
    """precision, recall and f1 as scikit-learn computes them (zero_division=0): over the labels
    that occur in y or in pred."""
    labels = np.union1d(y, pred)
    tp = np.array([np.sum((pred == c) & (y == c)) for c in labels], float)
    predicted = np.array([np.sum(pred == c) for c in labels], float)
    actual = np.array([np.sum(y == c) for c in labels], float)
    if average == "micro":
        p = r = tp.sum() / len(y)
        return p, r, p
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = np.divide(2 * tp, predicted + actual, out=np.zeros_like(tp), where=predicted + actual > 0)
    if average == "weighted":
        return tuple(float((v * actual).sum() / actual.sum()) for v in (prec, rec, f1))  # type: ignore[return-value]
    return float(prec.mean()), float(rec.mean()), float(f1.mean())


def test_training_facts_come_from_the_registry_classes() -> None:
    """What the loop and the emitted scripts read: thresholds, the Meter's arguments, the schedules' run length."""
    from netspec.registry.losses import LOSSES
    from netspec.registry.metrics import METRICS
    from netspec.registry.schedules import SCHEDULES

    bce, logits, ce = (LOSSES.entries[k]() for k in ("bce", "bce_logits", "cross_entropy"))
    assert (bce.threshold, logits.threshold, ce.threshold) == (0.5, 0.0, None)
    metrics = [METRICS.entries["accuracy"](), METRICS.entries["top_k"](k=3)]
    assert ce.meter_args(10, metrics) == (10, (3,), None)
    assert bce.meter_args(1, []) == (2, (), 0.5)
    assert LOSSES.entries["mse"]().meter_args(4, metrics) == (0, (3,), None)
    onecycle = SCHEDULES.entries["onecycle"](max_lr=0.1)
    assert onecycle.run_length_args() == {"total_steps": "total_steps"} and onecycle.every == "step"
    assert set(onecycle.run_length_keys) == {"total_steps", "_schedule_phases"}
    assert SCHEDULES.entries["cosine"]().run_length_args() == {"T_max": "epochs"}
    assert SCHEDULES.entries["cosine"](t_max=3).run_length_args() == {}
    assert SCHEDULES.entries["plateau"]().monitored and not onecycle.monitored


def test_the_run_directory_does_not_import_the_training_loop() -> None:
    import ast

    from netspec.runtime import rundir

    tree = ast.parse(Path(rundir.__file__).read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in modules if m and m.startswith("netspec.runtime.loop")}


def test_meter_metrics_match_an_independent_computation() -> None:
    """Four classes, fed in two batches: class 3 is predicted but never the label, class 2 is a
    label but never predicted."""
    scores = torch.tensor(
        [
            [5.0, 1.0, 0.0, 0.0],  # y 0, pred 0
            [0.0, 5.0, 2.0, 1.0],  # y 1, pred 1
            [0.0, 3.0, 1.0, 2.0],  # y 2, pred 1 (2 is third)
            [1.0, 0.0, 0.0, 4.0],  # y 0, pred 3 (0 is second)
            [0.0, 2.0, 4.0, 5.0],  # y 2, pred 3 (2 is second)
            [0.0, 6.0, 1.0, 0.0],  # y 1, pred 1
            [3.0, 0.0, 0.5, 0.0],  # y 0, pred 0
        ]
    )
    y = torch.tensor([0, 1, 2, 0, 2, 1, 0])
    meter = vmetrics.Meter(4, (2, 3))
    meter.update(torch.tensor(0.5), scores[:4], y[:4])
    meter.update(torch.tensor(1.5), scores[4:], y[4:])
    yn, pn = y.numpy(), scores.argmax(-1).numpy()
    confusion = np.zeros((4, 4), int)
    np.add.at(confusion, (yn, pn), 1)
    assert meter.confusion is not None and meter.confusion.tolist() == confusion.tolist()
    assert meter.loss == pytest.approx((0.5 * 4 + 1.5 * 3) / 7)
    ranks = (-scores.numpy()).argsort(-1)
    top = {k: float(np.mean([yn[i] in ranks[i, :k] for i in range(7)])) for k in (2, 3)}
    assert (top[2], top[3]) == (6 / 7, 1.0)
    for average in ("macro", "micro", "weighted"):
        p, r, f = _sklearn_like(yn, pn, average)
        got = meter.metrics({"accuracy": None, "top_k": 2, "precision": average, "recall": average, "f1": average})
        assert got == pytest.approx(
            {"accuracy": float(np.mean(yn == pn)), "top_k": top[2], "precision": p, "recall": r, "f1": f}
        ), average
    assert meter.metrics({"top_k": 3})["top_k"] == pytest.approx(top[3])
    # hand-computed macro values: labels 0..3 (3 only predicted)
    assert meter.metrics({"precision": "macro"})["precision"] == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
    assert meter.metrics({"recall": "macro"})["recall"] == pytest.approx((2 / 3 + 1 + 0 + 0) / 4)


def test_meter_regression_metrics() -> None:
    meter = vmetrics.Meter()
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    y = torch.tensor([[1.5, 2.0], [1.0, 1.0], [3.0, 0.0]])
    meter.update(torch.tensor(0.0), out[:2], y[:2])
    meter.update(torch.tensor(0.0), out[2:], y[2:])
    err = out.numpy() - y.numpy()
    got = meter.metrics({"mse": None, "mae": None})
    assert got == pytest.approx({"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))})


def test_binary_logits_are_thresholded_at_zero(data: Path) -> None:
    """With bce_logits the network outputs logits: 0.3 means p = 0.57, class 1, even when every
    output of a batch lies in [0, 1]."""
    exp = experiment(binary_spec(data, loss="bce_logits"))
    with torch.no_grad():
        for p in exp.model.parameters():
            p.zero_()
        _set_last_bias(exp.model, 0.3)
    assert exp.data.test is not None
    meter, out = evaluate(exp, exp.data.test, keep_predictions=True)
    assert out is not None and torch.allclose(out, torch.full_like(out, 0.3))
    ones = float((exp.data.test.y == 1).float().mean())
    assert meter.metrics({"accuracy": None})["accuracy"] == pytest.approx(ones)


def _set_last_bias(model: Any, value: float) -> None:
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.bias.fill_(value)


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_every_metric_end_to_end_matches_the_saved_model(data: Path, tmp_path: Path, average: str) -> None:
    """Run with every classification metric; recompute the test metrics from the saved weights."""
    metrics = (
        f'accuracy, top_k(2), precision(average="{average}"), recall(average="{average}"), f1(average="{average}")'
    )
    spec = image_spec(data, metrics=metrics)
    summary = quick(spec, out=tmp_path)
    assert set(summary["test"]) == {"loss", "accuracy", "top_k", "precision", "recall", "f1"}
    exp = experiment(spec)
    exp.model.load_state_dict(weights(tmp_path / "model.safetensors"))
    exp.model.eval()
    assert exp.data.test is not None
    with torch.no_grad():
        scores = exp.model(exp.data.test.head(len(exp.data.test), exp.device))
    yn, pn = exp.data.test.y.numpy(), scores.argmax(-1).numpy()
    p, r, f = _sklearn_like(yn, pn, average)
    ranks = (-scores.numpy()).argsort(-1)[:, :2]
    want = {
        "loss": torch.nn.functional.cross_entropy(scores, exp.data.test.y).item(),
        "accuracy": float(np.mean(yn == pn)),
        "top_k": float(np.mean([t in row for t, row in zip(yn, ranks)])),
        "precision": p,
        "recall": r,
        "f1": f,
    }
    assert summary["test"] == pytest.approx(want, rel=1e-5)
    header = csv_header(tmp_path / "metrics.csv")
    assert header == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_top_k"] + [
        "val_precision",
        "val_recall",
        "val_f1",
        "lr",
        "seconds",
    ]


def test_regression_metrics_and_predictions_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = pairs_spec(loss="l1")
    summary = quick(text, out=tmp_path / "run")
    assert set(summary["test"]) == {"loss", "mae", "mse"}
    assert summary["test"]["loss"] == pytest.approx(summary["test"]["mae"], rel=1e-5)  # l1 loss is the mae
    exp = experiment(text)
    exp.model.load_state_dict(weights(tmp_path / "run/model.safetensors"))
    assert exp.data.test is not None
    with torch.no_grad():
        out = exp.model(exp.data.test.x)
    err = (out - exp.data.test.y).numpy()
    assert summary["test"]["mae"] == pytest.approx(float(np.abs(err).mean()), rel=1e-5)
    assert summary["test"]["mse"] == pytest.approx(float((err**2).mean()), rel=1e-5)
    np.save(tmp_path / "pair.npy", np.array([0.25, 0.5], np.float32))
    args = ["predict", write_spec(tmp_path, text), "--weights", str(tmp_path / "run/model.safetensors")]
    assert cli.main([*args, "--format", "json", str(tmp_path / "pair.npy")]) == 0
    predicted = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        want = exp.model(torch.tensor([[0.25, 0.5]]))[0].tolist()
    assert predicted[0]["prediction"] == pytest.approx(want, abs=1e-6)


# --- transforms -----------------------------------------------------------------------------


def _prepared(data: Path, transforms: str, size: int = 8, **kw: Any) -> Any:
    """The data of the image npz after `transforms`."""
    return experiment(image_spec(data, transforms=transforms, size=size, npz=True, **kw)).data


def _raw(data: Path) -> Any:
    return _prepared(data, "")


def test_normalize_and_standardize_apply_to_every_split(data: Path) -> None:
    raw = _raw(data)
    assert raw.augment == [] and float(raw.train.x.max()) <= 1.0  # uint8 images arrive in [0, 1]
    norm = _prepared(data, "normalize(0.5, 0.25)")
    assert norm.augment == []
    for a, b in ((raw.train, norm.train), (raw.val, norm.val), (raw.test, norm.test)):
        assert b.x.shape == a.x.shape == (len(a), 1, 8, 8)
        assert torch.allclose(b.x, (a.x - 0.5) / 0.25)
        assert torch.equal(a.y, b.y)
    # one value per channel, on colour images
    text = image_spec(data, transforms="normalize([0.1, 0.2, 0.3], [0.5, 0.25, 0.125])").replace("grey", "rgb")
    text = text.replace("channels=1", "channels=3").replace("input [1,", "input [3,")
    rgb = experiment(text).data
    plain = experiment(text.replace("normalize([0.1, 0.2, 0.3], [0.5, 0.25, 0.125])", "")).data
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1)
    for a, b in ((plain.train, rgb.train), (plain.test, rgb.test)):  # image folders: streamed, normalized per batch
        ax, bx = a.head(len(a), torch.device("cpu")), b.head(len(b), torch.device("cpu"))
        assert bx.shape[1:] == (3, 8, 8) and torch.equal(bx, (ax - mean) / std)
    # standardize: statistics of the training split only, applied to every split
    spec = f"""
network N {{
    input [3]
    dense(2)
}}
dataset f {{
    source npz("{data / "features.npz"}")
    standardize
    batch 16
    validation 0.2
}}
train {{
    loss cross_entropy
    optimizer adam(lr=0.01)
    epochs 2
    metrics accuracy
}}
"""
    std_data = experiment(spec).data
    plain = experiment(spec.replace("standardize", "")).data
    mu, sigma = plain.train.x.mean(0), plain.train.x.std(0)
    assert torch.allclose(std_data.train.x.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(std_data.train.x.std(0), torch.ones(3), atol=1e-4)
    for a, b in ((plain.val, std_data.val), (plain.test, std_data.test)):
        assert torch.allclose(b.x, (a.x - mu) / sigma, atol=1e-5)
    assert all_finite(quick(spec)["test"])


AUGMENTATIONS = {
    "random_flip": ("random_flip(0.5)", 8),
    "random_flip_vertical": ('random_flip(1.0, axis="vertical")', 8),
    "random_crop": ("random_crop(6, padding=1)", 6),
    "random_rotation": ("random_rotation(30)", 8),
    "random_shift": ("random_shift(2)", 8),
}


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_augmentations_apply_to_training_batches_only(data: Path, name: str) -> None:
    transform, size = AUGMENTATIONS[name]
    raw = _raw(data)
    prepared = _prepared(data, f"{transform}\n    normalize(0.5, 0.25)", size=size)
    assert len(prepared.augment) == 2  # the augmentation, and the normalization after it
    # evaluation splits: no augmentation, only its evaluation-time effect (a centre crop)
    for a, b in ((raw.val, prepared.val), (raw.test, prepared.test)):
        x = a.x[:, :, 1:7, 1:7] if name == "random_crop" else a.x  # pad 1 then crop 6 of 10 = centre
        assert b.x.shape == (len(a), 1, size, size) and torch.allclose(b.x, (x - 0.5) / 0.25)
    assert torch.equal(prepared.train.x, raw.train.x)  # stored once, augmented per batch
    batch = raw.train.x[:16]

    def augmented(seed: int) -> Any:
        g = torch.Generator().manual_seed(seed)
        out = batch
        for f in prepared.augment:
            out = f(out, g)
        return out

    a, b, c = augmented(7), augmented(7), augmented(8)
    assert a.shape == (16, 1, size, size)
    assert torch.equal(a, b), "the same generator state must give the same batch"
    if name != "random_flip_vertical":  # p=1 flips everything, whatever the generator
        assert not torch.equal(a, c)
    if name == "random_flip_vertical":
        assert torch.allclose(a, (batch.flip(-2) - 0.5) / 0.25)
    if name == "random_flip":  # some images flipped, others not, each exactly one or the other
        plain, flipped = (batch - 0.5) / 0.25, (batch.flip(-1) - 0.5) / 0.25
        is_flipped = [torch.allclose(a[i], flipped[i]) for i in range(16)]
        assert all(is_flipped[i] or torch.allclose(a[i], plain[i]) for i in range(16))
        assert 0 < sum(is_flipped) < 16
    if name == "random_shift":  # a lone pixel moves by at most 2 in each direction
        dot = torch.zeros(16, 1, 8, 8)
        dot[:, 0, 4, 4] = 1.0
        moved = prepared.augment[0](dot, torch.Generator().manual_seed(1))
        where = moved[:, 0].flatten(1).argmax(-1)
        rows, cols = where // 8, where % 8
        assert torch.all(moved.flatten(1).sum(-1) == 1.0)
        assert torch.all((rows - 4).abs() <= 2) and torch.all((cols - 4).abs() <= 2)
        assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) > 1
    if name == "random_rotation":
        assert not torch.allclose(a, (batch - 0.5) / 0.25)


def test_image_transforms_on_an_npz_without_images_are_a_data_error(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = binary_spec(data, loss="bce_logits").replace("    batch 32", "    random_shift(2)\n    batch 32")
    assert cli_run(write_spec(tmp_path, text), "--out", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert "random_shift" in err and "[4]" in err and "NS090" in err and "Traceback" not in err


def test_training_sees_augmented_batches_and_evaluation_does_not(data: Path) -> None:
    """A flip with p=1: every training batch the model sees is flipped, every evaluation batch is not."""
    text = image_spec(data, transforms="random_flip(1.0)\n    normalize(0.5, 0.25)", extra="epochs 1", npz=True)
    exp = experiment(text)
    seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}
    exp.model.register_forward_pre_hook(lambda m, args: seen[m.training].append(args[0].clone()))
    g = torch.Generator().manual_seed(0)
    run_mod.train_epoch(exp, g, run_mod.State(), lambda n, loss: None)
    assert exp.data.val is not None
    evaluate(exp, exp.data.val)
    train_x = (exp.data.train.x - 0.5) / 0.25  # stored unnormalized: normalize follows the augmentation
    flipped = {tuple(x.flip(-1).flatten().tolist()) for x in train_x}
    plain = {tuple(x.flatten().tolist()) for x in train_x}
    batches = torch.cat(seen[True])
    assert len(batches) == len(train_x)
    assert all(tuple(x.flatten().tolist()) in flipped for x in batches)
    assert not any(tuple(x.flatten().tolist()) in plain for x in batches)
    assert torch.equal(torch.cat(seen[False]), exp.data.val.x)


# --- determinism, resume, failures ----------------------------------------------------------

RESUME_SPECS = {
    "sgd_warmup_flip": {
        "optimizer": "sgd(lr=0.05, momentum=0.9)",
        "transforms": "random_flip(0.5)\n    random_shift(1)\n    normalize(0.5, 0.25)",
        "extra": "epochs 3\n    schedule warmup(9, start_factor=0.2)",  # 9 steps: past the end of the first epoch
    },
    "adamw_plateau_rotation": {
        "optimizer": "adamw(lr=0.01)",
        "npz": True,
        "transforms": "normalize(0.5, 0.25)\n    random_rotation(20)",
        "extra": 'epochs 3\n    schedule plateau(monitor="val_accuracy", patience=0, factor=0.5)',
    },
}


def test_reruns_are_identical(data: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, image_spec(data, **RESUME_SPECS["sgd_warmup_flip"]))
    for name in ("one", "two"):
        assert cli_run(spec, "--set", "train.epochs=3", "--out", str(tmp_path / name)) == 0
    assert metrics_rows(tmp_path / "one") == metrics_rows(tmp_path / "two")
    assert len(metrics_rows(tmp_path / "one")) == 3
    assert_same_weights(tmp_path / "one/model.safetensors", tmp_path / "two/model.safetensors")
    one, two = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "two"))
    assert one["test"] == two["test"]


@pytest.mark.parametrize("case", list(RESUME_SPECS))
def test_resume_continues_to_exactly_the_uninterrupted_run(data: Path, tmp_path: Path, case: str) -> None:
    spec = write_spec(tmp_path, image_spec(data, **RESUME_SPECS[case]))
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli_run(spec, "--set", "train.epochs=3", "--out", str(full)) == 0
    assert cli_run(spec, "--set", "train.epochs=1", "--out", str(part)) == 0
    assert len(metrics_rows(part)) == 1
    assert cli_run(spec, "--set", "train.epochs=3", "--resume", str(part)) == 0
    assert metrics_rows(part) == metrics_rows(full)
    assert_same_weights(full / "model.safetensors", part / "model.safetensors")
    assert_same_weights(full / "best.safetensors", part / "best.safetensors")
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, part))
    assert a["test"] == b["test"] and (a["epochs"], a["steps"]) == (b["epochs"], b["steps"]) == (3, 18)


@pytest.mark.parametrize("name", ["sgd_nesterov", "adagrad", "rmsprop", "adam"])
def test_every_optimizers_state_survives_a_resume(tmp_path: Path, name: str) -> None:
    """The optimizer's state (momentum buffers, step counts, running averages, amsgrad maxima)
    goes through checkpoint.safetensors and state.json and comes back exactly."""
    text = pairs_spec(optimizer=OPTIMIZERS[name][0], extra="epochs 3\n    schedule step(1, gamma=0.5)")
    full, part = tmp_path / "full", tmp_path / "part"
    run(program_of(text), RunOptions(out=full, quiet=True, device="cpu"))
    run(program_of(text, "train.epochs=2"), RunOptions(out=part, quiet=True, device="cpu"))
    run(program_of(text), RunOptions(resume=part, quiet=True, device="cpu"))
    assert metrics_rows(part) == metrics_rows(full)
    assert_same_weights(full / "model.safetensors", part / "model.safetensors")


def test_resume_without_a_checkpoint_is_an_io_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, pairs_spec())
    assert cli_run(spec, "--resume", str(tmp_path / "nowhere")) == 2
    err = capsys.readouterr().err
    assert "no checkpoint to resume" in err and str(tmp_path / "nowhere") in err and "Traceback" not in err


def test_resume_with_a_changed_network_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, pairs_spec(extra="epochs 1"))
    out = tmp_path / "run"
    assert cli_run(spec, "--out", str(out)) == 0
    changed = write_spec(tmp_path, pairs_spec(extra="epochs 2").replace("dense(16)", "dense(8)"), "changed.net")
    assert cli_run(changed, "--resume", str(out)) == 1
    err = capsys.readouterr().err
    assert "cannot resume" in err and "does not fit this spec" in err and "Traceback" not in err


def test_resume_of_a_finished_run_with_a_longer_one_cycle_does_not_crash(data: Path, tmp_path: Path) -> None:
    """A run-length schedule resumed with more epochs continues; it does not step past its end."""
    text = image_spec(data, extra="schedule onecycle(max_lr=0.1)")
    spec = write_spec(tmp_path, text)
    assert cli_run(spec, "--set", "train.epochs=1", "--out", str(tmp_path / "r")) == 0
    assert cli_run(spec, "--set", "train.epochs=2", "--resume", str(tmp_path / "r")) == 0
    rows = metrics_rows(tmp_path / "r")
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(math.isfinite(float(r["lr"])) for r in rows)


def test_a_diverging_run_stops_at_the_first_bad_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, pairs_spec(optimizer="sgd(lr=1e6)"))
    assert cli_run(spec, "--out", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert "epoch 1, step" in err and ("nan" in err or "inf" in err) and "Traceback" not in err
    assert "nothing was saved" in err and "checkpoint is in" not in err
    assert not (tmp_path / "out" / "state.json").exists()  # nothing completed, nothing to resume


def test_a_diverging_run_keeps_the_last_good_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rate jumps to 1e6 after the first epoch: the second one diverges, the first stays saved."""
    spec = write_spec(tmp_path, pairs_spec(optimizer="sgd(lr=1e-3)", extra="epochs 3\n    schedule step(1, gamma=1e9)"))
    out = tmp_path / "out"
    assert cli_run(spec, "--out", str(out)) == 1
    err = capsys.readouterr().err
    step = int(err.split("epoch 2, step ")[1].split(";")[0].split()[0].rstrip(",."))
    assert PER_EPOCH < step <= 2 * PER_EPOCH, err
    assert str(out) in err and "Traceback" not in err
    state = json.loads((out / "state.json").read_text())
    assert state["state"]["epoch"] == 1 and state["state"]["step"] == PER_EPOCH
    rows = metrics_rows(out)
    assert len(rows) == 1 and all(math.isfinite(float(v)) for v in rows[0].values())
    assert all(torch.isfinite(w).all() for w in weights(out / "model.safetensors").values())
    assert all(torch.isfinite(w).all() for w in weights(out / state["checkpoint"]).values() if w.is_floating_point())
    assert not (out / "summary.json").exists()


def test_a_divergence_on_an_epochs_last_step_is_not_saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One step per epoch: each step's loss is finite, but its update overflows the weights. The
    epoch whose validation loss is infinite must not replace the last good checkpoint."""
    text = pairs_spec(optimizer="sgd(lr=1e6)").replace("batch 32", "batch 512")
    out = tmp_path / "out"
    assert cli_run(write_spec(tmp_path, text), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "epoch 2, step 2" in err and "Traceback" not in err
    assert json.loads((out / "state.json").read_text())["state"]["epoch"] == 1
    rows = metrics_rows(out)
    assert len(rows) == 1 and all(math.isfinite(float(v)) for v in rows[0].values())
    assert all(torch.isfinite(w).all() for w in weights(out / "model.safetensors").values())


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, epoch: int, step: int) -> None:
    """Make the progress callback raise KeyboardInterrupt at `step` of `epoch`, as Ctrl-C would."""
    original = run_mod.train_epoch
    calls = {"epochs": 0}

    def interrupted(exp: Any, g: Any, state: Any, on_step: Callable[[int, float], None]) -> float:
        calls["epochs"] += 1
        count = {"n": 0}

        def hook(n: int, loss: float) -> None:
            count["n"] += 1
            if calls["epochs"] == epoch and count["n"] == step:
                raise KeyboardInterrupt
            on_step(n, loss)

        return original(exp, g, state, hook)

    monkeypatch.setattr(run_mod, "train_epoch", interrupted)


CTRL_C_SPEC = {
    "transforms": "random_flip(0.5)\n    normalize(0.5, 0.25)",
    "extra": "epochs 5\n    schedule onecycle(max_lr=0.1)",
}


def _resume_hint(err: str) -> list[str]:
    """The command the interruption message says to continue with, as cli.main arguments."""
    import shlex

    line = next(x for x in err.splitlines() if x.startswith("continue with: "))
    words = shlex.split(line.removeprefix("continue with: "))
    assert words[:2] == ["netspec", "run"]
    return words[1:]


def test_ctrl_c_saves_the_last_epoch_and_resumes_exactly(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, image_spec(data, **CTRL_C_SPEC))
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert cli_run(spec, "--set", "train.epochs=3", "--out", str(full)) == 0
    with monkeypatch.context() as m:
        _interrupt_at(m, epoch=2, step=3)
        assert cli_run(spec, "--set", "train.epochs=3", "--out", str(cut)) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    hint = _resume_hint(err)
    assert hint[-2:] == ["--resume", str(cut)] and "train.epochs=3" in hint  # the overrides are kept
    state = json.loads((cut / "state.json").read_text())  # saved at the interruption: epoch 2, after 3 batches
    assert (state["state"]["epoch"], state["state"]["batch"], state["state"]["step"]) == (1, 3, 9)
    assert len(metrics_rows(cut)) == 1 and (cut / state["checkpoint"]).is_file()
    assert (cut / "model.safetensors").is_file() and not (cut / "summary.json").exists()
    assert cli.main([*hint, "--quiet"]) == 0
    assert metrics_rows(cut) == metrics_rows(full)
    assert_same_weights(full / "model.safetensors", cut / "model.safetensors")


def test_ctrl_c_in_the_first_epoch_saves_the_position_in_it(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, image_spec(data, **CTRL_C_SPEC))
    _interrupt_at(monkeypatch, epoch=1, step=2)
    assert cli_run(spec, "--out", str(tmp_path / "cut")) == 130
    err = capsys.readouterr().err
    assert "saved up to epoch 0, batch 2" in err and "--resume" in err
    assert json.loads((tmp_path / "cut" / "state.json").read_text())["state"]["batch"] == 2


def test_ctrl_c_while_a_checkpoint_is_written_keeps_it_whole(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT between checkpoint.safetensors and state.json: both files still end up from the same
    epoch, and the resumed run matches the uninterrupted one."""
    import signal

    from netspec.runtime import rundir as artifacts

    spec = write_spec(tmp_path, image_spec(data, **CTRL_C_SPEC))
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert cli_run(spec, "--set", "train.epochs=3", "--out", str(full)) == 0
    original, written = artifacts.write_atomic, {"checkpoints": 0}

    def write_then_interrupt(path: Path, data: Any) -> None:
        original(path, data)
        if path.name.startswith("checkpoint-"):
            written["checkpoints"] += 1
            if written["checkpoints"] == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered at once in the main thread

    # as in a terminal: SIGINT raises KeyboardInterrupt (test runners' workers may ignore SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with monkeypatch.context() as m:
            m.setattr(artifacts, "write_atomic", write_then_interrupt)
            assert cli_run(spec, "--set", "train.epochs=3", "--out", str(cut)) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    capsys.readouterr()
    assert json.loads((cut / "state.json").read_text())["state"]["epoch"] == 2
    assert len(metrics_rows(cut)) == 2
    assert cli_run(spec, "--set", "train.epochs=3", "--resume", str(cut)) == 0
    assert metrics_rows(cut) == metrics_rows(full)
    assert_same_weights(full / "model.safetensors", cut / "model.safetensors")


# --- the run directory, eval and predict ------------------------------------------------------


def test_run_directory_eval_and_predict(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, image_spec(data, metrics="accuracy, f1", extra="epochs 3"))
    out = tmp_path / "run"
    assert cli.main(["run", spec, "--device", "cpu", "--out", str(out), "--format", "json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # only the result: the epoch lines went to stderr
    assert [line.split()[:2] for line in captured.err.splitlines()] == [["epoch", "1"], ["epoch", "2"], ["epoch", "3"]]
    program = Program.model_validate_json((out / "spec.json").read_text())
    assert program == program_of(Path(spec).read_text())
    header = csv_header(out / "metrics.csv")
    assert header == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "lr", "seconds"]
    rows = metrics_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(math.isfinite(float(v)) for r in rows for v in r.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary == printed
    assert {"test", "params", "seed", "versions", "data_sha256", "device", "wall_seconds"} <= set(summary)
    assert set(summary["test"]) == {"loss", "accuracy", "f1"} and summary["test"]["accuracy"] > 0.6
    assert (
        summary["params"]
        == program.networks[0].params
        == sum(w.numel() for w in weights(out / "model.safetensors").values())
    )
    assert summary["seed"] == 3 and summary["device"] == "cpu" and summary["epochs"] == 3
    assert summary["versions"]["torch"] == torch.__version__
    # an image folder is recorded by a digest of its file list (names and sizes)
    assert list(summary["data_sha256"]) == [f"{data / 'grey'}/"]
    assert all(len(h) == 64 for h in summary["data_sha256"].values())
    for name in ("curves.png", "confusion.png", "predictions.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    for name in ("model.safetensors", "best.safetensors"):
        exp = experiment(Path(spec).read_text())
        exp.model.load_state_dict(weights(out / name))  # strict: the same keys and shapes
    # eval: the same test metrics from the saved weights
    assert (
        cli.main(["eval", spec, "--weights", str(out / "model.safetensors"), "--device", "cpu", "--format", "json"])
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)["test"]
    assert evaluated == pytest.approx(summary["test"], rel=1e-6)
    # predict: a .npy array and a PNG, the same as the model's own argmax
    exp = experiment(Path(spec).read_text())
    exp.model.load_state_dict(weights(out / "model.safetensors"))
    exp.model.eval()
    assert exp.data.test is not None
    raw = (exp.data.test.head(2, exp.device) * 0.25 + 0.5) * 255  # undo normalize and the [0, 1] scaling
    pixels = raw.round().clamp(0, 255).to(torch.uint8).numpy()
    np.save(tmp_path / "first.npy", pixels[0])
    _write_png(tmp_path / "second.png", pixels[1][0])
    with torch.no_grad():
        want = exp.model((torch.from_numpy(pixels).float() / 255 - 0.5) / 0.25).softmax(-1)
    assert (
        cli.main(
            [
                "predict",
                spec,
                "--weights",
                str(out / "model.safetensors"),
                "--device",
                "cpu",
                "--format",
                "json",
                str(tmp_path / "first.npy"),
                str(tmp_path / "second.png"),
            ]
        )
        == 0
    )
    predicted = json.loads(capsys.readouterr().out)
    assert [p["input"] for p in predicted] == [str(tmp_path / "first.npy"), str(tmp_path / "second.png")]
    assert [p["prediction"] for p in predicted] == [CLASSES[int(k)] for k in want.argmax(-1)]
    assert [p["probability"] for p in predicted] == pytest.approx(want.max(-1).values.tolist(), rel=1e-5)


def test_predict_with_a_sigmoid_output_reads_probabilities(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A network ending in sigmoid (loss bce) outputs probabilities: predict must not squash them again."""
    for loss, last in (("bce", " -> sigmoid"), ("bce_logits", "")):
        spec = write_spec(tmp_path, binary_spec(data, loss=loss, last=last), f"{loss}.net")
        out = tmp_path / loss
        assert cli_run(spec, "--out", str(out)) == 0
        capsys.readouterr()
        np.save(tmp_path / "negative.npy", np.array([-3.0, 0, 0, 0], np.float32))
        np.save(tmp_path / "positive.npy", np.array([3.0, 0, 0, 0], np.float32))
        inputs = [str(tmp_path / "negative.npy"), str(tmp_path / "positive.npy")]
        args = ["predict", spec, "--weights", str(out / "model.safetensors"), "--format", "json", *inputs]
        assert cli.main(args) == 0
        predicted = json.loads(capsys.readouterr().out)
        assert [p["prediction"] for p in predicted] == ["0", "1"], loss
        exp = experiment(Path(spec).read_text())
        exp.model.load_state_dict(weights(out / "model.safetensors"))
        exp.model.eval()
        with torch.no_grad():
            out1 = exp.model(torch.tensor([[3.0, 0, 0, 0]]))[0, 0]
        p1 = float(out1 if loss == "bce" else out1.sigmoid())
        assert predicted[1]["probability"] == pytest.approx(p1, rel=1e-5)
        assert (out / "confusion.png").is_file()


# --- steps, early stopping, limit, missing data --------------------------------------------------


def test_steps_stop_at_the_exact_step_count() -> None:
    summary = quick(pairs_spec(extra="steps 23"))
    assert summary["steps"] == 23 and summary["epochs"] == 3  # 10 steps per epoch: 10 + 10 + 3
    # a one-cycle schedule spans exactly the steps run, not three whole epochs
    rows = _lr_rows(pairs_spec(optimizer="sgd(lr=0.01)", extra="steps 23\n    schedule onecycle(max_lr=0.1)"))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=23)
    want = []
    for step in range(1, 24):
        opt.step()
        sched.step()
        if step in (10, 20, 23):
            want.append(opt.param_groups[0]["lr"])
    assert [r["lr"] for r in rows] == pytest.approx(want)


def test_steps_with_a_checkpoint_resume(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, pairs_spec(extra="steps 23"))
    assert cli_run(spec, "--out", str(tmp_path / "full")) == 0
    assert cli_run(spec, "--set", "train.steps=15", "--out", str(tmp_path / "part")) == 0
    assert json.loads((tmp_path / "part/summary.json").read_text())["steps"] == 15
    # the run directory recorded train.steps=15: a longer run says so
    assert cli_run(spec, "--resume", str(tmp_path / "part"), "--set", "train.steps=23") == 0
    summary = json.loads((tmp_path / "part/summary.json").read_text())
    assert summary["steps"] == 23 and summary["epochs"] == 3


def test_early_stopping_stops_early() -> None:
    # nothing counts as an improvement after the first epoch: stop after 1 + patience epochs
    summary = quick(pairs_spec(extra="epochs 20\n    early_stopping(patience=2, min_delta=1e9)"))
    assert summary["stopped_early"] and summary["epochs"] == 3
    summary = quick(pairs_spec(extra='epochs 4\n    early_stopping(monitor="val_mae", patience=2)'))
    assert not summary["stopped_early"] and summary["epochs"] == 4


def test_limit_limits_the_training_split(data: Path) -> None:
    spec = pairs_spec(extra="epochs 2")
    full, limited = experiment(spec), experiment(spec, "dataset.limit=40")
    assert len(full.data.train) == 320 and len(limited.data.train) == 40
    assert torch.equal(limited.data.train.x, full.data.train.x[:40])
    assert full.data.val is not None and limited.data.val is not None and full.data.test is not None
    assert torch.equal(limited.data.val.x, full.data.val.x) and limited.data.test is not None
    assert torch.equal(limited.data.test.x, full.data.test.x)
    summary = quick(spec, "dataset.limit=40")
    assert summary["steps"] == 4  # 2 batches of 32 per epoch


def test_missing_data_is_a_diagnostic_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = str(ROOT / "specs/mnist_mlp.net")
    args = ["--no-download", "--data-dir", str(empty), "--out", str(tmp_path / "out")]
    assert cli_run(spec, *args) == 1
    err = capsys.readouterr().err
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        assert name in err
    assert str(empty / "mnist") in err and "NS090" in err and "Traceback" not in err
    assert cli.main(["eval", spec, "--weights", str(tmp_path / "w.safetensors"), *args[:3]]) == 1
    assert "t10k-labels-idx1-ubyte.gz" in capsys.readouterr().err


# --- real data ------------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("NETSPEC_DATA"), reason="real MNIST: set NETSPEC_DATA to a data root")
def test_real_mnist_mlp_one_epoch_on_5000_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(ROOT / "specs/mnist_mlp.net")
    args = ["--set", "train.epochs=1", "--set", "dataset.limit=5000", "--out", str(tmp_path), "--format", "json"]
    assert cli_run(spec, "--no-download", *args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test"]["accuracy"] > 0.85, summary["test"]
    assert summary["steps"] == math.ceil(5000 / 64)
    assert set(summary["data_sha256"]) == {f"mnist/{n}" for pair in ("train", "test") for n in _idx_names(pair)}


def _idx_names(split: str) -> tuple[str, str]:
    from netspec.runtime.datasets import IDX_FILES

    return IDX_FILES[split]


# --- image folders stream -------------------------------------------------------------------

STREAMED = {
    "transforms": "normalize(0.5, 0.25)\n    random_flip\n    random_crop(8, padding=1)",
    "extra": "epochs 2",
}


def test_a_streamed_image_folder_trains_exactly_like_the_same_images_in_memory(data: Path, tmp_path: Path) -> None:
    # the same images as PNG files (decoded batch by batch by a DataLoader) and as an npz (held as tensors)
    folder, arrays = (image_spec(data, npz=npz, **STREAMED) for npz in (False, True))
    for name, text in (("folder", folder), ("npz", arrays)):
        assert cli_run(write_spec(tmp_path, text, f"{name}.net"), "--out", str(tmp_path / name)) == 0
    assert metrics_rows(tmp_path / "folder") == metrics_rows(tmp_path / "npz")
    assert_same_weights(tmp_path / "folder/model.safetensors", tmp_path / "npz/model.safetensors")
    assert (tmp_path / "folder" / "predictions.png").exists()


def test_streaming_gives_the_same_numbers_with_any_number_of_workers(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, image_spec(data, **STREAMED))
    for workers in (0, 2):
        monkeypatch.setattr(vdata, "workers", lambda device, workers=workers: workers)
        assert cli_run(spec, "--set", "train.epochs=1", "--out", str(tmp_path / str(workers))) == 0
    assert metrics_rows(tmp_path / "0") == metrics_rows(tmp_path / "2")


def test_decoding_workers_leave_a_small_cpu_to_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for cores, on_cpu, on_gpu in ((1, 0, 0), (2, 0, 1), (3, 2, 2), (16, 4, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert (vdata.workers(cpu), vdata.workers(cuda)) == (on_cpu, on_gpu), cores


def test_a_corrupt_image_met_while_streaming_is_a_data_error(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    shutil.copytree(data / "grey", tmp_path / "grey")
    (tmp_path / "grey" / "b" / "07.png").write_bytes(b"\x89PNG broken")
    spec = write_spec(tmp_path, image_spec(tmp_path))
    assert cli_run(spec, "--out", str(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "07.png is not a readable image" in err
    assert "Traceback" not in err and "worker" not in err


def test_standardize_needs_the_whole_split_in_memory(data: Path) -> None:
    with pytest.raises(DataError, match="streams its images from disk"):
        quick(image_spec(data, transforms="standardize"))


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_missing_device_is_a_usage_error(device: str, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.runtime.loop import available_devices

    if device in available_devices():
        pytest.skip(f"this machine has {device}")
    assert cli.main(["run", str(ROOT / "specs/addition.net"), "--device", device, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"device `{device}` is not available" in err and "available here: " in err
    assert "internal error" not in err
