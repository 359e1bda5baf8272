"""``compile``: frontend, pipeline, backend — the whole user journey in one call.

    result = compile("model.onnx", "w8a8", target="pytorch", out="out/", calib="calib.npz")

The output directory (layout in docs/quantized-ir.md) is built in a temporary
sibling directory and renamed into place only when everything succeeded, so a
failed compile never leaves a partial ``out/`` behind; an existing masec output
directory is replaced, anything else at ``out`` is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .jsonout import dumps


COMPILE_JSON = "compile.json"


class CompileError(ValueError):
    """A compile that cannot start or finish: the message says what and what to do."""


def _resolve_folder(source, calib):
    """A folder holding ``model.onnx`` (the hardware examples) stands for that model, with its
    ``calib.npz`` as calibration data unless other data is given."""
    folder = Path(source)
    if folder.is_dir():
        if not (folder / "model.onnx").is_file():
            raise CompileError(f"{folder} is a folder without model.onnx; give the model file")
        if calib is None and (folder / "calib.npz").is_file():
            calib = folder / "calib.npz"
        source = folder / "model.onnx"
    return source, calib


def compile(
    source: str | os.PathLike,
    pipeline: str,
    target: str = "pytorch",
    out: str | os.PathLike = "out",
    calib: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    *,
    max_samples: int = 64,
    batch_size: int = 8,
    seq_len: int | None = None,
    progress: bool = False,
    print_ir_after_all: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Compile ``source`` with ``pipeline`` for ``target`` into ``out``; returns what ``compile.json`` holds.

    ``seq_len`` calibrates at the sequence length the model will serve (SLAC): text is packed
    into samples of exactly that many tokens, synthetic inputs get that length.
    """
    from .backends import backend
    from .calibration import load_calibration
    from .driver import import_model
    from .interpreter import Interpreter
    from .metrics import compare
    from .pipeline import expand, expanded_text, parse, run_pipeline
    from .session import Session

    t_start = time.perf_counter()
    out = Path(out)
    for name, value in (("max_samples", max_samples), ("batch_size", batch_size), ("seq_len", 1 if seq_len is None else seq_len)):
        if not (isinstance(value, int) and value >= 1):
            raise CompileError(f"{name} must be a positive integer, not {value!r}")
    emitter = backend(target)  # fail on a bad target or pipeline before any work
    parse(pipeline)
    _check_out(out)
    timings: dict[str, float] = {}

    source, calib = _resolve_folder(source, calib)
    t0 = time.perf_counter()
    model = import_model(source)
    timings["import"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    needs_data = any(s.name == "calibrate" for s in expand(pipeline))
    if calib is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batches, calib_desc = load_calibration(None, model, tokenizer, batch_size=batch_size, max_samples=max_samples,
                                                   seq_len=seq_len)
        if needs_data:  # only worth a warning when the numbers depend on it
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    else:
        batches, calib_desc = load_calibration(calib, model, tokenizer, batch_size=batch_size, max_samples=max_samples,
                                               seq_len=seq_len)
    if not batches:
        raise CompileError(f"calibration data {calib} holds no samples")
    timings["calibration_data"] = time.perf_counter() - t0

    # The reference: the first batch, through the FP32 model, before the pipeline rewrites it.
    reference_inputs = batches[0]
    t0 = time.perf_counter()
    fp32_outputs = Interpreter(model)(reference_inputs)
    timings["fp32_reference"] = time.perf_counter() - t0

    session = Session(model, calibration=batches, calibration_source=calib_desc, progress=progress)
    t0 = time.perf_counter()
    records = run_pipeline(model, pipeline, session=session, print_ir_after_all=print_ir_after_all)
    timings["pipeline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    quantized_outputs = Interpreter(model)(reference_inputs)
    timings["quantized_reference"] = time.perf_counter() - t0

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        t0 = time.perf_counter()
        if target in ("sv", "hls"):  # golden vectors: the first 32 calibration items, the data the design will see
            first = np.concatenate([np.asarray(b[model.input_names[0]]) for b in batches])[:32]
            emitted = emitter.emit(model, tmp, inputs=first)
        else:
            emitted = emitter.emit(model, tmp)
        timings["emit"] = time.perf_counter() - t0
        model.save(tmp / "quantized.mlir")
        arrays = {f"input/{k}": np.asarray(v) for k, v in reference_inputs.items()}
        arrays.update({f"fp32/{k}": _np(v) for k, v in fp32_outputs.items()})
        arrays.update({f"quantized/{k}": _np(v) for k, v in quantized_outputs.items()})
        np.savez(tmp / "reference.npz", **arrays)
        timings["total"] = time.perf_counter() - t_start
        result = {
            "masec": __version__,
            "source": str(source),
            "target": target,
            "pipeline": pipeline,
            "expanded_pipeline": expanded_text(pipeline),
            "calibration": {"source": calib_desc, "batches": len(batches),
                            "samples": int(sum(next(iter(b.values())).shape[0] for b in batches if b))},
            "passes": records,
            "weight_bytes": {"fp32": int(emitted.get("fp32_weight_bytes", 0)), "quantized": int(emitted.get("weight_bytes", 0))},
            "outputs": {k: compare(fp32_outputs[k], quantized_outputs[k]) for k in fp32_outputs if fp32_outputs[k].is_floating_point()},
            "files": sorted(p.name for p in tmp.iterdir()) + [COMPILE_JSON],
            "seconds": timings,
        }
        (tmp / COMPILE_JSON).write_text(dumps(result))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / COMPILE_JSON).exists())):
        raise CompileError(f"output {out} exists and is not a masec output directory: choose another -o or remove it")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an old masec output at ``out`` is removed only after the new one is complete."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


__all__ = ["CompileError", "compile"]
