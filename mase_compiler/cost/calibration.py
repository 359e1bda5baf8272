"""Area constants of the cost model, fitted to the Yosys numbers of masec's own RTL.

Area is counted in **LUT equivalents (LE)** of a Xilinx 7-series part: ``LE = LUT + FF / 2 + 64 DSP``.
Why: a slice holds 4 LUT6 and 8 flip-flops, so a flip-flop is half a LUT site; a DSP48E1 stands in for the
8 x 8 multiplier it implements, which as an array multiplier is 64 full-adder cells, one LUT6 (with its
carry chain) each.  The same full-adder count is the analytic model of every other product width: a
``w x a`` multiplier is ``w * a`` LE (:data:`MUL_LE_PER_BIT_PRODUCT` = 1).

The table :data:`CALIBRATION` is derived from ``bench/results/hardware_components.json`` (Yosys 0.70,
``synth_xilinx``), written by::

    .venv/bin/python bench/hardware.py --components

and printed again from that file by ``.venv/bin/python -m mase_compiler.cost.calibration``.  The rows used:

* ``masec_linear`` (int8, K=N=64) at LANES = 4 and 16: the slope is the area of one int8 MAC lane
  (:data:`lane_int8`; 1 DSP + the accumulator, lane registers and the ROM read mux);
* ``masec_linear`` at its defaults (K=16, N=8, LANES=4) against K=N=64, LANES=4: the slope per weight bit
  (``masec_linear`` keeps its weights in LUT ROMs) and the per-layer base (requantizer, control);
* ``masec_mx_linear`` (mxint8 both operands, K=64, N=8, B=32, LANES=4) against the int8 model at the same
  size: the MX alignment of each lane (block partial sum shifted into the 32-bit accumulator, rounded);
* ``masec_mxint8_dot`` (one 32-element block dot): its LE beyond the 32 products is the per-block exponent
  unit (E8M0 add and shift) of a block-parallel MX dot;
* ``masec_mac_lane``: one 8 x 8 lane is exactly one DSP (checks the 64-LE equivalence's premise).

``masec_linear`` at LANES=1 (3,107 LUT) is an outlier the fit leaves out: with one lane Yosys maps the
weight ROM as one wide mux rather than per-lane ROMs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["CALIBRATION", "DSP_LE", "FF_LE", "MUL_LE_PER_BIT_PRODUCT", "derive", "le", "load_components"]

DSP_LE = 64.0  # one DSP48E1 = the 64 full-adder cells of the 8x8 product it replaces
FF_LE = 0.5  # 8 FF and 4 LUT6 per slice
MUL_LE_PER_BIT_PRODUCT = 1.0  # analytic: one full-adder cell (LUT6 + carry) per partial-product bit

# Derived by derive() from bench/results/hardware_components.json (Yosys 0.70 synth_xilinx, 2026-11-24).
CALIBRATION: dict[str, float] = {
    "lane_int8": 148.25,  # LE of one int8 MAC lane (masec_linear LANES 4 -> 16)
    "lane_overhead": 84.25,  # lane_int8 minus its 8x8 multiplier (accumulator, registers, read mux)
    "rom_per_bit": 0.059003,  # LE per stored weight bit (masec_linear K,N 16x8 -> 64x64)
    "layer_base": 848.08,  # LE per linear layer: requantizer, bias, control
    "mx_lane_align": 356.05,  # extra LE per MX lane: block alignment into the 32-bit accumulator
    "mx_block_exp": 41.5,  # LE of the per-block exponent unit of a block-parallel MX dot (masec_mxint8_dot)
}

_JSON = Path(__file__).resolve().parents[2] / "bench" / "results" / "hardware_components.json"


def le(row: Mapping[str, object]) -> float:
    """LUT equivalents of one Yosys row."""
    return float(row["luts"]) + FF_LE * float(row["flip_flops"]) + DSP_LE * float(row["dsp"])  # type: ignore[arg-type]


def load_components(path: Path | None = None) -> list[dict] | None:
    """The component rows of the Yosys JSON, or None where the file is absent (a fresh checkout)."""
    p = path or _JSON
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def _row(rows: Sequence[Mapping], component: str, **params: int) -> Mapping:
    for r in rows:
        if r["component"] == component and dict(r.get("params") or {}) == params:
            return r
    raise KeyError(f"hardware_components.json has no {component} row with params {params}")


def derive(rows: Sequence[Mapping]) -> dict[str, float]:
    """The :data:`CALIBRATION` table from Yosys rows (see the module docstring for which and why)."""
    lin4, lin16 = _row(rows, "masec_linear", K=64, N=64, LANES=4), _row(rows, "masec_linear", K=64, N=64, LANES=16)
    small = _row(rows, "masec_linear")  # defaults K=16, N=8, LANES=4
    lane = (le(lin16) - le(lin4)) / 12
    rom = (le(lin4) - le(small)) / ((64 * 64 - 16 * 8) * 8)
    base = le(small) - 4 * lane - rom * 16 * 8 * 8
    mx = _row(rows, "masec_mx_linear")  # defaults K=64, N=8, B=32, LANES=4, mxint8 x mxint8
    int8_same = base + 4 * lane + rom * (64 * 8 * 8 + 64 * 8 // 32 * 8)  # int8 layer with the MX ROM (codes + E8M0)
    dot = _row(rows, "masec_mxint8_dot")
    return {
        "lane_int8": round(lane, 6),
        "lane_overhead": round(lane - MUL_LE_PER_BIT_PRODUCT * 64, 6),
        "rom_per_bit": round(rom, 6),
        "layer_base": round(base, 2),
        "mx_lane_align": round((le(mx) - int8_same) / 4, 2),
        "mx_block_exp": round(le(dot) - 32 * DSP_LE, 2),
    }


if __name__ == "__main__":
    found = load_components(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    if found is None:
        sys.exit(f"{_JSON} does not exist: run .venv/bin/python bench/hardware.py --components first")
    for key, value in derive(found).items():
        print(f'    "{key}": {value},')
