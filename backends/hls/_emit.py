"""Emit HLS C++ for a lowered integer model and C-simulate it with g++ (``--target hls``).

The supported pattern is the SV backend's (its validation is reused)::

    dataflow.quantize -> dataflow.linear -> ... -> dataflow.linear [-> dataflow.dequantize]

The float ends stay in software: the C++ takes the integer codes after ``dataflow.quantize``
and produces the codes (or int32 accumulators) of the last ``dataflow.linear``.
``emit(model, out)`` writes a self-contained folder::

    out/model.cpp         one function per layer over masec::Int / dot / requantize, the weights,
                          bias, multipliers and shifts as static const arrays, HLS pragmas
                          (PIPELINE, ARRAY_PARTITION, DATAFLOW), top function ``masec_top``
    out/masec_int.h       the bit-accurate integer header (copied)
    out/tb.cpp            testbench: reads vectors/in.txt, runs masec_top, writes vectors/out.txt
    out/vectors/in.txt    input codes, one vector per line (decimal)
    out/vectors/golden.txt  expected outputs, one vector per line, from the interpreter's
                          hardware-exact kernels (mase_compiler.interpreter._dataflow)
    out/manifest.json     layer shapes, types, vector counts, compile flags

``run(out)`` compiles ``tb.cpp`` with g++ (:data:`._gxx.FLAGS`, plus ``-Wno-unknown-pragmas``
because g++ does not know the ``#pragma HLS`` lines), runs it and compares the outputs with
the golden vectors bit for bit.  The macro ``MASEC_ROUND`` (default ``masec::Round::Even``)
is the rounding every requantizer uses: ``defines={"MASEC_ROUND": "masec::Round::Away"}``
builds a deliberately wrong design.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from mase_compiler.backends import BackendError

from . import INCLUDE_DIR, _gxx

SUPPORTED = "the HLS backend supports dataflow.linear chains"
TOP = "masec_top"
CFLAGS = ("-Wno-unknown-pragmas",)  # after _gxx.FLAGS: the #pragma HLS lines are for the HLS tool only


def _sv():
    """The SV emitter, whose pattern check and attribute helpers this backend reuses."""
    from mase_compiler.backends.sv import _emit as sv

    return sv


def _chain(model):
    """The SV emitter's pattern check, its one-line messages naming the HLS backend."""
    sv = _sv()
    try:
        return sv._chain(model)
    except BackendError as e:
        raise BackendError(str(e).replace(sv.SUPPORTED, SUPPORTED)) from None


def _signed_width(lo: int, hi: int) -> int:
    """Bits of the smallest two's complement type holding [lo, hi]."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def _int_t(w: int, signed: bool) -> str:
    return f"masec::Int<{w}, {'true' if signed else 'false'}>"


def _c_int(v: int) -> str:
    v = int(v)
    if v == -(2**63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}LL" if not -(2**31) < v < 2**31 else str(v)


def _rows(values, ctor: str, per_line: int = 8, indent: str = "    ") -> str:
    vals = [f"{ctor}({_c_int(v)})" for v in values]
    return ",\n".join(indent + ", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line))


# --------------------------------------------------------------------------- emit


def emit(model, out, inputs: torch.Tensor | None = None, n_vectors: int = 32, seed: int = 0) -> dict:
    """Write the HLS C++ design, testbench and golden vectors for ``model`` into ``out``.

    ``inputs``: float inputs of the model (batch x features); without them ``n_vectors`` random
    normal vectors (scaled by 2, ``seed``).  Returns the manifest (also ``out/manifest.json``).
    """
    sv = _sv()
    quant, lins, _ = _chain(model)
    out = Path(out)
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    w = model.weights

    def width(t, what):
        try:
            return sv._width(t, what)
        except BackendError as e:
            raise BackendError(str(e).replace(sv.SUPPORTED, SUPPORTED)) from None

    in_w = width(quant.results[0].type, "dataflow.quantize")
    in_lo, in_hi = sv._prop(quant, "lo"), sv._prop(quant, "hi")
    in_signed = sv._signed_codes(in_lo, in_hi, in_w)
    layers, params = [], []
    for i, op in enumerate(lins):
        wname = sv._prop(op, "weight")
        codes = np.asarray(w[wname])
        if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
            raise BackendError(f"{SUPPORTED}; weight {wname!r} must be a 2-D integer array, found {codes.dtype} {codes.shape}")
        k, n = codes.shape
        if layers and layers[-1]["n"] != k:
            raise BackendError(f"{SUPPORTED}; layer {i} takes {k} inputs but layer {i - 1} gives {layers[-1]['n']}")
        w_w = max(2, int(max(int(codes.max()), -int(codes.min()) - 1, 0)).bit_length() + 1)
        w_w = max(w_w, 8 if codes.dtype.itemsize == 1 else w_w)
        out_w = width(op.results[0].type, "dataflow.linear")
        lo, hi = sv._prop(op, "lo"), sv._prop(op, "hi")
        zp_in, zp_out = sv._prop(op, "zp_in"), sv._prop(op, "zp_out")
        bname, mname, sname = sv._prop(op, "bias"), sv._prop(op, "multiplier"), sv._prop(op, "shift")
        p = dict(w=codes.T.astype(np.int64))  # output-channel major: w[n][k]
        if bname:
            b = np.asarray(w[bname]).astype(np.int64).reshape(-1)
            if b.shape != (n,) or (b < -(2**31)).any() or (b >= 2**31).any():
                raise BackendError(f"{SUPPORTED}; bias {bname!r} must be {n} int32 values")
            p["b"] = b
        if mname:
            m = np.broadcast_to(np.asarray(w[mname]).astype(np.int64).reshape(-1), (n,))
            s = np.broadcast_to(np.asarray(w[sname]).astype(np.int64).reshape(-1), (n,))
            if (m < 0).any() or (m >= 2**32).any() or (s < 0).any() or (s > 255).any():
                raise BackendError(f"{SUPPORTED}; multiplier {mname!r} must fit 32 bits unsigned and shift {sname!r} 8 bits")
            p["m"], p["s"] = m, s
        out_signed = sv._signed_codes(lo, hi, out_w) if mname else True
        zp_w = _signed_width(zp_in, zp_in)
        # widths of x - zp_in, the exact dot product, + bias, * M: all must fit 64 bits
        # constants take the narrowest type that holds them, so the exact products stay within 64 bits
        b_w = _signed_width(int(p["b"].min()), int(p["b"].max())) if bname else 0
        m_w = max(1, int(p["m"].max()).bit_length()) if mname else 0
        xs_w = max(in_w + (not in_signed), zp_w) + 1  # masec::Diff
        acc_w = xs_w + w_w + max(0, (k - 1).bit_length())
        acc_w = max(acc_w, b_w) + 1 if bname else acc_w
        if acc_w + m_w > 64 or acc_w > 64:
            raise BackendError(f"{SUPPORTED}; layer {i} needs a {acc_w + m_w}-bit product, more than 64")
        if not mname and out_w > 64:
            raise BackendError(f"{SUPPORTED}; layer {i} output of {out_w} bits does not fit 64")
        layers.append(dict(k=k, n=n, in_w=in_w, in_signed=in_signed, w_w=w_w, out_w=out_w, out_signed=out_signed,
                           zp_in=zp_in, zp_out=zp_out, zp_w=zp_w, b_w=b_w, m_w=m_w, acc_w=acc_w, lo=lo, hi=hi, requant=bool(mname), bias=bool(bname)))
        params.append(p)
        in_w, in_signed = out_w, out_signed

    k0 = layers[0]["k"]
    x_q, y = sv.golden_vectors(model, quant, lins[-1], k0, inputs, n_vectors, seed)
    (out / "vectors" / "in.txt").write_text("".join(" ".join(map(str, r)) + "\n" for r in x_q.tolist()))
    (out / "vectors" / "golden.txt").write_text("".join(" ".join(map(str, r)) + "\n" for r in y.tolist()))

    shutil.copyfile(INCLUDE_DIR / "masec_int.h", out / "masec_int.h")
    (out / "model.cpp").write_text(_model_cpp(layers, params))
    (out / "tb.cpp").write_text(_tb_cpp(layers))
    manifest = dict(top=TOP, source="model.cpp", testbench="tb.cpp", header="masec_int.h", layers=layers,
                    vectors=int(x_q.shape[0]), in_per_vector=k0, out_per_vector=int(y.shape[1]),
                    cflags=[*_gxx.FLAGS, *CFLAGS])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _model_cpp(layers: list[dict], params: list[dict]) -> str:
    first, lastl = layers[0], layers[-1]
    lines = [
        "// Generated by mase_compiler.backends.hls.emit: a chain of integer linear layers.",
        "// Bit-exact with masec's hardware-exact interpreter (masec sim --csim checks it with g++).",
        "// MASEC_ROUND is the rounding of every requantizer (a different one is a deliberately wrong build).",
        '#include "masec_int.h"',
        "",
        "#ifndef MASEC_ROUND",
        "#define MASEC_ROUND masec::Round::Even",
        "#endif",
        "",
        f"using in_t = {_int_t(first['in_w'], first['in_signed'])};",
        f"using out_t = {_int_t(lastl['out_w'], lastl['out_signed'])};",
        f"constexpr int IN_SIZE = {first['k']};",
        f"constexpr int OUT_SIZE = {lastl['n']};",
    ]
    for i, (L, p) in enumerate(zip(layers, params)):
        k, n = L["k"], L["n"]
        pre = f"l{i}"
        lines += [
            "",
            f"// ---- layer {i}: {k} -> {n}, " + (
                f"requantized to [{L['lo']}, {L['hi']}] (zp_in {L['zp_in']}, zp_out {L['zp_out']})" if L["requant"]
                else f"int accumulator clamped to [{L['lo']}, {L['hi']}] (zp_in {L['zp_in']})"),
            f"using {pre}_in_t = {_int_t(L['in_w'], L['in_signed'])};",
            f"using {pre}_w_t = {_int_t(L['w_w'], True)};",
            f"using {pre}_out_t = {_int_t(L['out_w'], L['out_signed'])};",
            f"static constexpr {_int_t(L['zp_w'], True)} {pre.upper()}_ZP_IN = {_int_t(L['zp_w'], True)}::of({L['zp_in']});",
            f"using {pre}_xs_t = decltype({pre}_in_t{{}} - {pre.upper()}_ZP_IN);  // x - zp_in, exact",
            f"static constexpr std::int64_t {pre.upper()}_LO = {_c_int(L['lo'])}, {pre.upper()}_HI = {_c_int(L['hi'])};",
        ]
        if L["requant"]:
            lines.append(f"static constexpr std::int64_t {pre.upper()}_ZP_OUT = {_c_int(L['zp_out'])};")
        rows = ",\n".join("    {\n" + _rows(r, f"{pre}_w_t::of", 8, "        ") + "\n    }" for r in p["w"].tolist())
        lines.append(f"static const {pre}_w_t {pre.upper()}_W[{n}][{k}] = {{\n{rows}\n}};")
        if L["bias"]:
            bt = _int_t(L["b_w"], True)
            lines.append(f"static const {bt} {pre.upper()}_B[{n}] = {{\n" + _rows(p["b"].tolist(), f"{bt}::of", 4) + "\n};")
        if L["requant"]:
            mt = _int_t(L["m_w"], False)
            lines.append(f"static const {mt} {pre.upper()}_M[{n}] = {{\n" + _rows(p["m"].tolist(), f"{mt}::of", 4) + "\n};")
            lines.append(f"static const int {pre.upper()}_S[{n}] = {{"
                         + ", ".join(str(int(v)) for v in p["s"].tolist()) + "};")
        P = pre.upper()
        body = [
            "",
            f"static void layer{i}(const {pre}_in_t x[{k}], {pre}_out_t y[{n}]) {{",
            "#pragma HLS INLINE off",
            f"#pragma HLS ARRAY_PARTITION variable={P}_W dim=2 complete",
            f"    {pre}_xs_t xs[{k}];",
            "#pragma HLS ARRAY_PARTITION variable=xs complete",
            f"    for (int j = 0; j < {k}; ++j) {{",
            "#pragma HLS UNROLL",
            f"        xs[j] = x[j] - {P}_ZP_IN;",
            "    }",
            f"    for (int c = 0; c < {n}; ++c) {{",
            "#pragma HLS PIPELINE II=1",
            f"        const auto acc = masec::dot(xs, {P}_W[c])" + (f" + {P}_B[c];" if L["bias"] else ";"),
        ]
        if L["requant"]:
            body.append(f"        y[c] = {pre}_out_t::of(static_cast<{pre}_out_t::rep>(masec::requantize("
                        f"acc, {P}_M[c], {P}_S[c], {P}_ZP_OUT, {P}_LO, {P}_HI, MASEC_ROUND)));")
        else:
            body += [f"        const std::int64_t a = static_cast<std::int64_t>(acc.v);",
                     f"        y[c] = {pre}_out_t::of(static_cast<{pre}_out_t::rep>(a < {P}_LO ? {P}_LO : (a > {P}_HI ? {P}_HI : a)));"]
        body += ["    }", "}"]
        lines += body
    nl = len(layers)
    top = ["", "// The accelerator: the layers in a dataflow pipeline, hidden codes in on-chip buffers.",
           f"void {TOP}(const in_t x[IN_SIZE], out_t y[OUT_SIZE]) {{", "#pragma HLS DATAFLOW"]
    for i in range(nl - 1):
        top.append(f"    l{i}_out_t h{i}[{layers[i]['n']}];")
    for i in range(nl):
        src = "x" if i == 0 else f"h{i - 1}"
        dst = "y" if i == nl - 1 else f"h{i}"
        top.append(f"    layer{i}({src}, {dst});")
    top.append("}")
    return "\n".join(lines + top) + "\n"


def _tb_cpp(layers: list[dict]) -> str:
    return f"""// Generated testbench (C-simulation): reads input codes from vectors/in.txt (one vector per
// line), runs {TOP} on each, writes the outputs to vectors/out.txt; argv[1], argv[2] override
// the two paths.  Prints "MASEC_DONE vectors=<n>" at the end.
#include <cstdio>
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
        in_t x[IN_SIZE];
        out_t y[OUT_SIZE];
        for (int j = 0; j < IN_SIZE; ++j) {{
            long long v = 0;
            if (!(fields >> v) || v < static_cast<long long>(in_t::min()) || v > static_cast<long long>(in_t::max())) {{
                std::fprintf(stderr, "tb: vector %d needs %d input codes in range\\n", vectors, IN_SIZE);
                return 1;
            }}
            x[j] = in_t::of(static_cast<in_t::rep>(v));
        }}
        {TOP}(x, y);
        for (int c = 0; c < OUT_SIZE; ++c) out << (c ? " " : "") << static_cast<long long>(y[c].v);
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
