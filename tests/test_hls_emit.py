"""HLS C++ emission of a lowered integer MLP (backends/hls/_emit.py), C-simulated with g++:
the generated layer functions reproduce the interpreter's hardware-exact kernels bit for bit,
a deliberately wrong requantizer (a copied header edited to round half away) is caught, and
models outside the supported pattern are refused with one line.

Skips the C-simulations cleanly when g++ is missing.
"""

from __future__ import annotations

import re

import time

import numpy as np
import pytest

from mase_compiler.backends import BackendError
from mase_compiler.backends.hls import _emit, _gxx
from mase_compiler.interpreter import Interpreter

# x -> fc1(16->8) + relu -> fc2(8->4), lowered to dataflow.linear, and its variants
from _hw_models import _lowered, cli, cli_compile, inputs, with_softmax, with_ties, with_zero_points

needs_gxx = pytest.mark.skipif(_gxx.find_gxx() is None, reason="g++ is not installed")

EVEN = "case Round::Even: up = half > 0 || (half == 0 && (q & 1) != 0); break;"
AWAY = "case Round::Even: up = half > 0 || (half == 0 && x >= 0); break;"


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """The lowered MLP emitted with 32 random input vectors: (model, inputs, out folder, manifest)."""
    tmp = tmp_path_factory.mktemp("hls_mlp")
    _, hw = _lowered(tmp)
    x = inputs(32, seed=11)
    out = tmp / "out"
    return hw, x, out, _emit.emit(hw, out, inputs=x)


def test_emission_is_self_contained_and_golden_is_the_interpreter(mlp):
    hw, x, out, man = mlp
    for name in ("model.cpp", "tb.cpp", "masec_int.h", "masec_ops.h", "manifest.json", "vectors/in.txt",
                 "vectors/golden.txt"):
        assert (out / name).is_file(), name
    assert [n["kind"] for n in man["nodes"]] == ["linear", "linear"]
    assert man["vectors"] == 32 and man["out_per_vector"] == 4
    src = (out / "model.cpp").read_text()
    assert '#include "masec_ops.h"' in src and "void masec_top(" in src
    assert src.count("masec::linear<1, 16, 8, true>(") == 1 and src.count("masec::linear<1, 8, 4, false>(") == 1
    assert "_w[128]" in src and "_m[8]" in src and "_s[8]" in src  # weights output-channel major, per-channel M, S
    assert "#pragma HLS DATAFLOW" in src and "#pragma HLS PIPELINE" in (out / "masec_ops.h").read_text()
    # in.txt = the codes after dataflow.quantize; golden.txt = the last linear's int32 accumulators
    seen = {}
    y = Interpreter(hw)({"x": x}, observe=lambda op, ins, outs: seen.setdefault(op.name, outs[0]))["y"].numpy()
    codes = np.loadtxt(out / "vectors" / "in.txt", dtype=np.int64)
    assert np.array_equal(codes, seen["dataflow.quantize"].numpy().astype(np.int64))
    gold = np.loadtxt(out / "vectors" / "golden.txt", dtype=np.int64)
    assert gold.shape == (32, 4)
    assert np.array_equal(gold.astype(np.float32) * np.asarray(hw.weights["w2.acc_scale"], np.float32), y)


@needs_gxx
def test_mlp_matches_the_interpreter_bit_for_bit(mlp, record_property):
    t0 = time.perf_counter()
    res = _emit.run(mlp[2])
    dt = time.perf_counter() - t0
    assert res["passed"] and res["mismatches"] == 0 and res["outputs"] == res["expected"] == 32 * 4, res
    assert res["first_mismatch"] is None
    record_property("csim_seconds", dt)
    print(f"\nHLS MLP 16->8->4 C-simulation (g++ build + run): {dt:.2f} s, 128 of 128 outputs bit-exact")


@needs_gxx
def test_generated_code_is_clean_under_stricter_warnings(mlp):
    out = mlp[2]
    exe = _gxx.compile_cpp(out / "tb.cpp", out / "tb_strict", include_dirs=[out],
                           # not -Wsign-conversion: g++ 12 flags every `T x[N]` parameter sized by an int template parameter
                           extra_flags=(*_emit.CFLAGS, "-Wconversion", "-Wpedantic", "-Wshadow"))
    _gxx.run_exe(exe, [str(out / "vectors" / "in.txt"), str(out / "vectors" / "strict.txt")])
    assert (out / "vectors" / "strict.txt").read_text() == (out / "vectors" / "golden.txt").read_text()


@needs_gxx
def test_zero_points_and_per_layer_bounds(tmp_path):
    """Nonzero zero points on both sides of the hidden codes and a narrower clamp: still bit-exact."""
    _, hw = _lowered(tmp_path)
    odd = with_zero_points(hw)
    _emit.emit(odd, tmp_path / "out", inputs=inputs(32, seed=5))
    src = (tmp_path / "out" / "model.cpp").read_text()
    assert "nullptr, -5, 9, -100, 90);" not in src and ", -5, 9, -100, 90);" in src  # zp_in, zp_out, lo, hi
    assert ", 9, 0, (-2147483647 - 1)" not in src
    res = _emit.run(tmp_path / "out")
    assert res["passed"] and res["outputs"] == 128, res


@pytest.fixture(scope="module")
def ties(tmp_path_factory):
    """Layer 1 with M/2^S = 2^-7 exactly: ties are common, so half away differs from half to even."""
    tmp = tmp_path_factory.mktemp("hls_ties")
    _, hw = _lowered(tmp)
    x = inputs(256, seed=3)
    hw = with_ties(hw, x)
    out = tmp / "out"
    _emit.emit(hw, out, inputs=x)
    return out


@needs_gxx
def test_wrong_rounding_in_the_header_is_caught(ties):
    """The output folder's header copied and edited so that MASEC_ROUNDING_HALF_AWAY makes
    the kernels' half-to-even round half away (as tests/test_hls_int.py's mutants do)."""
    assert _emit.run(ties)["passed"]
    header = ties / "masec_ops.h"
    text = header.read_text()
    assert text.count(EVEN) == 1, "the mutated line moved; update EVEN"
    header.write_text(text.replace(EVEN, "\n#ifdef MASEC_ROUNDING_HALF_AWAY\n" + AWAY + "\n#else\n" + EVEN + "\n#endif\n"))
    try:
        assert _emit.run(ties)["passed"]  # the edited header, without the define: still correct
        broken = _emit.run(ties, defines={"MASEC_ROUNDING_HALF_AWAY": 1})
    finally:
        header.write_text(text)
    assert not broken["passed"] and broken["mismatches"] > 0 and broken["first_mismatch"] is not None, broken
    assert broken["outputs"] == broken["expected"] == 256 * 4
    fm = broken["first_mismatch"]
    assert fm["expected"] != fm["got"] and fm["vector"] == fm["index"] // 4


@needs_gxx
def test_wrong_rounding_macro_is_caught(ties):
    """MASEC_ROUND, the emitted code's rounding mode, set to half away: mismatches too."""
    broken = _emit.run(ties, defines={"MASEC_ROUND": "masec::Round::Away"})
    assert not broken["passed"] and broken["mismatches"] > 0, broken


def test_non_lowered_model_is_refused(tmp_path):
    fake, _ = _lowered(tmp_path)
    with pytest.raises(BackendError) as e:
        _emit.emit(fake, tmp_path / "out")
    assert str(e.value) == ("the hardware backends take integer dataflow kernels only; "
                            "lower the model with lower-dataflow first, found quant.cast")
    assert not (tmp_path / "out").exists()


def test_unsupported_op_after_the_chain_is_named(tmp_path):
    _, hw = _lowered(tmp_path)
    bad = with_softmax(hw)
    with pytest.raises(BackendError, match=r"^the hardware backends take integer dataflow kernels only; "
                                           r"lower the model with lower-dataflow first, found graph.softmax$"):
        _emit.emit(bad, tmp_path / "out")


def test_cli_compile_for_hls_then_csim(tmp_path):
    """The user journey: masec compile --target hls, then masec sim --csim (exit 0, PASS)."""
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    res, out = cli_compile(tmp_path, "hls")
    assert res.returncode == 0, res.stderr
    res = cli("sim", str(out), "--csim")
    assert res.returncode == 0 and re.match(r"PASS: (\d+) of \1 outputs", res.stdout), res.stdout + res.stderr
