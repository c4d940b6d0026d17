"""Parse+check throughput of this tree against an earlier commit, measured alternately in the same
minutes (a shared machine's speed drifts, so figures from different days do not compare).

    python bench/compare_check.py a745af3 [--lines 20000] [--rounds 2]

The earlier commit is checked out as a temporary git worktree and imported from there in a child
process; each round measures both trees, the earlier first. Prints a table of lines/s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from check_speed import generate
try:
    from netspec.ir.pipeline import compile_text
    from netspec.language.parse import parse
except ImportError:  # the layout before the redesign
    from netspec.pipeline import compile_text
    from netspec.parse import parse
text = generate(int(sys.argv[3]))
lines = text.count("\\n") + 1
compile_text(text)
def best(f):
    times = []
    for _ in range(5):
        t = time.perf_counter(); f(text); times.append(time.perf_counter() - t)
    return lines / min(times)
print(f"{best(compile_text):.0f} {best(parse):.0f}")
"""


def measure(tree: Path, lines: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(ROOT / "bench"), str(lines)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref", help="the earlier commit to compare with")
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.ref], check=True)
        try:
            rows = []
            for _ in range(args.rounds):
                rows.append((args.ref, *measure(old, args.lines)))
                rows.append(("this tree", *measure(ROOT, args.lines)))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"{'tree':<12} {'parse+check lines/s':>20} {'parse lines/s':>14}")
    for name, check, parse in rows:
        print(f"{name:<12} {check:>20,.0f} {parse:>14,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
