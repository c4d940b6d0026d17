"""Turn checked IR into torch modules.

The registry describes each layer's modules once (`TorchModule`); this is the runtime
backend that instantiates those descriptions, so the trained model is exactly the
network the checker inferred shapes and parameter counts for.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from netspec.ir import nodes as ir
from netspec.language.span import Shape
from netspec.registry import Layer, TorchModule
from netspec.verbatim import modules


def resolve(name: str) -> type[nn.Module]:
    """The class a `TorchModule` names: `nn.X` from torch.nn, else one from netspec.verbatim.modules.

    Looked up by attribute, never evaluated, so a description cannot run arbitrary code.
    """
    owner: Any = nn if name.startswith("nn.") else modules
    cls = getattr(owner, name.removeprefix("nn."), None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"no torch module named {name!r}")
    return cls


def instantiate(tm: TorchModule) -> nn.Module:
    """Construct the module a description names, with its arguments and its initialisation."""
    module = resolve(tm.name)(*tm.args, **tm.kwargs)
    return modules.init_normal(module, **tm.init) if tm.init else module


def build_layer(layer: Layer, shape: Shape | None = None) -> nn.Module:
    """One layer's module; an nn.Sequential when it takes several (e.g. pool then flatten).

    `shape` defaults to the layer's inferred input shape: torch modules need the input
    size (channels, features) that the spec leaves implicit.
    """
    shape = shape if shape is not None else layer.input_shape
    if shape is None:
        raise ValueError(f"`{layer.kind_name()}` has no input shape; check the spec first")
    built = [instantiate(tm) for tm in layer.torch_modules(shape)]
    return built[0] if len(built) == 1 else nn.Sequential(*built)


def build_step(step: Any) -> nn.Module:
    """A module for one IR step, keeping its structure (blocks, repeats, residuals)."""
    if isinstance(step, Layer):
        return build_layer(step)
    if isinstance(step, ir.BlockUse):
        return build_steps(step.steps)
    if isinstance(step, ir.Repeat):  # an iteration of one step is that step's module: Sequential(Block, Block, ...)
        return nn.Sequential(*(build_step(it[0]) if len(it) == 1 else build_steps(it) for it in step.iterations))
    if isinstance(step, ir.Residual):
        return modules.Residual(build_steps(step.steps))
    raise TypeError(f"not an IR step: {type(step).__name__}")


def build_steps(steps: list[Any]) -> nn.Sequential:
    """Steps in order, as a Sequential (nested modules mirror the spec's structure)."""
    return nn.Sequential(*(build_step(s) for s in steps))


def build_network(net: ir.Network) -> nn.Module:
    """The torch model of a checked network; it maps [batch, *input_shape] to [batch, *output_shape].
    Its tied output layers share the token embedding's weight."""
    return modules.tie_weights(build_steps(net.steps))


def build_optimizer(optimizer: Any, model: nn.Module) -> Any:
    """The torch optimizer over the model's parameters, in the groups the optimizer asks for."""
    import torch

    grouping = optimizer.param_groups()
    params = getattr(modules, grouping)(model, optimizer.weight_decay) if grouping else model.parameters()
    return getattr(torch.optim, optimizer.torch_class)(params, **optimizer.torch_kwargs())


def scheduler_class(name: str) -> Any:
    """The learning-rate scheduler a schedule names: torch's, else one from netspec.verbatim.modules."""
    from torch.optim import lr_scheduler

    cls = getattr(lr_scheduler, name, None) or getattr(modules, name, None)
    if not (isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau)):
        raise ValueError(f"no learning-rate scheduler named {name!r}")
    return cls


__all__ = [
    "build_layer",
    "build_network",
    "build_optimizer",
    "build_step",
    "build_steps",
    "instantiate",
    "resolve",
    "scheduler_class",
]
