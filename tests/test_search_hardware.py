"""The layer formulation of the search (mase_compiler/search/hardware.py): layers as units with a (weight,
activation) format pair per choice, so area and energy are exact.  Oracles: the model quantized with the
assignment's pipeline and priced by ``model_cost``; brute force over every assignment; storage figures
computed by hand."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mase_compiler.cost import model_cost
from mase_compiler.driver import import_model
from mase_compiler.passes.sensitivity import measure, to_table
from mase_compiler.pipeline import run_pipeline
from mase_compiler.search import (
    Budget, Choice, InfeasibleBudget, Problem, Tensor, brute_force, cost_of, layer_shapes, optima, pair_cost, pair_problem,
    solve_greedy, solve_ilp, to_pipeline, uniform_cost,
)
from mase_compiler.session import Session

sys.path.insert(0, str(Path(__file__).parent))
from test_quantize import _calib, _model  # noqa: E402  (the tiny MLP: matmul fc1 [16 -> 8], gemm fc2 [8 -> 4])

ROWS = 5  # rows of every _calib() batch: what the IR's symbolic batch dim is priced at
W_FORMATS = ["none", "int8:channel", "int4:group=8", "mxfp4", "fp8_e4m3"]
A_FORMATS = ["none", "int8", "uint8", "mxint8:block=16", "int8:token"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return layer_shapes(_model(tmp_path_factory.mktemp("mlp")), _calib()[0])


def _priced(tmp_path, assignment) -> dict[str, float]:
    """The oracle: quantize a fresh model with the assignment's pipeline and price it with model_cost."""
    model = _model(tmp_path)
    run_pipeline(model, to_pipeline(assignment), session=Session(model, calibration=_calib()))
    return model_cost(model, dynamic_dim=ROWS).totals


def test_layer_shapes_of_the_tiny_mlp(shapes):
    fc1, fc2 = shapes["fc1"], shapes["fc2"]
    assert set(shapes) == {"fc1", "fc2"}
    assert (fc1.kind, fc1.out_shape, fc1.reduction, fc1.weight_shape, fc1.act_shape) == ("matmul", (5, 8), 16, (16, 8), (5, 16))
    # Gemm transB=1: the weight is stored [N, K] = [4, 8]; quantize blocks along its axis 1 (K), channels on axis 0.
    assert (fc2.out_shape, fc2.reduction, fc2.weight_shape, fc2.act_shape) == ((5, 4), 8, (4, 8), (5, 8))
    (a1, w1), (a2, w2) = fc1.operands, fc2.operands
    assert (w1.role, w1.reduction_axis, w1.channel_axis, w1.source) == ("weight", 0, 1, "w1")
    assert (w2.reduction_axis, w2.channel_axis) == (1, 0)
    assert (a1.role, a1.shape, a1.reduction_axis) == ("activation", (5, 16), -1)
    assert fc1.weight_is_parameter and fc2.weight_is_parameter
    assert (fc1.elements("weight"), fc1.elements("activation")) == (128, 80)


def test_exact_bits_of_mx_on_short_reduction_axes(shapes):
    # mxfp4 blocks 32 elements along K.  fc2 has K = 8: each row is one block padded to 32 codes,
    # 32 * 4 bits = 16 bytes + 1 E8M0 byte = 17 bytes for 8 elements, 17 bits each (not 4.25).
    # fc1's weight [16, 8] blocks along axis 0 (K = 16): 8 blocks of 17 bytes for 128 elements.
    assert shapes["fc2"].storage_bits("weight", "mxfp4") == 4 * 17 * 8
    assert shapes["fc2"].storage_bits("activation", "mxfp4") == 5 * 17 * 8
    assert shapes["fc1"].storage_bits("weight", "mxfp4") / 128 == 8 * 17 * 8 / 128 == 8.5
    # mxfp4:block=8 fits K = 8 exactly: 4 + 8 / 8 = 5 bits; per-tensor int8 adds one float32 scale,
    # per-channel int8 one per output channel (4 of fc2), uint8 also an int32 zero point.
    assert shapes["fc2"].storage_bits("activation", "mxfp4:block=8") / 40 == 5.0
    assert shapes["fc1"].storage_bits("activation", "int8") == (80 + 4) * 8
    assert shapes["fc2"].storage_bits("weight", "int8:channel") == (32 + 4 * 4) * 8
    assert shapes["fc2"].storage_bits("activation", "uint8") == (40 + 8) * 8
    assert shapes["fc2"].storage_bits("weight", "none") == 32 * 32


def test_sensitivity_rows_carry_exact_bits_into_the_problem(tmp_path):
    rows = measure(_model(tmp_path), _calib(), ("mxfp4", "int8"), ("weight", "activation"))
    bits = {(r["layer"], r["role"], r["format"]): r["bits"] for r in rows}
    assert bits[("fc2", "weight", "mxfp4")] == bits[("fc2", "activation", "mxfp4")] == 17.0
    assert bits[("fc1", "weight", "mxfp4")] == bits[("fc1", "activation", "mxfp4")] == 8.5
    assert bits[("fc1", "weight", "int8")] == (128 + 4) * 8 / 128 and bits[("fc2", "activation", "int8")] == (40 + 4) * 8 / 40
    problem = Problem.build(to_table(rows))  # what the search pass calls
    assert {(t.key, c.format): c.bits for t, cs in zip(problem.tensors, problem.choices) for c in cs} == \
        {(f"{l}/{'W' if r == 'weight' else 'A'}", f): b for (l, r, f), b in bits.items()}
    # int8 everywhere is the cheapest assignment once MX padding is counted: 296 bytes for 280 elements.
    cheapest = solve_ilp(problem, 296 * 8 / 280)
    assert set(cheapest.formats.values()) == {"int8"} and cheapest.bytes == 296


@pytest.mark.parametrize("assignment", [
    {("fc1", "weight"): "int8:channel", ("fc1", "activation"): "int8", ("fc2", "weight"): "mxfp4", ("fc2", "activation"): "mxint8"},
    {("fc1", "weight"): "mxfp6_e2m3", ("fc2", "weight"): "fp8_e4m3", ("fc2", "activation"): "fp8_e4m3"},
    {("fc1", "weight"): "int4:group=8", ("fc1", "activation"): "int8:token", ("fc2", "weight"): "mxint8:block=16",
     ("fc2", "activation"): "mxfp4:block=8"},
    {("fc1", "weight"): "dint4:channel", ("fc1", "activation"): "uint8", ("fc2", "weight"): "mxint8:axis=0"},
    {("fc2", "activation"): "fixed8:frac=4"},
])
def test_cost_of_an_assignment_is_model_cost_of_the_quantized_model(tmp_path, shapes, assignment):
    want = _priced(tmp_path, assignment)
    got = cost_of(assignment, shapes)
    assert got["area_le"] == pytest.approx(want["area_le"], rel=1e-12)
    assert got["energy_pj"] == pytest.approx(want["energy_pj"], rel=1e-12)
    stored = 8 * (want["weight_bytes"] + want["activation_bytes"]) / (want["weight_elements"] + want["activation_elements"])
    assert got["avg_bits"] == pytest.approx(stored, rel=1e-12)


def _conv_and_attention(tmp_path):
    """A grouped conv (weight [6, 2, 3, 3]: reduction 2 x 3 x 3 per group) and an activation x activation
    matmul (scores = q @ k, K = 8): the shapes the MLP does not have."""
    w = np.random.default_rng(3).standard_normal((6, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=2, pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("MatMul", ["q", "k"], ["s"], name="scores")]
    graph = helper.make_graph(nodes, "two", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 6, 6]),
        helper.make_tensor_value_info("q", TensorProto.FLOAT, ["n", 5, 8]),
        helper.make_tensor_value_info("k", TensorProto.FLOAT, ["n", 8, 5])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", 6, 6, 6]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 5, 5])], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    rng = np.random.default_rng(4)
    batch = {k: rng.standard_normal(s).astype(np.float32) for k, s in (("x", (3, 4, 6, 6)), ("q", (3, 5, 8)), ("k", (3, 8, 5)))}
    return import_model(path), batch


@pytest.mark.parametrize("conv, scores", [("int8:channel/int8", "none/int8:token"), ("mxfp4/mxint8", "none/mxfp4"),
                                          ("int4:group=8/fp8_e4m3", "none/none"), ("none/uint8", "none/mxint8:block=8")])
def test_cost_of_convs_and_activation_products_is_model_cost(tmp_path, conv, scores):
    model, batch = _conv_and_attention(tmp_path)
    shapes = layer_shapes(model, batch)
    s = shapes["scores"]
    assert (s.weight_is_parameter, [o.role for o in s.operands], s.reduction) == (False, ["activation", "activation"], 8)
    assert (shapes["conv"].reduction, shapes["conv"].out_shape) == (18, (3, 6, 6, 6))
    assignment = {(layer, role): f for layer, pair in (("conv", conv), ("scores", scores))
                  for role, f in zip(("weight", "activation"), pair.split("/"))}
    quantized, _ = _conv_and_attention(tmp_path)
    run_pipeline(quantized, to_pipeline(assignment), session=Session(quantized, calibration=[batch]))
    want = model_cost(quantized, dynamic_dim=3).totals
    got = cost_of(assignment, shapes)
    assert (got["area_le"], got["energy_pj"]) == pytest.approx((want["area_le"], want["energy_pj"]), rel=1e-12)
    stored = 8 * (want["weight_bytes"] + want["activation_bytes"]) / (want["weight_elements"] + want["activation_elements"])
    assert got["avg_bits"] == pytest.approx(stored, rel=1e-12)


def test_uniform_cost_is_quantize_default_everywhere(tmp_path, shapes):
    model = _model(tmp_path)
    run_pipeline(model, "calibrate{method=minmax},quantize{default=int8}", session=Session(model, calibration=_calib()))
    want = model_cost(model, dynamic_dim=ROWS).totals
    got = uniform_cost(shapes, "int8")
    assert (got["area_le"], got["energy_pj"]) == pytest.approx((want["area_le"], want["energy_pj"]), rel=1e-12)
    mixed = uniform_cost(shapes, "mxfp4/none")
    assert mixed == cost_of({(l, "weight"): "mxfp4" for l in shapes}, shapes)
    # float32 MACs cost more energy than int8 ones, 4-bit weights less ROM than float ones
    assert uniform_cost(shapes, "none")["energy_pj"] > got["energy_pj"] and mixed["area_le"] < uniform_cost(shapes, "none")["area_le"]


def _table(seed: int, roles=("weight", "activation")) -> dict[Tensor, dict[str, float]]:
    """Random per-tensor errors for the MLP's tensors (element counts as sensitivity reports them)."""
    rng = np.random.default_rng(seed)
    elements = {("fc1", "weight"): 128, ("fc1", "activation"): 80, ("fc2", "weight"): 32, ("fc2", "activation"): 40}
    table = {}
    for (layer, role), n in elements.items():
        if role in roles:
            fmts = W_FORMATS if role == "weight" else A_FORMATS
            table[Tensor(layer, role, n)] = {f: 0.0 if f == "none" else float(rng.exponential()) for f in fmts}
    return table


def test_pair_problem_choices(shapes):
    table = _table(0)
    problem = pair_problem(table, shapes)
    assert [t.key for t in problem.tensors] == ["fc1/L", "fc2/L"]
    assert [t.elements for t in problem.tensors] == [128 + 80, 32 + 40]
    errors = {(t.layer, t.role): e for t, e in table.items()}
    for unit, choices in zip(problem.tensors, problem.choices):
        assert [c.format for c in choices] == [f"{w}/{a}" for w, a in itertools.product(W_FORMATS, A_FORMATS)]
        for c in choices:
            w, a = c.format.split("/")
            assert c.error == errors[(unit.layer, "weight")][w] + errors[(unit.layer, "activation")][a]
            s = shapes[unit.layer]
            assert c.bits == (s.storage_bits("weight", w) + s.storage_bits("activation", a)) / unit.elements
            assert (c.area, c.energy) == (pair_cost(s, w, a)["area_le"], pair_cost(s, w, a)["energy_pj"])


def test_a_layer_with_one_role_in_the_table_keeps_the_other_float(tmp_path, shapes):
    problem = pair_problem(_table(1, roles=("weight",)), shapes)
    assert [t.elements for t in problem.tensors] == [128, 32]  # bits count the table's tensors only
    assert [c.format for c in problem.choices[1]] == [f"{w}/none" for w in W_FORMATS]
    c = problem.choices[1][W_FORMATS.index("mxfp4")]
    assert c.bits == 17.0
    sol = problem.solution([W_FORMATS.index("int4:group=8"), W_FORMATS.index("mxfp4")])
    assert sol.formats == {("fc1", "weight"): "int4:group=8", ("fc1", "activation"): "none",
                           ("fc2", "weight"): "mxfp4", ("fc2", "activation"): "none"}
    want = _priced(tmp_path, sol.formats)
    assert (sol.area, sol.energy) == pytest.approx((want["area_le"], want["energy_pj"]), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_ilp_equals_brute_force_under_energy_and_area_limits(shapes, seed):
    problem = pair_problem(_table(seed), shapes)
    rng = np.random.default_rng(50 + seed)
    int8 = uniform_cost(shapes, "int8:channel/int8")
    lo_area = sum(min(c.area for c in cs) for cs in problem.choices)
    budget = Budget(energy=int8["energy_pj"] * float(rng.uniform(0.8, 1.5)),
                    area=float(rng.uniform(lo_area, int8["area_le"] * 1.5)),
                    avg_bits=float(rng.uniform(8, 20)) if seed % 2 else None)
    try:
        dear = brute_force(problem, budget)
    except InfeasibleBudget:
        with pytest.raises(InfeasibleBudget):
            solve_ilp(problem, budget)
        return
    ilp = solve_ilp(problem, budget)
    assert ilp.meets(budget) and ilp.error == pytest.approx(dear.error, rel=1e-9, abs=1e-12)
    if len(optima(problem, budget)) == 1:
        assert ilp.picks == dear.picks
    greedy = solve_greedy(problem, budget)
    assert greedy.meets(budget) and greedy.error >= ilp.error * (1 - 1e-9)
    got = cost_of(ilp.formats, shapes)
    assert (got["area_le"], got["energy_pj"]) == pytest.approx((ilp.area, ilp.energy), rel=1e-12)


def test_energy_of_int8_as_a_limit_replays_to_that_energy(tmp_path, shapes):
    # The user's "at most the energy of int8": the solution's pipeline, quantized and priced, is within it.
    problem = pair_problem(_table(7), shapes)
    limit = uniform_cost(shapes, "int8")["energy_pj"]
    sol = solve_ilp(problem, Budget(energy=limit))
    want = _priced(tmp_path, sol.formats)
    assert want["energy_pj"] == pytest.approx(sol.energy, rel=1e-12) and want["energy_pj"] <= limit * (1 + 1e-12)
    assert want["area_le"] == pytest.approx(sol.area, rel=1e-12)
    unlimited = solve_ilp(problem, Budget())
    assert unlimited.energy > limit  # the limit bites: float everywhere has no error here but costs more
    assert sol.error >= unlimited.error
    with pytest.raises(InfeasibleBudget, match=r"^budget energy must be at least [0-9.e+]+ \(the cheapest candidates everywhere\), not 1$"):
        solve_ilp(problem, Budget(energy=1.0))


def test_layer_units_replay_as_quantize_rules():
    a = Tensor("fc1", "layer", 208)
    problem = Problem((a,), ((Choice("int8:channel/mxfp4", 0.1, 6.0, 10.0, 5.0), Choice("int4:group=8/none", 0.2, 20.0)),))
    assert to_pipeline(problem.solution([0])) == 'quantize{rules="^fc1$=int8:channel/mxfp4"}'
    assert to_pipeline(problem.solution([1])) == 'quantize{rules="^fc1$=int4:group=8/none"}'
    assert problem.solution([0]).to_json()["tensors"][0]["energy"] == 5.0


def test_errors_name_the_thing(shapes):
    with pytest.raises(ValueError, match="layer unit must be the only unit of its layer, not also 'fc1/W'"):
        Problem((Tensor("fc1", "layer", 1), Tensor("fc1", "weight", 1)), ((Choice("int8/int8", 0, 8),), (Choice("int8", 0, 8),)))
    with pytest.raises(ValueError, match=r"layer unit fc1/L formats must be 'W/A' pairs, not 'int8'"):
        Problem((Tensor("fc1", "layer", 1),), ((Choice("int8", 0, 8),),))
    with pytest.raises(ValueError, match="table layer 'fc9' must have a shape"):
        pair_problem({Tensor("fc9", "weight", 4): {"int8": 0.0}}, shapes)
    with pytest.raises(ValueError, match="assignment layer 'fc9' must be one of the shapes' layers"):
        cost_of({("fc9", "weight"): "int8"}, shapes)
    with pytest.raises(ValueError, match="unknown number format"):
        uniform_cost(shapes, "int9x")
