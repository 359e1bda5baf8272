"""``masec report`` and ``masec verify`` on compile output directories built here by hand.

The helper imports the tiny BERT, puts ``quant.cast`` ops in front of chosen
matmul operands as docs/quantized-ir.md describes, and writes ``quantized.mlir``,
``reference.npz`` and a minimal ``compile.json`` (target ``ir``), so these tests
do not depend on the compiler driver or the backends.  Oracles: interpreter runs
of the unquantized model, and per-layer errors recomputed with torch from the
layer's FP32 input and the format's own ``quantize``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from xdsl.dialects.builtin import IntegerAttr, f32, i64

from mase_compiler import zoo
from mase_compiler.cli import main
from mase_compiler.dialects.graph import WeightOp, node_name, tensor_type
from mase_compiler.dialects.quant import CastOp, format_attr
from mase_compiler.driver import import_model
from mase_compiler.interpreter import Interpreter
from mase_compiler.model import Model
from mase_compiler.numerics import parse
from mase_compiler.report import report
from mase_compiler.verify import VerifyError, verify

QUERY0 = "inner.encoder.layer.0.attention.self.query/linear"
KEY0 = "inner.encoder.layer.0.attention.self.key/linear_1"
VALUE0 = "inner.encoder.layer.0.attention.self.value/linear_2"
SCORES0 = "inner.encoder.layer.0.attention.self/matmul"
# Layer-0 query, key and value all read the same (unquantized) layer-norm output, so each one's
# error is its own weight format's alone: int16 must be far better than int4.
PLAN = {QUERY0: ("int16:channel", None), KEY0: ("int4:channel", None), VALUE0: ("int8:channel", "int8:token"),
        SCORES0: (None, "mxfp4")}


def _sqnr(ref: np.ndarray, x: np.ndarray) -> float:
    ref, x = ref.astype(np.float64), x.astype(np.float64)
    return 10 * math.log10(float((ref**2).sum()) / float(((x - ref) ** 2).sum()))


def _cos(ref: np.ndarray, x: np.ndarray) -> float:
    ref, x = ref.astype(np.float64).ravel(), x.astype(np.float64).ravel()
    return float(ref @ x / (np.linalg.norm(ref) * np.linalg.norm(x)))


def _cast_before(op, index: int, spec: str, model: Model) -> None:
    """Quantize operand ``index`` of ``op`` in ``spec`` (a weight: static scale operand, axis 1)."""
    block = op.parent_block()
    value = op.operands[index]
    fmt = parse(spec)
    attrs = {"format": format_attr(spec)}
    params = []
    if isinstance(value.owner, WeightOp):
        wname = value.owner.properties["name"].data
        w = torch.from_numpy(np.array(model.weights[wname]))
        scale, _ = fmt.compute_scale(w, axis=1)
        model.weights[f"{wname}.scale"] = scale.numpy()
        sop = WeightOp(f"{wname}.scale", tensor_type(f32, list(scale.shape)))
        block.insert_op_before(sop, op)
        params = [sop.results[0]]
        attrs["axis"] = IntegerAttr(1, i64)
    elif spec.startswith("mx"):
        attrs["axis"] = IntegerAttr(-1, i64)
    cast = CastOp.create(operands=[value, *params], result_types=[value.type], properties=attrs)
    block.insert_op_before(cast, op)
    operands = list(op.operands)
    operands[index] = cast.results[0]
    op.operands = operands


def make_out(root: Path, zoo_dir: Path, plan: dict[str, tuple[str | None, str | None]] = PLAN,
             target: str = "ir") -> tuple[Path, Model, dict[str, np.ndarray]]:
    """A compile output directory for the tiny BERT quantized by ``plan`` (node -> (weight, act) formats)."""
    zm = zoo.export("bert", "dynamo", cache_dir=zoo_dir)
    fp32 = import_model(zm.path)
    model = import_model(zm.path)
    for op in list(model.main.body.ops):
        if op.name != "graph.matmul" or node_name(op) not in plan:
            continue
        wspec, aspec = plan[node_name(op)]
        for i, v in enumerate(op.operands):
            spec = wspec if isinstance(v.owner, WeightOp) else aspec
            if spec:
                _cast_before(op, i, spec, model)
    model.verify()
    out = root / "out"
    out.mkdir()
    model.save(out / "quantized.mlir")
    ref = Interpreter(fp32)(zm.inputs)
    quant = Interpreter(model)(zm.inputs)
    arrays = {f"input/{k}": v for k, v in zm.inputs.items()}
    arrays |= {f"fp32/{k}": v.numpy() for k, v in ref.items()}
    arrays |= {f"quantized/{k}": v.numpy() for k, v in quant.items()}
    np.savez(out / "reference.npz", **arrays)
    (out / "compile.json").write_text(json.dumps({"target": target}))
    return out, fp32, zm.inputs


@pytest.fixture(scope="module")
def built(tmp_path_factory, zoo_dir):
    return make_out(tmp_path_factory.mktemp("rv"), zoo_dir)


# ---- report -------------------------------------------------------------------------------------
def test_report_layers_and_output_match_independent_computation(built):
    out, fp32, inputs = built
    rep = report(out)
    rows = {r["name"]: r for r in rep["layers"]}
    assert set(rows) == set(PLAN)  # exactly the ops with a cast operand, nothing else
    assert [r["name"] for r in rep["layers"]] == [QUERY0, KEY0, VALUE0, SCORES0]  # op order
    assert rows[QUERY0]["weight_format"] == "int16:channel" and rows[QUERY0]["act_format"] is None
    assert rows[VALUE0]["act_format"] == "int8:token" and rows[VALUE0]["weight_bits"] == 8.0
    assert rows[SCORES0]["weight_format"] is None and rows[SCORES0]["act_format"] == "mxfp4"
    assert rows[SCORES0]["act_bits"] == parse("mxfp4").bits_per_element == 4.25
    assert rows[QUERY0]["op"] == "matmul"

    # Oracle: the layer's FP32 input from the unquantized model, times the weight quantized by hand.
    seen: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def observe(op, operands, results):
        if op.name == "graph.matmul" and node_name(op) in (QUERY0, KEY0):
            seen[node_name(op)] = (operands[0], operands[1], results[0])

    Interpreter(fp32)(inputs, observe=observe)
    for name, spec in ((QUERY0, "int16:channel"), (KEY0, "int4:channel")):
        x, w, y = seen[name]
        wq = parse(spec).quantize(w, axis=1)
        expected = _sqnr(y.numpy(), (x @ wq).numpy())
        assert rows[name]["sqnr_db"] == pytest.approx(expected, abs=0.05)
    assert rows[QUERY0]["sqnr_db"] > 80 > 30 > rows[KEY0]["sqnr_db"] > 10
    # A first-layer matmul has no upstream error: its own error is its total error.
    assert rows[QUERY0]["own_sqnr_db"] == pytest.approx(rows[QUERY0]["sqnr_db"], abs=1e-9)

    # Own error of the attention scores: FP32 q and k (the casts' inputs in the unquantized model) cast to
    # mxfp4 along their last axis by hand, multiplied, against the FP32 scores.
    scores_in: dict[str, torch.Tensor] = {}

    def observe_scores(op, operands, results):
        if op.name == "graph.matmul" and node_name(op) == SCORES0:
            scores_in.update(a=operands[0], b=operands[1], y=results[0])

    Interpreter(fp32)(inputs, observe=observe_scores)
    mx = parse("mxfp4")
    own = _sqnr(scores_in["y"].numpy(), (mx.quantize(scores_in["a"], axis=-1) @ mx.quantize(scores_in["b"], axis=-1)).numpy())
    assert rows[SCORES0]["own_sqnr_db"] == pytest.approx(own, abs=0.01)
    assert rows[SCORES0]["own_sqnr_db"] > rows[SCORES0]["sqnr_db"]  # upstream int4 keys add error

    # Model output: SQNR of the quantized IR against the FP32 model, both run by the interpreter.
    data = np.load(out / "reference.npz")
    (o,) = rep["outputs"]
    assert o["name"] == "last_hidden_state"
    assert o["sqnr_db"] == pytest.approx(_sqnr(data["fp32/last_hidden_state"], data["quantized/last_hidden_state"]), abs=1e-6)
    assert o["cosine"] == pytest.approx(_cos(data["fp32/last_hidden_state"], data["quantized/last_hidden_state"]), abs=1e-9)

    # Weight bytes from the IR (compile.json records none): FP32 vs the cast weights at their bits.
    model = Model.load(out / "quantized.mlir")
    total = sum(a.nbytes for k, a in model.weights.items() if not k.endswith(".scale"))
    scales = sum(a.nbytes for k, a in model.weights.items() if k.endswith(".scale"))
    saved = 32 * 32 * (4 - 2) + 32 * 32 * (4 - 0.5) + 32 * 32 * (4 - 1)  # int16, int4, int8 weights
    t = rep["totals"]
    assert (t["weight_bytes_fp32"], t["weight_bytes_quantized"], t["weight_bytes_source"]) == (total, total - saved + scales, "ir")

    on_disk = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in on_disk["layers"]] == [r["name"] for r in rep["layers"]]
    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_report_prefers_compile_json_weight_bytes_and_unnamed_layers(tmp_path, zoo_dir):
    out, _, _ = make_out(tmp_path, zoo_dir, {KEY0: ("int8:channel", None)})
    (out / "compile.json").write_text(json.dumps({"target": "ir", "weight_bytes": {"fp32": 1000, "quantized": 250}}))
    text = (out / "quantized.mlir").read_text().replace(f' {{graph.node = "{KEY0}"}}', "")
    assert text != (out / "quantized.mlir").read_text()
    (out / "quantized.mlir").write_text(text)
    rep = report(out, png=False)
    assert rep["totals"]["weight_bytes_fp32"] == 1000 and rep["totals"]["compression"] == 4.0
    assert [r["name"] for r in rep["layers"]] == ["matmul_1"]  # the second matmul of the module
    assert not (out / "report.png").exists()


def test_report_cli_json_and_table(built, capsys):
    out, _, _ = built
    assert main(["report", str(out), "--json", "--no-plot"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rep["layers"]] == [QUERY0, KEY0, VALUE0, SCORES0]
    assert main(["report", str(out), "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "int4:channel" in text and "last_hidden_state" in text


# ---- verify -------------------------------------------------------------------------------------
def test_verify_ir_metrics_against_numpy(built):
    out, _, _ = built
    data = np.load(out / "reference.npz")
    res = verify(out, min_cosine=0.5)
    assert res.passed and res.backend == "ir"  # "auto" reads the target from compile.json
    m = res.metrics["last_hidden_state"]
    ref, q = data["fp32/last_hidden_state"], data["quantized/last_hidden_state"]
    assert m["cosine"] == pytest.approx(_cos(ref, q), abs=1e-9)
    assert m["sqnr_db"] == pytest.approx(_sqnr(ref, q), abs=1e-6)
    assert m["rel_error"] == pytest.approx(np.linalg.norm(q - ref) / np.linalg.norm(ref), rel=1e-6)
    assert m["max_abs_error"] == pytest.approx(float(np.abs(q - ref).max()), rel=1e-6)
    assert m["exact_match"] == 1.0  # the IR backend is the interpreter
    bad = verify(out, min_sqnr=m["sqnr_db"] + 0.01, max_rel_error=m["rel_error"] * 1.01)
    assert [(c.metric, c.passed) for c in bad.checks] == [("sqnr_db", False), ("rel_error", True)]


def test_verify_exact_match_catches_a_backend_that_differs(built, tmp_path):
    out, _, _ = built
    other = tmp_path / "out"
    other.mkdir()
    for f in ("quantized.mlir", "quantized.safetensors", "compile.json"):
        (other / f).write_bytes((out / f).read_bytes())
    data = dict(np.load(out / "reference.npz"))
    q = data["quantized/last_hidden_state"].copy()
    q.reshape(-1)[: q.size // 4] += 1.0  # a quarter of the elements differ from what the IR computes
    data["quantized/last_hidden_state"] = q
    np.savez(other / "reference.npz", **data)
    res = verify(other, min_match=0.99, backend="ir")
    assert res.metrics["last_hidden_state"]["exact_match"] == pytest.approx(0.75)
    assert not res.passed and res.failures[0].metric == "exact_match"


def test_verify_cli_gates_json_and_junit(built, tmp_path, capsys):
    out, _, _ = built
    junit, js = tmp_path / "v.xml", tmp_path / "v.json"
    assert main(["verify", str(out), "--min-cosine", "0.5", "--junit", str(junit), "--json", str(js)]) == 0
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "masec verify"
    assert [c.get("name") for c in suite.iter("testcase")] == ["last_hidden_state.cosine"]
    assert suite.find("testcase/failure") is None
    assert json.loads(js.read_text())["passed"] is True
    capsys.readouterr()

    argv = ["verify", str(out), "--min-cosine", "0.5", "--min-sqnr", "200", "--max-rel-error", "1e-9",
            "--backend", "ir", "--junit", str(junit), "--json", "-"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    verdict = json.loads(captured.out)
    assert verdict["passed"] is False and len(verdict["checks"]) == 3
    failed = [line for line in captured.err.splitlines() if line.startswith("FAIL")]
    assert captured.err.splitlines()[-1] == "verify failed: 1 of 3 checks passed"
    assert len(failed) == 2 and failed[0].startswith("FAIL last_hidden_state sqnr_db ") and failed[0].endswith("< 200")
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    failing = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failing == ["last_hidden_state.sqnr_db", "last_hidden_state.rel_error"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--min-cosine", "1.5"], "--min-cosine must be in [-1, 1], not 1.5"),
    ([], "verify needs at least one threshold: --min-cosine, --min-sqnr, --max-rel-error or --min-match"),
    (["--max-rel-error", "-1"], "--max-rel-error must be >= 0, not -1"),
])
def test_verify_bad_thresholds_exit_2(built, capsys, argv, message):
    out, _, _ = built
    assert main(["verify", str(out), *argv]) == 2
    assert capsys.readouterr().err.strip() == f"masec: error: {message}"


def test_verify_missing_directory_and_reference_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope"), "--min-cosine", "0.9"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"masec: error: output directory {tmp_path / 'nope'} does not exist: pass the directory that masec compile -o wrote")
    assert main(["verify", str(tmp_path), "--min-cosine", "0.9"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"masec: error: {tmp_path / 'reference.npz'} does not exist: masec compile writes it; recompile into {tmp_path}")
    assert main(["report", str(tmp_path), "--no-plot"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"masec: error: {tmp_path / 'quantized.mlir'} does not exist: masec compile writes it; recompile into {tmp_path}")
    np.savez(tmp_path / "reference.npz", **{"input/x": np.zeros(1), "fp32/y": np.zeros(1)})
    with pytest.raises(VerifyError, match="compile.json does not exist, so the target is unknown"):
        verify(tmp_path, min_cosine=0.9)


def test_verify_runs_the_pytorch_backend_bit_exact(tmp_path, zoo_dir):
    """``auto`` runs the compile's target: the emitted model.py must reproduce the interpreter."""
    pytorch = pytest.importorskip("mase_compiler.backends.pytorch")
    out, _, _ = make_out(tmp_path, zoo_dir, PLAN, target="pytorch")
    pytorch.emit(Model.load(out / "quantized.mlir"), out)
    res = verify(out, min_cosine=0.99, min_match=1.0)
    assert res.backend == "pytorch" and res.passed
    m = res.metrics["last_hidden_state"]
    assert (m["exact_match"], m["max_abs_vs_interpreter"]) == (1.0, 0.0)


def test_compile_then_report_and_verify(tmp_path, zoo_dir):
    """The whole journey: masec compile (w8a8, pytorch), then report and verify on what it wrote."""
    pytest.importorskip("mase_compiler.backends.pytorch")
    from mase_compiler.compiler import compile

    zm = zoo.export("bert", "dynamo", cache_dir=zoo_dir)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="synthetic"):
        result = compile(zm.path, "w8a8", target="pytorch", out=out, max_samples=8)
    assert main(["verify", str(out), "--min-cosine", "0.999", "--min-match", "1"]) == 0
    rep = report(out, png=False)
    assert len(rep["layers"]) == 16 and {r["weight_format"] for r in rep["layers"]} == {"int8:channel", None}
    assert all(r["act_format"] == "uint8" for r in rep["layers"])  # the w8a8 preset's activations
    assert rep["totals"]["weight_bytes_source"] == "compile.json"
    assert rep["totals"]["weight_bytes_quantized"] == result["weight_bytes"]["quantized"]
    (o,) = rep["outputs"]
    assert o["sqnr_db"] == pytest.approx(result["outputs"]["last_hidden_state"]["sqnr_db"], abs=1e-3)
