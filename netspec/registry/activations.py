"""Activation layers: elementwise functions written after `->` or on their own."""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    NonNegFloat,
    PosFloat,
    Problem,
    fmt_shape,
    torch_changed,
)
from netspec.registry.layers import LAYERS, Layer, TorchModule

# --- activations --------------------------------------------------------------------


class Activation(Layer):
    category: ClassVar[str] = "activation"
    torch_name: ClassVar[str] = ""

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule(f"nn.{self.torch_name}", (), self.torch_kwargs(shape))]

    def torch_kwargs(self, shape: Shape) -> dict[str, Any]:
        return {}


def _activation(kind: str, torch_name: str, doc: str) -> type[Activation]:
    cls = type(
        torch_name,
        (Activation,),
        {
            "__annotations__": {"kind": Literal[kind]},
            "kind": kind,
            "__doc__": doc,
            "torch_name": torch_name,
            "__module__": __name__,
        },
    )
    return typing.cast(type[Activation], LAYERS.register(cls))


ReLU = _activation("relu", "ReLU", "Rectified linear unit: max(0, x).")


@LAYERS.register
class LeakyReLU(Activation):
    """Leaky ReLU: x for x > 0, else negative_slope·x."""

    kind: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: NonNegFloat = Field(0.01, description="slope for negative inputs")
    positional: ClassVar = ("negative_slope",)
    torch_name: ClassVar[str] = "LeakyReLU"

    def torch_kwargs(self, shape: Shape) -> dict[str, Any]:
        return torch_changed(self, negative_slope=0.01)


@LAYERS.register
class GELU(Activation):
    """Gaussian error linear unit, as in BERT and GPT."""

    kind: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = Field("none", description='"tanh" for the faster approximation')
    torch_name: ClassVar[str] = "GELU"

    def torch_kwargs(self, shape: Shape) -> dict[str, Any]:
        return torch_changed(self, approximate="none")


Sigmoid = _activation("sigmoid", "Sigmoid", "Logistic sigmoid: 1 / (1 + e^-x), outputs in (0, 1).")
Tanh = _activation("tanh", "Tanh", "Hyperbolic tangent, outputs in (-1, 1).")


class _SoftmaxBase(Activation):
    dim: int = Field(-1, description="the per-sample dimension to normalize (batch excluded)")
    positional: ClassVar = ("dim",)

    def output(self, shape: Shape) -> Shape:
        if not -len(shape) <= self.dim < len(shape):
            raise Problem(
                f"dim={self.dim} is out of range for a {len(shape)}-dimensional input {fmt_shape(shape)}", field="dim"
            )
        return shape

    def torch_kwargs(self, shape: Shape) -> dict[str, Any]:
        # The spec counts dimensions per sample; torch counts the batch too.
        return {"dim": self.dim if self.dim < 0 else self.dim + 1}


@LAYERS.register
class Softmax(_SoftmaxBase):
    """Softmax: exponentiate and normalize to probabilities that sum to 1."""

    kind: Literal["softmax"] = "softmax"
    torch_name: ClassVar[str] = "Softmax"


@LAYERS.register
class LogSoftmax(_SoftmaxBase):
    """Log of softmax; pair it with the `nll` loss."""

    kind: Literal["log_softmax"] = "log_softmax"
    torch_name: ClassVar[str] = "LogSoftmax"


@LAYERS.register
class ELU(Activation):
    """Exponential linear unit: x for x > 0, else alpha·(e^x − 1)."""

    kind: Literal["elu"] = "elu"
    alpha: PosFloat = Field(1.0, description="scale for negative inputs")
    positional: ClassVar = ("alpha",)
    torch_name: ClassVar[str] = "ELU"

    def torch_kwargs(self, shape: Shape) -> dict[str, Any]:
        return torch_changed(self, alpha=1.0)


SiLU = _activation("silu", "SiLU", "Sigmoid linear unit (swish): x · sigmoid(x).")

ACTIVATIONS = [name for name, cls in LAYERS.entries.items() if cls.category == "activation"]
