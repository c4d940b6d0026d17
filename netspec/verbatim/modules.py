"""The few torch modules that torch.nn lacks in the shape netspec needs.

Kept small and self-contained: the emitter copies these classes verbatim into
standalone scripts, so they import nothing but torch, and (like netspec/training.py)
they are written to read the same at ruff's default 88 columns as at the project's 120.
"""

from __future__ import annotations

import torch
from torch import nn


def _causal_mask(x: torch.Tensor) -> torch.Tensor:
    """-inf above the diagonal: position i attends to positions <= i only."""
    return nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)


class Recurrent(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU, batch first, returning the sequence or the last state."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden: int,
        return_sequences: bool = True,
        **kwargs: object,
    ) -> None:
        super().__init__()
        self.rnn = getattr(nn, cell)(input_size, hidden, batch_first=True, **kwargs)
        self.return_sequences = return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(x)
        if self.return_sequences:
            return out
        h = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        dirs = 2 if self.rnn.bidirectional else 1
        # the last layer, both directions
        return h[-dirs:].transpose(0, 1).reshape(x.shape[0], -1)


class SelfAttention(nn.Module):
    """Multi-head self-attention over [batch, seq, dim]."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(
            dim,
            heads,
            dropout=dropout,
            bias=bias,
            batch_first=True,
        )
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = _causal_mask(x) if self.causal else None
        out, _ = self.attn(
            x,
            x,
            x,
            attn_mask=mask,
            need_weights=False,
            is_causal=self.causal,
        )
        return out


class Encoder(nn.Module):
    """A stack of transformer encoder layers over [batch, seq, dim]."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ff: int,
        layers: int = 1,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            ff,
            dropout,
            activation=activation,
            batch_first=True,
            norm_first=norm_first,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = _causal_mask(x) if self.causal else None
        return self.encoder(x, mask=mask, is_causal=self.causal)


class Residual(nn.Module):
    """A skip connection, y = x + body(x); the body keeps the shape (the checker ensures it)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PositionalEmbedding(nn.Module):
    """A learned vector per position added to [batch, seq, dim], as GPT's `wpe`."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.wpe = nn.Embedding(max_len, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1], device=x.device)
        return x + self.wpe(positions)


class SequencePool(nn.Module):
    """[batch, seq, dim] -> [batch, dim]: the mean, the first or last position, or the max."""

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "first":
            return x[:, 0]
        if self.mode == "last":
            return x[:, -1]
        if self.mode == "max":
            return x.max(dim=1).values
        return x.mean(dim=1)


class Permute(nn.Module):
    """Reorder each sample's axes; `dims` excludes the batch axis, which stays first."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *(d + 1 for d in self.dims))
