"""netspec: a declarative model-spec compiler for deep learning.

    import netspec
    spec = netspec.load("specs/mnist.net", set={"train.epochs": 1})
    print(spec.summary())
    model = spec.build("LeNet")           # a plain torch.nn.Module
    result = spec.run(out="runs/quick")   # result.metrics, result.test, result.dir

The API (netspec/api.py, listed in docs/api.md) is imported on first use, so that `import netspec`
(and so `python -m netspec`, before it can handle Ctrl-C or SIGTERM) costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # type-only: not imported at run time (tests/test_architecture.py leaves them out)
    from netspec.api import RunResult, Spec, Summary, check, load, loads
    from netspec.emit.errors import EmitError
    from netspec.ir.pipeline import compile_file, compile_text
    from netspec.language.diagnostics import Diagnostic, SpecError, UsageError
    from netspec.runtime.loop import RunOptions, TrainingError

_API = {
    "load": "netspec.api",
    "loads": "netspec.api",
    "check": "netspec.api",
    "Spec": "netspec.api",
    "Summary": "netspec.api",
    "RunResult": "netspec.api",
    "Diagnostic": "netspec.language.diagnostics",
    "SpecError": "netspec.language.diagnostics",
    "UsageError": "netspec.language.diagnostics",
    "EmitError": "netspec.emit.errors",
    "RunOptions": "netspec.runtime.loop",
    "TrainingError": "netspec.runtime.loop",
    "compile_file": "netspec.ir.pipeline",  # the lower-level pipeline: a Result with diagnostics, never raises
    "compile_text": "netspec.ir.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = [
    "Diagnostic",
    "EmitError",
    "RunOptions",
    "RunResult",
    "Spec",
    "SpecError",
    "Summary",
    "TrainingError",
    "UsageError",
    "__version__",
    "check",
    "compile_file",
    "compile_text",
    "load",
    "loads",
]
