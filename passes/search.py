"""``search``: per-layer mixed-precision formats under a bits budget, then quantize with them (issue 7).

MASE's search (Cheng et al., "MASE: An Efficient Representation for Software-Defined ML Hardware System
Exploration"; Zhang et al., "Revisiting Block-based Quantisation") as one pass:

1. ``sensitivity``'s measurement (:func:`mase_compiler.passes.sensitivity.measure`): every matmul/conv
   weight and activation tensor alone in every candidate format, error of the model outputs on the
   calibration batches;
2. an assignment of one format per tensor minimizing the summed error (the additive model: the noise
   powers ``10^(-SQNR/10)`` add) with the element-weighted average bits per element at most ``budget``:
   ``strategy=ilp`` is exact (scipy's ``milp``), ``greedy`` downgrades the least sensitive tensor first;
3. the choice as a pipeline (:func:`mase_compiler.search.to_pipeline`: ``quantize{rules=...}``, with
   ``calibrate`` first when a format needs static scales), applied here; ``masec compile -p '<that
   pipeline>'`` replays it to the same IR, hence the same accuracy.

``session.notes`` gets the pipeline, the predicted and measured output SQNR on the calibration data,
the average bits and the per-tensor formats; ``out=PATH`` also writes PATH (JSON: sensitivity rows,
solution, a Pareto sweep over budgets) and PATH with ``.png`` (the Pareto front).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from mase_compiler.session import current

STRATEGIES = ("ilp", "greedy")


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

    def __post_init__(self) -> None:
        from mase_compiler.numerics import parse

        if self.strategy not in STRATEGIES:
            raise ValueError(f"search strategy must be {' or '.join(STRATEGIES)}, not {self.strategy!r}")
        if not (isinstance(self.budget, (int, float)) and math.isfinite(self.budget) and self.budget > 0):
            raise ValueError(f"search budget must be a positive number of bits per element, not {self.budget!r}")
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

        from .sensitivity import Sensitivity, _flat, measure, to_table

        session = current(self.name)
        if session.calibration is None:
            raise ValueError("pass 'search' needs calibration data: pass it, e.g. 'masec compile --calib DATA'")
        model = session.model
        probe = Sensitivity(formats=self.formats, tensors=self.tensors, method=self.method)
        rows = measure(model, session.calibration, probe.specs, probe.roles, method=self.method)
        problem = Problem.build(to_table(rows))
        solve = solve_ilp if self.strategy == "ilp" else solve_greedy
        solution = solve(problem, Budget(avg_bits=float(self.budget)))
        pipeline = to_pipeline(solution)

        ref = [Interpreter(model)(b) for b in session.calibration]
        for spec in parse(pipeline):  # the chosen pipeline, on this module with this session
            spec.apply(ctx, op)
        got = [Interpreter(model)(b) for b in session.calibration]
        measured = sqnr_db(_flat(ref), _flat(got))
        predicted = _sqnr(solution.error)
        notes = {"pipeline": pipeline, "strategy": self.strategy, "budget_bits": float(self.budget), "evaluations": len(rows),
                 "avg_bits": solution.avg_bits, "predicted_sqnr_db": predicted, "measured_sqnr_db": measured,
                 "formats": {f"{layer}/{role}": fmt for (layer, role), fmt in solution.formats.items()}}
        session.notes.update({f"search_{k}": v for k, v in notes.items()})
        if self.out:
            path = Path(self.out)
            points = [Point(_sqnr(sol.error), sol.avg_bits, sol.area, f"budget {b}", to_pipeline(sol))
                      for b, sol in sweep(problem, sorted({x / 4 for x in range(12, 37)} | {float(self.budget)}))]
            write_pareto(points, path.with_suffix(""), title="search: predicted output SQNR (dB) vs bits per element")
            path.write_text(json.dumps({**notes, "solution": solution.to_json(), "sensitivity": rows,
                                        "pareto": [p.__dict__ for p in points]}, indent=1, default=str))


def _sqnr(error: float) -> float:
    """The additive model's output SQNR (dB) from its summed relative noise power."""
    return -10 * math.log10(error) if error > 0 else math.inf


__all__ = ["Search"]
