"""Mixed-precision search core: the additive assignment problem, its solvers, Pareto fronts, replay.

``Problem`` holds tensors with candidate formats (error from a sensitivity table, exact bits from the
table or the numerics); ``solve_ilp`` (exact, scipy's milp), ``solve_greedy`` and ``brute_force`` pick one
format per tensor under a ``Budget`` (average bits, bytes, area, energy); ``pair_problem`` (:mod:`.hardware`)
makes layers the units, with a (weight, activation) pair per choice, so area and energy are exact;
``to_pipeline`` turns the pick into a pipeline ``masec compile -p`` replays; ``pareto_front`` /
``write_pareto`` record accuracy vs bits vs area vs energy.
"""

from .hardware import LayerShape, Operand, cost_of, layer_shapes, op_shapes, pair_cost, pair_problem, uniform_cost
from .pareto import Point, dominates, pareto_front, point_of, sweep, write_pareto
from .problem import Budget, Choice, Problem, Solution, Table, Tensor, bits_of, error_from_sqnr
from .replay import to_pipeline
from .solve import InfeasibleBudget, brute_force, optima, solve_greedy, solve_ilp

__all__ = [
    "Budget",
    "Choice",
    "InfeasibleBudget",
    "LayerShape",
    "Operand",
    "Point",
    "Problem",
    "Solution",
    "Table",
    "Tensor",
    "bits_of",
    "brute_force",
    "cost_of",
    "dominates",
    "error_from_sqnr",
    "layer_shapes",
    "op_shapes",
    "optima",
    "pair_cost",
    "pair_problem",
    "pareto_front",
    "point_of",
    "solve_greedy",
    "solve_ilp",
    "sweep",
    "to_pipeline",
    "uniform_cost",
    "write_pareto",
]
