"""Area and latency of an emitted hardware design, per layer: ``masec synth`` and ``masec report``.

``synth(out)`` runs Yosys (:mod:`mase_compiler.backends.sv._yosys`) on every kernel of a
``--target sv`` output with the parameters and memories the emitter gave it, and on the whole
``top``; the difference between the top and the sum of its kernels is the wiring (broadcasts,
FIFOs, width adapters).  It writes ``out/synth.json``: the numbers the mixed-precision search's
cost model (issue 7) reads.  ``masec sim`` writes ``out/sim.json`` (measured cycles per
inference).  ``hardware_report(out)`` joins them with the manifest's cycle model: one row per
kernel with its source layer, shape, lanes, modelled cycles per item and area.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

AREA_KEYS = ("luts", "flip_flops", "dsp", "bram", "lutram", "carry", "multipliers")


def _param_value(text: str | int) -> int | str:
    """An SV parameter literal of the emitter (``1'b1``, ``-5``, ``64'sd7``, ``"w.mem"``) as a Python value."""
    if isinstance(text, int):
        return text
    text = text.strip()
    if text.startswith('"'):
        return text.strip('"')
    if text == "(-2147483647 - 1)":
        return -(2**31)
    m = re.fullmatch(r"(-?)(?:\d+'s?([bdh]))?(\w+)", text)
    if m is None:
        raise ValueError(f"cannot read the SV parameter value {text!r}")
    v = int(m.group(3), {"b": 2, "h": 16}.get(m.group(2) or "d", 10))
    return -v if m.group(1) else v


def synth(out, target: str = "xilinx", timeout: float = 600) -> dict:
    """Synthesize every kernel of the design in ``out`` and its top; write and return ``out/synth.json``."""
    from mase_compiler.backends.sv import _yosys

    out = Path(out)
    manifest = json.loads((out / "manifest.json").read_text())
    files = [out / f for f in manifest["design_files"]]
    nodes = {}
    for node in manifest["nodes"]:
        params = {k: _param_value(v) for k, v in node["params"].items()}
        nodes[node["name"]] = _yosys.synthesize(files, node["module"], params, target, libdir=None, timeout=timeout)
    top = _yosys.synthesize(files, manifest["top"], None, target, libdir=None, timeout=timeout)
    wiring = {k: top.get(k, 0) - sum(n.get(k, 0) for n in nodes.values()) for k in AREA_KEYS}
    result = dict(target=target, yosys=top.get("yosys"), top={k: top.get(k, 0) for k in AREA_KEYS},
                  wiring=wiring, nodes={n: {k: r.get(k, 0) for k in AREA_KEYS} for n, r in nodes.items()},
                  seconds=round(sum(r.get("seconds", 0) for r in [*nodes.values(), top]), 1))
    (out / "synth.json").write_text(json.dumps(result, indent=1))
    return result


def hardware_report(out) -> dict:
    """Rows per kernel (layer, kernel, shapes, lanes, modelled cycles, area when synthesized) and totals."""
    out = Path(out)
    manifest = json.loads((out / "manifest.json").read_text())
    area = json.loads((out / "synth.json").read_text()) if (out / "synth.json").is_file() else None
    sim = json.loads((out / "sim.json").read_text()) if (out / "sim.json").is_file() else None
    rows = []
    for n in manifest["nodes"]:
        row = dict(layer=n["source"], kernel=n["kind"], shape=f"{n['shape_in']} -> {n['shape_out']}", lanes=n["lanes"],
                   cycles=n["cycles"])
        if area:
            row.update(area["nodes"].get(n["name"], {}))
        rows.append(row)
    totals = dict(bottleneck_cycles=manifest["bottleneck_cycles"], kernels=len(rows),
                  fifo_words=sum(f["depth"] for f in manifest.get("fifos", [])))
    if area:
        totals.update(area=area["top"], wiring=area["wiring"], target=area["target"])
    if sim:
        totals.update(measured_cycles=sim.get("cycles"), latency=sim.get("latency"), sim_passed=sim.get("passed"))
    return dict(rows=rows, totals=totals)


__all__ = ["AREA_KEYS", "hardware_report", "synth"]
