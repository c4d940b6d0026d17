"""`netspec eval` and `netspec predict`: trained weights against the test split or new inputs.

Weights and inputs are files a person names on the command line, so each is read with a bound
and checked before torch sees it: a file that cannot be used is an InputError that names it.
One bad input among several is reported in its row; the others are still predicted.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from netspec.ir import nodes as ir
from netspec.runtime.data_core import InputError, max_data, read_bytes, regular_file
from netspec.runtime.data_fit import check_fit
from netspec.runtime.datasets import Arrays, DataError, load, read_image, resolve_root
from netspec.runtime.loop import (
    Experiment,
    RunOptions,
    binary_probabilities,
    build,
    evaluate,
    pick_device,
    prepare_data,
)

MAX_HEADER = 100 << 20  # a safetensors header (JSON) larger than this is not a model's
BATCH = 256  # inputs per forward pass


# --- weights --------------------------------------------------------------------------------


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A model.safetensors from a run, or a .pt state dict (loaded with weights_only=True)."""
    size = regular_file(path, InputError)
    if size > max_data():
        raise InputError(f"{path} is {size:,} bytes, more than netspec reads ({max_data():,})", "set NETSPEC_MAX_DATA")
    state = _safetensors(path, size) if path.suffix == ".safetensors" else _pt(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} is not a state dict of tensors", "use the model.safetensors of a run")
    return state


def _safetensors(path: Path, size: int) -> Any:
    with open(path, "rb") as f:
        head = f.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if n < 2 or n > min(size - 8, MAX_HEADER):
        said = "is shorter than its 8-byte header length" if n < 0 else f"claims a {n:,}-byte header in {size:,} bytes"
        raise InputError(f"{path} is not a safetensors file: it {said}", "use the model.safetensors of a run")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # SafetensorError, or a header that is not JSON
        raise InputError(f"{path} is not a valid safetensors file: {e}", "use the model.safetensors of a run") from None


def _pt(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, ...: whatever the bytes are
        raise InputError(
            f"{path} is not a PyTorch state dict that loads without code: {e}", "use the model.safetensors of a run"
        ) from None


def load_weights(exp: Experiment, path: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Weights into the model; keys or shapes of another network are an InputError."""
    state = read_weights(path) if state is None else state
    try:
        missing, unexpected = exp.model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        raise InputError(f"{path} does not fit the network: {str(e).splitlines()[-1].strip()}", _OWN) from None
    if missing or unexpected:
        raise InputError(
            f"{path} does not fit the network: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}", _OWN
        )


_OWN = "use the weights of a run of this spec"


# --- eval -----------------------------------------------------------------------------------


def _experiment(program: ir.Program, options: RunOptions, weights: Path) -> tuple[Experiment, Arrays]:
    train, dataset = program.train, program.dataset
    assert train is not None and dataset is not None
    device = pick_device(options.device or train.device)
    arrays = load(dataset.source, resolve_root(options.data_dir), options.spec_dir, train.seed, options.download)
    check_fit(program, arrays)
    state = read_weights(weights)  # before the model is built: a bad file is named at once
    exp = build(program, prepare_data(program, arrays, device), device)
    load_weights(exp, weights, state)
    return exp, arrays


def evaluate_weights(program: ir.Program, options: RunOptions, weights: Path) -> dict[str, float]:
    exp, _ = _experiment(program, options, weights)
    split = exp.data.test or exp.data.val
    if split is None:
        raise DataError("the dataset has no test or validation split to evaluate on", None)
    meter, _ = evaluate(exp, split)
    return {"loss": meter.loss, **meter.metrics(exp.metrics)}


# --- predict --------------------------------------------------------------------------------


@dataclass
class Inputs:
    """What an input must be for the network: its sample shape, token ids or values, images or not."""

    shape: tuple[int, ...]
    tokens: bool  # integer ids (an embedding's input), kept as integers
    vocab: list[str] | None  # the characters of a text source, for text inputs and answers


def predict(
    program: ir.Program, options: RunOptions, weights: Path, inputs: list[str], top_k: int = 3
) -> list[dict[str, Any]]:
    """One row per sample (a .npy may hold a batch); a bad input's row has its `error`."""
    exp, arrays = _experiment(program, options, weights)
    net = program.network(program.train.model)  # type: ignore[union-attr]
    assert net is not None
    spec = Inputs(tuple(net.input_shape), _integer(arrays.x_train), arrays.vocab)
    read = [_read_or_error(path, spec) for path in inputs]
    named = [sample for r in read if isinstance(r, list) for sample in r]
    outputs: Iterator[torch.Tensor] = iter(_forward(exp, torch.stack([t for _, t in named])) if named else [])
    rows: list[dict[str, Any]] = []
    for r in read:
        rows += [r] if isinstance(r, dict) else [_describe(name, next(outputs), exp, spec, top_k) for name, _ in r]
    return rows


def _read_or_error(path: str, spec: Inputs) -> list[tuple[str, torch.Tensor]] | dict[str, Any]:
    """The samples of an input, or its row saying why it cannot be used."""
    try:
        return read_input(path, spec)
    except DataError as e:
        return {"input": path, "error": str(e)}


def _integer(x: Any) -> bool:
    return bool(getattr(x, "dtype", None) is not None and np.dtype(x.dtype).kind in "iu" and x.dtype != np.uint8)


def _forward(exp: Experiment, x: torch.Tensor) -> torch.Tensor:
    exp.model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), BATCH):
            batch = x[i : i + BATCH].to(exp.device)
            for fn in exp.data.at_eval:
                batch = fn(batch)
            outs.append(exp.model(batch).float().cpu())
    return torch.cat(outs)


def read_input(path: str, spec: Inputs) -> list[tuple[str, torch.Tensor]]:
    """The samples of one input file, each named: a .npy (one sample or a batch), a text for a
    character model, or an image."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        return _samples(path, _npy(read_bytes(p, error=InputError), path), spec)
    if p.suffix.lower() == ".txt" and spec.vocab is not None:
        return [(path, _text(read_bytes(p, error=InputError), path, spec))]
    if spec.tokens or len(spec.shape) != 3:
        raise InputError(f"{path}: this network takes a .npy array of shape {list(spec.shape)}", _inputs_hint(spec))
    return [(path, torch.from_numpy(read_image(p, (spec.shape[1], spec.shape[2]), spec.shape[0])).float() / 255)]


def _inputs_hint(spec: Inputs) -> str:
    shape = list(spec.shape)
    grey = f", {shape[1:]}" if len(shape) == 3 and shape[0] == 1 else ""
    text = f", or a .txt of at least {shape[-1]} characters" if spec.vocab is not None else ""
    return f"give a .npy of shape {shape}{grey} or a batch of them [N, ...]{text}"


def _npy(data: bytes, path: str) -> np.ndarray:
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # ValueError: pickled objects, a bad header, too few bytes
        raise InputError(f"{path} is not a .npy array of numbers: {e}", "save it with np.save(path, array)") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        kind = "an archive" if not isinstance(a, np.ndarray) else f"an array of {a.dtype}"
        raise InputError(f"{path} holds {kind}, not numbers", "save an integer or float array with np.save")
    return a


def _samples(path: str, a: np.ndarray, spec: Inputs) -> list[tuple[str, torch.Tensor]]:
    """A sample, or a batch [N, ...]; a missing channel axis of size 1 is added."""
    shape, got = spec.shape, tuple(a.shape)
    grey = len(shape) == 3 and shape[0] == 1
    if got in (shape, shape[1:] if grey else None):
        batch = a.reshape(1, *shape)
    elif got[1:] in (shape, shape[1:] if grey else None) and a.ndim in (len(shape), len(shape) + 1) and got[0] > 0:
        batch = a.reshape(got[0], *shape)
    else:
        raise InputError(
            f"{path} has shape {list(got)}, but the network takes {list(shape)}",
            _inputs_hint(spec),
        )
    t = _values(path, batch, spec)
    single = got == shape or (grey and got == shape[1:])
    return [(path, t[0])] if single else [(f"{path}[{i}]", row) for i, row in enumerate(t)]


def _values(path: str, a: np.ndarray, spec: Inputs) -> torch.Tensor:
    if not spec.tokens:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.float() / 255 if t.dtype == torch.uint8 else t.float()
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise InputError(f"{path} holds fractions, but the network takes token ids (integers)")
    ids = a.astype(np.int64)
    rows = len(spec.vocab) if spec.vocab is not None else None
    if ids.size and (ids.min() < 0 or (rows is not None and ids.max() >= rows)):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise InputError(f"{path} holds token id {bad}; the vocabulary has ids 0..{(rows or 1) - 1}")
    return torch.from_numpy(ids)


def _text(data: bytes, path: str, spec: Inputs) -> torch.Tensor:
    """The last seq_len characters of a text, as ids into the dataset's vocabulary."""
    assert spec.vocab is not None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from None
    n = spec.shape[-1]
    if len(text) < n:
        raise InputError(f"{path} has {len(text)} characters; the network reads {n} at a time", _inputs_hint(spec))
    index = {c: i for i, c in enumerate(spec.vocab)}
    unknown = sorted({c for c in text[-n:] if c not in index})
    if unknown:
        raise InputError(f"{path} has characters the training text lacks: {', '.join(map(repr, unknown[:5]))}")
    return torch.tensor([index[c] for c in text[-n:]], dtype=torch.int64)


def _describe(name: str, out: torch.Tensor, exp: Experiment, spec: Inputs, top_k: int) -> dict[str, Any]:
    if not exp.classes:
        return {"input": name, "prediction": [round(v, 6) for v in out.reshape(-1).tolist()]}
    if out.dim() == 2:  # a score per position: the next token is the last position's
        out = out[-1]
    loss = exp.program.train.loss  # type: ignore[union-attr]
    probs = out.softmax(-1) if out.shape[-1] > 1 else binary_probabilities(loss, out)
    names = spec.vocab if spec.tokens and spec.vocab else exp.data.classes
    top = probs.topk(min(max(top_k, 1), len(probs)))
    ranked = [{"class": _name(names, int(k)), "probability": float(p)} for p, k in zip(top.values, top.indices)]
    return {"input": name, "prediction": ranked[0]["class"], "probability": ranked[0]["probability"], "top": ranked}


def _name(names: list[str] | None, k: int) -> Any:
    return names[k] if names and k < len(names) else k


# --- output ---------------------------------------------------------------------------------


def print_predictions(rows: list[dict[str, Any]], fmt: str) -> None:
    """Predictions on stdout (a JSON list, or a line each); bad inputs also on stderr."""
    for row in rows:
        if "error" in row:
            print(f"netspec: error: {row['error']}", file=sys.stderr)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        if "error" not in row:
            print(f"{row['input']}: {_predicted(row)}")


def _predicted(row: dict[str, Any]) -> str:
    if "top" not in row:
        return str(row["prediction"])
    shown = [f"{_label(t['class'])} {t['probability']:.3f}" for t in row["top"]]
    return f"{_label(row['prediction'])} ({row['probability']:.3f})" + (
        f"; top {len(shown)}: {', '.join(shown)}" if len(shown) > 1 else ""
    )


def _label(name: Any) -> str:
    """A class name as printed; a character that would not show (a space, a newline) as its repr."""
    text = str(name)
    return repr(text) if (len(text) == 1 and not text.strip()) or not text.isprintable() else text
