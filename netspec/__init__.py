"""netspec: a declarative model-spec compiler for deep learning.

from netspec import load
program = load("specs/mnist.net", overrides=["train.epochs=2"])

The API is imported on first use, so that `import netspec` (and so `python -m netspec`, before
it can handle Ctrl-C or SIGTERM) costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from netspec.ir.pipeline import compile_file, compile_text, load
    from netspec.language.diagnostics import Diagnostic, SpecError

_API = {
    "compile_file": "netspec.ir.pipeline",
    "compile_text": "netspec.ir.pipeline",
    "load": "netspec.ir.pipeline",
    "Diagnostic": "netspec.language.diagnostics",
    "SpecError": "netspec.language.diagnostics",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")


__all__ = ["Diagnostic", "SpecError", "__version__", "compile_file", "compile_text", "load"]
