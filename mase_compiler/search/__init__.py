"""Mixed-precision search core: the additive assignment problem, its solvers, Pareto fronts, replay.

``Problem`` holds tensors with candidate formats (error from a sensitivity table, bits from the
numerics); ``solve_ilp`` (exact, scipy's milp), ``solve_greedy`` and ``brute_force`` pick one format
per tensor under a ``Budget``; ``to_pipeline`` turns the pick into a pipeline ``masec compile -p``
replays; ``pareto_front`` / ``write_pareto`` record accuracy vs bits vs area.
"""

from .pareto import Point, dominates, pareto_front, point_of, sweep, write_pareto
from .problem import Budget, Choice, Problem, Solution, Tensor, bits_of, error_from_sqnr
from .replay import to_pipeline
from .solve import InfeasibleBudget, brute_force, optima, solve_greedy, solve_ilp

__all__ = [
    "Budget",
    "Choice",
    "InfeasibleBudget",
    "Point",
    "Problem",
    "Solution",
    "Tensor",
    "bits_of",
    "brute_force",
    "dominates",
    "error_from_sqnr",
    "optima",
    "pareto_front",
    "point_of",
    "solve_greedy",
    "solve_ilp",
    "sweep",
    "to_pipeline",
    "write_pareto",
]
