"""The search core: the ILP is exact (brute force agrees), greedy is feasible and never beats it,
infeasible budgets fail in one line, Pareto fronts keep exactly the non-dominated points, and a
chosen assignment replays as a pipeline that casts each layer to its assigned formats."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp
from mase_compiler.driver import opt
from mase_compiler.pipeline import expanded_text
from mase_compiler.search import (
    Budget, Choice, InfeasibleBudget, Point, Problem, Tensor, bits_of, brute_force, dominates, error_from_sqnr, optima,
    pareto_front, point_of, solve_greedy, solve_ilp, sweep, to_pipeline, write_pareto,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_quantize import _calib, _model  # noqa: E402  (the tiny MLP: matmul fc1, gemm fc2)

POOL = ["mxint8", "mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "int8", "fp8_e4m3", "mxint8:block=16", "int4:group=128", "mxfp4:block=16"]


def _random_problem(seed: int, area: bool = False, energy: bool = False) -> Problem:
    """3-5 tensors x 3-4 real formats; errors shrink with bits on average but not always; area grows with
    bits, energy with bits squared (a multiplier), each with its own noise, so the limits pull apart."""
    rng = np.random.default_rng(seed)
    table, areas, energies = {}, {}, {}
    for i in range(int(rng.integers(3, 6))):
        t = Tensor(f"layer{i}", "weight" if i % 2 == 0 else "activation", int(rng.integers(16, 5000)))
        fmts = [POOL[j] for j in rng.choice(len(POOL), size=int(rng.integers(3, 5)), replace=False)]
        table[t] = {f: float(rng.exponential() * t.elements * 2.0 ** -bits_of(f)) for f in fmts}
        areas.update({(t.key, f): float(rng.uniform(1, 10) * bits_of(f)) for f in fmts})
        energies.update({(t.key, f): float(rng.uniform(0.5, 2) * bits_of(f) ** 2) for f in fmts})
    return Problem.build(table, areas if area else None, energies if energy else None)


def _range(problem: Problem) -> tuple[float, float]:
    n = problem.elements
    lo = sum(t.elements * min(c.bits for c in cs) for t, cs in zip(problem.tensors, problem.choices)) / n
    hi = sum(t.elements * max(c.bits for c in cs) for t, cs in zip(problem.tensors, problem.choices)) / n
    return lo, hi


def _ilp_equals_brute_force(problem, budget):
    """The ILP's solution after checking it against brute force; None when both find the budget infeasible."""
    try:
        dear = brute_force(problem, budget)
    except InfeasibleBudget:
        with pytest.raises(InfeasibleBudget, match="meets the budget|must be at least"):
            solve_ilp(problem, budget)
        return None
    ilp = solve_ilp(problem, budget)
    assert ilp.meets(budget) and ilp.error == pytest.approx(dear.error, rel=1e-9, abs=1e-12)
    return ilp


@pytest.mark.parametrize("seed", range(30))
def test_ilp_equals_brute_force_and_greedy_never_beats_it(seed):
    problem = _random_problem(seed)
    lo, hi = _range(problem)
    budget = float(np.random.default_rng(100 + seed).uniform(lo, hi))
    ilp, brute, greedy = solve_ilp(problem, budget), brute_force(problem, budget), solve_greedy(problem, budget)
    assert ilp.error == pytest.approx(brute.error, rel=1e-9, abs=1e-12)
    assert ilp.avg_bits <= budget * (1 + 1e-9) and brute.avg_bits <= budget * (1 + 1e-9)
    best = optima(problem, budget)
    if len(best) == 1:
        assert ilp.picks == brute.picks == best[0].picks
    assert greedy.meets(Budget(avg_bits=budget))
    assert greedy.error >= ilp.error * (1 - 1e-9)
    assert solve_ilp(problem, budget) == ilp  # deterministic


def test_optimum_is_unique_on_most_random_problems():
    # Guards the test above against only ever comparing objective values.
    unique = 0
    for seed in range(30):
        problem = _random_problem(seed)
        lo, hi = _range(problem)
        unique += len(optima(problem, float(np.random.default_rng(100 + seed).uniform(lo, hi)))) == 1
    assert unique >= 25


@pytest.mark.parametrize("seed", range(8))
def test_bytes_and_area_limits_match_brute_force(seed):
    problem = _random_problem(seed, area=True)
    rng = np.random.default_rng(200 + seed)
    lo, hi = _range(problem)
    full_area = sum(max(c.area for c in cs) for cs in problem.choices)
    budget = Budget(avg_bits=float(rng.uniform(lo, hi)), bytes=float(rng.uniform(lo, hi)) * problem.elements / 8,
                    area=float(rng.uniform(0.4, 1.0)) * full_area)
    ilp = _ilp_equals_brute_force(problem, budget)
    if ilp is None:
        return
    unlimited = solve_ilp(problem, Budget())  # no limit: the least error everywhere
    assert unlimited.error == sum(min(c.error for c in cs) for cs in problem.choices) <= ilp.error
    greedy = solve_greedy(problem, budget)
    assert greedy.meets(budget) and greedy.error >= ilp.error * (1 - 1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_energy_and_area_limits_match_brute_force(seed):
    problem = _random_problem(seed, area=True, energy=True)
    rng = np.random.default_rng(300 + seed)
    lo = sum(min(c.energy for c in cs) for cs in problem.choices)
    hi = sum(max(c.energy for c in cs) for cs in problem.choices)
    full_area = sum(max(c.area for c in cs) for cs in problem.choices)
    budget = Budget(energy=float(rng.uniform(lo, hi)), area=float(rng.uniform(0.5, 1.0)) * full_area if seed % 2 else None)
    ilp = _ilp_equals_brute_force(problem, budget)
    if ilp is None:
        return
    assert ilp.energy <= budget.energy * (1 + 1e-9)
    if len(optima(problem, budget)) == 1:
        assert ilp.picks == brute_force(problem, budget).picks
    greedy = solve_greedy(problem, budget)
    assert greedy.meets(budget) and greedy.error >= ilp.error * (1 - 1e-9)


def test_energy_limit_binds_and_is_reported():
    # Two tensors; the accurate format costs 10 pJ, the cheap one 1 pJ.  12 pJ allows one accurate tensor:
    # the more sensitive one, b.  Below 2 pJ nothing fits, in one line.
    a, b = Tensor("a", "weight", 100), Tensor("b", "weight", 100)
    problem = Problem.build({a: {"mxint8": 0.0, "mxfp4": 1.0}, b: {"mxint8": 0.0, "mxfp4": 3.0}},
                            energy={(k, f): e for k in ("a/W", "b/W") for f, e in (("mxint8", 10.0), ("mxfp4", 1.0))})
    for solver in (solve_ilp, solve_greedy, brute_force):
        sol = solver(problem, Budget(energy=12.0))
        assert sol.formats == {("a", "weight"): "mxfp4", ("b", "weight"): "mxint8"} and sol.energy == 11.0
        with pytest.raises(InfeasibleBudget, match=r"^budget energy must be at least 2 \(the cheapest candidates everywhere\), not 1\.5$"):
            solver(problem, Budget(energy=1.5))
    assert str(Budget(avg_bits=8, energy=12.0)) == "avg bits <= 8, energy <= 12"
    assert solve_ilp(problem, Budget(energy=12.0)).to_json()["energy"] == 11.0
    # sweep adds the energy limit to every bits budget
    assert [s.energy for _, s in sweep(problem, [6.25, 8.25], limits=Budget(energy=12.0))] == [11.0, 11.0]
    assert [s.energy for _, s in sweep(problem, [6.25, 8.25])] == [11.0, 20.0]


def test_hand_made_problem_has_the_known_optimum():
    # Two equal weights of 100 elements: 4.5 average bits allows one int8 (8.25 with scales in MX) only
    # if the other drops to mxfp4 (4.25); the cheaper error is upgrading the more sensitive tensor.
    a, b = Tensor("a", "weight", 100), Tensor("b", "weight", 100)
    problem = Problem.build({a: {"mxint8": 0.0, "mxfp4": 10.0}, b: {"mxint8": 0.0, "mxfp4": 1.0}})
    assert bits_of("mxint8") == 8.25 and bits_of("mxfp4") == 4.25
    for solver in (solve_ilp, solve_greedy, brute_force):
        sol = solver(problem, 6.25)
        assert sol.formats == {("a", "weight"): "mxint8", ("b", "weight"): "mxfp4"}
        assert sol.avg_bits == 6.25 and sol.error == 1.0 and sol.bytes == (825 + 425) / 8
    assert solve_ilp(problem, 9).formats == {("a", "weight"): "mxint8", ("b", "weight"): "mxint8"}


def test_greedy_is_not_optimal_where_ratios_mislead():
    # Budget 6 bits = save 4000 of 16000 bits.  Greedy takes s1 (best error per bit), then big (better
    # ratio than s2), then gives s1 back: error 3.0.  The ILP sees that s1 + s2 (2.6) is cheaper.
    big, s1, s2 = Tensor("big", "weight", 1000), Tensor("s1", "weight", 500), Tensor("s2", "weight", 500)
    problem = Problem((big, s1, s2), tuple((Choice("x8", 0.0, 8.0), Choice("x4", e, 4.0)) for e in (3.0, 1.0, 1.6)))
    ilp, greedy = solve_ilp(problem, 6.0), solve_greedy(problem, 6.0)
    assert ilp.picks == (0, 1, 1) and ilp.error == pytest.approx(2.6)
    assert greedy.picks == (1, 0, 0) and greedy.error == 3.0 and greedy.avg_bits == 6.0


@pytest.mark.parametrize("solver", [solve_ilp, solve_greedy, brute_force])
def test_infeasible_budget_is_a_one_line_error(solver):
    a = Tensor("a", "weight", 100)
    problem = Problem.build({a: {"mxint8": 0.0, "mxfp4": 1.0}})
    with pytest.raises(InfeasibleBudget, match=r"^budget average bits must be at least 4\.25 \(the cheapest candidates everywhere\), not 4$"):
        solver(problem, 4.0)
    with pytest.raises(InfeasibleBudget, match=r"^budget bytes must be at least 53\.125"):
        solver(problem, Budget(bytes=50))


def test_jointly_infeasible_limits_are_reported():
    a, b = Tensor("a", "weight", 100), Tensor("b", "weight", 100)
    # Cheap in bits means dear in area and back: each limit alone is reachable, both together are not.
    problem = Problem((a, b), tuple((Choice("mxint8", 0.0, 8.25, 1.0), Choice("mxfp4", 1.0, 4.25, 10.0)) for _ in "ab"))
    budget = Budget(avg_bits=5.0, area=5.0)
    for solver in (solve_ilp, brute_force, solve_greedy):
        with pytest.raises(InfeasibleBudget, match=r"no assignment .*within the budget|meets the budget \(avg bits <= 5, area <= 5\)"):
            solver(problem, budget)


def test_problem_validation_messages():
    a = Tensor("a", "weight", 4)
    with pytest.raises(ValueError, match="role must be weight, activation or layer, not 'bias'"):
        Tensor("a", "bias", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one candidate"):
        Problem((a,), ((),))
    with pytest.raises(ValueError, match="unique per"):
        Problem((a, a), ((Choice.of("int8", 0),), (Choice.of("int8", 0),)))
    with pytest.raises(ValueError, match="brute force must see at most"):
        big = {Tensor(f"t{i}", "weight", 1): {f: 0.0 for f in POOL[:4]} for i in range(11)}
        brute_force(Problem.build(big), 8)
    assert error_from_sqnr(20.0, 2.0) == pytest.approx(0.02)
    assert bits_of("int4:group=128") == 4 + 32 / 128 and bits_of("none") == 32


# ---- Pareto ---------------------------------------------------------------------------------------
def test_pareto_front_keeps_exactly_the_non_dominated_points(tmp_path):
    pts = [
        Point(0.90, 8.0, 100, "int8"),     # front: neither mxint8 (more bits) nor the 4-bit points (less accurate) beat it
        Point(0.90, 8.0, 150, "int8-big"),  # dominated by int8 (more area)
        Point(0.89, 4.5, 60, "mixed"),     # front: fewer bits than int8
        Point(0.88, 4.5, 60, "worse"),     # dominated by mixed
        Point(0.92, 8.25, 120, "mxint8"),  # front: most accurate
        Point(0.85, 4.25, 50, "mxfp4"),    # front: fewest bits
        Point(0.85, 4.25, 70, "mxfp4-big"),  # dominated by mxfp4 (more area)
        Point(0.89, 4.5, 40, "mixed-small"),  # front, and dominates mixed (less area)
        Point(0.89, 4.5, 40, "duplicate"),  # identical to mixed-small: kept once
        Point(0.80, 6.0, 10, "tiny-area"),  # front: least area
    ]
    front = pareto_front(pts)
    assert [p.label for p in front] == ["mxfp4", "mixed-small", "tiny-area", "int8", "mxint8"]
    def beaten(p: Point) -> bool:  # the definition, written out: another point no worse anywhere, better somewhere
        return any(q.accuracy >= p.accuracy and q.bits <= p.bits and q.area <= p.area and q != p
                   and (q.accuracy, q.bits, q.area) != (p.accuracy, p.bits, p.area) for q in pts)
    assert {p.label for p in pts if not beaten(p)} == {p.label for p in front} | {"duplicate"}
    json_path, png_path = write_pareto(pts, tmp_path / "pareto")
    data = json.loads(json_path.read_text())
    assert [p["label"] for p in data["front"]] == [p.label for p in front]
    assert [p["label"] for p in data["points"] if p["pareto"]] == ["int8", "mxint8", "mxfp4", "mixed-small", "tiny-area"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_energy_is_a_pareto_axis():
    cheap, dear = Point(0.9, 8.0, 100, "cheap", energy=5.0), Point(0.9, 8.0, 100, "dear", energy=9.0)
    lean = Point(0.8, 8.0, 100, "lean", energy=1.0)
    assert dominates(cheap, dear) and not dominates(cheap, lean) and not dominates(lean, cheap)
    assert [p.label for p in pareto_front([dear, cheap, lean])] == ["lean", "cheap"]


def test_ilp_sweep_is_a_monotone_front():
    problem = _random_problem(3)
    lo, hi = _range(problem)
    sols = sweep(problem, [lo - 1, *np.linspace(lo, hi, 10)])
    assert len(sols) == 10  # the budget below the cheapest assignment is skipped
    errors = [s.error for _, s in sols]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))  # more bits never hurt the optimum
    front = pareto_front(point_of(s) for _, s in sols)
    assert front[-1].accuracy == -min(errors)


# ---- replay ---------------------------------------------------------------------------------------
def _cast_formats(model) -> dict[tuple[str, str], str]:
    """(layer, role) -> cast format, following each cast through transposes to the op it feeds."""
    out = {}
    for c in model.main.body.ops:
        if not isinstance(c, CastOp):
            continue
        users = [u.operation for u in c.results[0].uses]
        while len(users) == 1 and isinstance(users[0], g.TransposeOp):
            users = [u.operation for u in users[0].results[0].uses]
        role = "weight" if isinstance(c.input.owner, g.WeightOp) else "activation"
        for u in users:
            key = (g.node_name(u), role)
            assert key not in out
            out[key] = str(c.format.format)
    return out


@pytest.mark.parametrize("assignment", [
    {("fc1", "weight"): "int8:channel", ("fc1", "activation"): "int8", ("fc2", "weight"): "mxfp4", ("fc2", "activation"): "mxint8"},
    {("fc1", "weight"): "mxfp6_e2m3", ("fc2", "weight"): "fp8_e4m3", ("fc2", "activation"): "fp8_e4m3"},
    {("fc2", "weight"): "int4:channel"},  # fc1 untouched, fc2's activation float
])
def test_pipeline_replays_the_assigned_formats_on_the_tiny_mlp(tmp_path, assignment):
    pipeline = to_pipeline(assignment)
    recorded = expanded_text(pipeline)  # what compile.json records must replay the same
    assert expanded_text(recorded) == recorded
    for text in (pipeline, recorded):
        model = _model(tmp_path)
        opt(model, text, calib=_calib())
        assert _cast_formats(model) == assignment


def test_a_solved_assignment_replays(tmp_path):
    layers = {Tensor("fc1", "weight", 128): {"mxint8": 0.1, "mxfp4": 2.0, "int8:channel": 0.2},
              Tensor("fc1", "activation", 16): {"mxint8": 0.5, "mxfp4": 0.6},
              Tensor("fc2", "weight", 32): {"mxint8": 0.1, "mxfp4": 0.15, "mxfp6_e2m3": 0.12},
              Tensor("fc2", "activation", 8): {"mxint8": 0.3, "int8": 0.2}}
    sol = solve_ilp(Problem.build(layers), 8.0)
    # int8:channel on fc1's weight would cost 8 + 0 bits: over budget with the rest at their best.
    assert sol.formats == {("fc1", "weight"): "mxint8", ("fc1", "activation"): "mxint8",
                           ("fc2", "weight"): "mxfp6_e2m3", ("fc2", "activation"): "int8"}
    pipeline = to_pipeline(sol)
    model = _model(tmp_path)
    opt(model, pipeline, calib=_calib())
    assert _cast_formats(model) == {k: v for k, v in sol.formats.items() if v != "none"}


def test_pipeline_text_and_its_limits():
    p = to_pipeline({("enc.layer(0)/fc1", "weight"): "mxint8", ("fc1", "activation"): "int8"})
    assert p == 'calibrate{method=minmax},quantize{rules="^enc[.]layer[(]0[)]/fc1$=mxint8/none","^fc1$=none/int8"}'
    rule = re.compile("^enc[.]layer[(]0[)]/fc1$")
    assert rule.search("enc.layer(0)/fc1") and not rule.search("encxlayer(0)/fc1")
    assert re.compile("^fc1$").search("fc1") and not re.compile("^fc1$").search("fc10")
    assert to_pipeline({("fc1", "weight"): "mxint8"}) == 'quantize{rules="^fc1$=mxint8/none"}'
    # formats with options replay too (quantize splits a rule at the first '=' after which formats parse)
    assert to_pipeline({("fc1", "weight"): "int4:group=128"}) == 'quantize{rules="^fc1$=int4:group=128/none"}'
    with pytest.raises(ValueError, match="unknown number format"):
        to_pipeline({("fc1", "weight"): "int9x"})
    with pytest.raises(ValueError, match=r"layer names must not contain \^"):
        to_pipeline({("a^b", "weight"): "int8"})


def test_masec_compile_replays_the_pipeline(tmp_path, capsys):
    from collections import Counter

    from mase_compiler.cli import main

    _model(tmp_path)  # writes mlp.onnx
    assignment = {("fc1", "weight"): "int8:channel", ("fc1", "activation"): "int8", ("fc2", "weight"): "mxfp4"}
    rc = main(["compile", str(tmp_path / "mlp.onnx"), "-p", to_pipeline(assignment), "-o", str(tmp_path / "out")])
    assert rc == 0
    record = json.loads((tmp_path / "out" / "compile.json").read_text())
    notes = next(p["notes"] for p in record["passes"] if p["pass"] == "quantize")
    assert notes["formats"] == dict(Counter(assignment.values()))
    assert notes["weight_casts"] == 2 and notes["activation_casts"] == 1
