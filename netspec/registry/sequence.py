"""Layers over sequences: embedding, positions, recurrent layers, attention, Transformer blocks,
pooling a sequence, and permuting axes."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    Fraction,
    NonNegInt,
    PosInt,
    Problem,
    fmt_shape,
    torch_changed,
)
from netspec.registry.layers import INIT_DOC, LAYERS, InitStd, Layer, TorchModule, init_args


@LAYERS.register
class Embedding(Layer):
    """Look up a learned vector for each token id: [seq] → [seq, dim] (`nn.Embedding`)."""

    kind: Literal["embedding"] = "embedding"
    vocab: PosInt = Field(description="number of distinct token ids")
    dim: PosInt = Field(description="size of each vector")
    init: InitStd = Field(None, description=INIT_DOC)
    positional: ClassVar = ("vocab", "dim")
    expects: ClassVar[str] = "token ids [seq]"
    ranks: ClassVar = (1,)

    def output(self, shape: Shape) -> Shape:
        return (*shape, self.dim)

    def count(self, shape: Shape) -> int:
        return self.vocab * self.dim

    def shared_matrix(self) -> tuple[int, int] | None:
        return (self.vocab, self.dim)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("nn.Embedding", (self.vocab, self.dim), init=init_args(self.init))]


class _Recurrent(Layer):
    hidden: PosInt = Field(description="hidden state size")
    layers: PosInt = Field(1, description="stacked recurrent layers")
    bidirectional: bool = Field(False, description="also run right to left and concatenate")
    return_sequences: bool = Field(True, description="output every step [seq, H]; false: the last state [H]")
    dropout: Fraction = Field(0.0, description="dropout between stacked layers")
    positional: ClassVar = ("hidden",)
    expects: ClassVar[str] = "[seq, features]"
    ranks: ClassVar = (2,)
    gates: ClassVar[int] = 1
    torch_name: ClassVar[str] = "RNN"

    def output(self, shape: Shape) -> Shape:
        width = self.hidden * (2 if self.bidirectional else 1)
        return (shape[0], width) if self.return_sequences else (width,)

    def count(self, shape: Shape) -> int:
        dirs = 2 if self.bidirectional else 1
        h, g = self.hidden, self.gates
        total = 0
        for layer in range(self.layers):
            size = shape[1] if layer == 0 else h * dirs
            total += dirs * g * h * (size + h + 2)
        return total

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        kwargs: dict[str, Any] = torch_changed(self, layers=1, bidirectional=False, dropout=0.0)
        if "layers" in kwargs:
            kwargs["num_layers"] = kwargs.pop("layers")
        kwargs.update(self._extra())
        return [
            TorchModule(
                "Recurrent",
                (self.torch_name, shape[1], self.hidden),
                {**kwargs, "return_sequences": self.return_sequences},
            )
        ]

    def _extra(self) -> dict[str, Any]:
        return {}


@LAYERS.register
class RNN(_Recurrent):
    """Elman recurrent layer over [seq, features] (`nn.RNN`)."""

    kind: Literal["rnn"] = "rnn"
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="activation of the hidden state")

    def _extra(self) -> dict[str, Any]:
        return torch_changed(self, nonlinearity="tanh")


@LAYERS.register
class LSTM(_Recurrent):
    """Long short-term memory over [seq, features] (`nn.LSTM`)."""

    kind: Literal["lstm"] = "lstm"
    gates: ClassVar[int] = 4
    torch_name: ClassVar[str] = "LSTM"


@LAYERS.register
class GRU(_Recurrent):
    """Gated recurrent unit over [seq, features] (`nn.GRU`)."""

    kind: Literal["gru"] = "gru"
    gates: ClassVar[int] = 3
    torch_name: ClassVar[str] = "GRU"


def _heads_check(dim: int, heads: int) -> None:
    if dim % heads:
        raise Problem(
            f"the feature size {dim} is not divisible by heads={heads}", f"use a head count that divides {dim}", "heads"
        )


class _MultiHead(Layer):
    """What every attention layer shares: heads that divide the feature size of [seq, dim]."""

    heads: PosInt = Field(description="attention heads; must divide the feature size")
    positional: ClassVar = ("heads",)
    expects: ClassVar[str] = "[seq, dim]"
    ranks: ClassVar = (2,)

    def output(self, shape: Shape) -> Shape:
        _heads_check(shape[1], self.heads)
        return shape


@LAYERS.register
class Attention(_MultiHead):
    """Multi-head self-attention over [seq, dim] (`nn.MultiheadAttention`, query = key = value)."""

    kind: Literal["attention"] = "attention"
    dropout: Fraction = Field(0.0, description="dropout on attention weights")
    causal: bool = Field(False, description="mask future positions (for language models)")
    bias: bool = Field(True, description="learned biases in the projections")
    init: InitStd = Field(None, description=INIT_DOC)
    proj_init: InitStd = Field(None, description="the same for the output projection (default: init)")

    def count(self, shape: Shape) -> int:
        d = shape[1]
        return 4 * d * d + (4 * d if self.bias else 0)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        kwargs = torch_changed(self, dropout=0.0, causal=False, bias=True)
        init = init_args(self.init, proj_std=self.proj_init)
        return [TorchModule("SelfAttention", (shape[1], self.heads), kwargs, init)]

    def problems(self) -> list[Problem]:
        if self.proj_init is not None and self.init is None:
            return [Problem("`proj_init` needs `init`", "give both, e.g. init=0.02, proj_init=0.005", "proj_init")]
        return []


@LAYERS.register
class TransformerEncoder(_MultiHead):
    """Transformer encoder layers (self-attention + feed-forward) over [seq, dim] (`nn.TransformerEncoder`)."""

    kind: Literal["transformer_encoder"] = "transformer_encoder"
    ff: PosInt | None = Field(None, description="feed-forward width (default: 4 × dim)")
    layers: PosInt = Field(1, description="stacked encoder layers")
    dropout: Fraction = Field(0.1, description="dropout rate")
    activation: Literal["relu", "gelu"] = Field("relu", description="feed-forward activation")
    norm_first: bool = Field(False, description="pre-norm (true) or post-norm (false)")
    causal: bool = Field(False, description="mask future positions (for language models)")

    def count(self, shape: Shape) -> int:
        d = shape[1]
        ff = self.ff or 4 * d
        return self.layers * (4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        kwargs = torch_changed(self, layers=1, dropout=0.1, activation="relu", norm_first=False, causal=False)
        return [TorchModule("Encoder", (shape[1], self.heads, self.ff or 4 * shape[1]), kwargs)]


@LAYERS.register
class PositionalEmbedding(Layer):
    """Add a learned vector for each position to [seq, dim]: x + wpe(arange(seq)), as GPT's `wpe`."""

    kind: Literal["positional_embedding"] = "positional_embedding"
    max_len: PosInt = Field(description="longest sequence it has a position vector for")
    init: InitStd = Field(None, description=INIT_DOC)
    positional: ClassVar = ("max_len",)
    expects: ClassVar[str] = "[seq, dim]"
    ranks: ClassVar = (2,)

    def output(self, shape: Shape) -> Shape:
        if shape[0] > self.max_len:
            raise Problem(
                f"the sequence length {shape[0]} is longer than max_len={self.max_len}",
                f"use max_len={shape[0]} or more",
                "max_len",
            )
        return shape

    def count(self, shape: Shape) -> int:
        return self.max_len * shape[1]

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("PositionalEmbedding", (self.max_len, shape[1]), init=init_args(self.init))]


@LAYERS.register
class Pool(Layer):
    """Reduce a sequence to one vector: [seq, dim] → [dim], by the mean, the first or last position, or the max."""

    kind: Literal["pool"] = "pool"
    mode: Literal["mean", "first", "last", "max"] = Field("mean", description="how positions are combined")
    positional: ClassVar = ("mode",)
    expects: ClassVar[str] = "[seq, dim]"
    ranks: ClassVar = (2,)

    def output(self, shape: Shape) -> Shape:
        return (shape[1],)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("SequencePool", (), torch_changed(self, mode="mean"))]


@LAYERS.register
class Permute(Layer):
    """Reorder the axes of each sample: `permute([1, 2, 0])` turns [C, H, W] into [H, W, C]."""

    kind: Literal["permute"] = "permute"
    dims: tuple[NonNegInt, ...] = Field(description="the input axis for each output axis, a permutation of 0..rank-1")
    positional: ClassVar = ("dims",)
    expects: ClassVar[str] = "an input whose rank is the number of dims"

    def output(self, shape: Shape) -> Shape:
        if len(self.dims) != len(shape):
            raise Problem(
                f"`permute` has {len(self.dims)} dims but the input {fmt_shape(shape)} has {len(shape)} axes",
                f"give a permutation of {list(range(len(shape)))}",
                "dims",
            )
        if sorted(self.dims) != list(range(len(shape))):
            raise Problem(
                f"dims={list(self.dims)} is not a permutation of {list(range(len(shape)))}",
                "name each input axis exactly once",
                "dims",
            )
        return tuple(shape[d] for d in self.dims)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("Permute", (self.dims,))]
