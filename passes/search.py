"""``search``: per-layer mixed-precision formats under a bits budget, then quantize with them (issue 7).

MASE's search (Cheng et al., "MASE: An Efficient Representation for Software-Defined ML Hardware System
Exploration"; Zhang et al., "Revisiting Block-based Quantisation") as one pass:

1. ``sensitivity``'s measurement (:func:`mase_compiler.passes.sensitivity.measure`): every matmul/conv
   weight and activation tensor alone in every candidate format, error of the model outputs on the
   calibration batches;
2. an assignment of one format per tensor with the element-weighted average bits per element at most
   ``budget``:

   * ``strategy=ilp`` (default): the least summed error under the additive model (the noise powers
     ``10^(-SQNR/10)`` add), exactly (scipy's ``milp``);
   * ``greedy``: the same model, downgrading the least sensitive tensor first;
   * ``evolution``: a seeded genetic search (:mod:`mase_compiler.search.evolve`) that starts from the
     ILP and greedy answers and scores every candidate by quantizing the model and running it
     (``metric``: output ``sqnr`` in dB, ``kl`` on logits, or the session's task ``loss``), ``trials``
     candidates, ``population`` per generation; candidates run in ``workers`` processes, or on a Ray
     cluster (``ray=local`` or ``ray=ADDRESS``); ``resume=PATH`` journals every measurement so a
     stopped search continues where it was (:mod:`mase_compiler.search.journal`);
3. the choice as a pipeline (:func:`mase_compiler.search.to_pipeline`: ``quantize{rules=...}``, with
   ``calibrate`` first when a format needs static scales), applied here; ``masec compile -p '<that
   pipeline>'`` replays it to the same IR, hence the same accuracy.

``session.notes`` gets the pipeline, the predicted and measured output SQNR on the calibration data,
the average bits, the per-tensor formats and (evolution) the measured metric of the choice; ``out=PATH``
also writes PATH (JSON: sensitivity rows, solution, Pareto points: a sweep over budgets, or every
evaluated candidate) and PATH with ``.png`` (the Pareto front).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from mase_compiler.session import current

STRATEGIES = ("ilp", "greedy", "evolution")


@dataclass(frozen=True)
class Search(ModulePass):
    """Chooses a format per layer tensor under an average-bits budget and quantizes with it (MASE)."""

    name = "search"

    formats: str = "mxint8,mxfp6_e2m3,mxfp4"
    budget: float | int = 4.5  # average bits per weight/activation element, scales included
    strategy: str = "ilp"
    tensors: str = "both"
    method: str = "minmax"  # calibration of static activation formats
    out: str = ""
    # evolution: real-accuracy search
    metric: str = "sqnr"
    trials: int = 64
    population: int = 8
    seed: int = 0
    workers: int = 1
    ray: str = ""
    resume: str = ""

    def __post_init__(self) -> None:
        from mase_compiler.numerics import parse
        from mase_compiler.search.evaluate import METRICS

        if self.strategy not in STRATEGIES:
            raise ValueError(f"search strategy must be {', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]}, not {self.strategy!r}")
        if not (isinstance(self.budget, (int, float)) and math.isfinite(self.budget) and self.budget > 0):
            raise ValueError(f"search budget must be a positive number of bits per element, not {self.budget!r}")
        if self.metric not in METRICS:
            raise ValueError(f"search metric must be one of {', '.join(METRICS)}, not {self.metric!r}")
        for what, v, low in (("trials", self.trials, 1), ("population", self.population, 2), ("workers", self.workers, 1)):
            if not (isinstance(v, int) and v >= low):
                raise ValueError(f"search {what} must be an integer >= {low}, not {v!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"search seed must be an integer, not {self.seed!r}")
        specs = [s.strip() for s in self.formats.split(",") if s.strip()]
        if not specs:
            raise ValueError("search formats must name at least one format, e.g. 'mxint8,mxfp4'")
        for s in specs:
            parse(s)  # a typo fails before any work, with the numerics' suggestion

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from mase_compiler.interpreter import Interpreter
        from mase_compiler.metrics import sqnr_db
        from mase_compiler.pipeline import parse
        from mase_compiler.search import Budget, Point, Problem, solve_greedy, solve_ilp, sweep, to_pipeline, write_pareto
        from mase_compiler.search.journal import Journal, fingerprint

        from .sensitivity import Sensitivity, _flat, measure, to_table

        session = current(self.name)
        if session.calibration is None:
            raise ValueError("pass 'search' needs calibration data: pass it, e.g. 'masec compile --calib DATA'")
        model, batches = session.model, session.calibration
        if self.strategy == "evolution" and self.metric == "loss" and session.loss is None:
            raise ValueError("search metric=loss needs a task loss: set Session.loss (the Python API), or use metric=sqnr or kl")
        probe = Sensitivity(formats=self.formats, tensors=self.tensors, method=self.method)
        journal = Journal(self.resume, fingerprint(model.text(), model.weights, batches, formats=probe.specs,
                                                   tensors=self.tensors, method=self.method, metric=self.metric))
        rows = journal.rows
        if rows is None:
            rows = measure(model, batches, probe.specs, probe.roles, method=self.method, loss=session.loss)
            journal.record_rows(rows)
        problem = Problem.build(to_table(rows))
        budget = Budget(avg_bits=float(self.budget))
        calibrate = f"calibrate{{method={self.method}}}"
        trials = []
        if self.strategy == "evolution":
            from mase_compiler.search.evolve import best

            trials = self._evolve(problem, budget, probe, journal, session)
            solution, accuracy = best(trials).solution, best(trials).accuracy
        else:
            solution = (solve_ilp if self.strategy == "ilp" else solve_greedy)(problem, budget)
            accuracy = None
        pipeline = to_pipeline(solution, calibrate=calibrate)

        ref = [Interpreter(model)(b) for b in batches]
        for spec in parse(pipeline):  # the chosen pipeline, on this module with this session
            spec.apply(ctx, op)
        got = [Interpreter(model)(b) for b in batches]
        measured = sqnr_db(_flat(ref), _flat(got))
        predicted = _sqnr(solution.error)
        notes = {"pipeline": pipeline, "strategy": self.strategy, "budget_bits": float(self.budget),
                 "evaluations": len(rows) + len(trials), "avg_bits": solution.avg_bits, "predicted_sqnr_db": predicted,
                 "measured_sqnr_db": measured,
                 "formats": {f"{layer}/{role}": fmt for (layer, role), fmt in solution.formats.items()}}
        if self.strategy == "evolution":
            notes.update(metric=self.metric, accuracy=accuracy, trials=len(trials), resumed=journal.resumed,
                         seed=self.seed)
        session.notes.update({f"search_{k}": v for k, v in notes.items()})
        if self.out:
            path = Path(self.out)
            if trials:  # every evaluated candidate, scored by its measured accuracy
                points = [Point(t.accuracy, t.solution.avg_bits, t.solution.area, f"trial {i}",
                                to_pipeline(t.solution, calibrate=calibrate)) for i, t in enumerate(trials)]
                title = f"search (evolution): measured {self.metric} vs bits per element"
            else:
                points = [Point(_sqnr(sol.error), sol.avg_bits, sol.area, f"budget {b}", to_pipeline(sol, calibrate=calibrate))
                          for b, sol in sweep(problem, sorted({x / 4 for x in range(12, 37)} | {float(self.budget)}))]
                title = "search: predicted output SQNR (dB) vs bits per element"
            write_pareto(points, path.with_suffix(""), title=title)
            path.write_text(json.dumps({**notes, "solution": solution.to_json(), "sensitivity": rows,
                                        "pareto": [p.__dict__ for p in points]}, indent=1, default=str))

    def _evolve(self, problem, budget, probe, journal, session) -> list:
        """The evolutionary search: candidates scored by real accuracy, in a pool of workers, journalled."""
        from mase_compiler.search import to_pipeline
        from mase_compiler.search.evaluate import Payload, open_pool
        from mase_compiler.search.evolve import evolve

        from .sensitivity import _apply, _copy, _static

        model, batches = session.model, session.calibration
        base = model
        if "activation" in probe.roles and any(_static(s) for s in probe.specs):
            base = _copy(model, model.text())
            _apply(base, batches, "calibrate", method=self.method)
        payload = Payload(base.text(), {k: base.weights[k] for k in base.weights}, batches, self.metric, loss=session.loss)
        with contextlib.ExitStack() as stack:
            pools: list = []
            bar = stack.enter_context(_progress(session.progress, self.trials, "search: evaluating candidates"))

            def evaluate(solutions: list) -> list[dict]:
                keys = [to_pipeline(s, calibrate="") for s in solutions]
                todo = {k: s for k, s in zip(keys, solutions) if k not in journal.evaluations}
                if todo and not pools:  # workers start on the first candidate the journal does not hold
                    pools.append(stack.enter_context(open_pool(payload, self.workers, self.ray)))
                for k, m in zip(todo, pools[0].map([s.formats for s in todo.values()]) if todo else ()):
                    journal.record(k, m)
                    bar()
                for k in keys:
                    if k not in todo:
                        bar()
                return [journal.evaluations[k] for k in keys]

            return evolve(problem, budget, evaluate, trials=self.trials, population=self.population, seed=self.seed)


@contextlib.contextmanager
def _progress(show: bool, total: int, what: str):
    """A rich progress bar when the session shows progress (the CLI); yields its advance function."""
    if not show:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def _sqnr(error: float) -> float:
    """The additive model's output SQNR (dB) from its summed relative noise power."""
    return -10 * math.log10(error) if error > 0 else math.inf


__all__ = ["Search"]
