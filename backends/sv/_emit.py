"""Emit SystemVerilog for a lowered integer model and co-simulate it with Verilator.

Supported pattern (what ``lower-dataflow`` produces for a quantized MLP)::

    dataflow.quantize -> dataflow.linear -> ... -> dataflow.linear [-> dataflow.dequantize]

The float ends (``quantize``/``dequantize``) stay in software: the hardware takes the
integer codes after ``dataflow.quantize`` and produces the codes (or int32 accumulators)
of the last ``dataflow.linear``.  ``emit(model, out)`` writes a self-contained folder::

    out/top.sv            module top: one masec_linear per layer, chained with valid/ready
    out/*.sv              the library components it instantiates (copied)
    out/l<i>_{w,b,m,s}.mem  weights (output-channel major), int32 bias, multiplier, shift
    out/tb_top.sv         testbench: streams vectors/in.mem, writes vectors/out.mem
    out/files.f           file list (relative to out/), testbench last
    out/vectors/in.mem    input beats (LANES codes per line, lane 0 in the low bits)
    out/vectors/golden.mem  expected output codes, one per line, from the interpreter's
                          hardware-exact kernels (mase_compiler.interpreter._dataflow)
    out/manifest.json     layer shapes, widths, vector counts

``run(out)`` builds ``tb_top`` with Verilator, runs it, compares ``vectors/out.mem`` with
``vectors/golden.mem`` bit for bit and reports the cycles per inference.  The define
``MASEC_ROUNDING_HALF_UP`` makes every requantizer round half up (a deliberately wrong
build, for tests that show a broken design is caught).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from xdsl.dialects.builtin import IntegerType

from mase_compiler.backends import BackendError

from . import _verilator
from ._verilator import COMPONENTS_DIR

SUPPORTED = "the SV backend supports dataflow.linear chains"
COMPONENTS = ("masec_mac_lane", "masec_dot", "masec_requant", "masec_linear")
TOP, TB = "top", "tb_top"


# --------------------------------------------------------------------------- pattern


def _width(t, what: str) -> int:
    from mase_compiler.dialects.graph import element_type

    et = element_type(t)
    if not isinstance(et, IntegerType):
        raise BackendError(f"{SUPPORTED}; {what} must have integer codes, found {t}")
    return et.width.data


def _prop(op, key: str):
    a = op.properties.get(key)
    if a is None:
        return None
    return a.data if hasattr(a, "data") and isinstance(a.data, str) else a.value.data


def _chain(model) -> tuple[object, list, object | None]:
    """(quantize, [linear...], dequantize or None), or a one-line ``BackendError``."""
    ops = [op for op in model.main.body.ops if op.name != "func.return"]
    hint = f"{SUPPORTED}; lower the model with lower-dataflow first, found"
    other = [op.name for op in ops if op.name not in ("dataflow.quantize", "dataflow.linear", "dataflow.dequantize")]
    if other:  # name the first computing op: the weights and constants feeding it say less
        named = [n for n in other if n not in ("graph.weight", "graph.constant")] or other
        raise BackendError(f"{hint} {named[0]}")
    if len(model.main.args) != 1:
        raise BackendError(f"{SUPPORTED} with one input, found {len(model.main.args)}")
    if not ops or ops[0].name != "dataflow.quantize":
        raise BackendError(f"{hint} {ops[0].name if ops else 'an empty function'} first (expected dataflow.quantize)")
    lins = []
    i = 1
    while i < len(ops) and ops[i].name == "dataflow.linear":
        lins.append(ops[i])
        i += 1
    deq = None
    if i < len(ops) and ops[i].name == "dataflow.dequantize":
        deq = ops[i]
        i += 1
    if not lins or i != len(ops):
        bad = ops[i].name if i < len(ops) else "no dataflow.linear"
        raise BackendError(f"{SUPPORTED} (quantize -> linear... -> dequantize), found {bad} out of place")
    prev = ops[0]
    for op in [*lins, *([deq] if deq else [])]:
        if op.operands[0] is not prev.results[0]:
            raise BackendError(f"{SUPPORTED}; {op.name} does not consume the previous op's result (branching graph)")
        prev = op
    if ops[0].operands[0] is not model.main.args[0]:
        raise BackendError(f"{SUPPORTED}; dataflow.quantize must read the model input")
    return ops[0], lins, deq


# --------------------------------------------------------------------------- text helpers


def _hex(values, bits: int) -> str:
    mask, digits = (1 << bits) - 1, (bits + 3) // 4
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def _sv_int(v: int) -> str:
    if not -(2**31) <= v < 2**31:
        raise BackendError(f"{SUPPORTED}; parameter {v} does not fit a 32-bit SV int")
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def _signed_codes(lo: int, hi: int, bits: int) -> bool:
    """Codes in [lo, hi] are two's complement unless they need the unsigned range."""
    return not (lo >= 0 and hi > (1 << (bits - 1)) - 1)


def _lanes(k: int, want: int) -> int:
    return max(d for d in range(1, min(k, want) + 1) if k % d == 0)


# --------------------------------------------------------------------------- emit


def golden_vectors(model, quant, last, k0: int, inputs: torch.Tensor | None, n_vectors: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hardware input codes (after ``dataflow.quantize``) and golden outputs (the last ``dataflow.linear``)
    from the interpreter, whose dataflow kernels are the hardware-exact ones; ``inputs`` default to
    ``n_vectors`` random normal vectors times 2 (``seed``).  Shared with the HLS emitter."""
    from mase_compiler.interpreter import Interpreter

    if inputs is None:
        gen = torch.Generator().manual_seed(seed)
        inputs = torch.randn((n_vectors, k0), generator=gen) * 2
    inputs = torch.as_tensor(inputs, dtype=torch.float32).reshape(-1, k0)
    seen: dict[str, torch.Tensor] = {}

    def observe(op, ins, outs):
        if op is quant:
            seen["in"] = outs[0]
        elif op is last:
            seen["out"] = outs[0]

    Interpreter(model)({model.input_names[0]: inputs}, observe=observe)
    x_q = seen["in"].to(torch.int64).reshape(-1, k0)
    return x_q, seen["out"].to(torch.int64).reshape(x_q.shape[0], -1)


def emit(model, out, inputs: torch.Tensor | None = None, n_vectors: int = 32, seed: int = 0, lanes: int = 4) -> dict:
    """Write the SV design, memories, testbench and golden vectors for ``model`` into ``out``.

    ``inputs``: float inputs of the model (batch x features); without them ``n_vectors`` random
    normal vectors (scaled by 2, ``seed``).  ``lanes``: input codes per beat of the first layer
    (the largest divisor of its K up to ``lanes``; later layers take one code per beat).
    Returns the manifest (also written to ``out/manifest.json``).
    """
    quant, lins, _ = _chain(model)
    out = Path(out)
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    w = model.weights

    in_w = _width(quant.results[0].type, "dataflow.quantize")
    lo_q, hi_q = _prop(quant, "lo"), _prop(quant, "hi")
    in_signed = _signed_codes(lo_q, hi_q, in_w)
    layers, insts = [], []
    for i, op in enumerate(lins):
        wname = _prop(op, "weight")
        codes = np.asarray(w[wname])
        if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
            raise BackendError(f"{SUPPORTED}; weight {wname!r} must be a 2-D integer array, found {codes.dtype} {codes.shape}")
        k, n = codes.shape
        w_w = max(2, int(max(int(codes.max()), -int(codes.min()) - 1, 0)).bit_length() + 1)
        w_w = max(w_w, 8 if codes.dtype.itemsize == 1 else w_w)
        out_w = _width(op.results[0].type, "dataflow.linear")
        lo, hi = _prop(op, "lo"), _prop(op, "hi")
        bname, mname, sname = _prop(op, "bias"), _prop(op, "multiplier"), _prop(op, "shift")
        ln = _lanes(k, lanes) if i == 0 else 1
        files = {"W_FILE": f"l{i}_w.mem"}
        (out / files["W_FILE"]).write_text(_hex(codes.T.reshape(-1), w_w))
        if bname:
            b = np.asarray(w[bname]).astype(np.int64).reshape(-1)
            if b.shape != (n,) or (b < -(2**31)).any() or (b >= 2**31).any():
                raise BackendError(f"{SUPPORTED}; bias {bname!r} must be {n} int32 values")
            files["B_FILE"] = f"l{i}_b.mem"
            (out / files["B_FILE"]).write_text(_hex(b, 32))
        if mname:
            m = np.broadcast_to(np.asarray(w[mname]).astype(np.int64).reshape(-1), (n,))
            s = np.broadcast_to(np.asarray(w[sname]).astype(np.int64).reshape(-1), (n,))
            if (m < 0).any() or (m >= 2**32).any() or (s < 0).any() or (s > 255).any():
                raise BackendError(f"{SUPPORTED}; multiplier {mname!r} must fit 32 bits unsigned and shift {sname!r} 8 bits")
            files["M_FILE"], files["S_FILE"] = f"l{i}_m.mem", f"l{i}_s.mem"
            (out / files["M_FILE"]).write_text(_hex(m, 32))
            (out / files["S_FILE"]).write_text(_hex(s, 8))
        layer = dict(k=k, n=n, lanes=ln, in_w=in_w, in_signed=in_signed, w_w=w_w, out_w=out_w,
                     zp_in=_prop(op, "zp_in"), zp_out=_prop(op, "zp_out"), lo=lo, hi=hi,
                     requant=bool(mname), bias=bool(bname), files=files)
        layers.append(layer)
        if i > 0 and layers[i - 1]["n"] != k:
            raise BackendError(f"{SUPPORTED}; layer {i} takes {k} inputs but layer {i - 1} gives {layers[i - 1]['n']}")
        in_w, in_signed = out_w, _signed_codes(lo, hi, out_w)

    x_q, y = golden_vectors(model, quant, lins[-1], layers[0]["k"], inputs, n_vectors, seed)
    l0 = layers[0]
    beats = x_q.reshape(-1, l0["lanes"]).tolist()
    mask = (1 << l0["in_w"]) - 1
    words = [sum((v & mask) << (j * l0["in_w"]) for j, v in enumerate(row)) for row in beats]
    (out / "vectors" / "in.mem").write_text(_hex(words, l0["lanes"] * l0["in_w"]))
    (out / "vectors" / "golden.mem").write_text(_hex(y.reshape(-1).tolist(), layers[-1]["out_w"]))

    for name in COMPONENTS:
        shutil.copyfile(COMPONENTS_DIR / f"{name}.sv", out / f"{name}.sv")
    (out / "top.sv").write_text(_top_sv(layers))
    manifest = dict(top=TOP, testbench=TB, layers=layers, vectors=int(x_q.shape[0]),
                    in_beats=len(words), out_per_vector=int(y.shape[1]),
                    in_word_bits=l0["lanes"] * l0["in_w"], out_bits=layers[-1]["out_w"])
    (out / f"{TB}.sv").write_text(_tb_sv(manifest))
    files = [f"{c}.sv" for c in COMPONENTS] + ["top.sv"]
    manifest["design_files"] = files
    (out / "files.f").write_text("".join(f"{f}\n" for f in [*files, f"{TB}.sv"]))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _top_sv(layers: list[dict]) -> str:
    first, last = layers[0], layers[-1]
    lines = [
        "// Generated by mase_compiler.backends.sv.emit: a chain of masec_linear layers (valid/ready).",
        "// Define MASEC_ROUNDING_HALF_UP for a deliberately wrong requantizer (tests).",
        f"module {TOP} (",
        "    input  logic clk,",
        "    input  logic rst_n,",
        "    input  logic in_valid,",
        "    output logic in_ready,",
        f"    input  logic [{first['lanes'] * first['in_w'] - 1}:0] in_data,",
        "    output logic out_valid,",
        "    input  logic out_ready,",
        f"    output logic [{last['out_w'] - 1}:0] out_data",
        ");",
        "`ifdef MASEC_ROUNDING_HALF_UP",
        '    localparam string ROUNDING = "half_up";',
        "`else",
        '    localparam string ROUNDING = "even";',
        "`endif",
    ]
    for i, L in enumerate(layers):
        lines += [f"    logic s{i}_valid, s{i}_ready;", f"    logic [{L['lanes'] * L['in_w'] - 1}:0] s{i}_data;"]
    n = len(layers)
    lines += [f"    logic s{n}_valid, s{n}_ready;", f"    logic [{last['out_w'] - 1}:0] s{n}_data;",
              "    assign s0_valid = in_valid;", "    assign in_ready = s0_ready;", "    assign s0_data  = in_data;",
              f"    assign out_valid = s{n}_valid;", f"    assign s{n}_ready = out_ready;", f"    assign out_data  = s{n}_data;"]
    for i, L in enumerate(layers):
        params = dict(K=L["k"], N=L["n"], LANES=L["lanes"], IN_W=L["in_w"], IN_SIGNED=f"1'b{int(L['in_signed'])}",
                      W_W=L["w_w"], OUT_W=L["out_w"], ZP_IN=_sv_int(L["zp_in"]), ZP_OUT=_sv_int(L["zp_out"]),
                      LO=_sv_int(L["lo"]), HI=_sv_int(L["hi"]), REQUANT=f"1'b{int(L['requant'])}",
                      HAS_BIAS=f"1'b{int(L['bias'])}", ROUNDING="ROUNDING",
                      **{k: f'"{v}"' for k, v in L["files"].items()})
        plist = ",\n".join(f"        .{k}({v})" for k, v in params.items())
        lines += [
            f"    // layer {i}: {L['k']} -> {L['n']}, " + ("requantized" if L["requant"] else "accumulator"),
            f"    masec_linear #(\n{plist}\n    ) u_l{i} (",
            "        .clk, .rst_n,",
            f"        .in_valid(s{i}_valid), .in_ready(s{i}_ready), .in_data(s{i}_data),",
            f"        .out_valid(s{i + 1}_valid), .out_ready(s{i + 1}_ready), .out_data(s{i + 1}_data)",
            "    );",
        ]
    lines.append("endmodule\n")
    return "\n".join(lines)


def _tb_sv(m: dict) -> str:
    iw, ow, nin = m["in_word_bits"], m["out_bits"], m["in_beats"]
    nout, per = m["vectors"] * m["out_per_vector"], m["out_per_vector"]
    limit = 1000 + 200 * (nin + nout) * max(L["k"] for L in m["layers"])
    return f"""// Generated testbench: streams vectors/in.mem into {TOP}, writes every output to
// vectors/out.mem.  +stall=P idles the source and the sink a random P percent of cycles.
// Prints "MASEC_DONE outputs=.. cycles=.. first_in=.. first_vector=.." at the end.
module {TB};
    localparam int N_IN = {nin}, N_OUT = {nout}, PER_VEC = {per};
    logic clk = 1'b0, rst_n = 1'b0;
    always #5 clk = ~clk;

    logic in_valid, in_ready, out_valid, out_ready;
    logic [{iw - 1}:0] in_data;
    logic [{ow - 1}:0] out_data;
    logic [{iw - 1}:0] in_mem [N_IN];
    int stall, fd, in_idx, n_out, cycle, first_in, first_vec, in_idle, out_held;

    {TOP} dut (.clk, .rst_n, .in_valid, .in_ready, .in_data, .out_valid, .out_ready, .out_data);

    initial begin
        if (!$value$plusargs("stall=%d", stall)) stall = 0;
        $readmemh("vectors/in.mem", in_mem);
        fd = $fopen("vectors/out.mem", "w");
        if (fd == 0) $fatal(1, "tb_top: cannot open vectors/out.mem");
        repeat (4) @(posedge clk);
        rst_n = 1'b1;
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            in_valid <= 1'b0;
            in_idx <= 0;
            out_ready <= 1'b0;
            n_out <= 0;
            cycle <= 0;
            first_in <= -1;
            first_vec <= -1;
            in_idle <= 0;
            out_held <= 0;
        end else begin
            cycle <= cycle + 1;
            if (!in_valid && in_idx < N_IN) in_idle <= in_idle + 1;
            if (out_valid && !out_ready) out_held <= out_held + 1;
            if (in_valid && in_ready && first_in < 0) first_in <= cycle;
            if (!in_valid || in_ready) begin
                if (in_idx < N_IN && $urandom_range(99) >= stall) begin
                    in_valid <= 1'b1;
                    in_data <= in_mem[in_idx];
                    in_idx <= in_idx + 1;
                end else begin
                    in_valid <= 1'b0;
                end
            end
            if (out_valid && out_ready) begin
                $fwrite(fd, "%h\\n", out_data);
                n_out <= n_out + 1;
                if (n_out + 1 == PER_VEC) first_vec <= cycle;
                if (n_out + 1 == N_OUT) begin
                    $display("MASEC_DONE outputs=%0d cycles=%0d first_in=%0d first_vector=%0d in_idle=%0d out_held=%0d",
                             n_out + 1, cycle, first_in, (PER_VEC == N_OUT) ? cycle : first_vec, in_idle, out_held);
                    $fclose(fd);
                    $finish;
                end
            end
            out_ready <= ($urandom_range(99) >= stall);
            if (cycle > {limit}) $fatal(1, "tb_top: timeout after %0d cycles with %0d of %0d outputs", cycle, n_out, N_OUT);
        end
    end
endmodule
"""


# --------------------------------------------------------------------------- run


def design_files(out) -> list[Path]:
    """The design's files (without the testbench), in compile order."""
    out = Path(out)
    return [out / f for f in json.loads((out / "manifest.json").read_text())["design_files"]]


def lint(out) -> None:
    """``verilator --lint-only -Wall`` of the generated top; raise ``VerilatorError`` with the first warning."""
    _verilator.lint(design_files(out), TOP)


def run(out, defines: dict[str, str | int] | None = None, stall_pct: int = 0, timeout: float = 120) -> dict:
    """Build ``tb_top`` in ``out`` with Verilator, simulate, compare with ``vectors/golden.mem`` bit for bit.

    Returns ``{"passed", "mismatches", "outputs", "expected", "cycles" (per inference, throughput),
    "latency" (cycles from the first input beat to the first vector's last output), "total_cycles",
    "first_mismatch"}``.  ``defines``: e.g. ``{"MASEC_ROUNDING_HALF_UP": 1}`` for a broken build.
    """
    out = Path(out).resolve()
    manifest = json.loads((out / "manifest.json").read_text())
    files = [out / ln.strip() for ln in (out / "files.f").read_text().splitlines() if ln.strip()]
    tag = "_".join(f"{k}{v}" for k, v in sorted((defines or {}).items()))
    exe = _verilator.build(files, TB, out / (f"build_{tag}" if tag else "build"), defines=defines)
    result_file = out / "vectors" / "out.mem"
    result_file.unlink(missing_ok=True)
    stdout = _verilator.run(exe, out, [f"+stall={int(stall_pct)}"], timeout=timeout)
    m = re.search(r"MASEC_DONE outputs=(\d+) cycles=(\d+) first_in=(-?\d+) first_vector=(-?\d+) in_idle=(\d+) out_held=(\d+)", stdout)
    if m is None:
        raise _verilator.VerilatorError(f"simulation {TB} ended without its MASEC_DONE line")
    total = int(m.group(2)) - int(m.group(3))
    want = [int(v, 16) for v in (out / "vectors" / "golden.mem").read_text().split()]
    got = [int(v, 16) for v in result_file.read_text().split()] if result_file.exists() else []
    bad = [i for i in range(max(len(want), len(got))) if i >= len(want) or i >= len(got) or want[i] != got[i]]
    first = None
    if bad:
        i = bad[0]
        first = dict(index=i, expected=want[i] if i < len(want) else None, got=got[i] if i < len(got) else None)
    n_vec = manifest["vectors"]
    return dict(passed=not bad, mismatches=len(bad), outputs=len(got), expected=len(want),
                cycles=total / n_vec, latency=int(m.group(4)) - int(m.group(3)), total_cycles=total,
                first_mismatch=first, stall_pct=stall_pct,
                source_idle_cycles=int(m.group(5)), sink_stalled_cycles=int(m.group(6)))


__all__ = ["design_files", "emit", "lint", "run"]
