"""`netspec sample`: images from a trained GAN (a PNG grid or a .npy array, the normalization undone),
text from a trained character model (seeded, with temperature and top-k, from the run directory's
vocabulary alone), and a clear refusal for models that do neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from netspec import cli

GAN = """\
version 1

network G {{
    input [4]
    dense(32) -> relu
    dense(36) -> tanh
    reshape([1, 6, 6])
}}

network D {{
    input [1, 6, 6]
    flatten
    dense(8) -> leaky_relu(0.2)
    dense(1)
}}

dataset blobs {{
    source npz("{data}")
    normalize(0.5, 0.5)
    batch 32
}}

train {{
    generator G
    discriminator D
    loss gan_bce
    optimizer adam(lr=2e-3, betas=[0.5, 0.999])
    epochs 2
    seed 1
}}
"""

CHARS = """\
version 1

network Chars {{
    input [16]
    embedding(vocab, 16)
    lstm(32)
    dense(vocab)
}}

let vocab = {vocab}

dataset text {{
    source text("{data}", seq_len=16)
    batch 16
}}

train {{
    model Chars
    loss cross_entropy
    optimizer adam(lr=1e-2)
    steps 30
    seed 2
}}
"""


def sample(*args: str) -> int:
    return cli.main(["sample", *args, "--device", "cpu"])


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gan")
    x = np.zeros((64, 1, 6, 6), np.uint8)
    x[:, :, 2:4, 2:4] = 255
    np.savez(folder / "blobs.npz", x=x, y=np.zeros(64, np.int64))
    spec = folder / "gan.net"
    spec.write_text(GAN.format(data=folder / "blobs.npz"))
    out = folder / "run"
    assert cli.main(["run", str(spec), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return spec, out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("chars")
    text = "the cat sat on the mat. " * 60
    (folder / "cats.txt").write_text(text)
    spec = folder / "chars.net"
    spec.write_text(CHARS.format(data=folder / "cats.txt", vocab=len(set(text))))
    out = folder / "run"
    assert cli.main(["run", str(spec), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    (folder / "cats.txt").unlink()  # sampling needs no data: the run keeps the vocabulary
    return spec, out


def test_a_gan_draws_images_as_an_array_with_the_normalization_undone(
    gan_run: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, run = gan_run
    a, b, c = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "c.npy"
    assert sample(str(run), "-n", "5", "-o", str(a)) == 0
    images = np.load(a)
    assert images.shape == (5, 1, 6, 6) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.5  # tanh's [-1, 1] back to [0, 1]
    # the same seed, from the spec and the generator's own weights: the same images
    assert sample(str(spec), "--weights", str(run / "generator.safetensors"), "-n", "5", "-o", str(b)) == 0
    assert np.array_equal(images, np.load(b))
    assert sample(str(run), "-n", "5", "-o", str(c), "--seed", "7") == 0
    assert not np.array_equal(images, np.load(c))


def test_a_gan_draws_a_png_grid(gan_run: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    _, run = gan_run
    png = tmp_path / "grid.png"
    assert sample(str(run), "-n", "12", "-o", str(png)) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote 12 samples [1, 6, 6] to {png}" in capsys.readouterr().out


def test_a_character_model_continues_a_prompt_from_its_run_alone(text_run: tuple[Path, Path], capsys: Any) -> None:
    _, run = text_run
    capsys.readouterr()
    assert sample(str(run), "--prompt", "the c", "--length", "40", "--seed", "3", "--temperature", "0.5") == 0
    first = capsys.readouterr().out
    assert first.startswith("the c") and len(first) == len("the c") + 40 + 1
    assert set(first[:-1]) <= set("the cat sat on the mat. ")
    assert sample(str(run), "--prompt", "the c", "--length", "40", "--seed", "3", "--temperature", "0.5") == 0
    assert capsys.readouterr().out == first  # seeded
    assert sample(str(run), "--prompt", "the c", "--length", "40", "--seed", "3", "--top-k", "1") == 0
    greedy = capsys.readouterr().out
    assert sample(str(run), "--prompt", "the c", "--length", "40", "--seed", "4", "--top-k", "1") == 0
    assert capsys.readouterr().out == greedy  # top-1 is the argmax, whatever the seed


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--prompt", "dog!"], "the prompt has characters the model never saw: '!', 'd', 'g'"),
        (["--temperature", "0"], "--temperature must be above 0"),
        (["--length", "0"], "--length must be at least 1"),
    ],
)
def test_bad_requests_are_usage_errors(text_run: tuple[Path, Path], capsys: Any, args: list[str], words: str) -> None:
    _, run = text_run
    assert sample(str(run), *args) == 2
    assert words in capsys.readouterr().err


def test_a_spec_file_needs_weights_and_a_classifier_cannot_be_sampled(
    text_run: tuple[Path, Path], tmp_path: Path, capsys: Any
) -> None:
    spec, _ = text_run
    assert sample(str(spec)) == 2
    assert "needs --weights" in capsys.readouterr().err
    np.savez(tmp_path / "xy.npz", x=np.zeros((8, 3), np.float32), y=np.zeros(8, np.int64))
    classifier = tmp_path / "c.net"
    classifier.write_text(
        "version 1\nnetwork C {\n    input [3]\n    dense(2)\n}\n"
        f'dataset d {{\n    source npz("{tmp_path / "xy.npz"}")\n'
        "    batch 4\n}\ntrain {\n    model C\n    loss cross_entropy\n    optimizer sgd(lr=0.1)\n    epochs 1\n}\n"
    )
    assert sample(str(classifier), "--weights", str(tmp_path / "none.safetensors")) == 2
    assert "use `netspec predict`" in capsys.readouterr().err


def test_a_gan_of_vectors_trains_and_samples_to_npy_only(tmp_path: Path, capsys: Any) -> None:
    """Samples that are not images: no grid after an epoch, and `sample` writes them as .npy."""
    np.savez(tmp_path / "v.npz", x=np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32), y=np.zeros(64))
    spec = tmp_path / "v.net"
    spec.write_text(
        "version 1\nnetwork G {\n    input [2]\n    dense(4)\n}\nnetwork D {\n    input [4]\n    dense(1)\n}\n"
        f'dataset d {{\n    source npz("{tmp_path / "v.npz"}")\n    batch 16\n}}\n'
        "train {\n    generator G\n    discriminator D\n    loss hinge\n    optimizer adam\n    epochs 1\n}\n"
    )
    out = tmp_path / "run"
    assert cli.main(["run", str(spec), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    assert not (out / "samples.png").exists()
    assert sample(str(out), "-n", "3", "-o", str(tmp_path / "v.png")) == 2
    assert "not images ([4] each): write them with -o FILE.npy" in capsys.readouterr().err
    assert sample(str(out), "-n", "3", "-o", str(tmp_path / "v.npy")) == 0
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (3, 4) and (vectors < 0).any()  # values as they are, not clamped like pixels
