"""The compiler's Python API; each ``masec`` subcommand is a thin layer over one of these.

    model = import_model("model.onnx")          # or "model.mlir", or "net.py:factory"
    opt(model, "cse,dce")                        # run a pipeline in place
    outputs = run(model, {"input_ids": ids})     # reference interpreter
    compile("model.onnx", "w8a8", "pytorch", "out/", calib="calib.npz")   # the whole journey
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .model import Model, ModelError


def import_model(source: str | os.PathLike) -> Model:
    """Import a model from ``.onnx``, ``.mlir``, or ``file.py:factory``.

    The factory is a function of no arguments returning ``(module, example_inputs)``;
    the module goes through ``torch.export`` and torch-mlir.
    """
    text = str(source)
    head, sep, factory = text.rpartition(":")
    if sep and head.endswith(".py"):
        return _import_factory(Path(head), factory)
    p = Path(text)
    if not p.exists():
        raise ModelError(f"model file {p} does not exist")
    if p.suffix == ".onnx":
        from .frontends.onnx import import_onnx

        return import_onnx(p)
    if p.suffix == ".mlir":
        return Model.load(p)
    raise ModelError(f"cannot import {p}: the model must be .onnx, .mlir or file.py:factory, not '{p.suffix or p.name}'")


def _import_factory(path: Path, factory: str) -> Model:
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_masec_user_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(path.parent))
    fn = getattr(mod, factory, None)
    if not callable(fn):
        raise ModelError(f"{path} has no function {factory!r}")
    result = fn()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise ModelError(f"{path}:{factory} must return (nn.Module, example_inputs), not {type(result).__name__}")
    from .frontends.pytorch import import_module

    module, example = result
    return import_module(module, example)


def opt(model: Model, pipeline: str, calib: list[dict[str, np.ndarray]] | None = None) -> Model:
    """Run a pipeline string on ``model`` in place (verified after every pass).

    ``calib`` is the calibration batches passes such as ``calibrate`` run the model on.
    """
    from .pipeline import run_pipeline
    from .session import Session

    run_pipeline(model, pipeline, session=Session(model, calibration=calib))
    return model


def run(model: Model, inputs: Mapping[str, np.ndarray | torch.Tensor], device: str | None = None) -> dict[str, torch.Tensor]:
    """Execute ``model`` with the reference interpreter."""
    from .interpreter import run as interpret

    return interpret(model, inputs, device)


def load_inputs(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Inputs from an ``.npz`` file keyed by the model's input names."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read inputs {path}: {e}") from None


def save_outputs(outputs: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write outputs to ``.npz`` atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **{k: v.detach().cpu().numpy() for k, v in outputs.items()})
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


from .compiler import CompileError, compile  # noqa: E402  (the whole journey; lives in its own module)
