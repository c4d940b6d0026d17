"""A trained network ready for use outside training: what `netspec export` and `netspec serve` load.

Besides the module with its weights it carries what a consumer needs: the input shape and dtype,
what an output means (class scores, values, the next token, an image), the class names or the
vocabulary, and the evaluation-time preprocessing with its numbers. Those come from the run
directory's interface.json and vocab.json, so no data files are needed; weights outside a run
directory take them from the dataset, loaded once. Only safetensors (or a .pt state dict loaded
with weights_only) is ever read: no pickle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from netspec import __version__
from netspec.ir import nodes as ir
from netspec.registry.transforms import TRANSFORMS
from netspec.runtime import adversarial
from netspec.runtime.data_core import InputError
from netspec.runtime.loop import RunOptions, pick_device
from netspec.runtime.rundir import read_interface, read_vocab
from netspec.runtime.sample import trained_network
from netspec.runtime.splits import Split
from netspec.verbatim import adversarial as vadv

OUTPUTS = ("classes", "values", "tokens", "images")  # what an output of a trained network means


@dataclass
class Trained:
    program: ir.Program
    name: str  # the network that is used: the model, or a GAN's generator
    network: ir.Network
    module: nn.Module  # in eval mode, on `device`
    device: torch.device
    output: str  # one of OUTPUTS
    dtype: str  # of the inputs: "float32", or "int64" for token ids
    image: bool  # inputs are images [C, H, W] with pixel values in [0, 1] before preprocessing
    classes: list[str] | None  # the output classes' names (a character model: its characters)
    vocab: list[str] | None  # a language model's characters, by token id
    preprocessing: list[dict[str, Any]]  # Transform.deployed records, in order
    prepare: list[Callable[[torch.Tensor], torch.Tensor]]  # their functions
    spec_text: str
    metrics: dict[str, Any] | None = None  # the run's summary.json: test metrics, epochs, ...
    test: Split | None = None  # the test split (preprocessed), when the data was loaded
    train: Split | None = None  # the training split (preprocessed, not augmented), when the data was loaded
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.network.input_shape)

    @property
    def spec_sha256(self) -> str:
        return hashlib.sha256(self.spec_text.encode("utf-8")).hexdigest()

    def inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw inputs [N, *input_shape] (pixels in [0, 1], values, token ids) as the network takes them."""
        x = raw.to(self.device)
        for fn in self.prepare:
            x = fn(x)
        return x

    @torch.no_grad()
    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        """The network's outputs for raw inputs, as float32 on the CPU."""
        return self.module(self.inputs(raw)).float().cpu()

    @property
    def example_source(self) -> str:
        """Where `examples` come from: "noise" (a GAN's generator), "test split" or "generated"."""
        if self.noise is not None:
            return "noise"
        return "test split" if self.test is not None and isinstance(self.test.x, torch.Tensor) else "generated"

    @property
    def noise(self) -> Callable[..., torch.Tensor] | None:
        """A GAN generator's latent distribution (netspec/verbatim/adversarial.py), else None."""
        name = getattr(self.program.train.task, "noise_function", None) if self.program.train else None
        return getattr(vadv, name) if name else None

    def examples(self, n: int, seed: int = 0) -> torch.Tensor:
        """A batch of network inputs (after preprocessing): a GAN's noise; the test split's first n when
        the data was loaded; else generated ones of the right shape and dtype."""
        g = torch.Generator().manual_seed(seed)
        if self.noise is not None:  # and a conditional GAN's labels, the classes in turn
            return adversarial.generator_input(self.program, n, self.device, g)
        if self.test is not None and isinstance(self.test.x, torch.Tensor):
            return self.test.x[:n].to(self.device)
        if self.dtype == "int64":
            rows = len(self.vocab) if self.vocab else _embedding_rows(self.network)
            return torch.randint(0, rows, (n, *self.input_shape), generator=g).to(self.device)
        draw = torch.rand if self.image else torch.randn  # pixels in [0, 1], or values around 0
        return self.inputs(draw((n, *self.input_shape), generator=g))

    def metadata(self) -> dict[str, Any]:
        """What an export embeds beside the graph (ONNX metadata, TorchScript extra files)."""
        return {
            "network": self.name,
            "input_shape": list(self.input_shape),
            "input_dtype": self.dtype,
            "output": self.output,
            "classes": self.classes,
            "vocab": self.vocab,
            "preprocessing": self.preprocessing,
            "netspec_version": __version__,
            "torch_version": torch.__version__,
            "spec_sha256": self.spec_sha256,
        }


def load(
    program: ir.Program, options: RunOptions, weights: Path, data: bool = False, spec: Path | None = None
) -> Trained:
    """The trained network of a checked program with its weights. `data`: load the dataset too
    (for a test split), when its files are at hand; its interface comes from the run directory
    when there is one, else from the data (which must then be at hand)."""
    train = program.train
    assert train is not None and program.dataset is not None
    device = pick_device(options.device or train.device)
    net, module = trained_network(program, weights, device)
    interface, prepared = _interface(program, options, weights.parent, data)
    probe = torch.zeros(1, *net.input_shape, dtype=torch.int64 if interface["dtype"] == "int64" else torch.float32)
    return Trained(
        program=program,
        name=next(iter(train.trained().values())),
        network=net,
        module=module,
        device=device,
        output=_output(program),
        dtype=interface["dtype"],
        image=interface["image"],
        classes=interface["classes"],
        vocab=interface["vocab"],
        preprocessing=interface["preprocessing"],
        prepare=_restore(interface["preprocessing"], probe),
        spec_text=_spec_text(program, spec, weights.parent),
        metrics=_summary(weights.parent),
        test=prepared.test if prepared is not None else None,
        train=prepared.train if prepared is not None else None,
    )


def _output(program: ir.Program) -> str:
    train, dataset = program.train, program.dataset
    assert train is not None and dataset is not None
    if train.task.trainer == "adversarial":
        return "images"
    if dataset.source.task().target == "token":
        return "tokens"
    return "values" if train.loss is not None and train.loss.target == "value" else "classes"


def _interface(program: ir.Program, options: RunOptions, run: Path, data: bool) -> tuple[dict[str, Any], Any]:
    """interface.json and vocab.json of the run directory; the data when asked or when they are missing."""
    try:
        saved: dict[str, Any] | None = read_interface(run)
    except (OSError, ValueError):
        saved = None
    if saved is not None and not data:
        return _with_vocab(saved, run), None
    from netspec.runtime.datasets import DataError

    try:
        prepared = _prepared(program, options)
    except DataError:
        if saved is None:
            raise
        return _with_vocab(saved, run), None
    x = prepared.train.x
    found = {
        "classes": prepared.classes,
        "preprocessing": prepared.deployed,
        "dtype": "int64" if isinstance(x, torch.Tensor) and not x.is_floating_point() else "float32",
        "image": x.dim() == 4 if isinstance(x, torch.Tensor) else True,
        "vocab": prepared.vocab,
    }
    return (_with_vocab(saved, run) if saved is not None else found), prepared


def _with_vocab(saved: dict[str, Any], run: Path) -> dict[str, Any]:
    try:
        vocab: list[str] | None = read_vocab(run)
    except (OSError, ValueError):
        vocab = None
    return {"dtype": "float32", "image": False, **saved, "vocab": vocab}


def _prepared(program: ir.Program, options: RunOptions) -> Any:
    from netspec.runtime.data_fit import check_fit
    from netspec.runtime.datasets import load as load_arrays
    from netspec.runtime.datasets import resolve_root
    from netspec.runtime.splits import prepare_data

    dataset, train = program.dataset, program.train
    assert dataset is not None and train is not None
    arrays = load_arrays(dataset.source, resolve_root(options.data_dir), options.spec_dir, train.seed, options.download)
    check_fit(program, arrays)
    return prepare_data(program, arrays, torch.device("cpu"))


def _restore(records: list[dict[str, Any]], probe: torch.Tensor) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    functions = []
    for record in records:
        cls = TRANSFORMS.get(str(record.get("transform")))
        if cls is None:
            raise InputError(f"the run's interface.json names an unknown transform {record.get('transform')!r}")
        fn = cls.restored(record, probe)
        if fn is not None:
            functions.append(fn)
            probe = fn(probe)
    return functions


def _spec_text(program: ir.Program, spec: Path | None, run: Path) -> str:
    """The spec's text: the file named, else the run directory's spec.net, else the checked program."""
    for path in (spec, run / "spec.net"):
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8")
    return program.model_dump_json()


def _summary(run: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _embedding_rows(net: ir.Network) -> int:
    for step in net.steps:
        rows = getattr(step, "vocab", None)
        if isinstance(rows, int):
            return rows
    return 2
