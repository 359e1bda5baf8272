"""The quantize pass: what it inserts, the numbers it computes, and that the result is what
hand-written fake quantization with torch's own quantizers gives."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp
from mase_compiler.driver import import_model, opt
from mase_compiler.interpreter import run
from mase_compiler.pipeline import PipelineError

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((16, 8)).astype(np.float32)  # MatMul weight [K, N]
B1 = RNG.standard_normal(8).astype(np.float32)
W2 = RNG.standard_normal((4, 8)).astype(np.float32)  # Gemm transB=1 weight [N, K]


def _model(tmp_path):
    """x -> MatMul(W1) + B1 -> Relu -> Gemm(W2^T) -> y; node names fc1 and fc2."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
        helper.make_node("Relu", ["hb"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2"),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(B1, "b1"), numpy_helper.from_array(W2, "w2")],
    )
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return import_model(path)


def _calib(n: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": (rng.standard_normal((5, 16)) * (1 + i)).astype(np.float32)} for i in range(n)]


def _fq_tensor(x: torch.Tensor, amax: float) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, amax / 127, 0, -127, 127)


def _fq_channel(w: torch.Tensor, axis: int) -> torch.Tensor:
    scale = w.abs().amax(dim=1 - axis) / 127
    return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), axis, -127, 127)


def test_w8a8_matches_torch_fake_quantization(tmp_path):
    model = _model(tmp_path)
    calib = _calib()
    opt(model, 'calibrate{method=minmax},quantize{w="int8:channel" a=int8}', calib=calib)
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)) * 2
    got = run(model, {"x": x})["y"]
    # The oracle: torch's fake quantizers with min-max ranges, written out by hand.
    amax1 = max(float(np.abs(b["x"]).max()) for b in calib)
    h = torch.relu(_fq_tensor(x, amax1) @ _fq_channel(torch.from_numpy(W1), axis=1) + torch.from_numpy(B1))
    amax2 = max(float(torch.relu(torch.from_numpy(b["x"]) @ torch.from_numpy(W1) + torch.from_numpy(B1)).abs().max()) for b in calib)
    want = _fq_tensor(h, amax2) @ _fq_channel(torch.from_numpy(W2), axis=0).T
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_inserted_casts_follow_the_contract(tmp_path):
    model = _model(tmp_path)
    opt(model, 'calibrate{method=minmax},quantize{w="int8:channel" a=int8}', calib=_calib())
    casts = [op for op in model.main.body.ops if isinstance(op, CastOp)]
    weights = [c for c in casts if isinstance(c.input.owner, g.WeightOp)]
    acts = [c for c in casts if not isinstance(c.input.owner, g.WeightOp)]
    assert len(weights) == 2 and len(acts) == 2
    # Per-output-channel axes: dim 1 of the [K, N] MatMul weight, dim 0 of the [N, K] Gemm weight.
    by_name = {c.input.owner.sym_name.data: c for c in weights}
    assert by_name["w1"].axis.value.data == 1 and by_name["w2"].axis.value.data == 0
    scale = model.weights.tensor("w1.scale")
    torch.testing.assert_close(scale, torch.from_numpy(np.abs(W1).max(axis=0, keepdims=True) / 127), rtol=1e-6, atol=0)
    # Activation casts carry a rank-0 static scale and sit right before their op.
    for c in acts:
        assert len(c.params) == 1 and g.shape_of(c.params[0].type) == ()
        assert isinstance(c.next_op, g.MatmulOp) or isinstance(c.next_op, (CastOp, g.WeightOp, g.TransposeOp))


def test_second_run_changes_nothing(tmp_path):
    model = _model(tmp_path)
    opt(model, 'calibrate,quantize{w="int8:channel" a=int8}', calib=_calib())
    first = model.text()
    opt(model, 'quantize{w="int8:channel" a=int8}')
    assert model.text() == first


@pytest.mark.parametrize("fmt", ["mxfp4", "mxint8", "mxfp8_e4m3"])
def test_mx_blocks_run_along_the_reduction_axis(tmp_path, fmt):
    from mase_compiler.numerics import parse

    model = _model(tmp_path)
    opt(model, f"quantize{{default={fmt} ops=matmul}}")
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32))
    got = run(model, {"x": x})["y"]
    f = parse(fmt)
    h = torch.relu(f.quantize(x, axis=-1) @ f.quantize(torch.from_numpy(W1), axis=0) + torch.from_numpy(B1))
    want = f.quantize(h, axis=-1) @ f.quantize(torch.from_numpy(W2), axis=1).T
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_rules_and_skip_select_ops_by_source_name(tmp_path):
    model = _model(tmp_path)
    opt(model, 'quantize{default=mxint8 rules="fc2=mxfp4/none" skip="^fc1$"}')
    casts = [op for op in model.main.body.ops if isinstance(op, CastOp)]
    assert [str(c.format.format) for c in casts] == ["mxfp4"]  # fc1 skipped; fc2's activation left float
    assert casts[0].input.owner.sym_name.data == "w2"


def test_fp8_recipe_scales_are_amax_over_448(tmp_path):
    model = _model(tmp_path)
    calib = _calib()
    opt(model, "fp8", calib=calib)
    assert float(model.weights.tensor("w1.scale")) == pytest.approx(float(np.abs(W1).max()) / 448, rel=1e-6)
    consts = [c.params[0].owner for c in model.main.body.ops if isinstance(c, CastOp) and not isinstance(c.input.owner, g.WeightOp)]
    first = float(consts[0].properties["value"].get_values()[0])
    assert first == pytest.approx(max(float(np.abs(b["x"]).max()) for b in calib) / 448, rel=1e-6)


@pytest.mark.parametrize("pipeline, message", [
    ("quantize{w=int0}", "int0"),
    ("quantize{w=mxfp5}", "mxfp"),
    ("quantize{default=int8}", "needs calibration statistics"),
    ('quantize{w="int8:token"}', "per-token granularity, which is for activations"),
    ("quantize{ops=matmull}", "did you mean matmul"),
    ('quantize{skip="("}', "not a valid regular expression"),
    ("quantize{defualt=int8}", "did you mean default"),
    ("quantise", "did you mean quantize"),
    ("w8a9", "did you mean w8a8"),
    ("w8a8{x=1}", "preset 'w8a8' takes no options"),
])
def test_bad_options_fail_before_touching_the_ir(tmp_path, pipeline, message):
    model = _model(tmp_path)
    before = model.text()
    with pytest.raises(PipelineError, match=message.replace("(", r"\(")):
        opt(model, pipeline)
    if "calibration" not in message:
        assert model.text() == before


def test_act_act_false_leaves_activation_matmuls_float(tmp_path):
    from mase_compiler import zoo

    z = zoo.export("bert", "dynamo")
    both, weights_only = import_model(z.path), import_model(z.path)
    opt(both, "quantize{default=mxint8}")
    opt(weights_only, "quantize{default=mxint8 act_act=false}")

    def quantized_matmuls(m):
        return sum(1 for op in m.main.body.ops if isinstance(op, g.MatmulOp) and any(isinstance(o.owner, CastOp) for o in op.operands))

    # tiny BERT: 2 layers x (6 linear + 2 attention) matmuls
    assert quantized_matmuls(both) == 16 and quantized_matmuls(weights_only) == 12


def test_gather_quantizes_embedding_tables_per_row(zoo_dir):
    from mase_compiler import zoo
    from mase_compiler.numerics import parse

    z = zoo.export("bert", "dynamo", cache_dir=zoo_dir)
    model = import_model(z.path)
    opt(model, 'quantize{w="int8:channel" ops=gather}')
    casts = [op for op in model.main.body.ops if isinstance(op, CastOp)]
    assert casts and all(isinstance(u.operation, g.GatherOp) for c in casts for u in c.results[0].uses)
    for c in casts:  # one scale per table row: what torch's per-channel fake quantizer on axis 0 gives
        table = model.weights.tensor(c.input.owner.sym_name.data)
        scale = table.abs().amax(dim=1) / 127
        want = torch.fake_quantize_per_channel_affine(table, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -127, 127)
        got = parse("int8:channel").quantize(table, model.weights.tensor(c.params[0].owner.sym_name.data), axis=0)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-7)
        assert c.axis.value.data == 0


def test_rules_take_formats_with_options(tmp_path):
    """A rule's format may hold '=' itself (group and block sizes): the split is at the first '=' that parses."""
    model = _model(tmp_path)
    opt(model, 'quantize{rules="^fc1$=int4:group=8/mxint8:block=16","^fc2$=none"}')
    casts = {str(op.format.format) for op in model.main.body.ops if op.name == "quant.cast"}
    assert casts == {"int4:group=8", "mxint8:block=16"}
