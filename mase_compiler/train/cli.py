"""What ``masec train`` does, as a function: load the model and data as ``masec compile`` does, run
:func:`~mase_compiler.train.loop.train`, and write the trained IR where ``masec compile`` reads it.

``OUT`` receives ``trained.mlir`` + ``trained.safetensors`` (plain graph + quant IR: ``masec compile
OUT/trained.mlir -p dce`` emits it for any backend), ``train.json`` (settings and per-step losses) and
``checkpoint.pt`` (for ``--resume``).  The model files and ``train.json`` appear only when training
finished; a run that fails leaves at most its last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODEL_FILE = "trained.mlir"
TRAIN_JSON = "train.json"
CHECKPOINT = "checkpoint.pt"
_OURS = {MODEL_FILE, "trained.safetensors", TRAIN_JSON, CHECKPOINT}


def _check_out(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file: give a directory with --out")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OURS and not p.name.startswith("."))
        if foreign:
            raise ValueError(f"output {out} holds files masec train did not write ({', '.join(foreign[:3])}): "
                             "choose another --out or remove them")
    if resume and not (out / CHECKPOINT).is_file():
        raise ValueError(f"--resume needs {out / CHECKPOINT}, which does not exist: run without --resume")


def train_command(model: str | os.PathLike, pipeline: str, out: str | os.PathLike, *, data: str | os.PathLike | None = None,
                  tokenizer: str | os.PathLike | None = None, steps: int = 100, lr: float = 1e-5, seed: int = 0,
                  resume: bool = False, checkpoint_every: int = 0, batch_size: int = 8, max_samples: int = 64,
                  seq_len: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train ``model`` (a file) quantized by ``pipeline`` on ``data`` and write ``out``; returns what
    ``train.json`` holds plus ``model`` (the path of the trained ``.mlir``)."""
    from ..calibration import load_calibration
    from ..driver import import_model
    from ..jsonout import dumps
    from ..pipeline import expanded_text, parse
    from .loop import train

    for name, value in (("steps", steps), ("batch_size", batch_size), ("max_samples", max_samples)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, not {checkpoint_every}")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, not {lr}")
    parse(pipeline)  # a bad pipeline fails before any work
    out = Path(out)
    _check_out(out, resume)

    source = import_model(model)
    batches, data_desc = load_calibration(data, source, tokenizer, batch_size=batch_size, max_samples=max_samples,
                                          seq_len=seq_len)
    if not batches:
        raise ValueError(f"training data {data} holds no samples")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        res = train(source, pipeline, batches, steps=steps, lr=lr, seed=seed, checkpoint=out / CHECKPOINT,
                    checkpoint_every=checkpoint_every, resume=resume, progress=progress)
    except BaseException:
        if created and not (out / CHECKPOINT).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    summary = {
        "source": str(model), "pipeline": pipeline, "expanded_pipeline": expanded_text(pipeline), "data": data_desc,
        "batches": len(batches), "steps": steps, "lr": lr, "seed": seed, "start_step": res["start_step"],
        "seconds": res["seconds"], "history": res["history"],
    }
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".train-"))
    try:
        res["model"].save(tmp / MODEL_FILE)
        (tmp / TRAIN_JSON).write_text(dumps(summary))
        for p in sorted(tmp.iterdir()):  # model files first, train.json last: it marks a finished run
            if p.name != TRAIN_JSON:
                os.replace(p, out / p.name)
        os.replace(tmp / TRAIN_JSON, out / TRAIN_JSON)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**summary, "model": str(out / MODEL_FILE)}


__all__ = ["train_command"]
