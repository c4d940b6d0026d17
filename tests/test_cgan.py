"""Conditional GANs (`task gan(conditional=true)`): the checker's shapes, a generator that learns to
draw the class it is told, samples a column per class, `netspec sample --label`, and a run that
resumes exactly. The data is MNIST-format files made here: class k is a bright block at place k."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.ir.pipeline import compile_file, compile_text  # noqa: E402
from netspec.runtime import adversarial  # noqa: E402
from netspec.runtime.build import build_network  # noqa: E402
from tests.test_datasets import idx_bytes, trust, write_gz  # noqa: E402
from tests.test_resume import rows, run, signal_at, weights  # noqa: E402

SPEC = """\
version 1

let classes = 10

network G {{
    input [8 + classes]
    dense(64) -> relu
    dense(784) -> tanh
    reshape([1, 28, 28])
}}

network D {{
    input [1 + classes, 28, 28]
    flatten
    dense(64) -> leaky_relu(0.2)
    dense(1)
}}

dataset blocks {{
    source mnist
    normalize(0.5, 0.5)
    batch 32
}}

train {{
    task gan(conditional=true, samples=20)
    generator G
    discriminator D
    loss {loss}
    optimizer adam(lr=1e-3, betas=[0.5, 0.999])
    epochs {epochs}
    seed 3
}}
"""


def block(k: int) -> tuple[slice, slice]:
    """Where class k's bright block is: ten of the sixteen 7x7 squares of the image, row by row."""
    return slice(7 * (k // 4), 7 * (k // 4) + 7), slice(7 * (k % 4), 7 * (k % 4) + 7)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MNIST files of 960 training images (and 20 test images): class k lights place k, nothing else."""
    root = tmp_path_factory.mktemp("cgan")
    for prefix, n in (("train", 960), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = np.zeros((n, 28, 28), np.uint8)
        for image, k in zip(images, labels):
            image[block(int(k))] = 255
        write_gz(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", idx_bytes(images))
        write_gz(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", idx_bytes(labels))
    return root


@pytest.fixture(autouse=True)
def trusted(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trust(monkeypatch, data / "mnist")
    monkeypatch.setenv("NETSPEC_DATA", str(data))


def spec(tmp_path: Path, loss: str = "gan_bce", epochs: int = 3) -> str:
    path = tmp_path / "cgan.net"
    path.write_text(SPEC.format(loss=loss, epochs=epochs))
    return str(path)


def test_the_generator_draws_the_class_it_is_told(tmp_path: Path) -> None:
    """After training, G(z, k) lights place k: for every class, its own block is the brightest of
    the ten in the mean generated image (lit: above 0.5), at least four times as bright as any other."""
    out = tmp_path / "run"
    assert run(spec(tmp_path, epochs=40), "--out", str(out)) == 0
    program = compile_file(spec(tmp_path)).program
    assert program is not None
    g = build_network(program.network("G"))  # type: ignore[arg-type]
    g.load_state_dict(weights(out / "generator.safetensors"))
    g.eval()
    for k in range(10):
        z = adversarial.generator_input(program, 64, torch.device("cpu"), labels=torch.full((64,), k))
        mean = adversarial.undo(g(z).detach(), [lambda x: (x - 0.5) / 0.5]).mean(0)[0]
        brightness = [mean[block(j)].mean().item() for j in range(10)]
        others = max(b for j, b in enumerate(brightness) if j != k)
        assert brightness[k] > max(0.5, 4 * others), (k, [round(b, 2) for b in brightness])


def test_the_samples_have_a_column_per_class_and_sample_draws_the_asked_one(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "run"
    assert run(spec(tmp_path, epochs=2), "--out", str(out)) == 0
    from PIL import Image

    width, height = Image.open(out / "samples.png").size
    assert width > height  # 20 samples: 2 rows of 10 (an unconditional GAN's: 3 rows of 8)
    npy = tmp_path / "sevens.npy"
    assert cli.main(["sample", str(out), "--label", "7", "-n", "5", "-o", str(npy)]) == 0
    assert np.load(npy).shape == (5, 1, 28, 28)
    capsys.readouterr()
    assert cli.main(["sample", str(out), "--label", "10", "-o", str(tmp_path / "x.png")]) == 2
    assert "--label must be a class of the dataset, 0 to 9, not 10" in capsys.readouterr().err
    assert cli.main(["sample", str(out), "--label", "-1", "-o", str(tmp_path / "x.png")]) == 2
    assert "--label must be a class number, 0 or more, not -1" in capsys.readouterr().err
    assert cli.main(["summary", spec(tmp_path)]) == 0
    assert "Trains a conditional GAN (both networks are told each sample's class)" in capsys.readouterr().out


def test_the_prediction_service_draws_the_asked_class_as_sample_does(tmp_path: Path) -> None:
    """`netspec serve` on a real loopback port: POST /sample with a label gives the arrays of
    `netspec sample --label`; a label beyond the classes is a 422 that says the range."""
    from tests.test_serve import Served, post

    out = tmp_path / "run"
    assert run(spec(tmp_path, epochs=1), "--out", str(out)) == 0
    server = Served(str(out), log=tmp_path / "serve.log")
    try:
        drawn = post(server, "/sample", json={"count": 3, "seed": 4, "label": 6, "format": "json"}).json()["samples"]
        assert (
            cli.main(["sample", str(out), "-n", "3", "--seed", "4", "--label", "6", "-o", str(tmp_path / "s.npy")]) == 0
        )
        assert np.allclose(np.array(drawn, np.float32), np.load(tmp_path / "s.npy"), atol=1e-6)
        beyond = post(server, "/sample", json={"count": 1, "label": 10})
        assert beyond.status_code == 422 and "0 to 9, not 10" in beyond.json()["error"]
    finally:
        server.stop()


def test_the_generator_input_holds_noise_then_the_one_hot_class(tmp_path: Path) -> None:
    program = compile_file(spec(tmp_path)).program
    assert program is not None
    assert adversarial.classes(program) == 10 and adversarial.latent_size(program) == 8
    z = adversarial.generator_input(program, 12, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert z.shape == (12, 18) and torch.equal(z[:, 8:].argmax(1), torch.arange(12) % 10)
    assert torch.equal(z[:, :8], torch.randn(12, 8, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("loss", ["gan_bce(0.1)", "wgan_gp"])
def test_an_interrupted_conditional_gan_resumes_to_the_numbers_of_an_unbroken_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    path = spec(tmp_path, loss)
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run(path, "--out", str(full)) == 0
    with monkeypatch.context() as m:
        signal_at(m, 40, signal.SIGINT)  # in epoch 2 (30 batches an epoch)
        assert run(path, "--out", str(cut)) == 130
    assert run(path, "--resume", str(cut)) == 0
    assert rows(full) == rows(cut)
    a, b = weights(full / "model.safetensors"), weights(cut / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((full / "summary.json").read_text())["steps"] == 90


def diagnostics(text: str) -> list[str]:
    return [f"{d.line}:{d.message} | {d.hint}" for d in compile_text(text).diagnostics]


def test_the_checker_says_what_a_conditional_gan_takes() -> None:
    conditional = SPEC.format(loss="gan_bce", epochs=1)
    assert diagnostics(conditional) == []
    plain_d = conditional.replace("input [1 + classes, 28, 28]", "input [1, 28, 28]")
    assert diagnostics(plain_d) == [
        "13:network `D` takes input [1, 28, 28], but a conditional GAN's discriminator gets the dataset's "
        "samples [1, 28, 28] and 10 label channels | write `input [11, 28, 28]`"
    ]
    small_g = conditional.replace("input [8 + classes]", "input [classes]")
    assert diagnostics(small_g) == [
        "6:the generator `G` takes noise and a one-hot label [latent + 10], but its input is [10] "
        "| write e.g. `input [64 + 10]`: 64 noise values and the 10 classes"
    ]
    unconditional = conditional.replace("conditional=true, ", "")
    assert diagnostics(unconditional) == [
        "13:network `D` takes input [11, 28, 28], but the dataset gives samples of shape [1, 28, 28] "
        "| write `input [1, 28, 28]`, or give it the labels: `task gan(conditional=true)`"
    ]
    misspelt = conditional.replace("conditional=true", "conditonal=true")  # only the typo: no shape error
    assert diagnostics(misspelt) == ["26:task `gan` has no argument `conditonal` | did you mean `conditional`?"]
    unlabelled = conditional.replace("source mnist", 'source npz("x.npz")')
    assert diagnostics(unlabelled) == [
        "26:a conditional GAN needs a dataset of labelled classes whose number is known before reading it "
        "| use an image source with classes (mnist, fashion_mnist, cifar10), or remove `conditional=true`"
    ]


def test_label_needs_a_conditional_gan(tmp_path: Path, capsys: Any) -> None:
    """An unconditional GAN is not told a class: --label is a usage error, before any image is drawn."""
    path = spec(tmp_path, epochs=1)
    text = (
        Path(path)
        .read_text()
        .replace("conditional=true, ", "")
        .replace("input [1 + classes, 28, 28]", "input [1, 28, 28]")
    )
    Path(path).write_text(text.replace("input [8 + classes]", "input [8]"))
    out = tmp_path / "run"
    assert run(path, "--out", str(out)) == 0
    capsys.readouterr()
    assert cli.main(["sample", str(out), "--label", "3", "-o", str(tmp_path / "x.png")]) == 2
    assert "--label needs a conditional GAN (`task gan(conditional=true)`)" in capsys.readouterr().err
