"""The script `netspec emit` writes against `netspec run`, on specs/mnist.net, on the same machine.

Both train LeNet for one epoch on the full MNIST training set (from $NETSPEC_DATA; no
validation split, so that the epoch is training only) with the same seed, alternately,
`--repeat` times each. Training samples per second come from each run's metrics.csv
(`seconds`: the epoch's training time, which both measure the same way); the table shows
the best and the median run of each, their ratio (goal: within 5%), and the median wall
time of a whole process (python start-up, imports, data loading and evaluation included).
The two runs also end with the same test metrics, which the table checks.

    NETSPEC_DATA=../shared/data python bench/emit_speed.py [--repeat 3] [--device cpu] [--epochs 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "mnist.net"
TRAIN_SAMPLES = 60000


def timed(cmd: list[str], out: Path) -> tuple[float, float, dict[str, float]]:
    """(training seconds from metrics.csv, process wall seconds, test metrics) of one run."""
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    with open(out / "metrics.csv", newline="") as f:
        seconds = sum(float(row["seconds"]) for row in csv.DictReader(f))
    return seconds, wall, json.loads((out / "summary.json").read_text())["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    if not os.environ.get("NETSPEC_DATA"):
        sys.exit("set NETSPEC_DATA to a folder with mnist/ (e.g. ../shared/data)")
    overrides = ["--set", f"train.epochs={args.epochs}", "--set", "dataset.validation=0"]
    results: dict[str, list[tuple[float, float, dict[str, float]]]] = {"netspec run": [], "emitted script": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "mnist.py"
        netspec = [sys.executable, "-m", "netspec"]
        subprocess.run([*netspec, "emit", str(SPEC), "-o", str(script), *overrides], check=True)
        for i in range(args.repeat):
            out = Path(tmp) / f"run{i}"
            run = [*netspec, "run", str(SPEC), *overrides, "--quiet", "--out", str(out), "--device", args.device]
            results["netspec run"].append(timed(run, out))
            out = Path(tmp) / f"script{i}"
            emitted = [sys.executable, str(script), "--out", str(out), "--device", args.device]
            results["emitted script"].append(timed(emitted, out))
    samples = TRAIN_SAMPLES * args.epochs
    rates = {name: [samples / r[0] for r in runs] for name, runs in results.items()}
    walls = {name: statistics.median(r[1] for r in runs) for name, runs in results.items()}
    same = all(r[2] == results["netspec run"][0][2] for runs in results.values() for r in runs)
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    print(f"MNIST LeNet, {args.epochs} epoch(s), batch 64, device {args.device}, {args.repeat} runs each", end="")
    print(f", {threads} threads")
    print(f"{'':26}{'best samples/s':>16}{'median':>10}{'wall (s)':>10}")
    for name in results:
        print(f"{name:26}{max(rates[name]):16,.0f}{statistics.median(rates[name]):10,.0f}{walls[name]:10.1f}")
    best = max(rates["emitted script"]) / max(rates["netspec run"])
    median = statistics.median(rates["emitted script"]) / statistics.median(rates["netspec run"])
    wall_ratio = walls["netspec run"] / walls["emitted script"]
    print(f"{'ratio (script / netspec)':26}{best:15.3f}x{median:9.3f}x{wall_ratio:9.2f}x")
    print(f"same test metrics in every run: {same}")
    summary = {
        "netspec_samples_per_s": max(rates["netspec run"]),
        "script_samples_per_s": max(rates["emitted script"]),
        "ratio_best": best,
        "ratio_median": median,
        "netspec_wall_s": walls["netspec run"],
        "script_wall_s": walls["emitted script"],
        "same_test_metrics": same,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
