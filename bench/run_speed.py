"""`netspec run` against the classic hand-written PyTorch MNIST loop, on the same data and machine.

Baseline: the LeNet of specs/mnist.net written by hand, trained the way the PyTorch MNIST
example does it: a TensorDataset + DataLoader(shuffle=True), batch 64, SGD lr 0.01
momentum 0.5. Both train one epoch on the full MNIST training set (from $NETSPEC_DATA);
the table shows training samples per second and their ratio, and the whole-process wall
time of one epoch for each (python start-up, imports and data loading included).

    NETSPEC_DATA=../shared/data python bench/run_speed.py [--epochs 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "mnist.net"
CLASSIC = "train.optimizer=sgd(lr=0.01, momentum=0.5)"

BASELINE = r"""
import gzip, sys, time
import numpy as np, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

def idx(path):
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)

root, epochs, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
x = torch.from_numpy(idx(f"{root}/mnist/train-images-idx3-ubyte.gz").copy()).float().div(255).unsqueeze(1)
y = torch.from_numpy(idx(f"{root}/mnist/train-labels-idx1-ubyte.gz").copy()).long()
x = (x - 0.1307) / 0.3081
torch.manual_seed(42)
model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
loss_fn = nn.CrossEntropyLoss()
start = time.perf_counter()
for epoch in range(epochs):
    model.train()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
print(len(x) * epochs / (time.perf_counter() - start))
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    root = os.environ.get("NETSPEC_DATA")
    if not root:
        sys.exit("set NETSPEC_DATA to a folder with mnist/ (e.g. ../shared/data)")
    env = dict(os.environ)
    base_wall, base_out = timed([sys.executable, "-c", BASELINE, root, str(args.epochs), args.device], env)
    base_rate = float(base_out.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "netspec",
            "run",
            str(SPEC),
            "--quiet",
            "--format",
            "json",
            "--out",
            out,
            "--device",
            args.device,
            "--set",
            f"train.epochs={args.epochs}",
            "--set",
            "dataset.validation=0",
            "--set",
            CLASSIC,  # the spec itself uses momentum 0.9
        ]
        ns_wall, _ = timed(cmd, env)
        rows = (Path(out) / "metrics.csv").read_text().splitlines()
        seconds = sum(float(r.split(",")[-1]) for r in rows[1:])
    ns_rate = 60000 * args.epochs / seconds
    print(f"MNIST LeNet, {args.epochs} epoch(s), batch 64, device {args.device}, torch threads {os.cpu_count()}")
    print(f"{'':28}{'samples/s':>12}{'wall (s)':>10}")
    print(f"{'hand-written PyTorch loop':28}{base_rate:12,.0f}{base_wall:10.1f}")
    print(f"{'netspec run':28}{ns_rate:12,.0f}{ns_wall:10.1f}")
    print(f"{'ratio (netspec / baseline)':28}{ns_rate / base_rate:12.2f}x{base_wall / ns_wall:9.2f}x")
    print(
        json.dumps(
            {
                "baseline_samples_per_s": base_rate,
                "netspec_samples_per_s": ns_rate,
                "baseline_wall_s": base_wall,
                "netspec_wall_s": ns_wall,
            }
        )
    )


if __name__ == "__main__":
    main()
