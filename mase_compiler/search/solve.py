"""Solvers for the additive mixed-precision problem: exact ILP, greedy, brute force.

All three minimize the summed per-tensor error subject to a :class:`Budget`, and are
deterministic (no randomness; ties broken by tensor and candidate order).

- :func:`solve_ilp`: one binary ``x[t, f]`` per (tensor, format), ``sum_f x[t, f] = 1``,
  ``sum x[t, f] * n_t * bits[t, f] <= B * sum n_t`` (element-weighted average bits), and the
  optional bytes / area / energy rows; scipy's ``milp`` (HiGHS branch and bound) with a zero gap, so the
  result is optimal, as the brute-force test checks.
- :func:`solve_greedy`: start from the least-error format everywhere, repeatedly take the
  downgrade with the least error increase per unit of (normalized) violated cost saved until the
  budget holds, then take back any upgrade that still fits.  Fast, never better than the ILP.
- :func:`brute_force`: every assignment, for small problems and tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .problem import Budget, Problem, Solution

MAX_BRUTE_FORCE = 1_000_000


class InfeasibleBudget(ValueError):
    """No assignment meets the budget."""


def _budget(budget: float | Budget) -> Budget:
    if isinstance(budget, Budget):
        return budget
    return Budget(avg_bits=float(budget))


def _check_reachable(problem: Problem, budget: Budget) -> None:
    """A one-line error when even the cheapest choice everywhere misses a limit."""
    n = problem.elements
    cheapest_bits = sum(t.elements * min(c.bits for c in cs) for t, cs in zip(problem.tensors, problem.choices))
    cheapest_area = sum(min(c.area for c in cs) for cs in problem.choices)
    cheapest_energy = sum(min(c.energy for c in cs) for cs in problem.choices)
    for what, floor, limit in (("average bits", cheapest_bits / n, budget.avg_bits),
                               ("bytes", cheapest_bits / 8, budget.bytes),
                               ("area", cheapest_area, budget.area),
                               ("energy", cheapest_energy, budget.energy)):
        if limit is not None and floor > limit + 1e-9 * max(1.0, abs(limit)):
            raise InfeasibleBudget(f"budget {what} must be at least {floor:g} (the cheapest candidates everywhere), not {limit:g}")


def _cost_rows(problem: Problem, budget: Budget) -> list[tuple[np.ndarray, float]]:
    """(per-variable cost, limit) for each active limit, normalized so that the limit is about 1."""
    n = problem.elements
    bits = np.array([t.elements * c.bits for t, cs in zip(problem.tensors, problem.choices) for c in cs], dtype=np.float64)
    area = np.array([c.area for cs in problem.choices for c in cs], dtype=np.float64)
    energy = np.array([c.energy for cs in problem.choices for c in cs], dtype=np.float64)
    rows = []
    if budget.avg_bits is not None:
        rows.append((bits / n, budget.avg_bits))
    if budget.bytes is not None:
        rows.append((bits / 8, budget.bytes))
    if budget.area is not None:
        rows.append((area, budget.area))
    if budget.energy is not None:
        rows.append((energy, budget.energy))
    return [(cost / max(abs(limit), 1e-12), limit / max(abs(limit), 1e-12)) for cost, limit in rows]


def solve_ilp(problem: Problem, budget: float | Budget) -> Solution:
    """The least-error assignment within ``budget`` (average bits, or a :class:`Budget`), exactly."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    budget = _budget(budget)
    _check_reachable(problem, budget)
    sizes = [len(cs) for cs in problem.choices]
    nvar = sum(sizes)
    c = np.array([ch.error for cs in problem.choices for ch in cs], dtype=np.float64)
    one_hot = np.zeros((len(sizes), nvar))
    start = 0
    for i, k in enumerate(sizes):
        one_hot[i, start:start + k] = 1.0
        start += k
    constraints = [LinearConstraint(one_hot, 1.0, 1.0)]
    for cost, limit in _cost_rows(problem, budget):
        constraints.append(LinearConstraint(cost[None, :], -np.inf, limit))
    res = milp(c, constraints=constraints, integrality=np.ones(nvar), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 0.0, "presolve": True})
    if res.status == 2:
        raise InfeasibleBudget(f"no assignment of the candidate formats meets the budget ({budget})")
    if res.x is None:
        raise RuntimeError(f"the ILP solver failed: {res.message}")
    picks, start = [], 0
    for k in sizes:
        picks.append(int(np.argmax(res.x[start:start + k])))
        start += k
    sol = problem.solution(picks)
    if not sol.meets(budget, rel=1e-6):  # HiGHS works to a feasibility tolerance; never hand back a violation
        raise RuntimeError(f"the ILP solution misses the budget ({budget}): solver tolerance")
    return sol


def solve_greedy(problem: Problem, budget: float | Budget, start: Sequence[int] | None = None,
                 fill: bool = True) -> Solution:
    """Greedy on sensitivity: least error per cost saved first; feasible, not always optimal.

    ``start`` (one choice index per tensor) replaces the least-error start: the greedy then repairs
    that assignment to meet the budget (the evolutionary search's repair); ``fill=False`` leaves
    what budget is left unspent instead of taking the most useful upgrades that fit."""
    budget = _budget(budget)
    _check_reachable(problem, budget)
    rows = _cost_rows(problem, budget)
    offsets = list(itertools.accumulate((len(cs) for cs in problem.choices), initial=0))[:-1]
    # Least error first; among equal errors, the cheapest.
    if start is None:
        picks = [min(range(len(cs)), key=lambda j, cs=cs: (cs[j].error, cs[j].bits, cs[j].area, cs[j].energy)) for cs in problem.choices]
    elif len(start) != len(problem.choices) or not all(0 <= p < len(cs) for p, cs in zip(start, problem.choices)):
        raise ValueError(f"greedy start must pick one candidate index per tensor ({len(problem.choices)}), not {list(start)}")
    else:
        picks = [int(p) for p in start]
    tol = 1e-9

    def delta(i: int, j: int) -> list[float]:
        """Change of each normalized cost row when tensor i moves to choice j."""
        return [float(cost[offsets[i] + j] - cost[offsets[i] + picks[i]]) for cost, _ in rows]

    # Slack per row (limit minus cost), kept up to date as picks change.
    slack = [limit - float(sum(cost[o + p] for o, p in zip(offsets, picks))) for cost, limit in rows]
    while over := [r for r, v in enumerate(slack) if v < -tol]:
        best: tuple[float, int, int] | None = None
        for i, cs in enumerate(problem.choices):
            for j, ch in enumerate(cs):
                if j == picks[i]:
                    continue
                d = delta(i, j)
                # Only moves that save on every violated limit and keep the others within theirs.
                if any(d[r] >= 0 for r in over) or any(slack[r] - d[r] < -tol for r in range(len(rows)) if r not in over):
                    continue
                ratio = (ch.error - cs[picks[i]].error) / -sum(d[r] for r in over)
                if best is None or ratio < best[0]:
                    best = (ratio, i, j)
        if best is None:
            raise InfeasibleBudget(f"greedy search found no assignment within the budget ({budget})")
        _, i, j = best
        slack = [s - d for s, d in zip(slack, delta(i, j))]
        picks[i] = j
    # Spend what the last downgrade left over: the upgrade with the largest error drop that still fits.
    while fill:
        best_gain, move = 0.0, None
        for i, cs in enumerate(problem.choices):
            for j, ch in enumerate(cs):
                gain = cs[picks[i]].error - ch.error
                if gain > best_gain and all(s - d >= -tol for s, d in zip(slack, delta(i, j))):
                    best_gain, move = gain, (i, j)
        if move is None:
            break
        i, j = move
        slack = [s - d for s, d in zip(slack, delta(i, j))]
        picks[i] = j
    return problem.solution(picks)


def brute_force(problem: Problem, budget: float | Budget) -> Solution:
    """Every assignment tried; least error, ties to fewer bits, then the first in order."""
    budget = _budget(budget)
    if problem.size() > MAX_BRUTE_FORCE:
        raise ValueError(f"brute force must see at most {MAX_BRUTE_FORCE} assignments, not {problem.size()}; use solve_ilp")
    _check_reachable(problem, budget)
    best: Solution | None = None
    for picks in itertools.product(*(range(len(cs)) for cs in problem.choices)):
        sol = problem.solution(picks)
        if sol.meets(budget) and (best is None or (sol.error, sol.avg_bits) < (best.error, best.avg_bits)):
            best = sol
    if best is None:
        raise InfeasibleBudget(f"no assignment of the candidate formats meets the budget ({budget})")
    return best


def optima(problem: Problem, budget: float | Budget, rel: float = 1e-9) -> list[Solution]:
    """Every optimal assignment (by brute force): to tell whether the optimum is unique."""
    best = brute_force(problem, budget)
    budget = _budget(budget)
    out = []
    for picks in itertools.product(*(range(len(cs)) for cs in problem.choices)):
        sol = problem.solution(picks)
        if sol.meets(budget) and sol.error <= best.error + rel * max(1.0, abs(best.error)):
            out.append(sol)
    return out
