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
    # hardware limits: a number (area in LUT equivalents, energy in uJ per first calibration batch) or the cost
    # of one format (pair) everywhere, e.g. energy=int8 or energy="int8/uint8"; either makes the units layers
    area: str | float | int = ""
    energy: str | float | int = ""
    bytes: float | int = 0  # storage of the searched weights + one calibration batch of activations; 0: no limit
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
        if not (isinstance(self.bytes, (int, float)) and math.isfinite(self.bytes) and self.bytes >= 0):
            raise ValueError(f"search bytes must be a non-negative number of bytes (0: no limit), not {self.bytes!r}")
        for what, value in (("area", self.area), ("energy", self.energy)):
            if isinstance(value, str) and value:
                for part in value.split("/"):
                    try:
                        parse(part)
                    except ValueError as e:
                        raise ValueError(f"search {what} must be a positive number or a format like int8 or "
                                         f"int8/uint8: {e}") from None
            elif not isinstance(value, str) and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"search {what} must be a positive number or a format like int8, not {value!r}")
        specs = [s.strip() for s in self.formats.split(",") if s.strip()]
        if not specs:
            raise ValueError("search formats must name at least one format, e.g. 'mxint8,mxfp4'")
        for s in specs:
            parse(s)  # a typo fails before any work, with the numerics' suggestion

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from mase_compiler.interpreter import Interpreter
        from mase_compiler.metrics import flat_outputs, sqnr_db
        from mase_compiler.pipeline import parse
        from mase_compiler.progress import bar
        from mase_compiler.search import solve_greedy, solve_ilp, to_pipeline
        from mase_compiler.search.evaluate import open_pool
        from mase_compiler.search.evolve import best, evolve
        from mase_compiler.search.hardware import layer_shapes
        from mase_compiler.search.journal import Journal, fingerprint

        from .sensitivity import Sensitivity, measure, payload, to_table

        session = current(self.name)
        if session.calibration is None:
            raise ValueError("pass 'search' needs calibration data: pass it, e.g. 'masec compile --calib DATA'")
        model, batches = session.model, session.calibration
        if self.strategy == "evolution" and self.metric == "loss" and session.loss is None:
            raise ValueError("search metric=loss needs a task loss: set Session.loss (the Python API), or use metric=sqnr or kl")
        probe = Sensitivity(formats=self.formats, tensors=self.tensors, method=self.method)
        journal = Journal(self.resume, fingerprint(model.text(), model.weights, batches, formats=probe.specs,
                                                   tensors=self.tensors, method=self.method))
        shapes = layer_shapes(model, batches[0])
        calibrate = f"calibrate{{method={self.method}}}"
        with contextlib.ExitStack() as stack:
            pools: list = []

            def pool():  # started on the first evaluation the journal does not hold, shared by both stages
                if not pools:
                    data = payload(model, batches, probe.specs, probe.roles, self.method, loss=session.loss, metric=self.metric)
                    pools.append(stack.enter_context(open_pool(data, self.workers, self.ray)))
                return pools[0]

            rows = journal.rows
            if rows is None:
                with bar(session.progress, probe.count(model, batches), "search: sensitivity") as advance:
                    rows = measure(model, batches, probe.specs, probe.roles, method=self.method, pool=pool(), advance=advance)
                journal.record_rows(rows)
            table = to_table(rows)
            problem = self._problem(table, shapes)
            budget = self._budget(problem, shapes)
            trials: list = []
            if self.strategy == "evolution":
                with bar(session.progress, self.trials, "search: candidates") as advance:
                    trials = evolve(problem, budget, self._scorer(journal, pool, advance), trials=self.trials,
                                    population=self.population, seed=self.seed)
                solution, accuracy = best(trials).solution, best(trials).accuracy
            else:
                solution = (solve_ilp if self.strategy == "ilp" else solve_greedy)(problem, budget)
                accuracy = None
        pipeline = to_pipeline(solution, calibrate=calibrate)

        ref = [Interpreter(model)(b) for b in batches]
        for spec in parse(pipeline):  # the chosen pipeline, on this module with this session
            spec.apply(ctx, op)
        got = [Interpreter(model)(b) for b in batches]
        measured = sqnr_db(flat_outputs(ref), flat_outputs(got))
        cost = _cost(solution, shapes)
        notes = {"pipeline": pipeline, "strategy": self.strategy, "budget_bits": float(self.budget),
                 "budget": str(budget), "evaluations": len(rows) + len(trials), "avg_bits": solution.avg_bits,
                 "bytes": solution.bytes,
                 "area_le": cost["area_le"], "energy_uj": cost["energy_pj"] / 1e6,
                 "predicted_sqnr_db": _sqnr(solution.error), "measured_sqnr_db": measured,
                 "formats": {f"{layer}/{role}": fmt for (layer, role), fmt in solution.formats.items()}}
        if self.strategy == "evolution":
            notes.update(metric=self.metric, accuracy=accuracy, trials=len(trials), resumed=journal.resumed, seed=self.seed)
        session.notes.update({f"search_{k}": v for k, v in notes.items()})
        if self.out:
            self._write(Path(self.out), notes, solution, rows, problem, budget, trials, shapes, calibrate)

    def _problem(self, table, shapes):
        """Per tensor; per layer (W/A pairs, exact area and energy) when an area or energy limit is set."""
        from mase_compiler.search import Problem
        from mase_compiler.search.hardware import pair_problem

        if self.area == "" and self.energy == "":
            return Problem.build(table)
        return pair_problem(table, {t.layer: shapes[t.layer] for t in table})

    def _budget(self, problem, shapes):
        """The bits budget plus the area / energy limits, a number or a uniform format's cost (``energy=int8``)."""
        from mase_compiler.search import Budget
        from mase_compiler.search.hardware import uniform_cost

        layers = {t.layer: shapes[t.layer] for t in problem.tensors}
        limits = {}
        for what, value, key, unit in (("area", self.area, "area_le", 1.0), ("energy", self.energy, "energy_pj", 1e6)):
            if value == "":
                continue
            if isinstance(value, (int, float)):
                limits[what] = float(value) * unit
            else:
                limits[what] = uniform_cost(layers, str(value))[key]
        return Budget(avg_bits=float(self.budget), bytes=float(self.bytes) if self.bytes else None, **limits)

    def _scorer(self, journal, pool, advance):
        """The evolution's batch scorer: journalled scores are reused, the rest run in the pool."""
        from mase_compiler.search import to_pipeline
        from mase_compiler.search.evaluate import accuracy_of

        def score(solutions: list) -> list[dict]:
            keys = [to_pipeline(s, calibrate="") for s in solutions]
            todo = {k: s for k, s in zip(keys, solutions) if k not in journal.evaluations}
            for k in keys:
                if k not in todo:
                    advance()
            if todo:
                for k, m in zip(todo, pool().map([s.formats for s in todo.values()])):
                    journal.record(k, m)
                    advance()
            # The journal keeps every measurement, so one journal serves searches with different metrics.
            return [{**journal.evaluations[k], "accuracy": accuracy_of(journal.evaluations[k], self.metric)} for k in keys]

        return score

    def _write(self, path: Path, notes, solution, rows, problem, budget, trials, shapes, calibrate: str) -> None:
        """PATH: JSON (notes, solution, sensitivity, Pareto points) and PATH.png (the front)."""
        from mase_compiler.search import Budget, Point, sweep, to_pipeline, write_pareto

        def point(sol, accuracy: float, label: str) -> Point:
            c = _cost(sol, shapes)
            return Point(accuracy, sol.avg_bits, c["area_le"], label, to_pipeline(sol, calibrate=calibrate),
                         c["energy_pj"] / 1e6)

        if trials:  # every evaluated candidate, scored by its measured accuracy
            points = [point(t.solution, t.accuracy, f"trial {i}") for i, t in enumerate(trials)]
            title = f"search (evolution): measured {self.metric} vs bits per element"
        else:  # the solver's answer at budgets from the cheapest to the richest assignment, same other limits
            lo = sum(t.elements * min(c.bits for c in cs) for t, cs in zip(problem.tensors, problem.choices)) / problem.elements
            hi = sum(t.elements * max(c.bits for c in cs) for t, cs in zip(problem.tensors, problem.choices)) / problem.elements
            budgets = sorted({lo + (hi - lo) * i / 24 for i in range(25)} | {float(self.budget)})
            limits = Budget(area=budget.area, energy=budget.energy)
            points = [point(sol, _sqnr(sol.error), f"{b:.2f} bits") for b, sol in sweep(problem, budgets, limits=limits)]
            title = "search: predicted output SQNR (dB) vs bits per element"
        write_pareto(points, path.with_suffix(""), title=title)
        path.write_text(json.dumps({**notes, "solution": solution.to_json(), "sensitivity": rows,
                                    "pareto": [p.__dict__ for p in points]}, indent=1, default=str))


def _cost(solution, shapes) -> dict[str, float]:
    """Area (LE) and energy (pJ) of the chosen formats' layers, from the cost model."""
    from mase_compiler.search.hardware import cost_of

    formats = solution.formats
    return cost_of(formats, {layer: shapes[layer] for layer, _ in formats})


def _sqnr(error: float) -> float:
    """The additive model's output SQNR (dB) from its summed relative noise power."""
    return -10 * math.log10(error) if error > 0 else math.inf


__all__ = ["Search"]
