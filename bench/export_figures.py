"""`netspec export`'s figures: each format's export time, file size and largest difference from
PyTorch for trained runs, and int8 quantization's size, latency and accuracy before and after.

Given run directories, it exports each in every format (to a temporary folder) through the same
code as the command, times the file's CPU latency on a batch of 32, and quantizes each run to
int8 `--repeats` times (latency is the noisiest figure on a shared machine: the table gives each). Without
run directories it trains tiny runs of every spec in specs/ first (one epoch on 256 samples):
those figures say how close each format comes, not how accurate the networks are.

    NETSPEC_DATA=../shared/data python bench/export_figures.py runs/mnist [--repeats 3]
    NETSPEC_DATA=../shared/data python bench/export_figures.py          # every spec, tiny runs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from netspec import cli
from netspec.ir.pipeline import compile_file
from netspec.language.diagnostics import UsageError
from netspec.registry.exports import EXPORTS
from netspec.runtime import export, trained
from netspec.runtime.loop import RunOptions
from netspec.runtime.record import recorded

ROOT = Path(__file__).resolve().parent.parent
TINY = {"shakespeare": ["train.steps=2"], "shakespeare_gpt": ["train.steps=2"], "gunpoint": ["train.epochs=1"]}


def load(run: Path) -> trained.Trained:
    spec, overrides, spec_dir = recorded(run)
    program = compile_file(spec, overrides).program
    assert program is not None, f"{run}: the recorded spec has errors"
    options = RunOptions(data_dir=os.environ.get("NETSPEC_DATA"), device="cpu", download=False, spec_dir=spec_dir)
    return trained.load(program, options, run / "model.safetensors", data=True)


def tiny_runs(folder: Path) -> list[Path]:
    runs = []
    for spec in sorted((ROOT / "specs").glob("*.net")):
        sets = TINY.get(spec.stem, ["train.epochs=1", "dataset.limit=256"])
        out = folder / spec.stem
        sets_args = [a for s in sets for a in ("--set", s)]
        args = ["run", str(spec), *sets_args, "--out", str(out), "--quiet", "--no-download"]
        if cli.main(args) == 0:
            runs.append(out)
    return runs


def formats(run: Path, folder: Path) -> list[str]:
    rows = []
    for name, cls in EXPORTS.entries.items():
        if cls.missing():
            continue
        model = load(run)
        request = export.Request(name, folder / f"{run.name}{cls.suffix}")
        start = time.perf_counter()
        report = export.export(model, request)
        total = time.perf_counter() - start
        check, runner = report.check, cls().load(request.output.read_bytes())  # type: ignore[call-arg]
        ms = export.latency(runner, model.examples(export.TIMED).cpu())
        rows.append(
            f"| {run.name} | {name} | {report.seconds:.1f} s ({total:.1f} s) | {report.size / 1e6:.3f} MB "
            f"| {check.max_diff:.1e} | {check.source} | {ms:.2f} ms |"
        )
    return rows


def int8(run: Path, folder: Path, repeats: int) -> list[str]:
    rows = []
    for i in range(repeats):
        request = export.Request("torchscript", folder / f"{run.name}-int8.pt", "int8", max_drop=100.0)
        try:
            report = export.export(load(run), request)
        except (export.ExportError, export.Mismatch, UsageError) as e:
            return [f"| {run.name} | not quantized: {str(e).splitlines()[0]} | | | |"]
        f = report.figures
        assert f is not None
        quality = f"{f.quality[0]:.4f} -> {f.quality[1]:.4f}" if f.quality else ""
        rows.append(
            f"| {run.name} #{i + 1} | {f.what} | {f.size[0] / 1e6:.3f} -> {f.size[1] / 1e6:.3f} MB "
            f"| {f.latency[0]:.2f} -> {f.latency[1]:.2f} ms | {f.measure} {quality} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories (default: tiny runs of every spec)")
    parser.add_argument("--repeats", type=int, default=3, help="int8 exports per run (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or tiny_runs(Path(tmp) / "runs")
        print("| run | format | export + check (whole call) | size | max difference | inputs | latency, 32 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for run in runs:
            print("\n".join(formats(run, Path(tmp))), flush=True)
        print("\n| run | int8 quantized | size | latency (batch of 32) | quality (test split) |")
        print("| --- | --- | --- | --- | --- |")
        for run in runs:
            print("\n".join(int8(run, Path(tmp), args.repeats)), flush=True)


if __name__ == "__main__":
    main()
