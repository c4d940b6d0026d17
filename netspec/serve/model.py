"""The served network, without a web framework: requests in, answers out.

`Model` wraps the trained network of `runtime.trained` (loaded once per process): it turns a
request's inputs into raw tensors (`inputs`), runs a batch of them (`forward`, called from the
batcher's single model thread), turns one output row into an answer (`answer`: the top classes
with probabilities, or the values), continues a prompt one character at a time (`generation`),
and describes itself for `/info`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from netspec import __version__
from netspec.runtime import adversarial
from netspec.runtime.loop import binary_probabilities
from netspec.runtime.sample import Request, continue_text
from netspec.runtime.trained import Trained
from netspec.serve.inputs import BadInput, Expect, image_file, item, text_ids

TOP = 5  # classes in an answer's `top`
MAX_LENGTH = 2000  # characters one /generate request may ask for
MAX_PROMPT = 10_000  # characters of a prompt


@dataclass(frozen=True)
class Limits:
    """What one request may send, and how requests are batched."""

    max_batch: int = 32
    wait_ms: float = 5.0
    max_body: int = 10 << 20
    max_items: int = 256
    max_length: int = MAX_LENGTH


class Model:
    def __init__(
        self,
        trained: Trained,
        source: str,
        features: list[str] | None = None,
        undo: list[Callable[[Any], Any]] | None = None,
    ) -> None:
        self.trained = trained
        self.source = source  # the spec file or run directory it was started with
        self.features = features
        self.undo = undo or []  # a GAN's: the dataset's preprocessing, to undo on its samples
        vocab = tuple(trained.vocab) if trained.vocab else None
        self.expect = Expect(
            network=trained.name,
            shape=trained.input_shape,
            integer=trained.dtype == "int64",
            image=trained.image,
            rows=len(vocab) if vocab else None,
            vocab=vocab,
        )

    @property
    def name(self) -> str:
        return self.trained.name

    @property
    def takes(self) -> str:
        """What the page shows: "image", "text" (a language model), "samples" (a GAN's generator) or
        "values" (a form of numbers)."""
        if self.trained.output in ("tokens", "images"):
            return {"tokens": "text", "images": "samples"}[self.trained.output]
        return "image" if self.expect.image else "values"

    def inputs(self, values: list[Any], max_items: int) -> list[torch.Tensor]:
        """A request's inputs as raw tensors, each checked."""
        check_count(len(values), max_items, "inputs")
        return [item(v, i, self.expect) for i, v in enumerate(values)]

    def image(self, data: bytes, where: str) -> torch.Tensor:
        return image_file(data, where, self.expect)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The outputs of a batch of raw inputs (float32, CPU); runs in the model thread."""
        return self.trained(batch)

    def answer(self, out: torch.Tensor) -> dict[str, Any]:
        """One input's answer: the top classes with their probabilities, or the values."""
        if self.trained.output not in ("classes", "tokens"):
            return {"values": out.tolist()}
        if out.dim() == 2:  # a score per position: the next token is the last position's
            out = out[-1]
        loss = self.trained.program.train.loss  # type: ignore[union-attr]
        probs = out.softmax(-1) if out.shape[-1] > 1 else binary_probabilities(loss, out)
        names = self.trained.classes or self.trained.vocab or []
        top = probs.topk(min(TOP, len(probs)))
        ranked = [
            {"class": names[k] if k < len(names) else str(k), "probability": float(p)}
            for p, k in zip(top.values.tolist(), top.indices.tolist())
        ]
        return {"class": ranked[0]["class"], "probability": ranked[0]["probability"], "top": ranked}

    # --- text ---------------------------------------------------------------------------------

    def prompt(self, text: str | None) -> list[int]:
        """A prompt's token ids (None: a newline, as `netspec sample` starts)."""
        vocab = self.expect.vocab
        if vocab is None:
            raise BadInput(400, f"{self.name} is not a language model: it does not continue text")
        if text is None:
            text = "\n" if "\n" in vocab else vocab[0]
        return text_ids(text, "the prompt", self.expect) or [0]

    def generation(self, ids: list[int], request: Request) -> Iterator[str]:
        """The continuation's characters, one per next(): each a forward pass (call it in the model thread)."""
        vocab = self.expect.vocab
        assert vocab is not None
        t = self.trained
        for token in continue_text(t.module, t.network, ids, request, t.device):
            yield vocab[token]

    # --- a GAN's samples ------------------------------------------------------------------------

    def samples(self, count: int, seed: int, label: int | None = None) -> torch.Tensor:
        """`count` samples drawn from noise seeded with `seed`, the preprocessing undone (images in
        [0, 1]): those of `netspec sample -n count --seed seed [--label label]`. Call it in the model thread."""
        t = self.trained
        problem = adversarial.label_problem(t.program, label)
        if problem:
            raise BadInput(422, problem)
        labels = None if label is None else torch.full((count,), label)
        z = adversarial.generator_input(t.program, count, t.device, torch.Generator().manual_seed(seed), labels)
        with torch.no_grad():
            return adversarial.undo(t.module(z).float().cpu(), self.undo)

    # --- /info --------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        t = self.trained
        metrics = t.metrics or {}
        return {
            "spec": metrics.get("spec") or Path(self.source).stem,
            "source": self.source,
            "network": self.name,
            "input": {
                "shape": list(t.input_shape),
                "dtype": t.dtype,
                "image": t.image,
                "features": self.features,
            },
            "output": t.output,
            "takes": self.takes,
            "classes": t.classes,
            "vocab": t.vocab,
            "preprocessing": t.preprocessing,
            "spec_sha256": t.spec_sha256,
            "device": str(t.device),
            "metrics": metrics,
            "versions": versions(),
        }


def check_count(n: int, most: int, what: str) -> None:
    if n == 0:
        raise BadInput(422, f"{what} is empty: send at least one")
    if n > most:
        raise BadInput(413, f"{n} {what} in one request; at most {most} (--max-items)", limit=most, got=n)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"netspec": __version__, "torch": torch.__version__, "python": platform.python_version()}
    for name in ("fastapi", "starlette", "uvicorn", "pydantic"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def feature_names(program: Any, options: Any, width: int) -> list[str] | None:
    """The input columns of a CSV source (its header without the target), when the file is at hand:
    the form on the page shows them. None otherwise (the page then says x0, x1, ...)."""
    source = program.dataset.source
    if not {"path", "target", "delimiter"} <= set(type(source).model_fields):
        return None
    from netspec.runtime.data_core import DataError, DataPaths, find_path, gunzip, read_bytes, resolve_root

    try:
        path = find_path(source.path, DataPaths(resolve_root(options.data_dir), options.spec_dir, 0, False), "csv")
        data = read_bytes(path)
        text = (gunzip(data, path) if path.suffix == ".gz" else data).decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=source.delimiter))
    except (DataError, OSError, ValueError, csv.Error, StopIteration):
        return None
    names = [h.strip() for h in header if h.strip() != source.target]
    return names if len(names) == width else None


def png_grid(images: torch.Tensor, gap: int = 2) -> bytes:
    """Images [N, C, H, W] in [0, 1] as one PNG: a grid of about as many columns as rows."""
    from PIL import Image

    n, c, h, w = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * (h + gap) - gap, cols * (w + gap) - gap, c), np.uint8)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, image in enumerate(pixels):
        r, k = divmod(i, cols)
        grid[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = image
    buffer = io.BytesIO()
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(buffer, format="PNG")
    return buffer.getvalue()
