"""`make run`: train a first spec, and say which one and why.

MNIST (`specs/mnist.net`, one epoch) when the data root holds its files or they can be downloaded;
otherwise `specs/addition.net`, whose data is generated (no download). The data root is, in order:
--data-dir, $NETSPEC_DATA, ../shared/data (beside the clone), netspec's download cache.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Sequence

from netspec.registry.sources import IDX_FILES, Mnist
from netspec.runtime.data_core import missing_files, resolve_root

MNIST = ["specs/mnist.net", "--set", "train.epochs=1"]
ADDITION = ["specs/addition.net"]


def data_root(data_dir: str | None, repo: Path) -> Path:
    """--data-dir, else $NETSPEC_DATA, else ../shared/data if it exists, else the download cache."""
    shared = repo.parent / "shared" / "data"
    if not data_dir and not os.environ.get("NETSPEC_DATA") and shared.is_dir():
        data_dir = str(shared)
    return resolve_root(data_dir)


def has_mnist(root: Path) -> bool:
    return not missing_files(root / Mnist.folder, [n for pair in IDX_FILES.values() for n in pair])


def can_download(timeout: float = 5.0) -> bool:
    """Whether one of MNIST's mirrors answers."""
    for mirror in Mnist.mirrors:
        try:
            urllib.request.urlopen(urllib.request.Request(mirror, method="HEAD"), timeout=timeout).close()
            return True
        except urllib.error.HTTPError:  # the server answered (a folder URL may be 403/404)
            return True
        except (OSError, ValueError):
            continue
    return False


def choose(root: Path, online: bool | None = None) -> tuple[list[str], str]:
    """The `netspec run` arguments of the quickstart, and why those."""
    if has_mnist(root):
        return MNIST, f"MNIST is in {root}"
    if can_download() if online is None else online:
        return MNIST, f"MNIST is not in {root}, but can be downloaded there (about 11 MB)"
    why = f"MNIST is not in {root} and cannot be downloaded (no connection to {Mnist.mirrors[0]})"
    return ADDITION, f"{why}; addition.net generates its data"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netspec.runtime.quickstart", description=__doc__)
    parser.add_argument("--data-dir", help="the data root")
    args = parser.parse_args(argv)
    root = data_root(args.data_dir, Path.cwd())
    run_args, why = choose(root)
    command = [sys.executable, "-m", "netspec", "run", *run_args, "--data-dir", str(root)]
    print(f"quickstart: training {run_args[0]}: {why}", flush=True)
    print("quickstart: " + " ".join(["netspec", *command[3:]]), flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
