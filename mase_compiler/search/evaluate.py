"""Real-accuracy evaluation of searched configurations, in this process, in worker processes or on Ray.

An :class:`Evaluator` holds an FP32 model (its IR text, calibrated once when some activation format needs
static scales, and its weights), the evaluation batches and their FP32 outputs.  Called on an assignment
``{(layer, role): format}`` it quantizes a private copy with exactly the ``quantize`` rules that
:func:`mase_compiler.search.to_pipeline` writes (so ``masec compile -p`` replays the same IR), runs the
batches through the interpreter and scores the outputs against FP32:

* ``sqnr`` (default): output SQNR in dB over all outputs of all batches (higher is better);
* ``kl``: minus the mean KL(softmax(FP32) || softmax(quantized)) over output rows (for logits);
* ``loss``: minus the mean task loss, from the session's ``loss(outputs, batch)`` callable.

Everything an evaluator needs travels in one picklable :class:`Payload`, so the same evaluations run

* in this process (``workers=1``);
* in ``workers`` processes (``concurrent.futures`` with the *spawn* start method: forking a process that
  has run torch can deadlock in its thread pools), each building its evaluator once;
* on a Ray cluster (``ray="local"`` starts a local instance, anything else is ``ray.init(address=...)``),
  one actor per worker, for searches that outgrow one machine.  The cluster's workers need masec installed.

Results come back in submission order whatever the pool, so a seeded search is reproducible and does not
depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

METRICS = ("sqnr", "kl", "loss")
Assignment = Mapping[tuple[str, str], str]


@dataclass(frozen=True)
class Payload:
    """What an evaluator is built from; picklable (the loss must be a module-level function to cross processes)."""

    text: str  # FP32 IR, already calibrated when a static activation format is among the candidates
    weights: dict[str, np.ndarray]
    batches: list[dict[str, np.ndarray]]
    metric: str = "sqnr"
    ops: str = "matmul,conv"
    loss: Callable[[Mapping[str, Any], Mapping[str, Any]], float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"search metric must be one of {', '.join(METRICS)}, not {self.metric!r}")
        if self.metric == "loss" and self.loss is None:
            raise ValueError("search metric=loss needs a task loss: set Session.loss (the Python API), or use metric=sqnr or kl")
        if not self.batches:
            raise ValueError("search evaluation needs at least one batch of data")


class Evaluator:
    """Scores assignments by quantizing a copy of the model and running it (see the module docstring)."""

    def __init__(self, payload: Payload):
        from mase_compiler.interpreter import Interpreter

        from mase_compiler.model import Model

        self.payload = payload
        self.base = Model.parse(payload.text)  # parsed once; each evaluation clones it (5x cheaper than parsing)
        self.ref = [Interpreter(self._copy())(b) for b in payload.batches]
        self.ref_loss = self._mean_loss(self.ref)

    def _copy(self):
        from mase_compiler.model import Model
        from mase_compiler.weights import WeightStore

        return Model(self.base.module.clone(), WeightStore(dict(self.payload.weights)))

    def _mean_loss(self, outs: list[dict]) -> float | None:
        loss = self.payload.loss
        if loss is None:
            return None
        return sum(float(loss(o, b)) for o, b in zip(outs, self.payload.batches)) / len(outs)

    def outputs(self, assignment: Assignment) -> list[dict]:
        """The model's outputs on every batch with ``assignment`` applied."""
        from mase_compiler.interpreter import Interpreter
        from mase_compiler.pipeline import run_pipeline
        from mase_compiler.session import Session

        from .replay import to_pipeline

        model = self._copy()
        # No calibrate: the payload's IR is calibrated already, as the replayed pipeline's calibrate would do.
        quantize = to_pipeline(assignment, calibrate="", ops=self.payload.ops)
        run_pipeline(model, quantize, session=Session(model, calibration=self.payload.batches), verify_each=False)
        return [Interpreter(model)(b) for b in self.payload.batches]

    def __call__(self, assignment: Assignment) -> dict[str, float | None]:
        """``accuracy`` (the metric, higher is better) plus ``sqnr_db``, ``cosine``, ``kl``, ``loss`` and ``loss_delta``
        (the loss minus the FP32 loss)."""
        from mase_compiler.metrics import cosine, sqnr_db
        from mase_compiler.metrics import flat_outputs, softmax_kl

        got = self.outputs(assignment)
        ref, out = flat_outputs(self.ref), flat_outputs(got)
        sqnr = sqnr_db(ref, out)
        kl = softmax_kl(self.ref, got)
        loss = self._mean_loss(got)
        m = {"sqnr_db": sqnr, "cosine": cosine(ref, out), "kl": kl, "loss": loss,
             "loss_delta": None if loss is None or self.ref_loss is None else loss - self.ref_loss}
        return {"accuracy": accuracy_of(m, self.payload.metric), **m}


def accuracy_of(metrics: Mapping[str, float | None], metric: str) -> float:
    """The search's score (higher is better) from an evaluation's measurements: SQNR, -KL or -loss."""
    if metric == "sqnr":
        return float(metrics["sqnr_db"])
    value = metrics["kl" if metric == "kl" else "loss"]
    return -float(value) if value is not None else -math.inf


# ---- pools ----------------------------------------------------------------------------------------
class Pool(Protocol):
    def map(self, assignments: Sequence[Assignment]) -> Iterator[dict[str, float | None]]:
        """Scores in submission order, each yielded as soon as it and those before it are done."""
        ...


class _InProcess:
    def __init__(self, payload: Payload):
        self.evaluator = Evaluator(payload)

    def map(self, assignments: Sequence[Assignment]) -> Iterator[dict]:
        return (self.evaluator(a) for a in assignments)


_WORKER: Evaluator | None = None


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _init_worker(payload: Payload, threads: int) -> None:
    import torch

    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = Evaluator(payload)


def _evaluate(assignment: Assignment) -> dict:
    assert _WORKER is not None, "worker not initialized"
    return _WORKER(assignment)


class _Processes:
    def __init__(self, payload: Payload, workers: int):
        import multiprocessing

        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(payload, _threads(workers)))

    def map(self, assignments: Sequence[Assignment]) -> Iterator[dict]:
        return self.executor.map(_evaluate, [dict(a) for a in assignments])

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)


class _RayEvaluator:
    """A Ray actor around one :class:`Evaluator` (wrapped with ``ray.remote`` when Ray is used)."""

    def __init__(self, payload: Payload, threads: int):
        _init_worker(payload, threads)

    def evaluate(self, assignment: Assignment) -> dict:
        return _evaluate(assignment)


class _Ray:
    def __init__(self, payload: Payload, workers: int, address: str):
        try:
            import ray
            from ray.util import ActorPool
        except ImportError:
            raise ValueError(f"search ray={address!r} needs Ray: pip install 'masec[ray]', or leave ray unset to "
                             "use local worker processes") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            local = address in ("local", "")
            ray.init(address=None if local else address, num_cpus=workers if local else None,
                     include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        actor = ray.remote(num_cpus=1)(_RayEvaluator)
        ref = ray.put(payload)
        self.actors = [actor.remote(ref, _threads(workers) if address in ("local", "") else 1) for _ in range(workers)]
        self.pool = ActorPool(self.actors)

    def map(self, assignments: Sequence[Assignment]) -> Iterator[dict]:
        return self.pool.map(lambda a, x: a.evaluate.remote(x), [dict(a) for a in assignments])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()


@contextlib.contextmanager
def open_pool(payload: Payload, workers: int = 1, ray: str = "") -> Iterator[Pool]:
    """A pool of evaluators: in process (``workers=1``, no ``ray``), ``workers`` spawned processes, or Ray actors."""
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"search workers must be a positive number of processes, not {workers!r}")
    if (workers > 1 or ray) and payload.loss is not None:
        try:
            pickle.dumps(payload.loss)
        except Exception:
            raise ValueError("search workers / ray need a picklable Session.loss (a module-level function, not a "
                             "lambda or closure); or use workers=1") from None
    if ray:
        pool: Any = _Ray(payload, workers, ray)
    elif workers > 1:
        pool = _Processes(payload, workers)
    else:
        pool = _InProcess(payload)
    try:
        yield pool
    finally:
        if hasattr(pool, "close"):
            pool.close()


__all__ = ["METRICS", "Evaluator", "accuracy_of", "Payload", "Pool", "open_pool"]
