"""Pareto fronts of searched configurations: accuracy (higher is better) vs bits, area and energy (lower is better).

``pareto_front`` keeps the non-dominated points; ``write_pareto`` records all points and the
front as JSON and a PNG (bits on x, accuracy on y, area as colour).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .problem import Budget, Problem, Solution


@dataclass(frozen=True)
class Point:
    """One evaluated configuration."""

    accuracy: float
    bits: float
    area: float = 0.0
    label: str = ""
    pipeline: str = ""
    energy: float = 0.0  # last: positional callers predate it


def dominates(p: Point, q: Point) -> bool:
    """``p`` is at least as good as ``q`` on accuracy, bits, area and energy, and better on one."""
    no_worse = p.accuracy >= q.accuracy and p.bits <= q.bits and p.area <= q.area and p.energy <= q.energy
    better = p.accuracy > q.accuracy or p.bits < q.bits or p.area < q.area or p.energy < q.energy
    return no_worse and better


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The non-dominated points, by bits then area; of identical (accuracy, bits, area, energy) points, the first."""
    pts = list(points)
    front, seen = [], set()
    for p in pts:
        key = (p.accuracy, p.bits, p.area, p.energy)
        if key in seen or any(dominates(q, p) for q in pts):
            continue
        seen.add(key)
        front.append(p)
    return sorted(front, key=lambda p: (p.bits, p.area, p.energy, -p.accuracy))


def sweep(problem: Problem, budgets: Sequence[float], solver=None, limits: Budget = Budget()) -> list[tuple[float, Solution]]:
    """The solver's solution at each average-bits budget (infeasible budgets skipped); ``limits`` adds
    its bytes / area / energy limits to every one (e.g. the energy of int8 everywhere)."""
    from .solve import InfeasibleBudget, solve_ilp

    solver = solver or solve_ilp
    out = []
    for b in budgets:
        try:
            out.append((b, solver(problem, replace(limits, avg_bits=b))))
        except InfeasibleBudget:
            continue
    return out


def point_of(solution: Solution, label: str = "", pipeline: str = "") -> Point:
    """A point from the additive model alone: accuracy is the negated predicted error."""
    return Point(-solution.error, solution.avg_bits, solution.area, label, pipeline, solution.energy)


def write_pareto(points: Sequence[Point], stem: str | Path, title: str = "Pareto front") -> tuple[Path, Path]:
    """``<stem>.json`` (all points, front flagged) and ``<stem>.png``; returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    front = pareto_front(points)
    on_front = {id(p) for p in front}
    json_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".png")
    json_path.write_text(json.dumps({
        "points": [asdict(p) | {"pareto": id(p) in on_front} for p in points],
        "front": [asdict(p) for p in front],
    }, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    sc = ax.scatter([p.bits for p in points], [p.accuracy for p in points], c=[p.area for p in points],
                    cmap="viridis", s=18, alpha=0.6, label="evaluated")
    ax.plot([p.bits for p in front], [p.accuracy for p in front], "r-o", ms=4, lw=1.2, label="Pareto front")
    for p in front:
        if p.label:
            ax.annotate(p.label, (p.bits, p.accuracy), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if any(p.area for p in points):
        fig.colorbar(sc, ax=ax, label="area")
    ax.set_xlabel("average bits per element")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path
