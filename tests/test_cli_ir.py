"""`masec import / opt / run` end to end, with ONNX Runtime as the oracle, and their error paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mase_compiler.cli import main


def _mlp_onnx(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
        helper.make_node("Relu", ["hb"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 4])],
        [w1, b1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_import_opt_run_matches_onnxruntime(tmp_path, capsys):
    onnx_path = _mlp_onnx(tmp_path / "mlp.onnx")
    rc, _, _ = _cli(capsys, "import", onnx_path, "-o", tmp_path / "ir" / "mlp.mlir")
    assert rc == 0
    mlir = tmp_path / "ir" / "mlp.mlir"
    assert mlir.exists() and (tmp_path / "ir" / "mlp.safetensors").exists()
    text = mlir.read_text()
    assert "graph.matmul" in text and "graph.softmax" in text and 'graph.name = "probs"' in text
    # opt round-trips what it prints (empty pipeline and a real one).
    rc, printed, _ = _cli(capsys, "opt", mlir)
    assert rc == 0 and printed == text
    rc, _, _ = _cli(capsys, "opt", mlir, "-p", "cse,dce", "-o", tmp_path / "opt" / "mlp.mlir")
    assert rc == 0
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    rc, out, _ = _cli(capsys, "run", tmp_path / "opt" / "mlp.mlir", "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz")
    assert rc == 0 and "probs" in out
    got = np.load(tmp_path / "out.npz")["probs"]
    want = ort.InferenceSession(str(onnx_path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Running the .onnx directly gives the same result.
    rc, _, _ = _cli(capsys, "run", onnx_path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out2.npz")
    assert rc == 0 and np.array_equal(np.load(tmp_path / "out2.npz")["probs"], got)


def test_import_python_factory(tmp_path, capsys):
    src = tmp_path / "net.py"
    src.write_text(
        "import torch\n"
        "def factory():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.GELU()).eval(), (torch.randn(2, 8),)\n"
    )
    rc, text, _ = _cli(capsys, "import", f"{src}:factory")
    assert rc == 0 and "graph.gelu" in text and "graph.weight" in text


def _truncated(tmp_path: Path) -> Path:
    good = _mlp_onnx(tmp_path / "good.onnx").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(good[: len(good) // 2])
    return bad


def _old_opset(tmp_path: Path) -> Path:
    m = onnx.load(_mlp_onnx(tmp_path / "g.onnx"))
    m.opset_import[0].version = 11
    p = tmp_path / "opset11.onnx"
    onnx.save(m, p)
    return p


def _missing_initializer(tmp_path: Path) -> Path:
    m = onnx.load(_mlp_onnx(tmp_path / "g2.onnx"))
    del m.graph.initializer[2]  # w2
    p = tmp_path / "missing.onnx"
    onnx.save(m, p)
    return p


@pytest.mark.parametrize("make, needle", [
    (_truncated, "truncated"),
    (_old_opset, "opset"),
    (_missing_initializer, "w2"),
])
def test_malformed_onnx_one_line_error_and_no_output(tmp_path, make, needle):
    bad = make(tmp_path)
    out = tmp_path / "out" / "m.mlir"
    res = subprocess.run([sys.executable, "-m", "mase_compiler.cli", "import", str(bad), "-o", str(out)],
                         capture_output=True, text=True)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("masec: error:"), res.stderr
    assert needle in lines[0].lower()
    assert not out.exists() and not out.with_suffix(".safetensors").exists()


def test_bad_pipeline_and_inputs(tmp_path, capsys):
    mlir = tmp_path / "mlp.mlir"
    assert _cli(capsys, "import", _mlp_onnx(tmp_path / "mlp.onnx"), "-o", mlir)[0] == 0
    rc, _, err = _cli(capsys, "opt", mlir, "-p", "cse,dcee", "-o", tmp_path / "o.mlir")
    assert rc == 2 and "dcee" in err and "dce" in err and not (tmp_path / "o.mlir").exists()
    np.savez(tmp_path / "wrong.npz", y=np.zeros((3, 8), np.float32))
    rc, _, err = _cli(capsys, "run", mlir, "--inputs", tmp_path / "wrong.npz", "-o", tmp_path / "o.npz")
    assert rc == 2 and "missing x" in err and not (tmp_path / "o.npz").exists()


def test_opt_rejects_invalid_ir(tmp_path, capsys):
    bad = tmp_path / "bad.mlir"
    bad.write_text(
        "builtin.module {\n  func.func @main(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {\n"
        "    %y = graph.transpose %x {perm = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>\n"
        "    func.return %y : tensor<3x2xf32>\n  }\n}\n"
    )
    rc, _, err = _cli(capsys, "opt", bad)
    assert rc == 2 and "'graph.transpose' op expected perm to be a permutation" in err
    assert len(err.strip().splitlines()) == 1


def test_pass_registry_keys_are_pass_names_and_listed(capsys):
    import json

    from mase_compiler.pipeline import PASSES

    for key, factory in PASSES.items():
        assert factory().name == key
    rc, out, _ = _cli(capsys, "passes", "--json")
    listed = json.loads(out)
    assert rc == 0 and [r["name"] for r in listed["passes"]] == sorted(PASSES)
    assert {"w8a8", "fp8", "mxfp8", "mxfp6", "mxfp4", "mxint8", "w4a16"} <= {p["name"] for p in listed["presets"]}


def test_weight_store_keeps_rank_zero_shapes(tmp_path):
    from mase_compiler.weights import WeightStore

    store = WeightStore({"s": np.ones((), np.float32) * 3, "v": np.arange(3, dtype=np.int64)})
    store.save(tmp_path / "w.safetensors")
    back = WeightStore.load(tmp_path / "w.safetensors")
    assert back["s"].shape == () and float(back["s"]) == 3.0 and back["v"].tolist() == [0, 1, 2]
