"""The ``masec`` command: each subcommand is a thin layer over the Python
function of the same name, printing a table for people or JSON for machines.

Errors the user can fix (bad format specs, bad options) print one line,
``masec: error: …``, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

from . import __version__


def _number(v: object) -> str:
    if not isinstance(v, float):
        return str(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.4g}"
    return f"{v:g}"


def _print_table(title: str, rows: list[dict[str, object]], columns: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for key, header in columns:
        numeric = all(isinstance(row[key], (int, float)) for row in rows)
        table.add_column(header, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_number(row[key]) for key, _ in columns))
    # Off a terminal (pipes, CI logs) rich would wrap at 80 columns; give tables room instead.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _dump(rows: object) -> None:
    from .jsonout import dumps

    sys.stdout.write(dumps(rows))


def cmd_formats(args: argparse.Namespace) -> int:
    if args.errors:
        return _format_errors(args)
    from .formats import formats

    rows = formats(args.spec) if args.spec else formats()
    if args.json:
        _dump(rows)
        return 0
    for row in rows:
        unit = " × scale" if row["units"] == "scale" else ""
        row["range"] = f"[{_number(row['min'])}, {_number(row['max'])}]{unit}"
        row["smallest"] = _number(row["min_subnormal"]) + unit
    _print_table(
        "masec number formats",
        rows,
        [("spec", "format"), ("family", "family"), ("bits_per_element", "bits/elem"), ("range", "range"),
         ("smallest", "smallest > 0"), ("scale", "shared scale")],
    )
    return 0


def _format_errors(args: argparse.Namespace) -> int:
    from .format_errors import format_errors

    rows = format_errors(args.spec) if args.spec else format_errors()
    if args.json:
        _dump(rows)
        return 0
    _print_table(
        "Quantization error of built-in tensors (SQNR: higher is better)",
        rows,
        [("format", "format"), ("tensor", "tensor"), ("bits_per_element", "bits/elem"), ("sqnr_db", "SQNR dB"),
         ("rel_rmse", "rel. RMSE"), ("flushed", "flushed to 0")],
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    demo(presets=args.presets.split(","), out_dir=args.output, json_out=args.json)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .driver import import_model

    model = import_model(args.model)
    if args.output:
        model.save(args.output)
        print(f"wrote {args.output} ({len(model.weights)} weights, {model.weights.nbytes / 1e6:.1f} MB)", file=sys.stderr)
    else:
        sys.stdout.write(model.text(generic=args.generic))
    return 0


def cmd_opt(args: argparse.Namespace) -> int:
    from .driver import import_model, opt

    model = opt(import_model(args.model), args.pipeline)
    if args.output:
        model.save(args.output)
    else:
        sys.stdout.write(model.text(generic=args.generic))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .driver import import_model, load_inputs, run, save_outputs

    model = import_model(args.model)
    outputs = run(model, load_inputs(args.inputs), device=args.device)
    save_outputs(outputs, args.output)
    if args.json:
        _dump({k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in outputs.items()})
    else:
        for k, v in outputs.items():
            print(f"{k}: {str(v.dtype).removeprefix('torch.')}{list(v.shape)}")
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    from .pipeline import passes, presets

    rows = passes()
    if args.json:
        _dump({"passes": rows, "presets": presets()})
        return 0
    for r in rows:
        r["opts"] = " ".join(f"{o['name']}={_option_default(o['default'])}" for o in r["options"]) or "-"
    _print_table("masec passes (pipeline syntax: pass{opt=value other=value},next)", rows,
                 [("name", "pass"), ("opts", "options (defaults)"), ("summary", "what it does")])
    _print_table("masec presets (a preset name stands for its pipeline: -p w8a8, or -p 'w8a8,dce')", presets(),
                 [("name", "preset"), ("pipeline", "pipeline"), ("summary", "what it does")])
    return 0


def _option_default(v: object) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v)) or "()"
    return repr(v) if v == "" else str(v)


def cmd_compile(args: argparse.Namespace) -> int:
    import warnings

    from .compiler import compile

    def show_ir(name: str, text: str) -> None:
        sys.stderr.write(f"// -----// IR after {name} //----- //\n{text}\n")

    def warn(message, category, filename, lineno, file=None, line=None):  # one line, no source excerpt
        print(f"masec: warning: {message}", file=sys.stderr)

    warnings.showwarning = warn
    result = compile(
        args.model, args.pipeline or ("hw-int8" if args.target in ("sv", "hls") else "w8a8"), args.target, args.output,
        calib=args.calib, tokenizer=args.tokenizer,
        max_samples=args.max_samples, batch_size=args.batch_size, seq_len=args.seq_len, progress=not args.json and sys.stderr.isatty(),
        print_ir_after_all=show_ir if args.print_ir_after_all else None,
    )
    if args.json:
        _dump(result)
        return 0
    if args.time_passes:
        rows = [{"pass": r["pass"], "seconds": round(r["seconds"], 4), "changed": _changes(r)} for r in result["passes"]]
        _print_table("pass timings", rows, [("pass", "pass"), ("seconds", "seconds"), ("changed", "what changed")])
    b = result["weight_bytes"]
    print(f"compiled {args.model} with '{result['expanded_pipeline']}' for {args.target} into {args.output}")
    weights = f"weights: {b['quantized'] / 1e6:.2f} MB vs {b['fp32'] / 1e6:.2f} MB FP32 ({b['quantized'] / b['fp32']:.3f} of FP32); " \
        if b["fp32"] and b["quantized"] else ""
    print(f"{weights}calibration: {result['calibration']['source']}; {result['seconds']['total']:.1f} s")
    if args.target in ("sv", "hls"):
        csim = " --csim" if args.target == "hls" else ""
        print(f"simulate it bit for bit against the interpreter: masec sim {args.output}{csim}")
    rows = [{"output": k, **v} for k, v in result["outputs"].items()]
    if rows:
        _print_table("outputs vs FP32 on the reference batch (interpreter)", rows,
                     [("output", "output"), ("cosine", "cosine"), ("sqnr_db", "SQNR dB"), ("rel_rmse", "rel. RMSE"),
                      ("max_abs_error", "max |err|")])
    return 0


def _changes(record: dict) -> str:
    parts = [f"{k} {v:+d}" for k, v in record["ops_changed"].items()]
    if record["weights_added"]:
        parts.append(f"+{record['weights_added']} weights")
    parts += [f"{k}={v}" for k, v in record["notes"].items() if isinstance(v, (int, float, str))]
    return ", ".join(parts) or "-"


def cmd_train(args: argparse.Namespace) -> int:
    from .train.cli import train_command

    res = train_command(args.model, args.pipeline, args.out, data=args.data, tokenizer=args.tokenizer, steps=args.steps,
                        lr=args.lr, seed=args.seed, resume=args.resume, checkpoint_every=args.checkpoint_every,
                        batch_size=args.batch_size, max_samples=args.max_samples, seq_len=args.seq_len,
                        progress=not args.json and sys.stderr.isatty())
    if args.json:
        _dump(res)
        return 0
    h = res["history"]
    print(f"trained {args.model} ('{args.pipeline}') for {len(h)} steps in {res['seconds']:.1f} s: "
          f"loss {h[0]['loss']:.4g} -> {h[-1]['loss']:.4g}; wrote {res['model']}")
    print(f"compile it (already quantized: give a pipeline that does not quantize again): "
          f"masec compile {res['model']} -p dce --target pytorch")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = Path(args.out)
    target, marker = ("hls", "model.cpp") if args.csim else ("sv", "top.sv")
    if not (out / marker).exists():
        state = "missing" if not out.exists() else "another directory"
        raise ValueError(f"{out} must be a 'masec compile --target {target}' output (with {marker}), not {state}")
    if args.csim:
        from .backends.hls import simulate

        res = simulate(out)
        timing = "C-simulation (g++)"
    else:
        from .backends.sv import simulate

        res = simulate(out, stall_pct=args.stall)
        timing = f"{res['cycles']:.1f} cycles per inference, latency {res['latency']} cycles"
        (out / "sim.json").write_text(json.dumps(res, indent=1))  # for masec report
    if args.json:
        _dump(res)
    else:
        verdict = "PASS" if res["passed"] else "FAIL"
        print(f"{verdict}: {res['expected'] - res['mismatches']} of {res['expected']} outputs equal the "
              f"interpreter's hardware-exact results; {timing}"
              + (f"; first mismatch {res['first_mismatch']}" if res["mismatches"] else ""))
    return 0 if res["passed"] else 1


def cmd_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .calibration.stats import stats_table
    from .driver import import_model

    path = Path(args.model)
    model = import_model(path / "quantized.mlir" if path.is_dir() else path)
    rows = stats_table(model)
    if args.json:
        _dump(rows)
        return 0
    if not rows:
        print(f"{args.model} holds no calibration statistics (run a pipeline with 'calibrate')", file=sys.stderr)
        return 1
    for r in rows:
        r["where"] = r["node"] or r["value"]
        r["token"] = f"{_number(r.get('token_absmax_p50', float('nan')))} / {_number(r.get('token_absmax_max', float('nan')))}"
    _print_table(f"calibration statistics ({rows[0].get('method', '?')}, {rows[0].get('batches', '?')} batches)", rows,
                 [("where", "value (source node)"), ("lo", "lo"), ("hi", "hi"), ("min", "min"), ("max", "max"),
                  ("token", "token |x|max p50 / max"), ("dropped", "non-finite dropped")])
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .hw_report import hardware_report, synth

    out = Path(args.out)
    if not (out / "top.sv").exists():
        raise ValueError(f"{out} must be a 'masec compile --target sv' output (with top.sv)")
    res = synth(out, target=args.target)
    if args.json:
        _dump(res)
        return 0
    _hardware_table(out, hardware_report(out))
    print(f"wrote {out}/synth.json (Yosys {res['yosys']}, {res['target']}, {res['seconds']:.0f} s)")
    return 0


def _hardware_table(out, rep: dict) -> None:
    rows = rep["rows"]
    cols = [("layer", "layer"), ("kernel", "kernel"), ("shape", "shape"), ("lanes", "lanes"), ("cycles", "cycles/item")]
    if rows and "luts" in rows[0]:
        cols += [("luts", "LUT"), ("flip_flops", "FF"), ("dsp", "DSP"), ("bram", "BRAM")]
    t = rep["totals"]
    area = f"; area: Yosys, {t['target']}" if "area" in t else ""
    _print_table(f"{out}: hardware kernels (cycles per item: the steady-state model{area})", rows, cols)
    line = f"bottleneck {t['bottleneck_cycles']} cycles/inference (model)"
    if "measured_cycles" in t:
        line += f", measured {t['measured_cycles']:.1f} (masec sim, latency {t['latency']})"
    if "area" in t:
        a, w = t["area"], t["wiring"]
        line += (f"; whole design {a['luts']} LUT, {a['flip_flops']} FF, {a['dsp']} DSP, {a['bram']} BRAM "
                 f"(forks, FIFOs, adapters: {w['luts']} LUT, {w['flip_flops']} FF)")
    else:
        line += "; area: run masec synth " + str(out)
    print(line)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import report

    if (Path(args.out) / "top.sv").exists():  # a hardware design: area and latency per layer
        from .hw_report import hardware_report

        rep = hardware_report(args.out)
        if args.json:
            _dump(rep)
        else:
            _hardware_table(args.out, rep)
        return 0

    rep = report(args.out, png=not args.no_plot, device=args.device)
    if args.json:
        _dump(rep)
        return 0
    rows = [{**r, "weight_format": r["weight_format"] or "-", "act_format": r["act_format"] or "-"} for r in rep["layers"]]
    rows += [{**o, "op": "output", "weight_format": "", "act_format": "", "own_sqnr_db": ""} for o in rep["outputs"]]
    _print_table(f"{args.out}: quantized layers and outputs vs FP32 (SQNR: higher is better; own: the layer alone, "
                 "on FP32 inputs)", rows,
                 [("name", "layer"), ("op", "op"), ("weight_format", "weight"), ("act_format", "activation"),
                  ("own_sqnr_db", "own SQNR dB"), ("sqnr_db", "SQNR dB"), ("cosine", "cosine"), ("rel_rmse", "rel. RMSE")])
    c = rep["cost"]
    if c["rows"]:
        _print_table("hardware cost per layer (mase_compiler/cost: bit-ops, bytes incl. scales, area in LUT equivalents "
                     "calibrated from Yosys, energy after Horowitz 2014, cycles at 8 lanes)",
                     [{**r, "w_format": r["w_format"] or "fp32", "a_format": r["a_format"] or "fp32",
                       "energy_nj": r["energy_pj"] / 1000} for r in c["rows"]],
                     [("name", "layer"), ("w_format", "weight"), ("a_format", "activation"), ("macs", "MACs"),
                      ("bitops", "bit-ops"), ("weight_bytes", "W bytes"), ("area_le", "area LE"), ("energy_nj", "energy nJ"),
                      ("cycles", "cycles")])
    t = rep["totals"]
    ratio = f" ({t['weight_bytes_quantized'] / t['weight_bytes_fp32']:.3f} of FP32)" if t["weight_bytes_fp32"] else ""
    print(f"weights: {t['weight_bytes_quantized'] / 1e6:.3f} MB vs {t['weight_bytes_fp32'] / 1e6:.3f} MB FP32{ratio}"
          + ("" if args.no_plot else f"; wrote {args.out}/report.json and report.png"))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    res = verify(args.out, min_cosine=args.min_cosine, min_sqnr=args.min_sqnr, max_rel_error=args.max_rel_error,
                 backend=args.backend, min_match=args.min_match, device=args.device)
    if args.junit:
        res.write_junit(args.junit)
    if args.json == "-":
        sys.stdout.write(res.to_json())
    else:
        if args.json:
            res.write_json(args.json)
        rows = [{"output": k, **v} for k, v in res.metrics.items()]
        _print_table(f"masec verify {args.out} (backend: {res.backend})", rows,
                     [("output", "output"), ("cosine", "cosine"), ("sqnr_db", "SQNR dB"), ("rel_error", "rel. error"),
                      ("max_abs_error", "max |err|")] + ([("exact_match", "= interpreter")] if all("exact_match" in r for r in rows) else []))
    for c in res.failures:  # stderr, so that `--json -` stays parseable
        print(f"FAIL {c.describe()}", file=sys.stderr)
    print(f"verify {'passed' if res.passed else 'failed'}: {len(res.checks) - len(res.failures)} of {len(res.checks)} checks passed",
          file=sys.stderr)
    return 0 if res.passed else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="masec", description="masec: an MLIR-style quantization compiler")
    p.add_argument("--version", action="version", version=f"masec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("formats", help="list number formats: bits per element, range, smallest value")
    f.add_argument("spec", nargs="*", help="format specs to describe (default: the built-in set)")
    f.add_argument("--errors", action="store_true", help="quantize built-in tensors and print each format's error instead")
    f.add_argument("--json", action="store_true", help="print JSON instead of a table")
    f.set_defaults(func=cmd_formats)

    d = sub.add_parser("demo", help="compile the built-in example (all-MiniLM-L6-v2) with a few presets and print the report")
    d.add_argument("--presets", default="w8a8,fp8,mxfp8,mxfp4", help="comma-separated presets (default: w8a8,fp8,mxfp8,mxfp4)")
    d.add_argument("-o", "--output", default=None, help="where the compiled models go (default: examples/generated/demo)")
    d.add_argument("--json", action="store_true", help="print JSON instead of tables")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("import", help="import MODEL (.onnx, .mlir or file.py:factory) into masec IR")
    i.add_argument("model")
    i.add_argument("-o", "--output", help="write OUT.mlir and OUT.safetensors (default: print the IR)")
    i.add_argument("--generic", action="store_true", help="print the generic MLIR form")
    i.set_defaults(func=cmd_import)

    o = sub.add_parser("opt", help="run a pass pipeline on a model and print or write the IR")
    o.add_argument("model")
    o.add_argument("-p", "--pipeline", default="", help="pass pipeline, e.g. 'cse,dce'")
    o.add_argument("-o", "--output", help="write OUT.mlir and OUT.safetensors (default: print the IR)")
    o.add_argument("--generic", action="store_true", help="print the generic MLIR form")
    o.set_defaults(func=cmd_opt)

    r = sub.add_parser("run", help="execute a model with the reference interpreter")
    r.add_argument("model")
    r.add_argument("--inputs", required=True, help=".npz keyed by the model's input names")
    r.add_argument("-o", "--output", required=True, help=".npz to write, keyed by output names")
    r.add_argument("--device", default=None, help="cpu (default) or cuda")
    r.add_argument("--json", action="store_true", help="print output shapes as JSON")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("compile", help="quantize MODEL with a pipeline and emit a runnable model (PyTorch or ONNX)")
    c.add_argument("model", help=".onnx, .mlir, file.py:factory, or a folder with model.onnx (and calib.npz)")
    c.add_argument("-p", "--pipeline", help="pipeline or preset, e.g. w8a8, fp8, mxfp4, 'calibrate,quantize{w=int8:channel a=int8}' "
                                            "(default: w8a8; hw-int8 for --target sv / hls)")
    c.add_argument("--target", default="pytorch", help="pytorch (default), onnx, or sv / hls (after lower-dataflow)")
    c.add_argument("-o", "--output", default="out", help="output directory (default: out); replaced only when the compile succeeds")
    c.add_argument("--calib", help="calibration data: .npz keyed by input names, or .txt / a directory of .txt files (with --tokenizer); default: synthetic")
    c.add_argument("--tokenizer", help="tokenizer directory (Hugging Face format) for text calibration data")
    c.add_argument("--max-samples", type=int, default=64, help="calibration samples to use (default 64)")
    c.add_argument("--batch-size", type=int, default=8, help="calibration batch size (default 8)")
    c.add_argument("--seq-len", type=int, default=None,
                   help="calibrate at the sequence length the model will serve (SLAC): text is packed into samples of exactly N tokens")
    c.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass to stderr")
    c.add_argument("--time-passes", action="store_true", help="print each pass's time and what it changed")
    c.add_argument("--json", action="store_true", help="print compile.json instead of a summary")
    c.set_defaults(func=cmd_compile)

    tr = sub.add_parser("train", help="quantization-aware training (EdgeQAT): quantize MODEL with a pipeline, train it "
                                      "against its FP32 self, write the trained IR")
    tr.add_argument("model", help=".onnx, .mlir or file.py:factory")
    tr.add_argument("-p", "--pipeline", required=True, help="pipeline or preset that quantizes the model, e.g. w4a8")
    tr.add_argument("--data", help="training data: .npz keyed by input names, or .txt / a directory of .txt files "
                                   "(with --tokenizer); default: synthetic")
    tr.add_argument("--tokenizer", help="tokenizer directory (Hugging Face format) for text data")
    tr.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    tr.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (default 1e-5)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.add_argument("--out", "-o", required=True, help="output directory: trained.mlir + .safetensors, train.json, checkpoint.pt")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    tr.add_argument("--checkpoint-every", type=int, default=0, metavar="N", help="checkpoint every N steps (default: at the end only)")
    tr.add_argument("--max-samples", type=int, default=64, help="samples of the data to use (default 64)")
    tr.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    tr.add_argument("--seq-len", type=int, default=None, help="text: pack into samples of exactly N tokens")
    tr.add_argument("--json", action="store_true", help="print train.json instead of a summary")
    tr.set_defaults(func=cmd_train)

    ps = sub.add_parser("passes", help="list the passes a pipeline string can name, with their options")
    ps.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ps.set_defaults(func=cmd_passes)

    sm = sub.add_parser("sim", help="co-simulate a --target sv output with Verilator (or --csim an hls one with g++), bit for bit")
    sm.add_argument("out", help="the output directory of masec compile --target sv (or hls with --csim)")
    sm.add_argument("--csim", action="store_true", help="C-simulate a --target hls output with g++")
    sm.add_argument("--stall", type=int, default=0, help="percent of random idle cycles on the input and output streams")
    sm.add_argument("--json", action="store_true", help="print JSON instead of a line")
    sm.set_defaults(func=cmd_sim)

    st = sub.add_parser("stats", help="print the calibration statistics kept on a model (a .mlir or a compile output directory)")
    st.add_argument("model")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=cmd_stats)

    sy = sub.add_parser("synth", help="Yosys area of a --target sv output, per kernel and whole (writes synth.json)")
    sy.add_argument("out", help="the output directory of masec compile --target sv")
    sy.add_argument("--target", default="xilinx", choices=("xilinx", "ice40", "generic"), help="technology mapping (default xilinx)")
    sy.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sy.set_defaults(func=cmd_synth)

    rp = sub.add_parser("report", help="per-layer error of a compiled model vs FP32 (a --target sv output: area and "
                                       "latency per layer)")
    rp.add_argument("out", help="the directory masec compile -o wrote")
    rp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rp.add_argument("--no-plot", action="store_true", help="do not write report.png")
    rp.add_argument("--device", default=None, help="cpu (default) or cuda")
    rp.set_defaults(func=cmd_report)

    v = sub.add_parser("verify", help="run a compiled model on its reference inputs and gate on error thresholds (CI)")
    v.add_argument("out", help="the directory masec compile -o wrote")
    v.add_argument("--min-cosine", type=float, help="fail when an output's cosine similarity to FP32 is lower")
    v.add_argument("--min-sqnr", type=float, metavar="DB", help="fail when an output's SQNR vs FP32 is lower (dB)")
    v.add_argument("--max-rel-error", type=float, metavar="X", help="fail when ||y - y_fp32|| / ||y_fp32|| is higher")
    v.add_argument("--min-match", type=float, metavar="F", help="fail when fewer elements than this fraction equal the interpreter's")
    v.add_argument("--backend", default="auto", help="auto (the compile's target, default), ir, pytorch or onnx")
    v.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    v.add_argument("--json", metavar="FILE", help="write every metric and the verdict as JSON to FILE ('-': stdout)")
    v.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per output and metric) to FILE")
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError, NotImplementedError) as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        print(f"masec: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
