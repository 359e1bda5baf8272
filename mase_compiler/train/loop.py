"""The QAT loop: quantize a copy of a model with a pipeline, train it against its full-precision self
with EdgeQAT's loss, and write the learned weights and steps back into the IR.

    result = train(model, "w4a8", batches, steps=200, lr=1e-4, seed=0)
    result["model"].save("trained.mlir")      # plain IR: masec compile trained.mlir -p dce --target onnx

Seeded (``torch.manual_seed``), batches taken in order (step ``i`` trains on ``batches[i % len]``),
so a run is reproducible and a run resumed from a checkpoint ends where one uninterrupted run does.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..model import Model
from ..weights import WeightStore
from .losses import DEFAULT_WEIGHTS, distill_loss, distribution_loss, entropy_loss, task_loss, total
from .module import Trainable

Batch = Mapping[str, np.ndarray | Tensor]
TaskFn = Callable[[Mapping[str, Tensor], Batch], Tensor]
CHECKPOINT_VERSION = 1


def copy_model(model: Model) -> Model:
    """A copy whose IR and weight-store mapping are independent of ``model``'s (arrays are shared until
    replaced; nothing writes into them)."""
    return Model(model.module.clone(), WeightStore(dict(model.weights.items())))


def default_task(outputs: Mapping[str, Tensor], batch: Batch) -> Tensor | None:
    """Next-token cross entropy when the model returns ``logits`` and takes ``input_ids``; otherwise
    (an encoder's hidden states, say) no task term: distillation stands for it."""
    if "logits" in outputs and "input_ids" in batch:
        logits = outputs["logits"]
        return task_loss(logits, torch.as_tensor(np.asarray(batch["input_ids"])).to(logits.device))
    return None


def train(
    model: Model,
    pipeline: str,
    batches: Sequence[Batch],
    *,
    steps: int,
    lr: float,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    progress: bool = False,
    teacher: Model | None = None,
    task: TaskFn | None = None,
    temperature: float = 1.0,
    learn_dynamic: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Quantization-aware training of ``model`` (left unchanged) quantized by ``pipeline``.

    The pipeline runs on a copy with ``batches`` as calibration data; the student is that copy as a
    :class:`Trainable`, the teacher ``teacher`` (default: ``model`` itself, in full precision).  Each of
    ``steps`` AdamW steps (learning rate ``lr``, no weight decay: decaying the LSQ steps would shrink the
    ranges) minimizes :func:`~mase_compiler.train.losses.total` of the task loss (``task(outputs, batch)``,
    default :func:`default_task`), distillation of every float output at ``temperature``, the entropy of
    the quantized queries / keys (in units of their learned step where they have one: the information the
    grid holds, which a larger step cannot inflate; on the raw values the term would reward growing Q and K
    without bound) and the attention-map KL, weighted by ``weights`` (defaults in
    :data:`~mase_compiler.train.losses.DEFAULT_WEIGHTS`).

    ``learn_dynamic`` gives dynamic per-tensor / per-channel integer casts learned steps (see
    :class:`Trainable`); ``device`` is where both models run (default CPU).

    ``checkpoint`` (a file) receives the student, optimizer, step, RNG state and history every
    ``checkpoint_every`` steps (0: only at the end); ``resume=True`` continues from it.  Returns
    ``history`` (one dict of floats per step: ``loss`` and each term), ``model`` (the trained IR, learned
    weights and steps written back), ``teacher``, ``seconds``, ``start_step`` and ``records`` (what each
    pass of ``pipeline`` reported, as :func:`mase_compiler.pipeline.run_pipeline` returns it).
    """
    from ..pipeline import run_pipeline
    from ..progress import bar
    from ..session import Session

    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, not {lr}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, not {checkpoint_every}")
    if not batches:
        raise ValueError("train needs at least one batch of data")
    if resume and checkpoint is None:
        raise ValueError("resume needs a checkpoint path")
    unknown = sorted(set(weights or {}) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"loss weights must be among {', '.join(DEFAULT_WEIGHTS)}, not {', '.join(unknown)}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    batches = list(batches)

    student_model = copy_model(model)
    records = run_pipeline(student_model, pipeline, session=Session(student_model, calibration=[dict(b) for b in batches],
                                                          calibration_source="training data", progress=progress))
    teacher_run = Trainable(teacher if teacher is not None else model, device=device).eval()
    student = Trainable(student_model, learn_dynamic=learn_dynamic, device=device)
    student.initialize(batches[0])
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    config = {"pipeline": pipeline, "lr": lr, "seed": seed, "weights": dict(weights or {}), "n_batches": len(batches)}

    start, history = 0, []
    if resume and Path(checkpoint).exists():
        start, history = _load(Path(checkpoint), student, opt, config)
        if start > steps:
            raise ValueError(f"checkpoint {checkpoint} is at step {start}, past the {steps} steps asked for")

    targets: dict[int, tuple[dict[str, Tensor], list[Tensor]]] = {}  # teacher outputs and maps per batch
    with bar(progress, steps - start, "QAT") as advance:
        for step in range(start, steps):
            i = step % len(batches)
            batch = batches[i]
            if i not in targets:
                with torch.no_grad():
                    outs = teacher_run(batch)
                targets[i] = (outs, list(teacher_run.maps))
            t_out, t_maps = targets[i]
            out = student(batch)
            if len(t_maps) != len(student.maps):
                raise ValueError(f"the teacher has {len(t_maps)} attention blocks, the student {len(student.maps)}: "
                                 "give the full-precision model of the same graph")
            floats = [k for k, v in out.items() if v.is_floating_point() and k in t_out]
            terms: dict[str, Tensor | None] = {
                "task": (task or default_task)(out, batch),
                "distill": torch.stack([distill_loss(out[k], t_out[k], temperature) for k in floats]).mean() if floats else None,
                "entropy": entropy_loss(student.query_codes + student.key_codes) if student.queries else None,
                "distribution": distribution_loss(student.maps, t_maps) if t_maps else None,
            }
            loss = total(terms, weights)
            if not torch.isfinite(loss):
                raise ValueError(f"QAT loss is {float(loss)} at step {step}: lower the learning rate (now {lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append({"step": step, "loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items() if v is not None}})
            advance()
            done = step + 1
            if checkpoint is not None and (done == steps or (checkpoint_every and done % checkpoint_every == 0)):
                _save(Path(checkpoint), student, opt, done, history, config)

    student.eval()
    student.write_back(student_model)
    return {"history": history, "model": student_model, "teacher": teacher if teacher is not None else model,
            "seconds": time.perf_counter() - t0, "start_step": start, "records": records}


# ---- checkpoints --------------------------------------------------------------------------------------
def _save(path: Path, student: Trainable, opt: torch.optim.Optimizer, step: int, history: list, config: dict) -> None:
    """Write the checkpoint atomically (temp file, then rename): an interrupted save keeps the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"version": CHECKPOINT_VERSION, "config": config, "step": step, "history": history,
             "student": student.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _load(path: Path, student: Trainable, opt: torch.optim.Optimizer, config: dict) -> tuple[int, list]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is not a masec QAT checkpoint (version {CHECKPOINT_VERSION})")
    if state["config"] != config:
        diff = ", ".join(f"{k} {state['config'].get(k)!r} -> {v!r}" for k, v in config.items() if state["config"].get(k) != v)
        raise ValueError(f"checkpoint {path} was written with other settings ({diff}): resume with the same ones "
                         "or start without --resume")
    student.load_state_dict(state["student"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"].cpu())
    return int(state["step"]), list(state["history"])


__all__ = ["copy_model", "default_task", "train"]
