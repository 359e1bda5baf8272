"""masec backends (installed as mase_compiler.backends).

Each target is a subpackage exposing ``emit(model, out) -> dict`` and
``run(out, inputs, device) -> dict``; see docs/quantized-ir.md.  Targets load
lazily so that importing masec does not import onnx or code generators.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TARGETS: dict[str, str] = {
    "pytorch": "mase_compiler.backends.pytorch",
    "onnx": "mase_compiler.backends.onnx_qdq",
    "sv": "mase_compiler.backends.sv",
    "hls": "mase_compiler.backends.hls",
}


class BackendError(ValueError):
    """IR that a backend cannot express; the message says what and what to do."""


def backend(target: str) -> ModuleType:
    """The backend module for ``target`` (``pytorch``, ``onnx``, ``sv`` or ``hls``)."""
    if target not in TARGETS:
        from mase_compiler.numerics._options import suggestion

        raise BackendError(f"unknown target {target!r}" + suggestion(target, TARGETS) + f"; targets are {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[target])


__all__ = ["BackendError", "TARGETS", "backend"]
