"""Does pruning save time? The same study of specs/addition_tune.net, with and without its pruner,
with the random sampler and with TPE.

Each pair of studies draws with the same seeded sampler and runs the same number of trials; a pruned
trial stops after an epoch (from the third on) whose validation MAE is worse than the median of the
finished trials at that epoch (`median(startup=5, warmup=2)`). Prints a markdown table: trials
completed and pruned, epochs trained, wall time, the best validation MAE and the best trial's test
MAE.

    python bench/tune_pruning.py                 # 20 trials of 10 epochs, 4 studies
    python bench/tune_pruning.py --trials 8 --epochs 4 --samplers tpe
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "addition_tune.net"


def study(out: Path, trials: int, epochs: int, sampler: str, pruner: str | None) -> dict[str, object]:
    sets = [f"train.epochs={epochs}", f"tune.sampler={sampler}(seed=0)"]
    sets += [] if pruner is None else [f"tune.pruner={pruner}"]
    cmd = [sys.executable, "-m", "netspec", "tune", str(SPEC), "--out", str(out), "--trials", str(trials)]
    cmd += [w for s in sets for w in ("--set", s)] + ["--device", "cpu", "--format", "json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    summary = json.loads(done.stdout)
    with open(out / "tune.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = summary["best"]
    test = json.loads((out / f"trial-{best['trial']:03d}" / "summary.json").read_text())["test"]
    return {
        "complete": sum(r["state"] == "complete" for r in rows),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "epochs": sum(int(r["epochs"] or 0) for r in rows),
        "seconds": seconds,
        "best": best["value"],
        "test": test["mae"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samplers", nargs="+", default=["random", "tpe"], choices=["random", "tpe"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in args.samplers:
            for label, pruner in (("none", "none"), ("median", None)):
                out = Path(tmp) / f"{sampler}-{label}"
                rows.append((sampler, label, study(out, args.trials, args.epochs, sampler, pruner)))
    print(f"{args.trials} trials of up to {args.epochs} epochs of specs/addition_tune.net, samplers seeded 0\n")
    print("| sampler | pruner | complete | pruned | epochs trained | wall time | best val_mae | its test mae |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for sampler, label, r in rows:
        print(
            f"| {sampler} | {label} | {r['complete']} | {r['pruned']} | {r['epochs']} | {r['seconds']:.0f} s "
            f"| {r['best']:.4f} | {r['test']:.4f} |"
        )


if __name__ == "__main__":
    main()
