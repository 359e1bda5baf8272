"""`masec compile` end to end: every preset on all-MiniLM-L6-v2 and a tiny LLaMA, to PyTorch and
ONNX, with the emitted models run and compared with the interpreter; and the error paths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mase_compiler import zoo
from mase_compiler.backends import backend
from mase_compiler.compiler import compile
from mase_compiler.metrics import compare
from mase_compiler.pipeline import PRESETS, PipelineError

MODELS = ("minilm", "llama")


@pytest.fixture(scope="module")
def calib_npz(zoo_dir, tmp_path_factory):
    """Calibration inputs per model: 4 samples of 12 tokens."""
    d = tmp_path_factory.mktemp("calib")
    paths = {}
    for name in MODELS:
        z = zoo.export(name, "dynamo", cache_dir=zoo_dir)
        inputs = zoo.inputs(name, seed=5, batch=4, seq=12)
        paths[name] = (z.path, d / f"{name}.npz")
        np.savez(paths[name][1], **inputs)
    return paths


def _interpreter_outputs(out) -> dict[str, np.ndarray]:
    with np.load(out / "reference.npz") as ref:
        return {k.removeprefix("quantized/"): ref[k] for k in ref.files if k.startswith("quantized/")}


def test_hardware_presets_are_refused_by_float_targets(calib_npz, tmp_path):
    """hw-int8 lowers to integer kernels (tests/test_hw_examples.py runs them on --target sv / hls)."""
    from mase_compiler.backends import BackendError

    source, calib = calib_npz[MODELS[0]]
    with pytest.raises((BackendError, ValueError), match="dataflow|integer"):
        compile(source, "hw-int8", "pytorch", tmp_path / "out", calib=calib, batch_size=2)
    assert not (tmp_path / "out").exists()


def _inputs(out) -> dict[str, np.ndarray]:
    with np.load(out / "reference.npz") as ref:
        return {k.removeprefix("input/"): ref[k] for k in ref.files if k.startswith("input/")}


@pytest.mark.parametrize("target", ["pytorch", "onnx"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("preset", sorted(p for p, (text, _) in PRESETS.items() if "lower-dataflow" not in text))
def test_every_preset_compiles_runs_and_matches_the_interpreter(calib_npz, tmp_path, preset, model, target):
    source, calib = calib_npz[model]
    out = tmp_path / "out"
    if (preset, model) == ("mx4-search", "llama"):
        # The tiny LLaMA's 8-wide heads and 12-token sequences are shorter than an MX block of 32, so every
        # attention operand is stored padded (as encode packs it): 4.5 bits per element is out of reach, and
        # the search says so in one line, with the floor, before writing anything.
        with pytest.raises(PipelineError, match=r"budget average bits must be at least 6\.\d+ .*, not 4\.5"):
            compile(source, preset, target, out, calib=calib, batch_size=2)
        assert not out.exists()
        return
    result = compile(source, preset, target, out, calib=calib, batch_size=2)
    assert json.loads((out / "compile.json").read_text())["expanded_pipeline"] == result["expanded_pipeline"]
    want = _interpreter_outputs(out)
    got = backend(target).run(out, _inputs(out))
    assert set(got) == set(want)
    for name, w in want.items():
        g = got[name].detach().cpu().numpy()
        if target == "pytorch":  # same arithmetic as the interpreter, bit for bit
            np.testing.assert_array_equal(g, w)
        else:
            # Every cast exports bit-exactly (tests/test_backend_onnx.py); ONNX Runtime's float kernels (GEMM
            # accumulation order, Erf, Softmax) differ from torch's by ~1e-7, which flips a few rounding decisions
            # (a whole MX block when its max sits at a power of two) and six layers amplify that.  So: close to the
            # interpreter, and exactly as far from FP32 as the interpreter is.
            m = compare(torch.from_numpy(w), torch.from_numpy(g))
            ref = torch.from_numpy(np.load(out / "reference.npz")[f"fp32/{name}"])
            lost_ort = 1 - compare(ref, torch.from_numpy(g))["cosine"]
            lost_interp = 1 - compare(ref, torch.from_numpy(w))["cosine"]
            assert m["cosine"] > 1 - max(0.002, 0.1 * lost_interp), (m, lost_interp)  # flips scale with the step size
            assert abs(lost_ort - lost_interp) <= 0.1 * lost_interp + 1e-6, (lost_ort, lost_interp)
    # Quantization happened and cost accuracy, but not all of it.
    fp32 = result["outputs"]
    assert all(0.5 < v["cosine"] < 1.0 for v in fp32.values()), fp32


def test_weight_bytes_follow_the_format(calib_npz, tmp_path):
    source, calib = calib_npz["llama"]
    sizes = {}
    # The tiny LLaMA's reduction dims are 32 and 64: int4 groups of 32 (w4a16's 128 would be one ragged group).
    for key, pipeline in (("w8a8", "w8a8"), ("mxfp4", "mxfp4"), ("int4", 'quantize{w="int4:group=32"}')):
        r = compile(source, pipeline, "pytorch", tmp_path / key, calib=calib)
        sizes[key] = r["weight_bytes"]["quantized"] / r["weight_bytes"]["fp32"]
    assert sizes["mxfp4"] < sizes["int4"] < sizes["w8a8"] < 1.0, sizes


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mase_compiler.cli", "compile", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["-p", "w8a9"], "unknown pass or preset 'w8a9'; did you mean w8a8"),
    (["-p", "quantize{w=int8:chanel}"], "cannot parse pipeline"),
    (["-p", 'quantize{w="int8:chanel"}'], "chanel"),
    (["-p", 'quantize{default="mxfp5"}'], "mxfp5"),
    (["-p", "w8a8", "--calib", "missing.npz"], "missing.npz"),
    (["-p", "w8a8", "--target", "onnxx"], "unknown target 'onnxx'; did you mean onnx"),
    (["-p", "w8a8", "--max-samples", "0"], "max_samples must be a positive integer"),
])
def test_bad_input_one_line_error_and_no_output(calib_npz, tmp_path, args, message):
    source, _ = calib_npz["llama"]
    out = tmp_path / "out"
    res = _cli(str(source), "-o", str(out), *[a.replace("missing.npz", str(tmp_path / "missing.npz")) for a in args])
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("masec: warning:")]
    assert len(lines) == 1 and lines[0].startswith("masec: error:"), res.stderr
    assert message in lines[0], lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_text_calibration_needs_a_tokenizer(calib_npz, tmp_path):
    source, _ = calib_npz["minilm"]
    (tmp_path / "calib.txt").write_text("A sentence to calibrate on.\nAnother one.\n")
    res = _cli(str(source), "-p", "w8a8", "--calib", str(tmp_path / "calib.txt"), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and "--tokenizer" in res.stderr and not (tmp_path / "out").exists()


def test_calibration_keys_must_match_the_model(calib_npz, tmp_path):
    source, _ = calib_npz["llama"]
    np.savez(tmp_path / "wrong.npz", tokens=np.zeros((2, 4), np.int64))
    res = _cli(str(source), "-p", "w8a8", "--calib", str(tmp_path / "wrong.npz"), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and "input_ids" in res.stderr and not (tmp_path / "out").exists()


def test_output_that_is_not_a_masec_directory_is_refused(calib_npz, tmp_path):
    source, calib = calib_npz["llama"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    res = _cli(str(source), "-p", "mxfp4", "--calib", str(calib), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and "not a masec output directory" in res.stderr
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_recompiling_replaces_a_previous_output(calib_npz, tmp_path):
    source, calib = calib_npz["llama"]
    compile(source, "mxfp4", "pytorch", tmp_path / "out", calib=calib)
    compile(source, "mxint8", "pytorch", tmp_path / "out", calib=calib)
    assert "mxint8" in json.loads((tmp_path / "out" / "compile.json").read_text())["expanded_pipeline"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_summary_time_passes_and_ir_printing(calib_npz, tmp_path):
    source, calib = calib_npz["llama"]
    res = _cli(str(source), "-p", "w8a8", "--calib", str(calib), "-o", str(tmp_path / "out"),
               "--time-passes", "--print-ir-after-all")
    assert res.returncode == 0, res.stderr
    assert "IR after calibrate" in res.stderr and "IR after quantize" in res.stderr and "quant.stats" in res.stderr
    assert "pass timings" in res.stdout and "quant.cast +" in res.stdout and "last_hidden_state" in res.stdout


def test_stats_are_printable_from_a_compile_output(calib_npz, tmp_path):
    source, calib = calib_npz["llama"]
    compile(source, "calibrate{method=minmax},quantize{w=\"int8:channel\" a=int8}", "pytorch", tmp_path / "out", calib=calib)
    res = subprocess.run([sys.executable, "-m", "mase_compiler.cli", "stats", str(tmp_path / "out"), "--json"],
                         capture_output=True, text=True)
    rows = json.loads(res.stdout)
    assert res.returncode == 0 and rows and all(r["method"] == "minmax" for r in rows)
    first = rows[0]  # min-max calibration: the range is the raw range
    assert first["lo"] == first["min"] and first["hi"] == first["max"] and first["batches"] == 1
