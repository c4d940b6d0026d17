"""Loaded data against the checked spec, before torch meets it.

The checker knows a source's sample shape and targets only where the source says them before
any file is read (`Source.task`); a CSV, an .npz or a text tells the rest once loaded. Here the
loaded arrays are compared with the network they train: numbers, not strings; features of the
network's input shape; class labels within its outputs; token ids within its embedding. A
mismatch is a DataMismatch that names the file, the column or array, and what the spec expects.
Only numpy is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netspec.ir import nodes as ir
from netspec.registry.base import fmt_shape
from netspec.runtime.data_core import Arrays, DataError, ImageFiles


class DataMismatch(DataError):
    """Data that loads but does not fit the network: a data error (exit 2), not a spec error."""

    exit_code = 2


def check_fit(program: ir.Program, arrays: Arrays) -> None:
    """Raise DataMismatch where the arrays do not fit the network the spec trains."""
    train, dataset = program.train, program.dataset
    net = program.network(train.model) if train is not None else None
    if train is None or dataset is None or net is None:
        return
    where = _Where(dataset.source)
    for x, y in ((arrays.x_train, arrays.y_train), (arrays.x_test, arrays.y_test)):
        if x is None or y is None:
            continue
        _numbers(x, where.inputs(), "inputs")
        _numbers(y, where.targets(), "targets")
        _input_shape(x, dataset, net, where)
        _tokens(x, net, where, arrays.vocab)
        _labels(y, train.loss, net, where, arrays.classes)


class _Where:
    """How to name where a source's inputs and targets come from: its file, column or array."""

    def __init__(self, source: Any) -> None:
        self.path = getattr(source, "path", None)
        self.head = repr(self.path) if self.path else f"source `{getattr(source, 'kind', '?')}`"
        self.source = source

    def inputs(self) -> str:
        if getattr(self.source, "target", None):
            return f"{self.head}, the feature columns (all but {self.source.target!r})"
        return f"{self.head}, array {self.source.x!r}" if getattr(self.source, "x", None) else self.head

    def targets(self) -> str:
        if getattr(self.source, "target", None):
            return f"{self.head}, column {self.source.target!r}"
        return f"{self.head}, array {self.source.y!r}" if getattr(self.source, "y", None) else self.head


def _numbers(a: Any, where: str, what: str) -> None:
    kind = getattr(getattr(a, "dtype", None), "kind", "u")
    if kind not in "biuf":
        hint = "encode classes as integers 0..k-1" if what == "targets" else "store the inputs as a float array"
        raise DataMismatch(f"{where} holds {a.dtype} values; the network's {what} must be real numbers", hint)


def _input_shape(x: Any, dataset: ir.Dataset, net: ir.Network, where: _Where) -> None:
    shape: tuple[int, ...] = tuple(x.shape[1:])
    try:
        for t in dataset.transforms:
            shape = t.apply(shape)
    except Exception:  # a transform that cannot take these samples: prepare_data says so
        return
    if shape != tuple(net.input_shape):
        one = len(shape) == 1 and not isinstance(x, ImageFiles)
        described = f"{shape[0]} features per sample" if one else f"samples of shape {fmt_shape(shape)}"
        raise DataMismatch(
            f"{where.inputs()}: {described}, but network `{net.name}` takes input {fmt_shape(net.input_shape)}",
            f"write `input {fmt_shape(shape)}` in network `{net.name}`, or give it data of that shape",
        )


def _tokens(x: Any, net: ir.Network, where: _Where, vocab: list[str] | None) -> None:
    """Token ids (integer inputs) against the rows of the embedding that reads them."""
    layers = ir.leaves(net.steps)
    rows = getattr(layers[0], "vocab", None) if layers else None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu" or x.dtype == np.uint8 or not rows or not x.size:
        return
    if int(x.min()) < 0 or int(x.max()) >= rows:
        found = f"{len(vocab)} distinct characters" if vocab else f"token id {int(x.max())}"
        raise DataMismatch(
            f"{where.inputs()} has {found}, but the embedding of network `{net.name}` has {rows} rows "
            f"(ids 0..{rows - 1})",
            f"make the embedding's vocab {len(vocab) if vocab else int(x.max()) + 1}",
        )


def _labels(y: np.ndarray, loss: Any, net: ir.Network, where: _Where, classes: list[str] | None) -> None:
    """Class labels within the network's outputs (a binary loss: 0 or 1)."""
    if loss.target == "value" or not y.size:
        return
    outputs = 2 if loss.target == "binary" else int(net.output_shape[-1])
    if y.dtype.kind == "f" and y.ndim == 2 and y.shape[1] == outputs > 2:
        return  # class probabilities, one column per output
    if loss.target != "binary" and y.dtype.kind == "f":
        raise DataMismatch(
            f"{where.targets()} holds fractional values, but `{loss.kind_name()}` trains classes",
            "use class ids 0..k-1, or a regression loss such as mse",
        )
    low, high = float(y.min()), float(y.max())
    if low < 0 or high >= outputs:
        raise DataMismatch(_label_message(where, low, high, outputs, classes, net, loss), _label_hint(loss, classes))


def _label_message(
    where: _Where, low: float, high: float, outputs: int, classes: list[str] | None, net: ir.Network, loss: Any
) -> str:
    bad = f"label {low:g}" if low < 0 else f"label {high:g}"
    found = f"{len(classes)} classes" if classes and low >= 0 else bad
    if loss.target == "binary":
        return f"{where.targets()} has {bad}, but `{loss.kind_name()}` needs labels 0 and 1"
    return (
        f"{where.targets()} has {found}, but network `{net.name}` outputs {outputs} class scores "
        f"(labels 0..{outputs - 1})"
    )


def _label_hint(loss: Any, classes: list[str] | None) -> str:
    if loss.target == "binary":
        return "encode the two classes as 0 and 1"
    if classes:
        return f"end the network with {len(classes)} outputs (e.g. dense({len(classes)}))"
    return "labels are class ids 0..k-1 for a network with k outputs"
