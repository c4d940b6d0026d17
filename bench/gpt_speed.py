"""`netspec run` of specs/shakespeare_gpt.net against nanoGPT's own training step, same model, same machine.

Baseline: a compact copy of nanoGPT's model.py (GPT, Block, CausalSelfAttention, MLP with
bias=False, weight tying, GPT-2 init) and of train.py's step (get_batch with torch.randint,
AdamW over configure_optimizers' two groups, get_lr's warm-up and cosine, clipping at 1.0),
in the configuration of nanoGPT's "I only have a macbook" run: 4 layers, 4 heads, 128
features, context 64, batch 12, on Tiny Shakespeare (from $NETSPEC_DATA). Both train the same
number of steps; the table shows training steps per second (the training loop only: start-up,
data loading and evaluation excluded) and their ratio.

    NETSPEC_DATA=../shared/data python bench/gpt_speed.py [--steps 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "shakespeare_gpt.net"

BASELINE = r"""
import math, sys, time
import numpy as np, torch
import torch.nn.functional as F
from torch import nn

root, steps, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n_layer, n_head, n_embd, block_size, batch_size = 4, 4, 128, 64, 12
text = open(f"{root}/tinyshakespeare/input.txt", encoding="utf-8").read()
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
train_data = data[: int(len(data) * 0.9)]

class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(n_embd, dim=2)
        q, k, v = (z.view(B, T, n_head, C // n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=False)
    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(n_embd, bias=False), CausalSelfAttention()
        self.ln_2, self.mlp = nn.LayerNorm(n_embd, bias=False), MLP()
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

class GPT(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block() for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
    def forward(self, idx, targets):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

def get_batch():
    ix = torch.randint(len(train_data) - block_size, (batch_size,))
    x = torch.stack([train_data[i : i + block_size] for i in ix])
    y = torch.stack([train_data[i + 1 : i + 1 + block_size] for i in ix])
    return x.to(device), y.to(device)

def get_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay_iters=2000):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    coeff = 0.5 * (1.0 + math.cos(math.pi * (it - warmup) / (decay_iters - warmup)))
    return min_lr + coeff * (lr - min_lr)

torch.manual_seed(1337)
model = GPT(len(chars)).to(device)
params = [p for p in model.parameters() if p.requires_grad]
groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
          {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))
start = time.perf_counter()
for it in range(steps):
    for group in optimizer.param_groups:
        group["lr"] = get_lr(it)
    X, Y = get_batch()
    loss = model(X, Y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    lossf = loss.item()
print(steps / (time.perf_counter() - start), lossf)
"""


def netspec_rate(steps: int, device: str) -> tuple[float, float]:
    """Steps per second of `netspec run`'s training loop (the epoch's seconds in metrics.csv), and the last loss."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "netspec", "run", str(SPEC), "--quiet", "--out", out, "--device", device]
        subprocess.run([*cmd, "--set", f"train.steps={steps}"], check=True, capture_output=True)
        header, row = (Path(out) / "metrics.csv").read_text().splitlines()[:2]
        seconds = float(dict(zip(header.split(","), row.split(",")))["seconds"])
        last = (Path(out) / "steps.csv").read_text().splitlines()[-1].split(",")
    return steps / seconds, float(last[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    root = os.environ.get("NETSPEC_DATA")
    if not root:
        sys.exit("set NETSPEC_DATA to a folder with tinyshakespeare/input.txt (e.g. ../shared/data)")
    cmd = [sys.executable, "-c", BASELINE, root, str(args.steps), args.device]
    base_rate, base_loss = map(float, subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())
    ns_rate, ns_loss = netspec_rate(args.steps, args.device)
    print(f"nanoGPT 'macbook' GPT (0.80M), {args.steps} steps, batch 12 x 64, device {args.device}")
    print(f"{'':30}{'steps/s':>10}{'last loss':>11}")
    print(f"{'nanoGPT-style hand-written':30}{base_rate:10.2f}{base_loss:11.3f}")
    print(f"{'netspec run':30}{ns_rate:10.2f}{ns_loss:11.3f}")
    print(f"{'ratio (netspec / baseline)':30}{ns_rate / base_rate:9.2f}x")
    print(json.dumps({"baseline_steps_per_s": base_rate, "netspec_steps_per_s": ns_rate, "steps": args.steps}))


if __name__ == "__main__":
    main()
