"""What a logger costs a run: `netspec run` of one spec with `--log csv` (the baseline: the run
directory only), `--log tensorboard` and `--log mlflow`, interleaved, `--repeats` times each, in
fresh processes (as a user runs them), each in its own empty folder (MLflow's mlflow.db is created
there). The table gives the median wall time of the whole command and of training and ending
(summary.json's wall_seconds), and their ratio to csv.

    NETSPEC_DATA=../shared/data python bench/tracking_overhead.py [SPEC] [--repeats 5] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGGERS = ("csv", "tensorboard", "mlflow")
SMALL = ["train.epochs=1", "dataset.limit=4096"]


def one_run(spec: Path, logger: str, overrides: list[str]) -> tuple[float, float]:
    """(the command's wall time, summary.json's wall_seconds) of one run in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix=f"netspec-log-{logger}-") as folder:
        command = [sys.executable, "-m", "netspec", "run", str(spec), "--quiet", "--log", logger, "--out", "run"]
        command += [w for o in overrides for w in ("--set", o)]
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        return wall, json.loads((Path(folder) / "run" / "summary.json").read_text())["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, default=ROOT / "specs" / "mnist.net")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=None, metavar="K=V")
    args = parser.parse_args()
    overrides = args.overrides or SMALL
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in LOGGERS}
    for _ in range(args.repeats):  # interleaved, so that the machine's drift touches every logger alike
        for name in LOGGERS:
            times[name].append(one_run(args.spec, name, overrides))
    base = [statistics.median(t[i] for t in times["csv"]) for i in (0, 1)]
    print(f"{args.spec.name} ({' '.join(overrides)}), {args.repeats} runs each, medians")
    print("| logger | whole command | ratio | training and ending | ratio |\n| --- | --- | --- | --- | --- |")
    for name in LOGGERS:
        wall, inner = (statistics.median(t[i] for t in times[name]) for i in (0, 1))
        print(f"| {name} | {wall:.1f} s | {wall / base[0]:.2f}x | {inner:.1f} s | {inner / base[1]:.2f}x |")


if __name__ == "__main__":
    main()
