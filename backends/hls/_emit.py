"""Emit HLS C++ for a lowered integer model and C-simulate it with g++ (``--target hls``).

The design is the hardware graph of :mod:`mase_compiler.backends.hwgraph` (the SV backend's):
one call per ``dataflow`` kernel to the function templates of our header ``masec_ops.h``
(over ``masec_int.h``), one on-chip array per stream, a copy stage where a stream has several
readers (an HLS dataflow region wants one reader per buffer), all under ``#pragma HLS DATAFLOW``.
The float ends stay in software: ``masec_top`` takes an item's input codes and returns its
output codes (or int32 accumulators).  ``emit(model, out)`` writes a self-contained folder::

    out/model.cpp          masec_top, the parameters as static const arrays
    out/masec_ops.h, masec_int.h   the bit-accurate headers (copied)
    out/tb.cpp             testbench: reads vectors/in.txt, runs masec_top, writes vectors/out.txt
    out/vectors/in.txt     input codes, one item per line; vectors/golden.txt the expected outputs
                           from the interpreter's hardware-exact kernels
    out/manifest.json      nodes, sizes, vector counts, compile flags

``run(out)`` compiles ``tb.cpp`` with g++ (:data:`._gxx.FLAGS`, plus ``-Wno-unknown-pragmas``
because g++ does not know the ``#pragma HLS`` lines), runs it and compares the outputs with
the golden vectors bit for bit.  The macro ``MASEC_ROUND`` (default ``masec::Round::Even``)
is the rounding of every kernel: ``defines={"MASEC_ROUND": "masec::Round::Away"}`` builds a
deliberately wrong design.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mase_compiler.backends import BackendError
from mase_compiler.backends import hwgraph as hg

from . import INCLUDE_DIR, _gxx

TOP = "masec_top"
CFLAGS = ("-Wno-unknown-pragmas",)  # after _gxx.FLAGS: the #pragma HLS lines are for the HLS tool only
HEADERS = ("masec_int.h", "masec_ops.h")


def _ctype(width: int, signed: bool) -> str:
    if width not in (8, 16, 32, 64):
        raise BackendError(f"the HLS backend streams 8, 16, 32 or 64-bit codes, not {width}")
    return f"std::{'' if signed else 'u'}int{width}_t"


def _c_int(v: int) -> str:
    v = int(v)
    if v == -(2**63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}LL" if not -(2**31) < v < 2**31 else str(v)


def _array(name: str, ctype: str, values) -> str:
    vals = [_c_int(v) for v in np.asarray(values).reshape(-1).tolist()]
    rows = ",\n".join("    " + ", ".join(vals[i:i + 16]) for i in range(0, len(vals), 16))
    return f"static const {ctype} {name}[{len(vals)}] = {{\n{rows}\n}};"


# --------------------------------------------------------------------------- emit


def emit(model, out, inputs=None, n_vectors: int = 16, seed: int = 0) -> dict:
    """Write the HLS C++ design, testbench and golden vectors for ``model`` into ``out``.

    ``inputs``: float inputs of the model (items x item shape); without them ``n_vectors`` random
    normal items (``seed``).  Returns the manifest (also ``out/manifest.json``).
    """
    graph = hg.build(model, max_lanes=1)
    out = Path(out)
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    consts: list[str] = []
    fork_of: dict[str, str] = {}  # stream name -> the call of its copy stage
    buffers: list[str] = []
    forks: list[str] = []
    # The array each reader of a stream reads: the stream itself, or its copy for that reader.
    reads: dict[tuple[str, int], str] = {}
    alias: dict[str, str] = {graph.input.name: "x"}

    def array_of(s: hg.Stream) -> str:
        return alias.get(s.name, s.name)

    for node in graph.nodes:
        if node.wire:
            alias[node.output.name] = array_of(node.inputs[0])
    for s in graph.streams.values():
        readers = [r for r in s.consumers if not (r[0] != "output" and graph.node(r[0]).wire)]
        wired = [r for r in s.consumers if r[0] != "output" and graph.node(r[0]).wire]
        for r in wired:  # a reshape reads the array itself; its readers are counted on its output stream
            reads[r] = array_of(s)
        if len(readers) <= 1:
            for r in readers:
                reads[r] = array_of(s)
            continue
        ct = _ctype(s.width, s.signed)
        names = [f"{s.name}_c{i}" for i in range(len(readers))]
        for r, nm in zip(readers, names):
            reads[r] = nm
            buffers.append(f"    {ct} {nm}[{s.numel}];")
        outs = ", ".join(f"{ct} o{i}[{s.numel}]" for i in range(len(readers)))
        body = " ".join(f"o{i}[i] = v;" for i in range(len(readers)))
        forks.append(f"static void fork_{s.name}(const {ct} in[{s.numel}], {outs}) {{\n#pragma HLS INLINE off\n"
                     f"    for (int i = 0; i < {s.numel}; ++i) {{\n#pragma HLS PIPELINE II=1\n"
                     f"        const {ct} v = in[i];\n        {body}\n    }}\n}}")
        fork_of[s.name] = f"    fork_{s.name}({array_of(s)}, {', '.join(names)});"
    out_stream = graph.output
    # Calls in topological order, after each producer's fork.
    ordered: list[str] = []
    if graph.input.name in fork_of:
        ordered.append(fork_of[graph.input.name])
    for node in graph.nodes:
        if node.wire:
            if node.output.name in fork_of:
                ordered.append(fork_of[node.output.name])
            continue
        dst = "y" if node.output is out_stream else node.output.name
        if node.output is not out_stream:
            buffers.append(f"    {_ctype(node.output.width, node.output.signed)} {node.output.name}[{node.output.numel}];")
        else:
            alias[node.output.name] = "y"
        srcs = [reads[(node.name, port)] for port in range(len(node.inputs))]
        c, call = _call(node, srcs, dst)
        consts += c
        ordered.append(f"    // {node.kind} {node.source}: {' x '.join(str(list(s.shape)) for s in node.inputs)} -> "
                       f"{list(node.output.shape)}\n{call}")
        if node.output.name in fork_of:
            ordered.append(fork_of[node.output.name])
    if out_stream is graph.input or all(out_stream is not n.output for n in graph.nodes if not n.wire):
        raise BackendError("the HLS backend needs a kernel producing the model output")
    ct_in, ct_out = _ctype(graph.input.width, graph.input.signed), _ctype(out_stream.width, out_stream.signed)
    top = [f"void {TOP}(const in_t x[IN_SIZE], out_t y[OUT_SIZE]) {{", "#pragma HLS DATAFLOW", *buffers, *ordered, "}"]
    text = "\n".join([
        "// Generated by mase_compiler.backends.hls.emit from the hardware graph (backends/hwgraph.py).",
        "// Bit-exact with masec's hardware-exact interpreter (masec sim --csim checks it with g++).",
        "// MASEC_ROUND is the rounding of every kernel (a different one is a deliberately wrong build).",
        '#include "masec_ops.h"', "",
        f"using in_t = {ct_in};", f"using out_t = {ct_out};",
        f"constexpr int IN_SIZE = {graph.input.numel};", f"constexpr int OUT_SIZE = {out_stream.numel};", "",
        *consts, "", *forks, "",
        "// The accelerator: every kernel a dataflow stage, every stream an on-chip buffer.", *top, ""])
    for h in HEADERS:
        shutil.copyfile(INCLUDE_DIR / h, out / h)
    (out / "model.cpp").write_text(text)
    (out / "tb.cpp").write_text(_tb_cpp())
    x_q, y = hg.golden(graph, model, inputs, n_vectors, seed)
    (out / "vectors" / "in.txt").write_text("".join(" ".join(str(int(v)) for v in r) + "\n" for r in x_q.tolist()))
    (out / "vectors" / "golden.txt").write_text("".join(" ".join(str(int(v)) for v in r) + "\n" for r in y.tolist()))
    manifest = dict(top=TOP, vectors=int(x_q.shape[0]), in_per_vector=int(x_q.shape[1]), out_per_vector=int(y.shape[1]),
                    nodes=[dict(name=n.name, kind=n.kind, source=n.source) for n in graph.nodes if not n.wire],
                    cflags=[*_gxx.FLAGS, *CFLAGS])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _call(node: hg.Node, srcs: list[str], dst: str) -> tuple[list[str], str]:
    """Constant arrays and the call of ``node``'s kernel."""
    p, a, n = node.params, node.arrays, node.name
    x, y = node.inputs[0], node.output
    ti, to = _ctype(x.width, x.signed), _ctype(y.width, y.signed)
    consts: list[str] = []

    def arr(key: str, ctype: str, values) -> str:
        consts.append(_array(f"{n}_{key}", ctype, values))
        return f"{n}_{key}"

    bounds = f"{p.get('zp_out', 0)}, {_c_int(p['lo'])}, {_c_int(p['hi'])}" if "lo" in p else ""
    if node.kind == "linear":
        w = a["weight"]
        wt = "std::int8_t" if w.dtype.itemsize == 1 or (np.abs(w) < 128).all() else "std::int16_t"
        rows = x.numel // p["K"]
        wn = arr("w", wt, w.T.reshape(-1))
        bn = arr("b", "std::int32_t", a["bias"]) if p["bias"] else "nullptr"
        mn = arr("m", "std::uint32_t", a["multiplier"]) if p["requant"] else "nullptr"
        sn = arr("s", "std::uint8_t", a["shift"]) if p["requant"] else "nullptr"
        return consts, (f"    masec::linear<{rows}, {p['K']}, {p['N']}, {str(bool(p['requant'])).lower()}>"
                        f"({srcs[0]}, {dst}, {wn}, {bn}, {mn}, {sn}, {p['zp_in']}, {bounds});")
    if node.kind == "matmul":
        return consts, (f"    masec::matmul<{p['BATCH']}, {p['M']}, {p['K']}, {p['N']}, {str(bool(p['requant'])).lower()}>"
                        f"({srcs[0]}, {srcs[1]}, {dst}, {p['zp_a']}, {p['zp_b']}, {p.get('multiplier', 0)}u, "
                        f"{p.get('shift', 0)}, {bounds});")
    if node.kind == "gather":
        idx = arr("idx", "std::int32_t", a["index"])
        return consts, (f"    masec::gather<{p['N_IN']}, {p['N_OUT']}>({srcs[0]}, {dst}, {idx}, "
                        f"static_cast<{ti}>({p['pad']}));")
    if node.kind == "requant":
        m, s = arr("m", "std::uint32_t", a["multiplier"]), arr("s", "std::uint8_t", a["shift"])
        return consts, (f"    masec::rescale<{x.numel}, {p['C']}>({srcs[0]}, {dst}, {p['zp_in']}, {m}, {s}, {bounds});")
    if node.kind == "add":
        ma, mb = arr("ma", "std::int32_t", a["mult_a"]), arr("mb", "std::int32_t", a["mult_b"])
        return consts, (f"    masec::add<{x.numel}, {p['C']}>({srcs[0]}, {srcs[1]}, {dst}, {p['zp_a']}, {ma}, {p['zp_b']}, "
                        f"{mb}, {p['shift']}, {bounds});")
    if node.kind == "lut":
        t = arr("table", to, a["table"])
        return consts, f"    masec::lut<{x.numel}, {len(a['table'])}>({srcs[0]}, {dst}, {t}, {p['lo_in']});"
    if node.kind == "softmax":
        t = arr("exp2", "std::uint16_t", a["table"])
        rows = x.numel // p["N"]
        return consts, (f"    masec::softmax<{rows}, {p['N']}, {p['frac_bits']}>({srcs[0]}, {dst}, {p['multiplier']}u, "
                        f"{p['shift']}, {t}, {_c_int(p['numerator'])}, {p['recip_bits']}, {bounds});")
    if node.kind == "layer_norm":
        g, b = arr("gamma", "std::int16_t", a["gamma"]), arr("beta", "std::int64_t", a["beta"])
        rows = x.numel // p["D"]
        return consts, (f"    masec::layer_norm<{rows}, {p['D']}>({srcs[0]}, {dst}, {p['zp_in']}, {_c_int(p['eps'])}, {g}, {b}, "
                        f"{p['multiplier']}u, {p['shift']}, {bounds}, {p['recip_bits']}, {p['frac_bits']});")
    raise BackendError(f"the HLS backend has no kernel for {node.kind}")


def _tb_cpp() -> str:
    return f"""// Generated testbench (C-simulation): reads input codes from vectors/in.txt (one vector per
// line), runs {TOP} on each, writes the outputs to vectors/out.txt; argv[1], argv[2] override
// the two paths.  Prints "MASEC_DONE vectors=<n>" at the end.
#include <cstdio>
#include <limits>
#include <fstream>
#include <sstream>
#include <string>

#include "model.cpp"

int main(int argc, char** argv) {{
    const char* in_path = argc > 1 ? argv[1] : "vectors/in.txt";
    const char* out_path = argc > 2 ? argv[2] : "vectors/out.txt";
    std::ifstream in(in_path);
    if (!in) {{
        std::fprintf(stderr, "tb: cannot open %s\\n", in_path);
        return 1;
    }}
    std::ofstream out(out_path);
    if (!out) {{
        std::fprintf(stderr, "tb: cannot open %s\\n", out_path);
        return 1;
    }}
    std::string line;
    int vectors = 0;
    while (std::getline(in, line)) {{
        if (line.empty()) continue;
        std::istringstream fields(line);
        static in_t x[IN_SIZE];
        static out_t y[OUT_SIZE];
        for (int j = 0; j < IN_SIZE; ++j) {{
            long long v = 0;
            if (!(fields >> v) || v < static_cast<long long>(std::numeric_limits<in_t>::min()) ||
                v > static_cast<long long>(std::numeric_limits<in_t>::max())) {{
                std::fprintf(stderr, "tb: vector %d needs %d input codes in range\\n", vectors, IN_SIZE);
                return 1;
            }}
            x[j] = static_cast<in_t>(v);
        }}
        {TOP}(x, y);
        for (int c = 0; c < OUT_SIZE; ++c) out << (c ? " " : "") << static_cast<long long>(y[c]);
        out << "\\n";
        ++vectors;
    }}
    std::printf("MASEC_DONE vectors=%d\\n", vectors);
    return 0;
}}
"""



# --------------------------------------------------------------------------- run


def run(out, defines: dict[str, str | int] | None = None, include_dirs=(), timeout: float = 120) -> dict:
    """Compile ``out/tb.cpp`` with g++, run it, compare ``vectors/out.txt`` with ``vectors/golden.txt``.

    Returns ``{"passed", "mismatches", "outputs", "expected", "first_mismatch"}`` (counts of
    output values; ``first_mismatch``: ``{"index", "vector", "expected", "got"}`` or None).
    ``defines``: ``-D`` macros, e.g. ``{"MASEC_ROUND": "masec::Round::Away"}`` for a broken build;
    ``include_dirs`` are searched before the header copied into ``out`` for ``<...>`` includes
    only (``model.cpp`` includes its own ``"masec_int.h"``).  Raises :class:`._gxx.GxxError`
    when g++ is missing or the build or the run fails.
    """
    out = Path(out).resolve()
    manifest = json.loads((out / "manifest.json").read_text())
    defs = [f"{k}={v}" if v is not None else str(k) for k, v in sorted((defines or {}).items())]
    tag = "".join(c if c.isalnum() else "_" for c in "_".join(defs))
    exe = out / (f"tb_{tag}" if tag else "tb")
    _gxx.compile_cpp(out / "tb.cpp", exe, include_dirs=[*include_dirs, out], defines=defs, extra_flags=CFLAGS,
                     timeout=timeout)
    result_file = out / "vectors" / "out.txt"
    result_file.unlink(missing_ok=True)
    stdout = _gxx.run_exe(exe, [str(out / "vectors" / "in.txt"), str(result_file)], timeout=timeout)
    if "MASEC_DONE" not in stdout:
        raise _gxx.GxxError(f"{exe.name} ended without its MASEC_DONE line")
    per = manifest["out_per_vector"]
    want = [int(v) for v in (out / "vectors" / "golden.txt").read_text().split()]
    got = [int(v) for v in result_file.read_text().split()] if result_file.exists() else []
    bad = [i for i in range(max(len(want), len(got))) if i >= len(want) or i >= len(got) or want[i] != got[i]]
    first = None
    if bad:
        i = bad[0]
        first = dict(index=i, vector=i // per, expected=want[i] if i < len(want) else None,
                     got=got[i] if i < len(got) else None)
    return dict(passed=not bad, mismatches=len(bad), outputs=len(got), expected=len(want), first_mismatch=first)


__all__ = ["emit", "run"]
