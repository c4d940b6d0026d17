"""`netspec predict` and `eval` on tiny trained models: character models, input shapes, top-k,
bad weights and bad inputs (a message naming the file, never a traceback), and data that does
not fit the network (a data error, exit 2)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402

pytestmark = pytest.mark.torch

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
CHARS = sorted(set(TEXT))

IMAGE_SPEC = """
network Net {{
    input [1, 8, 8]
    conv2d(4, kernel=3, padding=1) -> relu
    maxpool(2)
    flatten
    dense(3)
}}

dataset shapes {{
    source npz("{npz}")
    batch 16
}}

train {{
    loss cross_entropy
    optimizer adam(lr=0.01)
    epochs 1
    seed 1
    device cpu
}}
"""

CHAR_SPEC = """
network Chars {{
    input [16]
    embedding({vocab}, 8)
    lstm(16)
    dense({vocab})
}}

dataset text {{
    source text("{text}", seq_len=16)
    batch 8
}}

train {{
    loss cross_entropy
    optimizer adam(lr=0.01)
    epochs 1
    seed 1
    device cpu
}}
"""


def trained(root: Path, name: str, text: str) -> tuple[str, Path]:
    spec = root / f"{name}.net"
    spec.write_text(text)
    out = root / f"{name}-run"
    assert cli.main(["run", str(spec), "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    return str(spec), out / "model.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = rng.integers(0, 60, (90, 1, 8, 8)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 0, :, 2 * k : 2 * k + 2] = 230
    np.savez(root / "images.npz", x=x, y=y)
    (root / "fox.txt").write_text(TEXT)
    image = trained(root, "image", IMAGE_SPEC.format(npz=root / "images.npz"))
    chars = trained(root, "chars", CHAR_SPEC.format(vocab=len(CHARS), text=root / "fox.txt"))
    return {"root": root, "image": image, "chars": chars, "x": x, "y": y}


def predict(spec: str, weights: Path, *inputs: Any, fmt: str = "json", extra: tuple[str, ...] = ()) -> int:
    args = ["predict", spec, "--weights", str(weights), "--device", "cpu", "--format", fmt, *extra]
    return cli.main([*args, *map(str, inputs)])


# --- 1. character models ---------------------------------------------------------------------


def test_predict_on_a_character_model_gives_the_next_character(
    models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, weights = models["chars"]
    ids = np.array([CHARS.index(c) for c in TEXT[:16]], np.int64)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "batch.npy", np.stack([ids, ids[::-1]]).astype(np.int32))
    (tmp_path / "prompt.txt").write_text("xx" + TEXT[:16])  # the last 16 characters count
    capsys.readouterr()
    assert predict(spec, weights, tmp_path / "ids.npy", tmp_path / "batch.npy", tmp_path / "prompt.txt") == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["input"] for r in rows]
    assert names == [str(tmp_path / "ids.npy"), f"{tmp_path / 'batch.npy'}[0]", f"{tmp_path / 'batch.npy'}[1]"] + [
        str(tmp_path / "prompt.txt")
    ]
    for row in rows:
        assert row["prediction"] in CHARS and 0 < row["probability"] <= 1
        assert row["top"][0]["class"] == row["prediction"] and len(row["top"]) == 3
    assert rows[0]["prediction"] == rows[1]["prediction"] == rows[3]["prediction"]
    assert rows[0]["probability"] == pytest.approx(rows[3]["probability"])


def test_a_character_input_outside_the_vocabulary_is_named(
    models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, weights = models["chars"]
    np.save(tmp_path / "big.npy", np.full(16, len(CHARS), np.int64))
    (tmp_path / "odd.txt").write_text("Z" * 16)
    np.save(tmp_path / "frac.npy", np.full(16, 0.5))
    capsys.readouterr()
    assert predict(spec, weights, tmp_path / "big.npy", tmp_path / "odd.txt", tmp_path / "frac.npy") == 1
    err = capsys.readouterr().err
    assert f"big.npy holds token id {len(CHARS)}; the vocabulary has ids 0..{len(CHARS) - 1}" in err
    assert "odd.txt has characters the training text lacks: 'Z'" in err
    assert "frac.npy holds fractions" in err and "Traceback" not in err


# --- 2. input shapes, several inputs, top-k, formats ------------------------------------------


def test_a_missing_channel_axis_and_batches_are_accepted(
    models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, weights = models["image"]
    x = models["x"]
    np.save(tmp_path / "one.npy", x[0, 0])  # [8, 8] for input [1, 8, 8]
    np.save(tmp_path / "full.npy", x[0])  # [1, 8, 8]
    np.save(tmp_path / "batch.npy", x[:3, 0])  # [3, 8, 8]
    np.save(tmp_path / "batch4.npy", x[:2])  # [2, 1, 8, 8]
    capsys.readouterr()
    inputs = [tmp_path / n for n in ("one.npy", "full.npy", "batch.npy", "batch4.npy")]
    assert predict(spec, weights, *inputs) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 + 1 + 3 + 2
    assert rows[0]["prediction"] == rows[1]["prediction"] == rows[2]["prediction"] == rows[5]["prediction"]
    assert rows[2]["input"].endswith("batch.npy[0]") and rows[6]["input"].endswith("batch4.npy[1]")
    assert rows[0]["probability"] == pytest.approx(rows[2]["probability"])


def test_one_bad_input_is_reported_and_the_others_still_predicted(
    models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, weights = models["image"]
    np.save(tmp_path / "good.npy", models["x"][0, 0])
    np.save(tmp_path / "wrong.npy", np.zeros((5, 5), np.float32))
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "cut.npy", np.zeros((8, 8), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:100])
    np.save(tmp_path / "complex.npy", np.zeros((8, 8), np.complex64))
    bad = ["wrong.npy", "pickled.npy", "cut.npy", "complex.npy"]
    capsys.readouterr()
    code = predict(spec, weights, *[tmp_path / n for n in ["good.npy", *bad]], "/dev/zero", fmt="text")
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[0].startswith(f"{tmp_path / 'good.npy'}: ") and len(out.splitlines()) == 1
    assert f"{tmp_path / 'wrong.npy'} has shape [5, 5], but the network takes [1, 8, 8]" in err
    for name in bad[1:]:
        assert str(tmp_path / name) in err
    assert "/dev/zero is a device, pipe or socket, not a regular file" in err
    assert "source" not in err and "NS090" not in err and "Traceback" not in err


def test_top_k_and_the_text_format(models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, weights = models["image"]
    np.save(tmp_path / "a.npy", models["x"][0])
    capsys.readouterr()
    assert predict(spec, weights, tmp_path / "a.npy", fmt="json", extra=("--top-k", "2")) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert len(row["top"]) == 2 and row["top"][0]["probability"] >= row["top"][1]["probability"]
    assert predict(spec, weights, tmp_path / "a.npy", fmt="text", extra=("--top-k", "5")) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'a.npy'}: {row['prediction']} (") and "; top 3: " in line
    assert predict(spec, weights, tmp_path / "a.npy", extra=("--top-k", "0")) == 2


# --- 5. bad weights ----------------------------------------------------------------------------


def _bad_weights(path: Path, kind: str, good: Path) -> Path:
    data = good.read_bytes()
    contents = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "garbage": os.urandom(4096),
        "pickle": pickle.dumps({"w": [1.0, 2.0]}),
        "huge_header": (40 << 30).to_bytes(8, "little") + b"{}",
        "not_json": (6).to_bytes(8, "little") + b"\xff\xfe{]!!",
    }
    path.write_bytes(contents[kind])
    return path


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "pickle", "huge_header", "not_json"])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_bad_weights_are_named_with_exit_2(
    models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: str
) -> None:
    spec, good = models["image"]
    weights = _bad_weights(tmp_path / "model.safetensors", kind, good)
    np.save(tmp_path / "a.npy", models["x"][0])
    capsys.readouterr()
    tail = [str(tmp_path / "a.npy")] if command == "predict" else []
    assert cli.main([command, spec, "--weights", str(weights), "--device", "cpu", *tail]) == 2
    err = capsys.readouterr().err
    assert f"netspec: error: {weights}" in err and "internal error" not in err and "Traceback" not in err


def test_weights_that_are_a_device_a_pt_pickle_or_another_network(
    models: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = models["image"]
    _, other = models["chars"]
    (tmp_path / "w.pt").write_bytes(pickle.dumps(print))  # code, which weights_only refuses
    for weights, said in (
        ("/dev/zero", "/dev/zero is a device, pipe or socket"),
        (str(tmp_path / "w.pt"), "is not a PyTorch state dict that loads without code"),
        (str(other), "does not fit the network"),
    ):
        capsys.readouterr()
        assert cli.main(["eval", spec, "--weights", weights, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert weights in err and said in err and "Traceback" not in err


# --- 6. data that does not fit the network --------------------------------------------------


def test_labels_beyond_the_outputs_are_a_data_error_not_a_torch_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.zeros((40, 1, 8, 8), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 38)
    spec = tmp_path / "s.net"
    spec.write_text(IMAGE_SPEC.format(npz=tmp_path / "d.npz"))
    assert cli.main(["run", str(spec), "--device", "cpu", "--quiet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "array 'y' has 38 classes, but network `Net` outputs 3 class scores (labels 0..2)" in err
    assert "Target" not in err and "Traceback" not in err
