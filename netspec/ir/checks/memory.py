"""Pass 5: the memory a network would need (weights, gradients, optimizer state and
activations at the batch size), against the `--max-memory` limit."""

from __future__ import annotations

from netspec.ir import nodes as ir
from netspec.ir.checks.context import CheckContext, GiB
from netspec.language import syntax as st
from netspec.registry.base import numel


def run(module: st.Module, ctx: CheckContext) -> None:
    limit = ctx.options.max_memory
    for net in ctx.parts.networks:
        weights, activations, batch = estimate(net, ctx.parts.train, ctx.parts.dataset)
        total = weights + activations
        if total > limit:
            ctx.report(
                "NS060",
                f"network `{net.name}` would need about {_gib(total)} "
                f"({net.params:,} parameters: {_gib(weights)}; activations at batch {batch}: "
                f"{_gib(activations)}), over the {_gib(limit)} limit",
                net.span,
                "shrink the network or the batch, or raise the limit with --max-memory",
            )


def estimate(net: ir.Network, train: ir.Train | None, dataset: ir.Dataset | None) -> tuple[int, int, int]:
    """Bytes of weights (with gradients and optimizer state when trained) and of activations, and the batch."""
    trained = train is not None and net.name in train.trained().values()
    batch = dataset.batch if dataset and trained else 1
    copies = 2 + train.optimizer.state_copies() if train is not None and trained else 1  # weights, gradients, state
    weights = net.params * 4 * copies
    activations = batch * (numel(net.input_shape) + _activation_elements(net.steps)) * 4 * (2 if trained else 1)
    return weights, activations, batch


def _activation_elements(steps: list[ir.Step]) -> int:
    return sum(numel(layer.output_shape or ()) for layer in ir.leaves(steps))


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB / 10 else f"{n / (1 << 20):.1f} MiB"
