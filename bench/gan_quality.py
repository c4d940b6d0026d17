"""How recognisable a GAN's samples are, and how many classes they cover, judged by a classifier.

Trains the GAN spec with its own settings (`netspec run specs/gan.net`, or the spec given), draws
1,000 samples from the trained generator (generator.safetensors in the network the spec
describes, noise as `netspec run` draws it), undoes the GAN dataset's normalization and scores
them with the LeNet of specs/mnist.net (trained here, or `--classifier RUN_DIR`) after that
classifier's own preprocessing. Two figures: the mean top-class probability (how recognisable the
samples are) and the share of each predicted class (mode coverage: a collapsed generator draws a
few classes). Baseline: 1,000 real test images of the classifier's dataset, scored the same way.
The generator is scored as `netspec run` draws it (eval mode: batchnorm's running statistics) and
with batchnorm on the samples' own batch statistics (train mode), to show which one draws better.

    NETSPEC_DATA=../shared/data python bench/gan_quality.py [SPEC] [--gan RUN_DIR] [--classifier RUN_DIR] [--out DIR]

Fashion-MNIST: `python bench/gan_quality.py specs/fashion_gan.net --classifier RUN_DIR`, with a
run of specs/fashion.net.
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
from typing import Any

import torch

from netspec.ir.pipeline import load
from netspec.runtime import adversarial
from netspec.runtime.build import build_network
from netspec.runtime.datasets import load as load_arrays
from netspec.runtime.datasets import resolve_root
from netspec.runtime.loop import prepare_data
from netspec.runtime.predict import read_weights
from netspec.runtime.record import recorded

ROOT = Path(__file__).resolve().parent.parent
GAN_SPEC = ROOT / "specs" / "gan.net"
CLASSIFIER_SPEC = ROOT / "specs" / "mnist.net"
GOAL_CONFIDENCE, GOAL_SHARE = 0.90, 0.04


def train(spec: Path, out: Path) -> float:
    """`netspec run SPEC` into `out`; its wall time in seconds."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "netspec", "run", str(spec), "--quiet", "--out", str(out), "--overwrite"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def program_of(run: Path) -> Any:
    """The checked program a run directory was trained from (its recorded spec and overrides)."""
    spec, overrides, _ = recorded(run)
    return load(spec, overrides)


def prepared(program: Any) -> Any:
    """The program's dataset, split and preprocessed as `netspec run` does it (CPU)."""
    dataset, seed = program.dataset, program.train.seed
    arrays = load_arrays(dataset.source, resolve_root(None), None, seed)
    return arrays, prepare_data(program, arrays, torch.device("cpu"))


def generate(run: Path, n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """n samples of the run's generator in [0, 1], in eval and in train mode, from the same noise (as
    `netspec sample` draws them); a conditional GAN's asked for the classes in turn, which are returned."""
    program = program_of(run)
    generator = build_network(program.network(program.train.generator))
    generator.load_state_dict(read_weights(run / "generator.safetensors"))
    z = adversarial.generator_input(program, n, torch.device("cpu"), torch.Generator().manual_seed(seed))
    classes = adversarial.classes(program)
    asked = torch.arange(n) % classes if classes else None
    _, data = prepared(program)
    out = {}
    with torch.no_grad():
        for mode, training in (("eval", False), ("train", True)):
            generator.train(training)
            out[mode] = adversarial.undo(generator(z), data.at_eval)
    return out, asked


def scorer(run: Path) -> tuple[Any, list[Any], torch.Tensor, torch.Tensor, list[str]]:
    """The classifier of a run, its preprocessing, its dataset's test images in [0, 1] and their
    labels, class names."""
    program = program_of(run)
    model = build_network(program.network(program.train.model))
    model.load_state_dict(read_weights(run / "model.safetensors"))
    model.eval()
    arrays, data = prepared(program)
    real = torch.from_numpy(arrays.x_test).float() / 255
    names = arrays.classes or [str(k) for k in range(10)]
    return model, data.at_eval, real, torch.from_numpy(arrays.y_test).long(), names


@torch.no_grad()
def score(
    model: Any, at_eval: list[Any], images: torch.Tensor, classes: int, asked: torch.Tensor | None
) -> tuple[float, torch.Tensor, float | None]:
    """Mean top-class probability, the share of each predicted class, and the share predicted as the
    class asked for (a conditional GAN's samples and the real images with their labels; else None)."""
    x = images
    for fn in at_eval:
        x = fn(x)
    probs = torch.softmax(model(x), dim=1)
    top, pred = probs.max(dim=1)
    shares = torch.bincount(pred, minlength=classes).float() / len(pred)
    agreement = None if asked is None else float((pred == asked).float().mean())
    return float(top.mean()), shares, agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", type=Path, default=GAN_SPEC, help="the GAN spec (default specs/gan.net)")
    parser.add_argument("--gan", type=Path, metavar="RUN_DIR", help="score this GAN run instead of training one")
    parser.add_argument("--classifier", type=Path, metavar="RUN_DIR", help="a run of specs/mnist.net (default: train)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="keep the GAN's run here (default: a temporary folder)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="of the samples' noise")
    args = parser.parse_args()
    if not os.environ.get("NETSPEC_DATA"):
        sys.exit("set NETSPEC_DATA to a folder with mnist/ (e.g. ../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        classifier = args.classifier
        if classifier is None:
            classifier = Path(tmp) / "classifier"
            train(CLASSIFIER_SPEC, classifier)
        gan, wall = args.gan, None
        if gan is None:
            gan = args.out or Path(tmp) / "gan"
            wall = train(args.spec, gan)
        model, at_eval, real, labels, names = scorer(classifier)
        fakes, asked = generate(gan, args.samples, args.seed)
        real_labels = labels[: args.samples] if asked is not None else None
        rows = {
            "real test images (baseline)": score(model, at_eval, real[: args.samples], len(names), real_labels),
            "generator, eval mode (netspec run)": score(model, at_eval, fakes["eval"], len(names), asked),
            "generator, train-mode batchnorm": score(model, at_eval, fakes["train"], len(names), asked),
        }
        seconds = sum(float(r.split(",")[-1]) for r in (gan / "metrics.csv").read_text().splitlines()[1:])
        epochs = len((gan / "metrics.csv").read_text().splitlines()) - 1
    report(args, gan, rows, names, epochs, seconds, wall)


def report(
    args: argparse.Namespace,
    gan: Path,
    rows: dict[str, tuple[float, torch.Tensor, float | None]],
    names: list[str],
    epochs: int,
    seconds: float,
    wall: float | None,
) -> None:
    spent = f"{seconds:.0f} s training" + (f", {wall:.0f} s wall" if wall is not None else f" (run {gan})")
    print(f"{args.samples} samples per row, {epochs} epoch(s), {spent}, torch threads {torch.get_num_threads()}")
    base = rows["real test images (baseline)"][0]
    conditional = rows["real test images (baseline)"][2] is not None
    asked = f"{'as asked':>9}" if conditional else ""
    header = f"{'':36}{'confidence':>11}{'ratio':>7}{'min share':>10}{asked}  "
    print(header + "".join(f"{n[:5]:>6}" for n in names))
    for label, (conf, shares, agreement) in rows.items():
        cells = "".join(f"{100 * s:5.1f}%" for s in shares.tolist())
        agreed = f"{100 * agreement:8.1f}%" if agreement is not None else ""
        print(f"{label:36}{conf:11.3f}{conf / base:6.2f}x{100 * float(shares.min()):9.1f}%{agreed}  {cells}")
    if conditional:
        print(
            "as asked: the share the classifier reads as the class the generator was told (real images: their labels)"
        )
    conf, shares, _ = rows["generator, eval mode (netspec run)"]
    met = conf >= GOAL_CONFIDENCE and float(shares.min()) >= GOAL_SHARE
    print(f"goal (confidence >= {GOAL_CONFIDENCE}, every class >= {GOAL_SHARE:.0%}): {'met' if met else 'not met'}")
    print(
        json.dumps(
            {
                label: {"confidence": conf, "shares": [round(s, 4) for s in shares.tolist()], "as_asked": agreement}
                for label, (conf, shares, agreement) in rows.items()
            }
            | {"train_seconds": seconds, "wall_seconds": wall}
        )
    )


if __name__ == "__main__":
    main()
