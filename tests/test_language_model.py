"""A GPT as nanoGPT trains it (issue 12): the text source's split (training windows at every
offset of the first part, the last part held out whole), weight tying counted once, GPT-2's
initialisation, nanoGPT's warm-up and cosine schedule and its weight-decay groups, the
vocabulary in the run directory, and an exact resume in the middle of the random offsets."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netspec.ir.pipeline import load
from netspec.verbatim.readers import char_windows

ROOT = Path(__file__).resolve().parent.parent
ALPHABET = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-&$3"  # 65 characters


def small_text(n: int = 6000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), n))


# a nanoGPT-shaped model, small: 2 layers, 2 heads, 32 features, a context of 16
SMALL_GPT = """version 1

let vocab = 65
let context = 16
let dim = 32

block Block(dim, heads) {
    residual {
        layernorm(bias=false)
        attention(heads, causal=true, bias=false, init=0.02, proj_init=0.01)
    }
    residual {
        layernorm(bias=false)
        dense(4 * dim, bias=false, init=0.02) -> gelu
        dense(dim, bias=false, init=0.01)
    }
}

network GPT {
    input [context]
    embedding(vocab, dim, init=0.02)
    positional_embedding(context, init=0.02)
    repeat 2 {
        Block(dim, 2)
    }
    layernorm(bias=false)
    dense(vocab, bias=false, tied=true)
}

dataset text {
    source text("small.txt", seq_len=context)
    batch 4
}

train {
    model GPT
    loss cross_entropy
    optimizer adamw(lr=1e-3, betas=[0.9, 0.99], weight_decay=0.1, decay="matrices")
    schedule warmup_cosine(2, min_lr=1e-4)
    steps 6
    clip_grad 1.0
    seed 3
    device cpu
}
"""


def test_text_splits_as_nanogpt_training_windows_at_every_offset_and_the_tail_held_out() -> None:
    text = small_text(1000)
    x, y, x_test, y_test, alphabet = char_windows(text, 16, 0.1)
    ids = np.searchsorted(alphabet, [ord(c) for c in text])
    cut = int(len(text) * 0.9)
    assert x.shape == (cut - 16, 16) and y.shape == x.shape  # nanoGPT: randint(len(train) - block_size)
    for i in range(len(x)):
        assert np.array_equal(x[i], ids[i : i + 16]) and np.array_equal(y[i], ids[i + 1 : i + 17])
    assert np.shares_memory(x, y)  # views of the ids, not len(text) copies of a window
    n = (len(text) - cut - 1) // 16
    assert np.array_equal(x_test.reshape(-1), ids[cut : cut + 16 * n])
    assert np.array_equal(y_test.reshape(-1), ids[cut + 1 : cut + 1 + 16 * n])
    with pytest.raises(ValueError, match="too few"):
        char_windows("abc", 16, 0.1)


def test_the_spec_counts_the_tied_matrix_once_and_has_nanogpts_parameter_count() -> None:
    program = load(str(ROOT / "specs" / "shakespeare_gpt.net"))
    net = program.networks[0]
    # nanoGPT's "0.80M": every weight but the position embedding; the tied lm_head adds nothing
    assert net.params - 64 * 128 == 795_904


def test_schedule_optimizer_groups_init_and_tying_on_torch() -> None:
    torch = pytest.importorskip("torch")
    from netspec.runtime.build import build_network
    from netspec.verbatim.modules import TiedLinear, WarmupCosine, matrix_decay

    net = load(str(ROOT / "specs" / "shakespeare_gpt.net")).networks[0]
    torch.manual_seed(0)
    model = build_network(net)
    assert sum(p.numel() for p in model.parameters()) == net.params
    head = next(m for m in model.modules() if isinstance(m, TiedLinear))
    assert head.embedding[0].weight is model[0].weight and len(model.state_dict()) == len(list(model.parameters()))
    x = torch.randint(0, 65, (2, 64))
    assert model(x).shape == (2, 64, 65)
    assert float(model[0].weight.detach().std()) == pytest.approx(0.02, rel=0.05)  # GPT-2's init
    proj = model[2][0][0].body[1].proj.weight.detach()  # repeat, first Block, attention residual
    assert float(proj.std()) == pytest.approx(0.02 / math.sqrt(8), rel=0.1)
    groups = matrix_decay(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.dim() >= 2 for p in groups[0]["params"]) and all(p.dim() == 1 for p in groups[1]["params"])
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    scheduler = WarmupCosine(optimizer, warmup=100, total=2000, min_lr=1e-4)
    for it in range(2100):  # nanoGPT's get_lr, step by step
        assert all(g["lr"] == pytest.approx(_nanogpt_lr(it)) for g in optimizer.param_groups), it
        optimizer.step()
        scheduler.step()


def _nanogpt_lr(it: int, lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100, decay: int = 2000) -> float:
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * (it - warmup) / (decay - warmup))) * (lr - min_lr)


def test_a_tied_dense_and_proj_init_are_checked() -> None:
    from netspec.ir.pipeline import compile_text

    bad = SMALL_GPT.replace("dense(vocab, bias=false, tied=true)", "dense(vocab, tied=true, init=0.02)")
    bad = bad.replace("init=0.02, proj_init=0.01", "proj_init=0.01")
    messages = " ".join(d.message for d in compile_text(bad).diagnostics)
    assert "a tied `dense`" in messages and "`proj_init` needs `init`" in messages


# --- running it ----------------------------------------------------------------------------------


def _run(*args: str) -> int:
    from netspec import cli

    return cli.main(["run", *args, "--device", "cpu", "--quiet"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    (root / "small.txt").write_text(small_text())
    (root / "gpt.net").write_text(SMALL_GPT)
    return root


@pytest.fixture(scope="module")
def full(folder: Path) -> Path:
    pytest.importorskip("torch")
    assert _run(str(folder / "gpt.net"), "--data-dir", str(folder), "--out", str(folder / "full")) == 0
    return folder / "full"


def test_the_run_directory_keeps_the_vocabulary(full: Path) -> None:
    from netspec.runtime.rundir import read_vocab

    assert read_vocab(full) == sorted(set(small_text()))
    summary = json.loads((full / "summary.json").read_text())
    assert summary["steps"] == 6 and math.isfinite(summary["test"]["loss"])


def test_read_vocab_refuses_what_is_not_a_vocabulary(tmp_path: Path) -> None:
    from netspec.runtime.rundir import read_vocab, write_vocab

    write_vocab(tmp_path, None)  # not a language model: no file
    with pytest.raises(FileNotFoundError):
        read_vocab(tmp_path)
    (tmp_path / "vocab.json").write_text('{"vocab": [1, 2]}')
    with pytest.raises(ValueError):
        read_vocab(tmp_path)


def test_random_offsets_resume_exactly_after_an_interrupt(
    folder: Path, full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netspec.runtime import interrupts

    original, calls = interrupts.check, {"n": 0}

    def check_then_signal() -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # after the third step
            os.kill(os.getpid(), signal.SIGINT)
        original()

    cut = tmp_path / "cut"
    with monkeypatch.context() as m:
        m.setattr(interrupts, "check", check_then_signal)
        assert _run(str(folder / "gpt.net"), "--data-dir", str(folder), "--out", str(cut)) == 130
    assert _run(str(cut), "--data-dir", str(folder)) == 0
    _assert_same(full, cut)


def _assert_same(a: Path, b: Path) -> None:
    import torch
    from safetensors.torch import load_file

    assert (a / "steps.csv").read_text() == (b / "steps.csv").read_text()
    wa, wb = (load_file(str(d / "model.safetensors")) for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa: Any
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["test"] == sb["test"]


def test_a_tied_dense_needs_the_embedding_it_shares() -> None:
    from netspec.ir.pipeline import compile_text

    bad = SMALL_GPT.replace("embedding(vocab, dim, init=0.02)", "embedding(vocab, 2 * dim) -> dense(dim)")
    found = [d for d in compile_text(bad).diagnostics if "tied" in d.message]
    assert found and "needs an `embedding(65, 32)`" in found[0].message
