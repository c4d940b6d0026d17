"""Streaming an image folder against holding the same images in memory, with `netspec run`.

Writes the first N MNIST training images (from $NETSPEC_DATA) as PNG files, one folder per
class, and the same images as an npz; then trains specs/mnist.net's LeNet one epoch on each
(`image_folder` streams: DataLoader workers decode every batch's files; `npz` is held as
tensors). Prints training samples per second for both, their ratio, the number of decoding
workers, and whether both ended with the same test metrics (they should: the same images
in the same order).

    NETSPEC_DATA=../shared/data python bench/stream_speed.py [--images 12000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = """
network LeNet {{
    input [1, 28, 28]
    conv2d(20, kernel=5) -> relu
    maxpool(2)
    conv2d(50, kernel=5) -> relu
    maxpool(2)
    flatten
    dense(500) -> relu
    dense(10)
}}

dataset images {{
    source {source}
    normalize(mean=0.1307, std=0.3081)
    batch 64
    validation 0
    test 0.1
}}

train {{
    model LeNet
    loss cross_entropy
    optimizer sgd(lr=0.01, momentum=0.5)
    epochs 1
    metrics accuracy
    seed 42
}}
"""


def write_images(root: Path, n: int) -> None:
    """The first n MNIST training images as grey PNGs in class folders 0..9, and as images.npz."""
    from PIL import Image

    from netspec.registry.sources import Mnist
    from netspec.runtime.datasets import load

    arrays = load(Mnist(), Path(os.environ["NETSPEC_DATA"]), None, 0, download=False)
    x, y = arrays.x_train[:n], arrays.y_train[:n]
    order = np.argsort(y, kind="stable")  # the folder lists class by class, in file-name order
    x, y = x[order], y[order]
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / "folder" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{i:06d}.png")
    np.savez(root / "images.npz", x=x, y=y)


def train(root: Path, name: str, source: str) -> tuple[float, dict[str, float]]:
    spec = root / f"{name}.net"
    spec.write_text(SPEC.format(source=source))
    out = root / f"run-{name}"
    cmd = [sys.executable, "-m", "netspec", "run", str(spec), "--quiet", "--device", "cpu", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((out / "summary.json").read_text())
    return float(rows[0]["seconds"]), summary["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12000)
    args = parser.parse_args()
    if not os.environ.get("NETSPEC_DATA"):
        sys.exit("set NETSPEC_DATA to a folder with mnist/ (e.g. ../shared/data)")
    import torch

    from netspec.verbatim.data import workers as stream_workers

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root, args.images)
        train_samples = args.images - round(args.images * 0.1)
        results = {
            "npz (in memory)": train(root, "npz", f'npz("{root / "images.npz"}")'),
            "image_folder (streamed)": train(root, "folder", f'image_folder("{root / "folder"}", size=28, channels=1)'),
        }
    rates = {name: train_samples / seconds for name, (seconds, _) in results.items()}
    workers = stream_workers(torch.device("cpu"))
    print(f"LeNet, 1 epoch over {train_samples:,} MNIST images, CPU, {workers} decoding worker(s)")
    print(f"{'':28}{'samples/s':>12}")
    for name, rate in rates.items():
        print(f"{name:28}{rate:12,.0f}")
    ratio = rates["image_folder (streamed)"] / rates["npz (in memory)"]
    print(f"{'ratio (streamed / memory)':28}{ratio:12.2f}x")
    tests = [test for _, test in results.values()]
    print(f"same test metrics: {tests[0] == tests[1]}")


if __name__ == "__main__":
    main()
