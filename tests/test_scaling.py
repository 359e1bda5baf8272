"""The smoothquant and aqas passes: folding leaves the float function unchanged, AQAS lowers the
quantized-product error (checked with torch and the formats' own quantize), a second run changes
nothing, and option errors say what they expect."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mase_compiler import pipeline, zoo
from mase_compiler.dialects import graph as g
from mase_compiler.driver import import_model
from mase_compiler.interpreter import run
from mase_compiler.numerics import parse
from mase_compiler.passes.aqas import Aqas
from mase_compiler.passes.smoothquant import SmoothQuant
from mase_compiler.pipeline import PipelineError, run_pipeline
from mase_compiler.session import Session

K, N1, N2 = 64, 32, 16
OUTLIERS = [3, 17, 40]


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(pipeline.PASSES, "smoothquant", lambda: SmoothQuant)
    monkeypatch.setitem(pipeline.PASSES, "aqas", lambda: Aqas)


def _run(model, spec: str, calib=None) -> list[dict]:
    return run_pipeline(model, spec, session=Session(model, calibration=calib))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ---- a hand-built layer: LayerNorm -> MatMul and Gemm(transB), with outlier channels ------------------
def _layer(tmp_path):
    """x -> LayerNorm (gamma x50 on 3 channels) -> h; y1 = h @ w1, y2 = Gemm(h, w2, transB) + b2;
    y3 = x @ w1 shares w1 with the group but is no part of it."""
    rng = np.random.default_rng(0)
    gamma = (1 + 0.1 * rng.standard_normal(K)).astype(np.float32)
    gamma[OUTLIERS] *= 50
    beta = (0.1 * rng.standard_normal(K)).astype(np.float32)
    w1 = (rng.standard_normal((K, N1)) / 8).astype(np.float32)
    w2 = (rng.standard_normal((N2, K)) / 8).astype(np.float32)
    b2 = rng.standard_normal(N2).astype(np.float32)
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["h"], axis=-1, name="ln"),
        helper.make_node("MatMul", ["h", "w1"], ["y1"], name="fc1"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["y2"], transB=1, name="fc2"),
        helper.make_node("MatMul", ["x", "w1"], ["y3"], name="other"),
    ]
    graph = helper.make_graph(
        nodes, "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", K])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", d]) for n, d in (("y1", N1), ("y2", N2), ("y3", N1))],
        [numpy_helper.from_array(a, n) for a, n in ((gamma, "gamma"), (beta, "beta"), (w1, "w1"), (w2, "w2"), (b2, "b2"))],
    )
    path = tmp_path / "layer.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return import_model(path)


def _calib(n: int = 4, rows: int = 64) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((rows, K)).astype(np.float32)} for _ in range(n)]


def _group_tensors(model, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The LayerNorm output and the two consumer weights as [K, N], read from the model as it is now."""
    ln = next(o for o in model.main.walk() if isinstance(o, g.LayerNormOp))
    wt = model.weights.tensor
    h = torch.nn.functional.layer_norm(x, (K,), wt(ln.scale.owner.sym_name.data), wt(ln.bias.owner.sym_name.data), 1e-5)
    weights = []
    for use in ln.result.uses:
        rhs = use.operation.rhs
        if isinstance(rhs.owner, g.TransposeOp):
            weights.append(wt(rhs.owner.input.owner.sym_name.data).T)
        else:
            weights.append(wt(rhs.owner.sym_name.data))
    return h, weights


def _error(h: torch.Tensor, weights: list[torch.Tensor], refs: list[torch.Tensor]) -> float:
    """sum ||Q_a(h) Q_w(W) - ref||^2 with int8 per-tensor activations and int4 per-output-channel weights."""
    qa, qw = parse("int8"), parse("int4:channel")
    return sum(float(((qa.quantize(h) @ qw.quantize(w, axis=1)) - r).double().pow(2).sum()) for w, r in zip(weights, refs))


def test_aqas_beats_rtn_and_smoothquant_on_outlier_channels(tmp_path):
    calib = _calib()
    x = torch.from_numpy(np.concatenate([b["x"] for b in calib]))
    model = _layer(tmp_path)
    h, weights = _group_tensors(model, x)
    normal = [i for i in range(K) if i not in OUTLIERS]
    assert h[:, OUTLIERS].abs().amax() > 10 * h[:, normal].abs().amax()  # the outliers really stand out
    refs = [h @ w for w in weights]
    rtn = _error(h, weights, refs)
    s = (h.abs().amax(0) ** 0.5 / torch.cat(weights, 1).abs().amax(1) ** 0.5)
    sq = _error(h / s, [w * s[:, None] for w in weights], refs)

    notes = _run(model, 'aqas{w="int4:channel" a=int8}', calib)[-1]["notes"]
    assert notes["groups"] == 1 and notes["folded"] == 1 and notes["explicit"] == 0
    h2, weights2 = _group_tensors(model, x)
    torch.testing.assert_close(h2 @ weights2[0], refs[0], rtol=1e-5, atol=1e-4)
    aqas = _error(h2, weights2, refs)
    assert aqas < 0.9 * rtn and aqas < 0.9 * sq, (rtn, sq, aqas)
    # The pass's own bookkeeping agrees with the independent computation.
    ref_energy = sum(float(r.double().pow(2).sum()) for r in refs)
    (grp,) = notes["per_group"]
    assert grp["error_before"] == pytest.approx(rtn / ref_energy, rel=1e-3)
    assert grp["error_after"] == pytest.approx(aqas / ref_energy, rel=1e-3)
    assert notes["mean_error_reduction"] == pytest.approx(1 - aqas / rtn, rel=1e-3)


@pytest.mark.parametrize("spec", ["smoothquant", "aqas"])
def test_layer_folds_into_layernorm_and_keeps_shared_weight(tmp_path, spec):
    model = _layer(tmp_path)
    calib = _calib()
    x = {"x": _calib(1, 16)[0]["x"] * 3}
    before = run(model, x)
    records = _run(model, spec, calib)
    # New weights replace old ones one for one (w1 keeps its op for y3): nothing is added at run time.
    assert records[-1]["ops_changed"] == {"graph.weight": 1}
    after = run(model, x)
    for k in before:
        assert _rel(after[k], before[k]) <= 1e-5, k
    assert torch.equal(after["y3"], before["y3"])  # w1's other user still reads the original w1
    names = {o.sym_name.data for o in model.main.walk() if isinstance(o, g.WeightOp)}
    assert {"gamma.scaled", "beta.scaled", "w1.scaled", "w2.scaled", "w1"} <= names
    assert "gamma" not in model.weights  # no op reads it any more


def _chain(tmp_path):
    """x -> RMSNormalization -> MatMul(w1) + b1 -> MatMul(w2): two groups, one folded into the
    RMSNorm scale, one into w1's columns and b1."""
    rng = np.random.default_rng(2)
    arrays = {"scale": (1 + rng.standard_normal(K)).astype(np.float32),
              "w1": rng.standard_normal((K, N1)).astype(np.float32), "b1": rng.standard_normal(N1).astype(np.float32),
              "w2": rng.standard_normal((N1, N2)).astype(np.float32)}
    nodes = [
        helper.make_node("RMSNormalization", ["x", "scale"], ["h"], axis=-1, name="norm"),
        helper.make_node("MatMul", ["h", "w1"], ["a0"], name="fc1"),
        helper.make_node("Add", ["a0", "b1"], ["a"], name="fc1_bias"),
        helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", N2])],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )
    path = tmp_path / "chain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]), path)
    return import_model(path)


@pytest.mark.parametrize("spec", ["smoothquant{alpha=0.7}", "aqas{alphas=0.25,0.5,0.75}"])
def test_folds_into_rms_norm_and_producing_matmul(tmp_path, spec):
    model = _chain(tmp_path)
    x = {"x": _calib(1, 16)[0]["x"]}
    before = run(model, x)["y"]
    record = _run(model, spec, _calib())[-1]
    assert record["notes"]["folded"] == 2 and record["ops_changed"] == {}
    assert _rel(run(model, x)["y"], before) <= 1e-5
    assert sorted(model.weights) == ["b1.scaled", "scale.scaled", "w1.scaled", "w2.scaled"]  # w1 scaled twice: rows, then columns


# ---- tiny zoo models -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo_models(zoo_dir):
    return {name: zoo.export(name, "dynamo", cache_dir=zoo_dir) for name in ("bert", "llama")}


@pytest.mark.parametrize("name", ["bert", "llama"])
@pytest.mark.parametrize("spec", ["smoothquant{alpha=0.5}", "aqas", "calibrate,smoothquant{alpha=0.8}"])
def test_folding_keeps_the_float_function(zoo_models, name, spec):
    z = zoo_models[name]
    model = import_model(z.path)
    calib = [zoo.inputs(name, seed=i) for i in (1, 2)]
    before = run(model, z.inputs)
    notes = _run(model, spec, calib)[-1]["notes"]
    after = run(model, z.inputs)
    for k in before:
        assert _rel(after[k], before[k]) <= 1e-5, (name, spec, k)
    assert notes["groups"] >= 4 and notes["folded"] + notes["explicit"] == notes["groups"] - notes["unchanged"]
    if name == "llama":  # RMSNorm weights and up_proj columns absorb the scales; o_proj inputs need a mul
        assert notes["folded"] >= 4 and notes["explicit"] == 2
    else:  # post-LN BERT: LayerNorm outputs also feed the residual, so only GELU/attention outputs scale
        assert notes["explicit"] == notes["groups"]


@pytest.mark.parametrize("spec", ["smoothquant", "aqas"])
def test_second_run_changes_nothing(zoo_models, spec):
    """SmoothQuant measures s = 1 on a smoothed model; AQAS's candidates are the first run's, of which
    the applied one is best: both leave every group alone (no new ops or weights, same outputs)."""
    z = zoo_models["llama"]
    model = import_model(z.path)
    calib = [zoo.inputs("llama", seed=i) for i in (1, 2)]
    _run(model, spec, calib)
    once = run(model, z.inputs)
    text = model.text()
    record = _run(model, spec, calib)[-1]
    assert record["notes"]["unchanged"] == record["notes"]["groups"]
    assert record["weights_added"] == 0 and record["ops_changed"] == {}
    assert model.text() == text
    for k, v in run(model, z.inputs).items():
        assert torch.equal(v, once[k])


def test_explicit_false_leaves_unfoldable_groups(zoo_models):
    z = zoo_models["bert"]
    model = import_model(z.path)
    records = _run(model, "aqas{explicit=false}", [zoo.inputs("bert", seed=1)])
    notes = records[-1]["notes"]
    assert notes["unfoldable"] == notes["groups"] and records[-1]["ops_changed"] == {} and records[-1]["weights_added"] == 0


def test_scaling_then_calibrate_then_quantize(tmp_path):
    model = _layer(tmp_path)
    calib = _calib()
    ref = run(model, calib[0])
    with pytest.raises(PipelineError, match="needs calibration statistics"):  # statistics of changed values are dropped
        _run(_layer(tmp_path), 'calibrate,smoothquant,quantize{w="int4:channel" a=int8}', calib)
    _run(model, 'calibrate,aqas,calibrate,quantize{w="int4:channel" a=int8}', calib)
    out = run(model, calib[0])
    assert _rel(out["y1"], ref["y1"]) < 0.1


# ---- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ("smoothquant{alpha=1.5}", "smoothquant alpha must be a number in [0, 1], not 1.5"),
    ("aqas{alphas=0,2}", "aqas alphas must be numbers in [0, 1], not 2"),
    ("aqas{samples=0}", "aqas samples must be a positive integer, not 0"),
    ("aqas{min_gain=1}", "aqas min_gain must be a number in [0, 1), not 1"),
    ('aqas{w="int8:token"}', "aqas option w must be a weight format (per tensor, ':channel' or ':group=N'), not 'int8:token'"),
    ('aqas{a="int8:channel"}', "aqas option a must be an activation format (per tensor, ':token' or ':group=N'), not 'int8:channel'"),
    ("aqas{w=int3x}", "aqas option w must be a number format such as 'int8' or 'int4:channel', not 'int3x'"),
    ("aqas{alpha=0.5}", "pass 'aqas' has no option 'alpha'; did you mean alphas?"),
])
def test_option_errors(spec, message):
    with pytest.raises(PipelineError) as e:
        pipeline.parse(spec)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec, message", [
    ("aqas", "pass 'aqas': pass 'aqas' needs calibration data"),
    ("smoothquant", "pass 'smoothquant': pass 'smoothquant' needs activation channel maxima: put 'calibrate' before it"),
])
def test_missing_data(tmp_path, spec, message):
    with pytest.raises(PipelineError) as e:
        _run(_layer(tmp_path), spec)
    assert message in str(e.value)


def test_other_formats_run(tmp_path):
    """Group-wise int4 weights with per-token activations, and MX on both sides."""
    for spec in ('aqas{w="int4:group=16" a="int8:token" alphas=0,0.5,1}', "aqas{w=mxfp4 a=mxfp8_e4m3 alphas=0.25,0.75}",
                 "aqas{w=fp8_e4m3 a=fp8_e4m3 alphas=0.5}"):
        model = _layer(tmp_path)
        notes = _run(model, spec, _calib())[-1]["notes"]
        assert notes["per_group"][0]["error_after"] <= notes["per_group"][0]["error_before"]
