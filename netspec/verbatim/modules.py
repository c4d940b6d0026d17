"""The few torch modules that torch.nn lacks in the shape netspec needs.

Kept small and self-contained: the emitter copies these classes verbatim into
standalone scripts, so they import nothing but torch, and (like netspec/training.py)
they are written to read the same at ruff's default 88 columns as at the project's 120.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
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
    """Multi-head self-attention over [batch, seq, dim], as nanoGPT's CausalSelfAttention:
    one projection to queries, keys and values, scaled dot-product attention per head,
    and an output projection `proj`."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)  # queries, keys, values
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.heads, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # batch, sequence length, features
        q, k, v = self.qkv(x).split(d, dim=2)
        # (b, t, d) -> (b, heads, t, head size)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        y = y.transpose(1, 2).contiguous().view(b, t, d)  # the heads side by side again
        return self.proj(y)


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


class MinibatchStddev(nn.Module):
    """Append one channel to [batch, C, ...]: the standard deviation of each value over groups
    of `group` samples, averaged to one number per group (ProGAN's minibatch stddev)."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = math.gcd(len(x), self.group)  # samples i, i + b/n, i + 2b/n, ... form a group
        groups = x.reshape(n, -1, *x.shape[1:])  # [n, batch / n, C, ...]
        deviations = groups - groups.mean(dim=0)  # (torch.var's backward is 7x slower on CPU)
        std = (deviations.square().mean(dim=0) + 1e-8).sqrt()
        spread = std.flatten(1).mean(dim=1).repeat(n)  # [batch]: its group's value
        channel = spread.reshape(-1, 1, *[1] * (x.dim() - 2)).expand(-1, 1, *x.shape[2:])
        return torch.cat([x, channel], dim=1)


def init_normal(module: nn.Module, std: float, proj_std: float | None = None) -> nn.Module:
    """GPT-2's initialisation, in place: the weights of the linear and embedding layers
    in `module` ~ N(0, std), their biases zero; an attention's output projection `proj`
    ~ N(0, proj_std) when given. Returns the module."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]
    if proj_std is not None:
        nn.init.normal_(module.proj.weight, mean=0.0, std=proj_std)  # type: ignore[union-attr,arg-type]
    return module


class TiedLinear(nn.Module):
    """A language model's output layer, x @ Wᵀ (+ b), whose W is the token embedding's
    weight (weight tying, as GPT-2): one matrix embeds the tokens and scores the next
    one. `tie_weights` hands it the embedding once the model is built."""

    def __init__(self, features: int, vocab: int, bias: bool = True) -> None:
        super().__init__()
        self.shape = (vocab, features)  # of the embedding's weight
        self.bias = nn.Parameter(torch.zeros(vocab)) if bias else None
        self.embedding: list[nn.Embedding] = []  # a list: the model owns the embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.embedding[0].weight, self.bias)


def tie_weights(model: nn.Module) -> nn.Module:
    """Give each TiedLinear of the model its first nn.Embedding of shape [vocab, dim]."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    for head in (m for m in model.modules() if isinstance(m, TiedLinear)):
        same = [e for e in embeddings if tuple(e.weight.shape) == head.shape]
        if not same:
            raise ValueError(f"no embedding of shape {list(head.shape)} to tie to")
        head.embedding = [same[0]]
    return model


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """nanoGPT's learning rate, stepped after every optimizer step: a linear warm-up
    over `warmup` steps to the optimizer's rate, then a cosine decay to `min_lr` at
    step `total`, and `min_lr` after it."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup: int,
        total: int,
        min_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.warmup, self.total, self.min_lr = warmup, total, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [self.rate(base) for base in self.base_lrs]

    def rate(self, base: Any) -> float:
        step = self.last_epoch  # optimizer steps taken
        if step < self.warmup:
            return base * (step + 1) / (self.warmup + 1)
        if step > self.total:
            return self.min_lr
        decay = (step - self.warmup) / max(1, self.total - self.warmup)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay))  # from 1 down to 0
        return self.min_lr + coeff * (base - self.min_lr)


def matrix_decay(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """nanoGPT's parameter groups: weight decay on the matrices (embeddings, weights of
    linear layers), none on vectors (biases, the scales of norms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
