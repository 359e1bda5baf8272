"""Evolutionary search over per-tensor formats, scored by real accuracy, under a budget.

The additive model behind :func:`solve_ilp` ignores how quantization errors interact (two noisy
tensors in one residual branch, an error that a later layer norm hides).  This search measures:
every candidate is quantized and run (:mod:`.evaluate`), and its real accuracy decides.  It is a
(mu + lambda) genetic algorithm in the style MASE uses for its mixed-precision search (Cheng et al.,
"MASE: An Efficient Representation for Software-Defined ML Hardware System Exploration"):

* genome: one candidate index per tensor of the :class:`Problem`;
* first population: the ILP optimum and the greedy solution (the additive model's best guesses),
  then random genomes;
* offspring: binary tournament selection of two parents, uniform crossover, each gene mutated with
  probability 1/n (at least one gene), then **repair**: :func:`solve_greedy` started from the child,
  which downgrades the least sensitive tensors until the budget holds, so every evaluated candidate
  meets the budget.  Left-over budget is not filled greedily: that would map most children onto the
  few assignments the additive model likes and stop the search exploring;
* survivors: the best ``population`` of parents and children by accuracy (ties: fewer bits);
* a genome is evaluated at most once (a cache, which also makes a search resumable: see
  :mod:`.journal`); the search stops after ``trials`` distinct evaluations or when no new child
  can be made.

Seeded (numpy's ``default_rng``) and batch-synchronous: a generation's children are all made before
any is scored, and scores come back in order, so the result depends on the seed only, not on how
many workers score the batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .problem import Budget, Problem, Solution
from .solve import solve_greedy, solve_ilp

Picks = tuple[int, ...]


@dataclass(frozen=True)
class Trial:
    """One evaluated candidate, in evaluation order."""

    solution: Solution
    accuracy: float
    metrics: dict


def _rank(t: Trial) -> tuple[float, float]:
    return (-t.accuracy, t.solution.avg_bits)


def evolve(problem: Problem, budget: Budget, evaluate: Callable[[list[Solution]], list[dict]], *, trials: int = 64,
           population: int = 8, seed: int = 0) -> list[Trial]:
    """Every trial, in evaluation order; ``evaluate`` scores a batch of solutions (``accuracy`` key: higher is better)."""
    if trials < 1:
        raise ValueError(f"search trials must be at least 1, not {trials}")
    if population < 2:
        raise ValueError(f"search population must be at least 2, not {population}")
    rng = np.random.default_rng(seed)
    n = len(problem.tensors)
    sizes = [len(cs) for cs in problem.choices]

    def repair(picks: Sequence[int]) -> Picks:
        return solve_greedy(problem, budget, start=picks, fill=False).picks

    history: list[Trial] = []
    seen: set[Picks] = set()

    def score(batch: list[Picks]) -> list[Trial]:
        sols = [problem.solution(p) for p in batch]
        out = [Trial(s, float(m["accuracy"]), dict(m)) for s, m in zip(sols, evaluate(sols))]
        seen.update(batch)
        history.extend(out)
        return out

    first: list[Picks] = []
    for p in (solve_ilp(problem, budget).picks, solve_greedy(problem, budget).picks):
        if p not in first:
            first.append(p)
    for _ in range(50 * population):
        if len(first) >= min(population, trials):
            break
        p = repair([int(rng.integers(k)) for k in sizes])
        if p not in first:
            first.append(p)
    pop = sorted(score(first[:trials]), key=_rank)[:population]

    def tournament() -> Picks:
        i, j = rng.integers(len(pop), size=2)
        return min(pop[i], pop[j], key=_rank).solution.picks

    while len(seen) < trials:
        want, children = min(population, trials - len(seen)), []
        for _ in range(50 * population):
            if len(children) >= want:
                break
            a, b = tournament(), tournament()
            child = [a[i] if rng.random() < 0.5 else b[i] for i in range(n)]
            genes = [i for i in range(n) if rng.random() < 1.0 / n and sizes[i] > 1]
            if not genes and any(k > 1 for k in sizes):
                genes = [int(rng.choice([i for i in range(n) if sizes[i] > 1]))]
            for i in genes:
                child[i] = int((child[i] + rng.integers(1, sizes[i])) % sizes[i])  # another candidate, uniformly
            p = repair(child)
            if p not in seen and p not in children:
                children.append(p)
        if not children:
            break  # every child the operators make has been evaluated: the reachable space is exhausted
        pop = sorted(pop + score(children), key=_rank)[:population]
    return history


def best(history: Sequence[Trial]) -> Trial:
    """The most accurate trial; ties go to fewer bits, then to the earlier one."""
    return min(history, key=_rank)


__all__ = ["Trial", "best", "evolve"]
