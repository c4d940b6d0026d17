"""int8 quantization of a trained network for `netspec export --quantize` (CPU only).

Which torch modules are quantized, and how, is the registry's (`registry/exports.py`, `Int8`):
convolutions statically, in FX graph mode, their activations' scales calibrated on training samples
(with the batch norm, ReLU and max pooling that follow them, fused); then dense and recurrent layers
dynamically (int8 weights, activations quantized per batch). A convolution whose padding is a word
("same", "valid") gets its padding as numbers, which quantized convolutions need; an even kernel's
"same" padding is uneven and cannot be, so that convolution stays in float.

torch 2.13 marks torch.ao.quantization deprecated (its successor, torchao's pt2e flow, produces graphs
that only run faster once compiled by inductor); it is still the path whose int8 kernels (x86/fbgemm)
run faster eagerly and in TorchScript, so it is the one used, its deprecation warnings silenced.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netspec.language.diagnostics import UsageError
from netspec.registry.exports import Quantization, quiet
from netspec.verbatim import modules as verbatim_modules


@dataclass
class Quantized:
    module: nn.Module
    static: list[str] = field(default_factory=list)  # module paths quantized statically
    dynamic: list[str] = field(default_factory=list)  # ... and dynamically
    kept: list[str] = field(default_factory=list)  # static candidates left in float, with why

    def describe(self) -> str:
        parts = [f"{len(self.static)} statically ({_types(self.static)})"] if self.static else []
        parts += [f"{len(self.dynamic)} dynamically ({_types(self.dynamic)})"] if self.dynamic else []
        return " and ".join(parts) or "nothing"


def _types(entries: list[str]) -> str:
    return ", ".join(sorted({e.split(" ")[-1] for e in entries}))


def api() -> Any:
    """torch.ao.quantization, or a UsageError when this torch has none."""
    try:
        from torch.ao import quantization
        from torch.ao.quantization import quantize_fx
    except ImportError as e:
        raise UsageError(f"--quantize needs torch.ao.quantization, which this torch lacks ({e})") from None
    return quantization, quantize_fx


def quantize(model: nn.Module, scheme: Quantization, calibration: torch.Tensor) -> Quantized:
    """An int8 copy of a float model (eval mode, CPU), calibrated on `calibration` (network inputs)."""
    torch.backends.quantized.engine = scheme.engine
    result = Quantized(copy.deepcopy(model).cpu().eval())
    with quiet(), torch.no_grad():
        if _of(result.module, scheme.static):
            result.module = _static(result, scheme, calibration)
        result.module = _dynamic(result, scheme)
    _record(result)
    return result


def _of(model: nn.Module, names: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    types = tuple(getattr(nn, n) for n in names)
    return [(path, m) for path, m in model.named_modules() if isinstance(m, types)]


def _static(result: Quantized, scheme: Quantization, calibration: torch.Tensor) -> nn.Module:
    quantization, quantize_fx = api()
    model = result.module
    chosen = _numeric_padding(result, _of(model, scheme.static))
    qconfig = quantization.get_default_qconfig(scheme.engine)
    mapping = quantization.QConfigMapping()
    for path in _chains(model, chosen, scheme.follow):
        mapping.set_module_name(path, qconfig)
    config = quantize_fx.PrepareCustomConfig().set_non_traceable_module_classes(_opaque(model, scheme))
    prepared = quantize_fx.prepare_fx(model, mapping, (calibration[:2],), prepare_custom_config=config)
    for start in range(0, len(calibration), 64):
        prepared(calibration[start : start + 64])
    return quantize_fx.convert_fx(prepared)  # type: ignore[no-any-return]


def _numeric_padding(result: Quantized, convs: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """The convolutions that can be quantized, their word padding turned into numbers."""
    chosen = []
    for path, conv in convs:
        padding = _padding(conv)
        if padding is None:
            result.kept.append(f"{path} {type(conv).__name__}: padding 'same' with an even kernel is uneven")
            continue
        conv.padding = padding  # type: ignore[assignment]
        chosen.append((path, conv))
    return chosen


def _padding(conv: Any) -> tuple[int, ...] | None:
    if conv.padding == "valid":
        return (0,) * len(conv.kernel_size)
    if conv.padding != "same":
        return tuple(conv.padding)
    spans = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation)]
    return None if any(s % 2 for s in spans) else tuple(s // 2 for s in spans)


def _chains(model: nn.Module, convs: list[tuple[str, nn.Module]], follow: tuple[str, ...]) -> list[str]:
    """The convolutions' paths and those of the modules that follow each in int8 (its only user)."""
    graph = torch.fx.symbolic_trace(model).graph  # type: ignore[no-untyped-call]
    modules = dict(model.named_modules())
    followers = tuple(getattr(nn, n) for n in follow)
    wanted, paths = {path for path, _ in convs}, []
    for node in graph.nodes:
        if node.op == "call_module" and node.target in wanted:
            paths.append(node.target)
            while len(node.users) == 1:
                node = next(iter(node.users))
                if node.op != "call_module" or not isinstance(modules.get(node.target), followers):
                    break
                paths.append(node.target)
    return paths


def _opaque(model: nn.Module, scheme: Quantization) -> list[type[nn.Module]]:
    """netspec's own modules without convolutions: FX leaves them whole (dynamic quantization reaches inside)."""
    statics = tuple(getattr(nn, n) for n in scheme.static)
    own = [m for m in model.modules() if type(m).__module__ == verbatim_modules.__name__]
    holding = {type(m) for m in own if any(isinstance(c, statics) for c in m.modules())}
    return sorted({type(m) for m in own} - holding, key=lambda t: t.__name__)


def _dynamic(result: Quantized, scheme: Quantization) -> nn.Module:
    quantization, _ = api()
    from torch.ao.nn import intrinsic

    types = {getattr(nn, n) for n in scheme.dynamic} | {intrinsic.LinearReLU}  # FX fuses dense -> relu
    return quantization.quantize_dynamic(result.module, types, dtype=torch.qint8)  # type: ignore[no-any-return]


def _record(result: Quantized) -> None:
    """Which modules ended up quantized, statically or dynamically (not their parts)."""
    found = [(path, m) for path, m in result.module.named_modules() if ".quantized." in type(m).__module__]
    paths = {path for path, _ in found}
    for path, m in found:
        if not any(path.startswith(p + ".") for p in paths):
            dynamic = ".dynamic." in type(m).__module__
            (result.dynamic if dynamic else result.static).append(f"{path} {type(m).__name__}")


def serialized_size(module: nn.Module, example: torch.Tensor) -> int:
    """Bytes of a module traced to TorchScript (for sizes before and after, in any format)."""
    import io

    buffer = io.BytesIO()
    with quiet(), torch.no_grad():
        torch.jit.save(torch.jit.trace(module, (example,), check_trace=False), buffer)
    return len(buffer.getvalue())
