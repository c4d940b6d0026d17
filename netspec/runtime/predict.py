"""`netspec eval` and `netspec predict`: trained weights against the test split or new inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from netspec.ir import nodes as ir
from netspec.runtime.datasets import DataError, load, read_image, resolve_root
from netspec.runtime.loop import (
    Experiment,
    RunOptions,
    binary_probabilities,
    build,
    evaluate,
    pick_device,
    prepare_data,
)


def load_weights(exp: Experiment, path: Path) -> None:
    """A model.safetensors from a run, or a .pt state dict (loaded with weights_only=True)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = exp.model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(
            f"{path} does not fit the network: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}",
            "use the weights of a run of this spec",
        )


def _experiment(program: ir.Program, options: RunOptions, weights: Path) -> Experiment:
    train, dataset = program.train, program.dataset
    assert train is not None and dataset is not None
    device = pick_device(options.device or train.device)
    arrays = load(dataset.source, resolve_root(options.data_dir), options.spec_dir, train.seed, options.download)
    exp = build(program, prepare_data(program, arrays, device), device)
    load_weights(exp, weights)
    return exp


def evaluate_weights(program: ir.Program, options: RunOptions, weights: Path) -> dict[str, float]:
    exp = _experiment(program, options, weights)
    split = exp.data.test or exp.data.val
    if split is None:
        raise DataError("the dataset has no test or validation split to evaluate on", None)
    meter, _ = evaluate(exp, split)
    return {"loss": meter.loss, **meter.metrics(exp.metrics)}


def predict(program: ir.Program, options: RunOptions, weights: Path, inputs: list[str]) -> list[dict[str, Any]]:
    exp = _experiment(program, options, weights)
    net = program.network(program.train.model)  # type: ignore[union-attr]
    assert net is not None
    x = torch.stack([_read(path, net.input_shape) for path in inputs]).to(exp.device)
    for fn in exp.data.at_eval:
        x = fn(x)
    exp.model.eval()
    with torch.no_grad():
        out = exp.model(x).float().cpu()
    return [_describe(path, row, exp) for path, row in zip(inputs, out)]


def _read(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    if path.endswith(".npy"):
        a = np.load(path, allow_pickle=False)
        if tuple(a.shape) != tuple(shape):
            raise DataError(f"{path} has shape {list(a.shape)}, but the network takes {list(shape)}", None)
        t = torch.from_numpy(a)
        return t.float() / 255 if t.dtype == torch.uint8 else t.float()
    if len(shape) != 3:
        raise DataError(f"{path}: image inputs need an image network ([C, H, W] input)", "pass a .npy array")
    return torch.from_numpy(read_image(Path(path), (shape[1], shape[2]), shape[0])).float() / 255


def _describe(path: str, out: torch.Tensor, exp: Experiment) -> dict[str, Any]:
    if not exp.classes:
        return {"input": path, "prediction": [round(v, 6) for v in out.reshape(-1).tolist()]}
    loss = exp.program.train.loss  # type: ignore[union-attr]
    probs = out.softmax(-1) if out.shape[-1] > 1 else binary_probabilities(loss, out)
    k = int(probs.argmax())
    names = exp.data.classes
    return {"input": path, "prediction": names[k] if names and k < len(names) else k, "probability": float(probs[k])}
