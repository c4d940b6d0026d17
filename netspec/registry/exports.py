"""Export formats and quantization schemes: how `netspec export` writes a trained network for deployment.

One class per format holds everything about it: the file's suffix, the pip extra and the modules it
needs, how to write a module with its example input and metadata, how to load the written bytes back
and run them (ONNX through onnxruntime), whether it can hold an int8 model, and the layers it cannot
export. One class per quantization scheme says which torch modules it quantizes and how, and which
layers it cannot quantize. torch is imported inside the methods: the registry stays torch-free.

Every layer of the registry was exported in each format with torch 2.13 (onnx through the dynamo
exporter, a dynamic batch): all of them export, so no format lists a layer as unsupported; int8
quantization has a real exception (`Int8.unsupported`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import warnings
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal

from netspec.registry.base import Op, Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

Runner = Callable[["torch.Tensor"], "torch.Tensor"]
METADATA_FILE = "netspec.json"  # the metadata's name inside TorchScript and ExportedProgram files
MAX_BATCH = 65536  # the dynamic batch dimension's upper bound


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what exporters print (progress lines, warnings, log records): netspec reports itself."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        logging.disable(previous)


def last_line(error: BaseException) -> str:
    """An exception's last non-empty line, for a message (never its traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return f"{type(error).__name__}: {text}"[:300]


def batch_dim() -> Any:
    import torch

    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


class ExportFormat(Op):
    """Base of export formats."""

    suffix: ClassVar[str] = ""  # of the file written by default
    suffixes: ClassVar[tuple[str, ...]] = ()  # output suffixes that name this format
    extra: ClassVar[str | None] = None  # netspec's pip extra that installs `modules`
    modules: ClassVar[tuple[str, ...]] = ()  # what writing and checking it imports besides torch
    runtime: ClassVar[str] = ""  # what runs the file back, in words
    quantized: ClassVar[str | None] = None  # None: it can hold an int8 model; else why it cannot
    unsupported: ClassVar[dict[str, str]] = {}  # layer name -> why this format cannot export it
    loading: ClassVar[str] = ""  # how to load the file in plain Python, for the docs

    @classmethod
    def missing(cls) -> list[str]:
        """The modules it needs that cannot be imported."""
        out = []
        for name in cls.modules:
            try:
                importlib.import_module(name)
            except ImportError:
                out.append(name)
        return out

    def write(self, module: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> tuple[bytes, str | None]:
        """The file's bytes, and a note when the export took a detour (None: it did not)."""
        raise NotImplementedError

    def load(self, data: bytes) -> Runner:
        """The written file, loaded back: a function from a CPU batch to its CPU outputs."""
        raise NotImplementedError

    def metadata(self, data: bytes) -> dict[str, Any]:
        """The metadata embedded in a written file."""
        raise NotImplementedError


EXPORTS: Registry[type[ExportFormat]] = Registry("export format")


@EXPORTS.register
class Onnx(ExportFormat):
    """ONNX (opset 18 or later), through torch.onnx's dynamo exporter with a dynamic batch dimension; the
    TorchScript-based exporter only where the dynamo exporter fails (the command says so). Run by
    onnxruntime and most inference servers; the metadata is in the model's metadata_props, one JSON
    value per key."""

    kind: Literal["onnx"] = "onnx"
    suffix: ClassVar[str] = ".onnx"
    suffixes: ClassVar = (".onnx",)
    extra: ClassVar[str | None] = "export"
    modules: ClassVar = ("onnx", "onnxruntime", "onnxscript")
    runtime: ClassVar[str] = "onnxruntime"
    quantized: ClassVar[str | None] = (
        "torch's int8 kernels (quantized::linear_dynamic, packed convolutions) do not export to ONNX"
    )
    loading: ClassVar[str] = (
        "session = onnxruntime.InferenceSession(path); session.run(None, {'input': x})[0]; "
        "session.get_modelmeta().custom_metadata_map"
    )

    def write(self, module: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> tuple[bytes, str | None]:
        note = None
        try:
            proto = self._dynamo(module, example)
        except Exception as e:  # an operator the dynamo exporter lacks: the TorchScript-based one may have it
            try:
                proto = self._legacy(module, example)
            except Exception:
                raise e from None
            note = f"the dynamo ONNX exporter failed ({last_line(e)}); used the TorchScript-based exporter"
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value, ensure_ascii=False)
        return proto.SerializeToString(), note

    @staticmethod
    def _dynamo(module: nn.Module, example: torch.Tensor) -> Any:
        import torch

        with quiet():
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: batch_dim()},),
                input_names=["input"],
                output_names=["output"],
            )
        assert program is not None
        return program.model_proto

    @staticmethod
    def _legacy(module: nn.Module, example: torch.Tensor) -> Any:
        import onnx
        import torch

        buffer = io.BytesIO()
        with quiet(), torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        return onnx.load_from_string(buffer.getvalue())

    def load(self, data: bytes) -> Runner:
        import onnxruntime
        import torch

        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy()})[0])

    def metadata(self, data: bytes) -> dict[str, Any]:
        import onnx

        return {p.key: json.loads(p.value) for p in onnx.load_from_string(data).metadata_props}


@EXPORTS.register
class TorchScript(ExportFormat):
    """TorchScript, traced (torch.jit.trace, batch size free): runs without the network's Python code,
    from Python (torch.jit.load) or C++ (libtorch); holds int8 models. The metadata is the extra file
    netspec.json."""

    kind: Literal["torchscript"] = "torchscript"
    suffix: ClassVar[str] = ".pt"
    suffixes: ClassVar = (".pt", ".ts", ".torchscript")
    runtime: ClassVar[str] = "torch.jit.load"
    loading: ClassVar[str] = (
        "files = {'netspec.json': ''}; model = torch.jit.load(path, _extra_files=files); "
        "model(x); json.loads(files['netspec.json'])"
    )

    def write(self, module: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> tuple[bytes, str | None]:
        import torch

        buffer = io.BytesIO()
        with quiet(), torch.no_grad():  # no_grad: the same (fused) inference path that deployment takes
            traced = torch.jit.trace(module, (example,), check_trace=False)
            torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(metadata, ensure_ascii=False)})
        return buffer.getvalue(), None

    def load(self, data: bytes) -> Runner:
        import torch

        with quiet():
            model = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
        return _no_grad(model)

    def metadata(self, data: bytes) -> dict[str, Any]:
        import torch

        files = {METADATA_FILE: ""}
        with quiet():
            torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=files)
        return dict(json.loads(files[METADATA_FILE]))


@EXPORTS.register
class Exported(ExportFormat):
    """torch.export's ExportedProgram (.pt2) with a dynamic batch dimension: the graph that
    torch.compile, AOTInductor and ExecuTorch start from; loaded with torch.export.load. The metadata
    is the extra file netspec.json."""

    kind: Literal["exported"] = "exported"
    suffix: ClassVar[str] = ".pt2"
    suffixes: ClassVar = (".pt2",)
    runtime: ClassVar[str] = "torch.export.load"
    quantized: ClassVar[str | None] = (
        "torch.export cannot serialize torch's packed int8 weights (LinearPackedParamsBase, Conv2dPackedParamsBase)"
    )
    loading: ClassVar[str] = (
        "files = {'netspec.json': ''}; program = torch.export.load(path, extra_files=files); "
        "program.module()(x); json.loads(files['netspec.json'])"
    )

    def write(self, module: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> tuple[bytes, str | None]:
        import torch

        with quiet():
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch_dim()},))
            buffer = io.BytesIO()
            torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata, ensure_ascii=False)})
        return buffer.getvalue(), None

    def load(self, data: bytes) -> Runner:
        import torch

        with quiet():
            return _no_grad(torch.export.load(io.BytesIO(data)).module())

    def metadata(self, data: bytes) -> dict[str, Any]:
        import torch

        files = {METADATA_FILE: ""}
        with quiet():
            torch.export.load(io.BytesIO(data), extra_files=files)
        return dict(json.loads(files[METADATA_FILE]))


def _no_grad(model: Any) -> Runner:
    import torch

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x).float()

    return run


def format_for(suffix: str) -> type[ExportFormat] | None:
    """The format an output file's suffix names (`.onnx`: onnx), or None."""
    return next((cls for cls in EXPORTS.entries.values() if suffix.lower() in cls.suffixes), None)


class Quantization(Op):
    """Base of quantization schemes."""

    engine: ClassVar[str] = ""  # torch.backends.quantized.engine
    dynamic: ClassVar[tuple[str, ...]] = ()  # torch.nn classes with int8 weights, activations quantized per batch
    static: ClassVar[tuple[str, ...]] = ()  # torch.nn classes quantized with scales calibrated on training data
    follow: ClassVar[tuple[str, ...]] = ()  # torch.nn classes that stay in int8 right after a static one
    unsupported: ClassVar[dict[str, str]] = {}  # layer name -> why it cannot be quantized


QUANTIZATIONS: Registry[type[Quantization]] = Registry("quantization")


@QUANTIZATIONS.register
class Int8(Quantization):
    """8-bit integers (torch.ao.quantization, the x86/fbgemm kernels): dense and recurrent layers
    dynamically (int8 weights, activations quantized per batch), convolutions statically (FX graph
    mode, their activations' scales calibrated on training samples), fused with the batch norm, ReLU
    and max pooling that follow them."""

    kind: Literal["int8"] = "int8"
    engine: ClassVar[str] = "x86"
    dynamic: ClassVar = ("Linear", "LSTM", "GRU")
    static: ClassVar = ("Conv1d", "Conv2d")
    follow: ClassVar = ("BatchNorm1d", "BatchNorm2d", "ReLU", "MaxPool1d", "MaxPool2d")
    unsupported: ClassVar[dict[str, str]] = {
        "transformer_encoder": "nn.TransformerEncoderLayer's fused inference path reads its feed-forward "
        "layers' float weights, which dynamic int8 quantization replaces with packed ones "
        "(torch 2.13: AttributeError: 'function' object has no attribute 'device')",
    }


__all__ = ["EXPORTS", "QUANTIZATIONS", "ExportFormat", "Quantization", "format_for", "last_line", "quiet"]
