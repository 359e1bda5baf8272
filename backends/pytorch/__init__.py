"""The PyTorch backend (``--target pytorch``): a readable ``nn.Module`` plus packed weights.

``emit(model, out)`` writes into the empty directory ``out``:

* ``model.py``: a ``Model(nn.Module)`` whose ``forward`` has one line per IR op
  (commented with the op's source node) and returns a dict keyed by the
  model's output names, plus ``load(directory=None, device="cpu")``;
* ``weights.safetensors``: float weights as they are; weights behind a
  ``quant.cast`` packed at their low bit width (``fmt.encode``: codes, scales,
  zero points; metadata in the header), decoded at load time;
* ``README.md``: a usage note.

On CPU (and on CUDA, except the FP8 matmul fast path) the emitted model is
bit-exact with :func:`mase_compiler.interpreter.run`.  ``run(out, inputs)``
loads what ``emit`` wrote and runs it.  Generated code needs only torch,
safetensors, ``mase_compiler.numerics`` and :mod:`.runtime`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from mase_compiler.model import Model

MODEL_FILE = "model.py"
WEIGHTS_FILE = "weights.safetensors"
README_FILE = "README.md"


def emit(model: "Model", out: str | os.PathLike) -> dict[str, object]:
    """Write model.py, weights.safetensors and README.md into the existing directory ``out``.

    Returns ``{"files": [...], "weight_bytes": <size of weights.safetensors>,
    "fp32_weight_bytes": <the model's weights as float32>, "packed_weights": <count>,
    "fp8_fast_matmuls": <count>}``.  Raises :class:`~mase_compiler.backends.BackendError`
    for IR it cannot express.
    """
    import json

    from safetensors.torch import save_file

    from ._codegen import generate
    from ._readme import readme
    from .runtime import PACKED_KEY

    out = Path(out)
    g = generate(model)
    (out / MODEL_FILE).write_text(g.source)
    save_file(g.tensors, str(out / WEIGHTS_FILE), metadata={PACKED_KEY: json.dumps(g.packed, separators=(",", ":"))})
    (out / README_FILE).write_text(readme(model, g))
    files = [out / MODEL_FILE, out / WEIGHTS_FILE, out / README_FILE]
    return {
        "files": [str(f) for f in files],
        "weight_bytes": (out / WEIGHTS_FILE).stat().st_size,
        "fp32_weight_bytes": g.fp32_weight_bytes,
        "packed_weights": len(g.packed),
        "fp8_fast_matmuls": g.n_fp8_fast,
    }


def load_module(out: str | os.PathLike):
    """Import ``out/model.py`` as a fresh module (several emitted models can coexist)."""
    path = Path(out) / MODEL_FILE
    name = f"_masec_emitted_{abs(hash(str(path.resolve())))}_{path.stat().st_mtime_ns}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def run(out: str | os.PathLike, inputs: Mapping[str, np.ndarray | torch.Tensor], device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load the model that :func:`emit` wrote to ``out`` and run it on ``inputs`` (keyed by input name)."""
    from .. import BackendError

    mod = load_module(out)
    missing = [n for n in mod.INPUTS if n not in inputs]
    unknown = sorted(set(inputs) - set(mod.INPUTS))
    if missing or unknown:
        raise BackendError(f"inputs must be {', '.join(mod.INPUTS)}, not {', '.join(sorted(inputs))}")
    args = []
    for name, dtype in mod.INPUTS.items():
        x = inputs[name]
        x = torch.from_numpy(np.ascontiguousarray(x).reshape(np.shape(x))) if isinstance(x, np.ndarray) else torch.as_tensor(x)
        if x.dtype != dtype:
            if x.dtype.is_floating_point != dtype.is_floating_point or dtype == torch.bool:
                raise BackendError(f"input {name!r} must be {dtype}, not {x.dtype}")
            x = x.to(dtype)
        args.append(x.to(device))
    m = mod.load(out, device)
    with torch.no_grad():
        return dict(m(*args))


__all__ = ["MODEL_FILE", "README_FILE", "WEIGHTS_FILE", "emit", "load_module", "run"]
