"""`netspec sample`: text from a trained language model, images from a trained GAN's generator.

What is sampled follows from the spec: a GAN (its task's trainer is "adversarial") draws images
from its generator; a supervised network on token ids (a text source) continues a prompt one
character at a time. A language model's characters come from the run directory's vocab.json,
so that sampling needs no data files; a GAN's images have the dataset's normalization undone,
which needs the data only when a transform takes statistics from it (standardize).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from netspec.ir import nodes as ir
from netspec.language.diagnostics import UsageError
from netspec.runtime import adversarial
from netspec.runtime.build import build_network
from netspec.runtime.data_core import InputError
from netspec.runtime.loop import RunOptions, pick_device
from netspec.runtime.predict import read_weights
from netspec.runtime.rundir import read_vocab, write_atomic
from netspec.runtime.splits import prepare_data


@dataclass
class Request:
    prompt: str | None = None
    length: int = 500
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0
    count: int = 64
    label: int | None = None  # a conditional GAN's class for every sample; None: the classes in turn


def kind(program: ir.Program) -> str:
    """ "images" (a GAN), "text" (a model of token ids), or a UsageError saying what can be sampled."""
    train, dataset = program.train, program.dataset
    assert train is not None and dataset is not None
    if train.task.trainer == "adversarial":
        return "images"
    if dataset.source.task().target == "token":
        return "text"
    raise UsageError(
        f"`netspec sample` draws from a GAN's generator or continues text with a language model; this spec's "
        f"`{train.model}` is trained on {dataset.source.kind} data: use `netspec predict`"
    )


def trained_network(program: ir.Program, weights: Path, device: torch.device) -> tuple[ir.Network, nn.Module]:
    """The network that samples (a GAN's generator, else the model) with its weights, in eval mode.
    A GAN's model.safetensors holds both networks (`generator.*`); its generator.safetensors one."""
    train = program.train
    assert train is not None
    key, name = next(iter(train.trained().items()))
    net = program.network(name)
    assert net is not None
    state = read_weights(weights)
    prefix = f"{key}."
    if any(k.startswith(prefix) for k in state):
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    torch.manual_seed(0)
    module = build_network(net)
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        detail = str(e).splitlines()[0]
        raise InputError(
            f"{weights} does not fit network `{name}`: {detail}", "use the weights of a run of this spec"
        ) from None
    return net, module.to(device).eval()


# --- text ------------------------------------------------------------------------------------


def vocabulary(weights: Path, load_data: Callable[[], Any]) -> list[str]:
    """The characters of the token ids: the run directory's vocab.json, else from the data."""
    try:
        return read_vocab(weights.parent)
    except (OSError, ValueError):
        vocab = load_data().vocab
        if vocab is None:
            raise InputError(f"{weights.parent} has no vocab.json, and the dataset has no vocabulary") from None
        return list(vocab)


def encode(prompt: str, vocab: list[str]) -> list[int]:
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in prompt if c not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:8])
        raise UsageError(f"the prompt has characters the model never saw: {shown}; it knows {len(vocab)} characters")
    return [index[c] for c in prompt]


@torch.no_grad()
def continue_text(
    model: nn.Module, net: ir.Network, ids: list[int], request: Request, device: torch.device
) -> Iterator[int]:
    """Token ids, one at a time: the model's next-token distribution at the end of the context (the
    last `seq_len` ids), divided by the temperature, cut to the top k, sampled with the seed."""
    context = int(net.input_shape[0])
    tokens = torch.tensor([ids], dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(request.seed)
    for _ in range(request.length):
        logits = model(tokens[:, -context:])[0, -1].float() / request.temperature
        if request.top_k is not None and request.top_k < logits.numel():
            cut = torch.topk(logits, request.top_k).values[-1]
            logits = logits.masked_fill(logits < cut, float("-inf"))
        token = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)
        tokens = torch.cat([tokens, token.view(1, 1)], dim=1)
        yield int(token)


def text(
    program: ir.Program, options: RunOptions, weights: Path, request: Request, write: Callable[[str], None]
) -> None:
    """Continue the prompt (by default a newline, as nanoGPT starts), writing each character as it comes."""
    device = pick_device(options.device or program.train.device)  # type: ignore[union-attr]
    net, model = trained_network(program, weights, device)
    vocab = vocabulary(weights, lambda: _arrays(program, options))
    prompt = request.prompt if request.prompt is not None else ("\n" if "\n" in vocab else vocab[0])
    ids = encode(prompt, vocab) or [0]
    write(prompt)
    for token in continue_text(model, net, ids, request, device):
        write(vocab[token])


# --- images ----------------------------------------------------------------------------------


def conditional_classes(program: ir.Program, request: Request) -> int:
    """A conditional GAN's number of classes (0: not conditional); a UsageError for a `label` it
    cannot draw."""
    problem = adversarial.label_problem(program, request.label)
    if problem:
        raise UsageError(f"--{problem}")
    return adversarial.classes(program)


@torch.no_grad()
def images(program: ir.Program, options: RunOptions, weights: Path, request: Request) -> torch.Tensor:
    """`count` generated images [N, C, H, W] in [0, 1] (the normalization undone), from noise drawn with the seed."""
    train = program.train
    assert train is not None
    device = pick_device(options.device or train.device)
    _, generator = trained_network(program, weights, device)
    g = torch.Generator().manual_seed(request.seed)
    labels = None if request.label is None else torch.full((request.count,), request.label)
    z = adversarial.generator_input(program, request.count, device, g, labels)
    return adversarial.undo(generator(z).float().cpu(), preprocessing(program, options))


def preprocessing(program: ir.Program, options: RunOptions) -> list[Callable[[Any], Any]]:
    """What the dataset's samples went through before training, to undo: built without the data
    unless a transform takes statistics from it."""
    dataset = program.dataset
    assert dataset is not None
    if any(t.statistics for t in dataset.transforms):
        return prepare_data(program, _arrays(program, options), torch.device("cpu")).at_eval
    shape = program.network(program.train.discriminator)  # type: ignore[union-attr]
    assert shape is not None
    probe = torch.zeros(1, *shape.input_shape)
    return [fn for t in dataset.transforms if not t.augment and (fn := t.eval_function(probe)) is not None]


def _arrays(program: ir.Program, options: RunOptions) -> Any:
    from netspec.runtime.datasets import load, resolve_root

    dataset, train = program.dataset, program.train
    assert dataset is not None and train is not None
    return load(dataset.source, resolve_root(options.data_dir), options.spec_dir, train.seed, options.download)


def save_images(path: Path, batch: torch.Tensor, title: str, columns: int = 8) -> None:
    """A PNG grid, or with `.npy` the float32 array [N, C, H, W] itself."""
    if path.suffix.lower() == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, batch.numpy().astype(np.float32))
        write_atomic(path, buffer.getvalue())
        return
    if batch.dim() != 4:
        raise UsageError(f"the samples are not images ({list(batch.shape[1:])} each): write them with -o FILE.npy")
    try:
        from netspec.runtime import plots
    except ImportError as e:
        raise UsageError(f"writing a PNG needs matplotlib ({e}); pip install matplotlib, or write .npy") from e
    plots.sample_grid(path, batch, title, columns)
