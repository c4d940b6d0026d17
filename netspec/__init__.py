"""netspec: a declarative model-spec compiler for deep learning.

from netspec import load
program = load("specs/mnist.net", overrides=["train.epochs=2"])
"""

__version__ = "0.1.0"

from netspec.ir.pipeline import compile_file, compile_text, load
from netspec.language.diagnostics import Diagnostic, SpecError

__all__ = ["Diagnostic", "SpecError", "__version__", "compile_file", "compile_text", "load"]
