"""The sensitivity pass (one tensor quantized at a time, outputs compared with FP32) and the
mx-block-size pass (block size per MX tensor under an average-bits budget)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mase_compiler import pipeline
from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp
from mase_compiler.driver import import_model, opt
from mase_compiler.interpreter import run
from mase_compiler.metrics import cosine, sqnr_db
from mase_compiler.numerics import parse
from mase_compiler.passes.mx_block_size import MxBlockSize
from mase_compiler.passes.sensitivity import Sensitivity, to_table
from mase_compiler.pipeline import PipelineError, run_pipeline
from mase_compiler.search import Problem, solve_ilp
from mase_compiler.session import Session
from test_quantize import B1, W1, W2, _calib, _model


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """Both passes reachable from pipeline strings, whether or not the registry lists them yet."""
    monkeypatch.setitem(pipeline.PASSES, "sensitivity", lambda: Sensitivity)
    monkeypatch.setitem(pipeline.PASSES, "mx-block-size", lambda: MxBlockSize)


def _run(model, spec: str, calib=None, loss=None) -> dict:
    """The notes of the last pass of ``spec``."""
    session = Session(model, calibration=calib)
    if loss is not None:
        session.loss = loss  # what a session with a task loss carries
    return run_pipeline(model, spec, session=session)[-1]


# ---- sensitivity ----------------------------------------------------------------------------------
def test_sensitivity_ranks_mxfp4_worse_than_int8_on_every_tensor(tmp_path):
    rows = _run(_model(tmp_path), 'sensitivity{formats="int8,mxfp4"}', _calib())["notes"]["sensitivity"]
    by = {(r["layer"], r["role"], r["format"]): r for r in rows}
    assert {(l, r) for l, r, _ in by} == {("fc1", "weight"), ("fc1", "activation"), ("fc2", "weight"), ("fc2", "activation")}
    for layer, role in itertools.product(("fc1", "fc2"), ("weight", "activation")):
        i8, fp4 = by[(layer, role, "int8")], by[(layer, role, "mxfp4")]
        assert fp4["sqnr_db"] < i8["sqnr_db"] - 10, (layer, role)
        assert fp4["cosine"] < i8["cosine"] < 1.0
        assert fp4["kl"] > i8["kl"] > 0.0
        assert i8["logits"] is True
    # Exact storage per tensor (cost.tensor_bytes), not the asymptotic 8 / 4.25: per-tensor int8 adds one
    # float32 scale; mxfp4 pads fc1's K = 16 and fc2's K = 8 to 32-element blocks of 16 + 1 bytes.
    n = {("fc1", "weight"): 128, ("fc1", "activation"): 80, ("fc2", "weight"): 32, ("fc2", "activation"): 40}
    blocks = {("fc1", "weight"): 8, ("fc1", "activation"): 5, ("fc2", "weight"): 4, ("fc2", "activation"): 5}
    for key, elements in n.items():
        assert by[(*key, "int8")]["bits"] == (elements + 4) * 8 / elements
        assert by[(*key, "mxfp4")]["bits"] == blocks[key] * 17 * 8 / elements


def _fq(x: torch.Tensor, amax: float) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, amax / 127, 0, -127, 127)


def test_sensitivity_quantizes_only_that_tensor_and_measures_against_hand_computed_outputs(tmp_path):
    calib = _calib()
    loss = lambda outs, batch: float((outs["y"] ** 2).mean())  # noqa: E731: any task loss of outputs and batch
    rows = _run(_model(tmp_path), 'sensitivity{formats=int8 tensors=both}', calib, loss)["notes"]["sensitivity"]
    by = {(r["layer"], r["role"]): r for r in rows}
    w1, b1, w2 = torch.from_numpy(W1), torch.from_numpy(B1), torch.from_numpy(W2)
    xs = [torch.from_numpy(b["x"]) for b in calib]
    hidden = [torch.relu(x @ w1 + b1) for x in xs]
    ref = [h @ w2.T for h in hidden]
    # Hand-written fake quantization of one tensor, everything else float: per-tensor int8, amax / 127;
    # activation ranges from min-max calibration over all batches.
    amax_x, amax_h = max(float(x.abs().max()) for x in xs), max(float(h.abs().max()) for h in hidden)
    want = {
        ("fc1", "weight"): [torch.relu(x @ _fq(w1, float(w1.abs().max())) + b1) @ w2.T for x in xs],
        ("fc1", "activation"): [torch.relu(_fq(x, amax_x) @ w1 + b1) @ w2.T for x in xs],
        ("fc2", "weight"): [h @ _fq(w2, float(w2.abs().max())).T for h in hidden],
        ("fc2", "activation"): [_fq(h, amax_h) @ w2.T for h in hidden],
    }
    r = torch.cat([t.reshape(-1) for t in ref])
    ref_loss = sum(float((t**2).mean()) for t in ref) / len(ref)
    for key, outs in want.items():
        a = torch.cat([t.reshape(-1) for t in outs])
        assert by[key]["sqnr_db"] == pytest.approx(sqnr_db(r, a), abs=1e-3), key
        assert by[key]["cosine"] == pytest.approx(cosine(r, a), abs=1e-9), key
        p, q = torch.log_softmax(torch.cat(ref).double(), -1), torch.log_softmax(torch.cat(outs).double(), -1)
        assert by[key]["kl"] == pytest.approx(float((p.exp() * (p - q)).sum(-1).mean()), rel=1e-3), key
        got_loss = sum(float((t**2).mean()) for t in outs) / len(outs)
        assert by[key]["loss_delta"] == pytest.approx(got_loss - ref_loss, rel=1e-3, abs=1e-9), key
    # Element counts: weights [16, 8] and [4, 8]; activations per batch of 5 rows: [5, 16] and [5, 8].
    assert {k: v["elements"] for k, v in by.items()} == {
        ("fc1", "weight"): 128, ("fc1", "activation"): 80, ("fc2", "weight"): 32, ("fc2", "activation"): 40}


def test_sensitivity_leaves_the_ir_and_weights_unchanged_and_writes_json_and_png(tmp_path):
    model = _model(tmp_path)
    text, weights = model.text(), {k: model.weights[k].copy() for k in model.weights}
    out = tmp_path / "sens" / "table.json"
    record = _run(model, f'sensitivity{{formats="int8,mxint8,mxfp4" tensors=weights out="{out}"}}', _calib())
    assert model.text() == text
    assert set(model.weights) == set(weights) and all(np.array_equal(model.weights[k], v) for k, v in weights.items())
    assert record["ops_changed"] == {} and record["weights_added"] == 0
    rows = record["notes"]["sensitivity"]
    assert [(r["layer"], r["role"], r["format"]) for r in rows] == [
        (layer, "weight", f) for layer in ("fc1", "fc2") for f in ("int8", "mxint8", "mxfp4")]
    assert all(r["loss_delta"] is None for r in rows)  # no loss in the session
    assert json.loads(out.read_text()) == rows
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_sensitivity_is_deterministic(tmp_path):
    spec = 'sensitivity{formats="int8,mxfp4,mxint8:block=8"}'
    first = _run(_model(tmp_path), spec, _calib())["notes"]["sensitivity"]
    second = _run(_model(tmp_path), spec, _calib())["notes"]["sensitivity"]
    assert first == second


def test_sensitivity_table_feeds_the_search(tmp_path):
    rows = _run(_model(tmp_path), 'sensitivity{formats="int8,mxfp4,mxfp4:block=8"}', _calib())["notes"]["sensitivity"]
    problem = Problem.build(to_table(rows))
    assert len(problem.tensors) == 4 and problem.size() == 3**4
    # The problem prices tensors with the rows' exact bits: mxfp4:block=8 fits K = 8 and 16 exactly,
    # 4 + 8 / 8 = 5 bits, while 32-element mxfp4 blocks pad to 8.5 and 17 bits, more than int8's 8.25-9.
    assert {c.bits for cs in problem.choices for c in cs if c.format == "mxfp4:block=8"} == {5.0}
    # So a budget of 5 bits forces mxfp4:block=8 everywhere; a generous one picks the least error, int8
    # here; padded mxfp4 costs more bits than int8 and errs more, so no budget picks it.
    assert set(solve_ilp(problem, 5.0).formats.values()) == {"mxfp4:block=8"}
    assert set(solve_ilp(problem, 32).formats.values()) == {"int8"}
    assert all("mxfp4" not in solve_ilp(problem, b).formats.values() for b in (5.5, 6.5, 7.5, 8.5))


@pytest.mark.parametrize("spec, message", [
    ("sensitivity{tensors=all}", "tensors must be one of weights, activations, both, not 'all'"),
    ('sensitivity{formats=""}', "formats must name at least one format"),
    ("sensitivity{formats=int9x}", "sensitivity formats:"),
    ("sensitivity{ops=softmax}", "ops must name op kinds"),
])
def test_sensitivity_rejects_bad_options(spec, message):
    with pytest.raises(PipelineError, match=message):
        pipeline.parse(spec)


def test_sensitivity_needs_calibration_data(tmp_path):
    with pytest.raises(PipelineError, match="needs calibration data"):
        _run(_model(tmp_path), "sensitivity")


# ---- mx-block-size --------------------------------------------------------------------------------
K1, N1, N2 = 256, 32, 8  # fc1 reduces over 256 (every block 8..128 is a choice), fc2 over 32


def _wide(tmp_path):
    """x[batch, 256] -> MatMul(W[256, 32]) -> Relu -> Gemm(W[8, 32]^T) -> y; weights with outlier rows so
    that block size matters."""
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((K1, N1)) * np.exp(rng.standard_normal((K1, 1)) * 1.5)).astype(np.float32)
    w2 = (rng.standard_normal((N2, N1)) * np.exp(rng.standard_normal((1, N1)) * 1.5)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2")]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", K1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", N2])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return import_model(path)


def _wide_calib() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(4)
    return [{"x": (rng.standard_normal((3, K1)) * np.exp(rng.standard_normal(K1))).astype(np.float32)} for _ in range(2)]


def _blocks(model) -> dict[tuple[str, str], int]:
    """(layer, role) -> block of the MX cast that feeds it."""
    out = {}
    for op in model.main.body.ops:
        if isinstance(op, g.MatmulOp):
            for v in op.operands:
                while isinstance(v.owner, g.TransposeOp):
                    v = v.owner.input
                if isinstance(v.owner, CastOp):
                    role = "weight" if isinstance(v.owner.input.owner, g.WeightOp) else "activation"
                    out[(g.node_name(op), role)] = v.owner.format.format.block
    return out


def test_mx_block_size_very_high_budget_picks_the_smallest_block(tmp_path):
    model = _wide(tmp_path)
    notes = _run(model, 'quantize{default=mxint8},mx-block-size{budget=32}', _wide_calib())["notes"]
    assert notes["tuned"] == 4
    assert _blocks(model) == {("fc1", "weight"): 8, ("fc1", "activation"): 8, ("fc2", "weight"): 8, ("fc2", "activation"): 8}


def test_mx_block_size_lowest_feasible_budget_picks_the_largest_block_and_below_it_refuses(tmp_path):
    # Largest useful blocks: 128 along fc1's 256 inputs, 32 along fc2's 32.  Elements: the weights, and the
    # activations of one calibration batch of 3 rows.
    n = {"w1": K1 * N1, "a1": 3 * K1, "w2": N2 * N1, "a2": 3 * N1}
    floor = ((n["w1"] + n["a1"]) * (8 + 8 / 128) + (n["w2"] + n["a2"]) * (8 + 8 / 32)) / sum(n.values())
    model = _wide(tmp_path)
    notes = _run(model, f"quantize{{default=mxint8}},mx-block-size{{budget={floor!r}}}", _wide_calib())["notes"]
    assert _blocks(model) == {("fc1", "weight"): 128, ("fc1", "activation"): 128, ("fc2", "weight"): 32, ("fc2", "activation"): 32}
    assert notes["avg_bits"] == pytest.approx(floor, rel=1e-12)
    with pytest.raises(PipelineError, match=r"average bits must be at least 8\.0[0-9]* .*not 8\.05"):
        _run(_wide(tmp_path), "quantize{default=mxint8},mx-block-size{budget=8.05}", _wide_calib())


def _rel_noise(w: torch.Tensor, block: int, axis: int) -> float:
    q = parse(f"mxint8:block={block}").quantize(w, axis=axis).double()
    return float(((q - w.double()) ** 2).sum() / (w.double() ** 2).sum())


def test_mx_block_size_meets_the_budget_with_the_least_error_by_brute_force(tmp_path):
    # Weights only (no calibration data needed): w1 [256, 32] blocks along dim 0, w2 [8, 32] along dim 1.
    model = _wide(tmp_path)
    w1, w2 = (model.weights.tensor(k).float() for k in ("w1", "w2"))
    budget = 8.1
    notes = _run(model, f"quantize{{w=mxint8}},mx-block-size{{budget={budget}}}")["notes"]
    got = _blocks(model)
    assert set(got) == {("fc1", "weight"), ("fc2", "weight")} and notes["activations_skipped"] == 0
    sizes1, sizes2 = (8, 16, 32, 64, 128), (8, 16, 32)  # blocks beyond 32 are no choice along fc2's 32
    best = None
    for b1, b2 in itertools.product(sizes1, sizes2):
        bits = (w1.numel() * (8 + 8 / b1) + w2.numel() * (8 + 8 / b2)) / (w1.numel() + w2.numel())
        if bits <= budget:
            err = _rel_noise(w1, b1, 0) + _rel_noise(w2, b2, 1)
            if best is None or err < best[0]:
                best = (err, b1, b2, bits)
    assert best is not None
    assert (got[("fc1", "weight")], got[("fc2", "weight")]) == best[1:3]
    assert notes["avg_bits"] == pytest.approx(best[3], rel=1e-12) and notes["avg_bits"] <= budget
    assert notes["error"] == pytest.approx(best[0], rel=1e-9)
    assert _rel_noise(w1, 8, 0) < _rel_noise(w1, 128, 0)  # the trade-off is real: smaller blocks, less error


def test_mx_block_size_without_calibration_tunes_weights_and_keeps_activation_blocks(tmp_path):
    model = _wide(tmp_path)
    notes = _run(model, "quantize{default=mxint8},mx-block-size{budget=32}")["notes"]
    assert notes["tuned"] == 2 and notes["activations_skipped"] == 2
    assert _blocks(model) == {("fc1", "weight"): 8, ("fc1", "activation"): 32, ("fc2", "weight"): 8, ("fc2", "activation"): 32}


def test_mx_block_size_pipeline_note_replays_the_same_model(tmp_path):
    calib = _wide_calib()
    model = _wide(tmp_path)
    notes = _run(model, "quantize{default=mxint8},mx-block-size{budget=8.2}", calib)["notes"]
    assert notes["pipeline"].startswith("quantize{rules=")
    replayed = opt(_wide(tmp_path), notes["pipeline"])
    assert _blocks(replayed) == _blocks(model)
    x = {"x": calib[0]["x"]}
    torch.testing.assert_close(run(model, x)["y"], run(replayed, x)["y"], rtol=0, atol=0)


def test_mx_block_size_second_run_changes_nothing(tmp_path):
    model = _wide(tmp_path)
    spec = "quantize{default=mxint8},mx-block-size{budget=8.2}"
    _run(model, spec, _wide_calib())
    text = model.text()
    _run(model, "mx-block-size{budget=8.2}", _wide_calib())
    assert model.text() == text


def test_mx_block_size_leaves_other_formats_alone(tmp_path):
    model = _wide(tmp_path)
    notes = _run(model, "quantize{w=mxfp4},mx-block-size{budget=9}")["notes"]
    assert notes["tuned"] == 0 and set(_blocks(model).values()) == {32}


@pytest.mark.parametrize("spec, message", [
    ("mx-block-size", "budget must be a positive number of average bits per element"),
    ("mx-block-size{budget=8 formats=int8}", "formats must be MX formats such as mxint8 or mxfp4, not 'int8'"),
    ('mx-block-size{budget=8 blocks="8,x"}', "blocks must be comma-separated positive integers"),
    ('mx-block-size{budget=8 blocks="0,8"}', "blocks must be comma-separated positive integers"),
])
def test_mx_block_size_rejects_bad_options(spec, message):
    with pytest.raises(PipelineError, match=message):
        pipeline.parse(spec)


def test_mx_block_size_gives_both_activations_of_an_attention_matmul_one_block(tmp_path):
    """scores = x @ x^T: quantize's rules give one activation format per op, so both casts share the choice."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1], name="t"),
             helper.make_node("MatMul", ["x", "xt"], ["y"], name="scores")]
    graph = helper.make_graph(nodes, "att", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 4])])
    path = tmp_path / "att.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    model = import_model(path)
    calib = [{"x": np.random.default_rng(5).standard_normal((2, 4, 32)).astype(np.float32) * np.exp(np.arange(32) / 8)}]
    notes = _run(model, "quantize{default=mxint8},mx-block-size{budget=9 blocks=16}", calib)["notes"]
    assert notes["tuned"] == 2 and notes["choices"] == {"scores/A": "mxint8:block=16"}
    notes = _run(model, 'mx-block-size{budget=9 blocks="8,16,32"}', calib)["notes"]
    # Both casts read the same x along its 32 channels: (8 + 8/8) = 9 bits fits, and block 8 errs least.
    assert notes["choices"] == {"scores/A": "mxint8:block=8"} and notes["avg_bits"] == 9.0
    blocks = {c.format.format.block for c in model.main.body.ops if isinstance(c, CastOp)}
    assert blocks == {8}


def _k24(tmp_path, w: np.ndarray):
    """x[batch, 24] -> MatMul(w[24, 4]) named fc: a reduction axis no power-of-two block above 8 divides."""
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "k24",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
                              [numpy_helper.from_array(w, "w")])
    path = tmp_path / "k24.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


SPEC24 = 'quantize{w=mxint8},mx-block-size{blocks="16,32,64" budget=%s}'


def test_mx_block_size_counts_the_padding_of_a_ragged_last_block(tmp_path):
    """K = 24, stored as encode pads it: block 16 is 2 blocks per row, 2 * (16 * 8 + 8) / 24 = 11.33 bits per
    element; block 32 is one padded block, (32 * 8 + 8) / 24 = 11 bits; block 64 would pad more (no choice)."""
    path, spec = _k24(tmp_path, np.random.default_rng(6).standard_normal((24, 4)).astype(np.float32)), SPEC24
    notes = _run(import_model(path), spec % 100)["notes"]
    assert notes["choices"] == {"fc/W": "mxint8:block=16"} and notes["avg_bits"] == pytest.approx(272 / 24)
    notes = _run(import_model(path), spec % 11.1)["notes"]  # block 32 is the OCP default: spelled mxint8
    assert notes["choices"] == {"fc/W": "mxint8"} and notes["avg_bits"] == pytest.approx(11.0)
    with pytest.raises(PipelineError, match=r"at least 11 \(the cheapest"):
        _run(import_model(path), spec % 10.9)


def test_mx_block_size_breaks_error_ties_towards_fewer_bits(tmp_path):
    """An all-equal weight loses nothing at any block: even with bits to spare the cheapest block wins."""
    path = _k24(tmp_path, np.full((24, 4), 0.375, dtype=np.float32))
    notes = _run(import_model(path), SPEC24 % 100)["notes"]
    assert notes["error"] == 0.0 and notes["choices"] == {"fc/W": "mxint8"}
