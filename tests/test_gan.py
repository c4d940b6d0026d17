"""GAN training in `netspec run`: both networks train, the run directory holds their losses, sample
grids and weights, and an interrupted GAN resumes to exactly the numbers of an unbroken run."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netspec import cli  # noqa: E402
from netspec.ir.pipeline import compile_file  # noqa: E402
from netspec.runtime.build import build_network  # noqa: E402
from tests.test_resume import rows, run, signal_at, weights  # noqa: E402  (the resume tests' helpers)

SPEC = """\
version 1

network G {{
    input [8]
    dense(32) -> relu
    dense(64) -> tanh
    reshape([1, 8, 8])
}}

network D {{
    input [1, 8, 8]
    flatten
    dense(16) -> leaky_relu(0.2)
    dense(1)
}}

dataset blobs {{
    source npz("{data}")
    normalize(0.5, 0.5)
    batch 32
}}

train {{
    {task}
    generator G
    discriminator D
    loss {loss}
    optimizer adam(lr=2e-3, betas=[0.5, 0.999])
    epochs 3
    seed 5
}}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bright squares at random places on dark 8x8 images, as uint8; labels unused."""
    rng = np.random.default_rng(0)
    x = np.zeros((160, 1, 8, 8), np.uint8)
    for i, (r, c) in enumerate(rng.integers(0, 5, size=(160, 2))):
        x[i, 0, r : r + 3, c : c + 3] = 255
    path = tmp_path_factory.mktemp("gan") / "blobs.npz"
    np.savez(path, x=x, y=np.zeros(160, np.int64))
    return path


def spec(tmp_path: Path, data: Path, loss: str = "gan_bce", task: str = "") -> str:
    path = tmp_path / "gan.net"
    path.write_text(SPEC.format(data=data, loss=loss, task=task))
    return str(path)


def test_a_gan_trains_both_networks_and_draws_samples(tmp_path: Path, data: Path, capsys: Any) -> None:
    out = tmp_path / "run"
    assert cli.main(["run", spec(tmp_path, data), "--out", str(out), "--device", "cpu"]) == 0
    assert f"samples: {out / 'samples.png'}" in capsys.readouterr().out
    table = rows(out)
    assert [r["epoch"] for r in table] == ["1", "2", "3"] and {"d_loss", "g_loss"} <= table[0].keys()
    assert all(np.isfinite(float(r["d_loss"])) and np.isfinite(float(r["g_loss"])) for r in table)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png", "epoch-003.png"]
    assert (out / "samples.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == "samples.png" and summary["test"] == {} and summary["steps"] == 15
    program = compile_file(spec(tmp_path, data)).program
    assert program is not None and summary["params"] == sum(n.params for n in program.networks)
    both = weights(out / "model.safetensors")
    for key, name in (("generator", "G"), ("discriminator", "D")):
        own = weights(out / f"{key}.safetensors")
        assert all(torch.equal(own[k], both[f"{key}.{k}"]) for k in own)
        net = build_network(program.network(name))  # type: ignore[arg-type]
        net.load_state_dict(own)  # each network's weights load on their own
        torch.manual_seed(5)
        fresh = build_network(program.network(name)).state_dict()  # type: ignore[arg-type]
        assert not all(torch.equal(fresh[k], own[k]) for k in own), f"{key} did not train"


def test_the_generator_learns_the_data(tmp_path: Path, data: Path) -> None:
    """After training, generated images are dark with a bright patch, like the data: their mean pixel
    (in [0, 1], the normalization undone) is near the data's, far from the untrained generator's."""
    from netspec.runtime import adversarial

    program = compile_file(spec(tmp_path, data), ["train.epochs=30"]).program
    assert program is not None
    out = tmp_path / "run"
    assert run(spec(tmp_path, data), "--out", str(out), "--set", "train.epochs=30") == 0
    g = build_network(program.network("G"))  # type: ignore[arg-type]
    untrained = adversarial.undo(g(torch.randn(256, 8)).detach(), [lambda x: (x - 0.5) / 0.5])
    g.load_state_dict(weights(out / "generator.safetensors"))
    g.eval()
    made = adversarial.undo(g(torch.randn(256, 8)).detach(), [lambda x: (x - 0.5) / 0.5])
    real = 9 / 64  # a 3x3 bright square on 8x8
    assert abs(made.mean().item() - real) < 0.06 < abs(untrained.mean().item() - real)


@pytest.mark.parametrize(("loss", "task"), [("gan_bce(0.1)", ""), ("wgan_gp", "task gan(d_steps=2)")])
def test_an_interrupted_gan_resumes_to_the_numbers_of_an_unbroken_run(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch, loss: str, task: str
) -> None:
    path = spec(tmp_path, data, loss, task)
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run(path, "--out", str(full)) == 0
    with monkeypatch.context() as m:
        signal_at(m, 9, signal.SIGINT)  # epoch 2 (5 batches an epoch), after its second step
        assert run(path, "--out", str(cut)) == 130
    state = json.loads((cut / "state.json").read_text())["state"]
    assert (state["epoch"], state["batch"]) == (1, 2) and state["sums"]["g_seen"] > 0  # the running g_loss is saved
    assert run(path, "--resume", str(cut)) == 0
    assert rows(full) == rows(cut)
    a, b = weights(full / "model.safetensors"), weights(cut / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (full / "samples.png").read_bytes() == (cut / "samples.png").read_bytes()


def test_d_steps_updates_the_generator_every_nth_batch(tmp_path: Path, data: Path) -> None:
    """With d_steps=5 and 5 batches an epoch, the generator takes one step an epoch: its loss is that step's."""
    out = tmp_path / "run"
    assert run(spec(tmp_path, data, task="task gan(d_steps=5)"), "--out", str(out), "--set", "train.epochs=1") == 0
    program = compile_file(spec(tmp_path, data)).program
    assert program is not None
    torch.manual_seed(5)
    g0 = build_network(program.network("G")).state_dict()  # type: ignore[arg-type]
    g1 = weights(out / "generator.safetensors")
    # Adam's first step moves every weight by about lr (2e-3), whatever its gradient: one step, not five
    moved = max((g1[k] - g0[k]).abs().max().item() for k in g0)
    assert 1.5e-3 < moved < 2.5e-3


def test_d_steps_beyond_an_epoch_is_refused_before_training(tmp_path: Path, data: Path, capsys: Any) -> None:
    """5 batches an epoch and d_steps=6: some epochs would have no generator step (a nan g_loss)."""
    assert run(spec(tmp_path, data, task="task gan(d_steps=6)"), "--out", str(tmp_path / "run")) == 2
    assert "takes more batches than an epoch has (5)" in capsys.readouterr().err
