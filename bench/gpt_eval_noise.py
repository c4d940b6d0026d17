"""How noisy nanoGPT's validation-loss estimate is, for a trained GPT of specs/shakespeare_gpt.net.

nanoGPT's README reports the loss of its `estimate_loss`: the mean over `eval_iters` batches of
`batch_size` windows of `block_size` characters at random offsets of the held-out last 10%
(20 x 12 x 64 for the "I only have a macbook" run). This script computes the loss of the trained
network at every offset of the held-out text, then the distribution of that estimate by drawing
100,000 sets of 20 x 12 offsets from them: its mean, spread and how often it reads 1.88 or less.
Beside it, `netspec run`'s own figure: the mean over the non-overlapping windows (deterministic).

    NETSPEC_DATA=../shared/data python bench/gpt_eval_noise.py RUN_DIR [--batches 20] [--batch 12]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from netspec.ir.pipeline import load
from netspec.runtime import trained
from netspec.runtime.loop import RunOptions
from netspec.runtime.record import recorded


def offset_losses(module: torch.nn.Module, ids: torch.Tensor, block: int) -> np.ndarray:
    """The mean next-character loss of the window at every offset of `ids`."""
    n = len(ids) - block
    out = np.empty(n)
    with torch.no_grad():
        for start in range(0, n, 1024):
            offsets = torch.arange(start, min(n, start + 1024))[:, None]
            x, y = ids[offsets + torch.arange(block)], ids[offsets + torch.arange(1, block + 1)]
            logits = module(x)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            out[start : start + len(offsets)] = loss.view(len(offsets), block).mean(1).numpy()
    return out


def held_out(run: Path, text: Path) -> torch.Tensor:
    """The last 10% of the text as the run's token ids (its vocab.json)."""
    stoi = {c: i for i, c in enumerate(json.loads((run / "vocab.json").read_text(encoding="utf-8"))["vocab"])}
    chars = text.read_text(encoding="utf-8")
    return torch.tensor([stoi[c] for c in chars[int(len(chars) * 0.9) :]], dtype=torch.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run of specs/shakespeare_gpt.net")
    parser.add_argument("--batches", type=int, default=20, help="nanoGPT's eval_iters (20)")
    parser.add_argument("--batch", type=int, default=12, help="nanoGPT's batch_size (12)")
    parser.add_argument("--goal", type=float, default=1.88)
    args = parser.parse_args()
    spec, overrides, spec_dir = recorded(args.run)
    net = trained.load(load(spec, overrides), RunOptions(spec_dir=spec_dir), args.run / "model.safetensors")
    block = net.input_shape[0]
    root = Path(os.environ.get("NETSPEC_DATA", "../shared/data"))
    losses = offset_losses(net.module, held_out(args.run, root / "tinyshakespeare" / "input.txt"), block)
    draws = np.random.default_rng(0).integers(0, len(losses), size=(100_000, args.batches * args.batch))
    estimate = losses[draws].mean(1)
    print("| held-out loss | value |\n| --- | --- |")
    print(f"| non-overlapping windows (`netspec run`) | {losses[::block].mean():.4f} |")
    print(f"| every offset ({len(losses):,}) | {losses.mean():.4f} |")
    spread = f"{estimate.mean():.4f}, {estimate.std():.4f}"
    print(f"| nanoGPT's {args.batches} x {args.batch} estimate: mean, sd | {spread} |")
    low, high = np.quantile(estimate, [0.05, 0.95])
    print(f"| its 5%-95% range | {low:.4f} to {high:.4f} |")
    print(f"| P(estimate <= {args.goal}) | {np.mean(estimate <= args.goal):.3f} |")


if __name__ == "__main__":
    main()
