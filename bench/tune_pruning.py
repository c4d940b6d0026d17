"""Does pruning save time? The same study of specs/addition_tune.net, with and without its pruner.

Both studies draw with the same seeded TPE sampler and run the same number of trials; a pruned trial
stops after an epoch whose validation MAE is worse than the median of the earlier trials at that
epoch. Prints a markdown table: trials completed and pruned, epochs trained, wall time, the best
validation MAE and the best trial's test MAE.

    python bench/tune_pruning.py                 # 20 trials of 10 epochs each way
    python bench/tune_pruning.py --trials 8 --epochs 4
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


def study(out: Path, trials: int, epochs: int, pruner: str | None) -> dict[str, object]:
    sets = [f"train.epochs={epochs}"] + ([] if pruner is None else [f"tune.pruner={pruner}"])
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
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, pruner in (("none", "none"), ("median(startup=5, warmup=2)", None)):
            rows.append((label, study(Path(tmp) / label.split("(")[0], args.trials, args.epochs, pruner)))
    print(f"{args.trials} trials of up to {args.epochs} epochs, specs/addition_tune.net, TPE seed 0\n")
    print("| pruner | complete | pruned | epochs trained | wall time | best val_mae | its test mae |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in rows:
        print(
            f"| {label} | {r['complete']} | {r['pruned']} | {r['epochs']} | {r['seconds']:.0f} s "
            f"| {r['best']:.4f} | {r['test']:.4f} |"
        )


if __name__ == "__main__":
    main()
