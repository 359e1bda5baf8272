"""masec_softmax and masec_layernorm (and their helpers masec_udiv, masec_isqrt and
masec_requant_const) simulated with Verilator and compared bit for bit with
``mase_compiler.numerics.intops``.

One testbench (tests/sv/tb_norm.sv) holds every case; it is built once per module
and run once.  Each case streams rows through its component with random stalls on
the valid and the ready side (stall-free twins measure cycles per row).  Integer
parameters are computed from float scales the way a compiler does (the intops
docstrings) and reach the testbench as ``+define+`` macros.  Rows mix random codes
with the edges: all-equal rows, one dominant element, the extreme codes of the
width, zero points, exact rounding ties.  Skips cleanly without Verilator or a
C++ toolchain.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from mase_compiler.backends import sv
from mase_compiler.backends.sv import _verilator
from mase_compiler.numerics import intops
from mase_compiler.numerics.requant import quantize_multiplier, requantize

TB = Path(__file__).parent / "sv"
SEED = 4321
_MISSING = _verilator.missing_toolchain()
needs_verilator = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


# --------------------------------------------------------------------------- exact references


def _round_shift(x: int, shift: int, mode: str) -> int:
    """round(x / 2^shift) on Python integers: "even" (the oracle's) or "half_up" (the wrong build's)."""
    if shift == 0:
        return x
    q, r = divmod(x, 1 << shift)
    half = 1 << (shift - 1)
    return q + (r > half or (r == half and (q % 2 == 1 if mode == "even" else True)))


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def softmax_ref(row: list[int], p: SoftmaxCase, mode: str) -> list[int]:
    """intops.softmax on one row in Python integers, with a choice of rounding."""
    table = intops.exp2_table(p.frac).tolist()
    mx = max(row)
    e = []
    for q in row:
        t = _clamp(_round_shift((mx - q) * p.mult, p.shift, mode), 0, (intops.EXP_BITS + 1) << p.frac)
        e.append(table[t & ((1 << p.frac) - 1)] >> (t >> p.frac))
    r = p.num // sum(e)
    return [_clamp(_round_shift(ei * r, p.rb, mode) + p.zp_out, p.lo, p.hi) for ei in e]


def layer_norm_ref(row: list[int], p: LayerNormCase, mode: str) -> list[int]:
    """intops.layer_norm on one row in Python integers, with a choice of rounding."""
    x = [q - p.zp_in for q in row]
    d, s1, s2 = len(x), sum(x), sum(v * v for v in x)
    sigma = math.isqrt(d * s2 - s1 * s1 + p.eps)
    r = (1 << intops.NORM_RECIP_BITS) // sigma
    out = []
    for i, v in enumerate(x):
        n = _round_shift((d * v - s1) * r, intops.NORM_RECIP_BITS - intops.NORM_FRAC_BITS, mode)
        acc = n * p.gamma[i] + p.beta[i]
        out.append(_clamp(_round_shift(acc * p.mult, p.shift, mode) + p.zp_out, p.lo, p.hi))
    return out


# --------------------------------------------------------------------------- cases


@dataclass
class SoftmaxCase:
    name: str
    in_w: int
    signed: bool
    n: int
    frac: int
    mult: int
    shift: int
    num: int
    rb: int
    zp_out: int
    lo: int
    hi: int
    out_w: int
    rows: list[list[int]] = field(default_factory=list)
    rounding: str = "even"

    def expected(self) -> list[int]:
        """intops.softmax, the oracle (always round half to even)."""
        y = intops.softmax(torch.tensor(self.rows), self.mult, self.shift, self.frac, self.num, self.rb,
                           self.zp_out, self.lo, self.hi)
        return y.reshape(-1).tolist()


@dataclass
class LayerNormCase:
    name: str
    in_w: int
    signed: bool
    zp_in: int
    d: int
    eps: int
    gamma: list[int]
    beta: list[int]
    g_w: int
    mult: int
    shift: int
    zp_out: int
    lo: int
    hi: int
    out_w: int
    rows: list[list[int]] = field(default_factory=list)
    rounding: str = "even"

    def expected(self) -> list[int]:
        """intops.layer_norm, the oracle (always round half to even)."""
        y = intops.layer_norm(torch.tensor(self.rows), self.zp_in, self.eps, torch.tensor(self.gamma),
                              torch.tensor(self.beta), self.mult, self.shift, self.zp_out, self.lo, self.hi)
        return y.reshape(-1).tolist()


def _code_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _rows(rng: random.Random, bits: int, signed: bool, n: int, count: int, spread: int, zp: int = 0) -> list[list[int]]:
    """Edge rows first (all equal, one dominant, extremes, the zero point), then random rows:
    full-range codes and codes within ``spread`` of a random centre (where exp and the
    normalization are far from saturating)."""
    lo, hi = _code_range(bits, signed)
    mid = rng.randint(lo, hi)
    rows = [
        [lo] * n, [hi] * n, [zp] * n, [mid] * n,                          # all equal
        [hi] + [lo] * (n - 1), [lo] * (n - 1) + [hi], [lo] + [hi] * (n - 1),   # one dominant / one outlier
        [lo, hi] * (n // 2) + [lo] * (n % 2),                             # alternating extremes
        [hi, hi] + [lo] * (n - 2),                                        # two equal maxima
        [zp + 1] + [zp] * (n - 1),                                        # one code off the zero point
    ]
    rows += [[rng.choice((lo, hi)) for _ in range(n)] for _ in range(4)]
    rows = [[_clamp(v, lo, hi) for v in r] for r in rows]
    while len(rows) < count:
        if rng.random() < 0.3:
            rows.append([rng.randint(lo, hi) for _ in range(n)])
        else:
            c = rng.randint(lo, hi)
            w = rng.randint(1, max(1, spread))
            rows.append([_clamp(c + rng.randint(-w, w), lo, hi) for _ in range(n)])
    return rows


def _softmax_case(name: str, rng: random.Random, *, in_w: int, signed: bool, n: int, frac: int, s_in: float,
                  s_out: float, zp_out: int, lo: int, hi: int, out_w: int, count: int) -> SoftmaxCase:
    """(MULT, SHIFT) = quantize_multiplier(s_in / ln 2 * 2^F), NUM = round(2^RB / s_out), as a compiler sets them."""
    mult, shift = quantize_multiplier(s_in / math.log(2) * 2**frac)
    num = round(2**intops.SOFTMAX_RECIP_BITS / s_out)
    rows = _rows(rng, in_w, signed, n, count, spread=int(8 / s_in))
    return SoftmaxCase(name, in_w, signed, n, frac, mult, shift, num, intops.SOFTMAX_RECIP_BITS, zp_out, lo, hi,
                       out_w, rows)


def _layer_norm_case(name: str, rng: random.Random, *, in_w: int, signed: bool, zp_in: int, d: int, s_in: float,
                     s_out: float, eps: float, g_w: int, zp_out: int, lo: int, hi: int, out_w: int,
                     count: int) -> LayerNormCase:
    """gamma as signed g_w-bit codes, beta at the scale s_gamma 2^-T, (MULT, SHIFT) =
    quantize_multiplier(s_gamma 2^-T / s_out, bits=24), EPS = max(1, round(eps D^2 / s_in^2))."""
    gen = torch.Generator().manual_seed(rng.randint(0, 2**31))
    gamma = torch.randn(d, generator=gen, dtype=torch.float64) * 0.5 + 1
    beta = torch.randn(d, generator=gen, dtype=torch.float64) * 0.2
    s_g = float(gamma.abs().max()) / (2 ** (g_w - 1) - 1)
    t = intops.NORM_FRAC_BITS
    g_codes = torch.round(gamma / s_g).to(torch.int64).tolist()
    b_acc = torch.round(beta / (s_g * 2.0**-t)).to(torch.int64).tolist()
    mult, shift = quantize_multiplier(s_g * 2.0**-t / s_out, bits=24)
    eps_i = max(1, round(eps * d * d / s_in**2))
    rows = _rows(rng, in_w, signed, d, count, spread=rng.choice([3, 20, 1 << (in_w - 2)]), zp=zp_in)
    return LayerNormCase(name, in_w, signed, zp_in, d, eps_i, g_codes, b_acc, g_w, mult, shift, zp_out, lo, hi,
                         out_w, rows)


def _cases() -> dict[str, SoftmaxCase | LayerNormCase]:
    rng = random.Random(SEED)
    sm_i8 = _softmax_case("sm_i8_n8", rng, in_w=8, signed=True, n=8, frac=6, s_in=0.1, s_out=1 / 255,
                          zp_out=-128, lo=-128, hi=127, out_w=8, count=200)
    sm_i16 = _softmax_case("sm_i16_n32", rng, in_w=16, signed=True, n=32, frac=8, s_in=2e-3, s_out=1 / 65535,
                           zp_out=0, lo=0, hi=65535, out_w=16, count=60)
    ties = SoftmaxCase("sm_ties", 8, True, 4, frac=4, mult=5, shift=2, num=1 << 20, rb=4, zp_out=0, lo=0,
                       hi=65535, out_w=16, rows=_rows(rng, 8, True, 4, 250, spread=12))
    ln_i8 = _layer_norm_case("ln_i8_d8", rng, in_w=8, signed=True, zp_in=3, d=8, s_in=0.07, s_out=0.03, eps=1e-5,
                             g_w=16, zp_out=-2, lo=-128, hi=127, out_w=8, count=200)
    ln_d32 = _layer_norm_case("ln_i8_d32", rng, in_w=8, signed=True, zp_in=-5, d=32, s_in=0.05, s_out=0.025,
                              eps=1e-5, g_w=16, zp_out=0, lo=-127, hi=127, out_w=8, count=60)
    # gamma = 1, beta = 0, y = round(n / 2): every odd n is an exact tie of the last rounding.
    tie_rows = _rows(rng, 8, True, 8, 200, spread=40)
    ln_tie = LayerNormCase("ln_tie", 8, True, 0, 8, max(1, round(1e-5 * 64 / 0.07**2)), [1] * 8, [0] * 8, 16,
                           1, 1, 0, -32768, 32767, 16, tie_rows)
    cases: list[SoftmaxCase | LayerNormCase] = [
        sm_i8,
        _softmax_case("sm_u8_n4", rng, in_w=8, signed=False, n=4, frac=5, s_in=0.05, s_out=1 / 256,
                      zp_out=0, lo=0, hi=255, out_w=8, count=250),
        sm_i16,
        # int32 accumulators: s_in = s_q s_k / sqrt(d)
        _softmax_case("sm_i32_n8", rng, in_w=32, signed=True, n=8, frac=6, s_in=3e-6, s_out=1 / 256,
                      zp_out=0, lo=0, hi=255, out_w=8, count=150),
        ties,
        SoftmaxCase(**{**ties.__dict__, "name": "sm_ties_half_up", "rounding": "half_up"}),
        SoftmaxCase(**{**sm_i8.__dict__, "name": "sm_fast_n8"}),
        SoftmaxCase(**{**sm_i16.__dict__, "name": "sm_fast_n64", "n": 64,
                       "rows": _rows(rng, 16, True, 64, 40, spread=int(8 / 2e-3))}),
        ln_i8,
        ln_d32,
        # int16 with a tiny input scale: EPS beyond 32 bits (1.8e10)
        _layer_norm_case("ln_i16_d4", rng, in_w=16, signed=True, zp_in=100, d=4, s_in=3e-7, s_out=1e-4, eps=1e-4,
                         g_w=16, zp_out=5, lo=-32768, hi=32767, out_w=16, count=300),
        _layer_norm_case("ln_u8_d16", rng, in_w=8, signed=False, zp_in=128, d=16, s_in=0.02, s_out=0.02, eps=1e-5,
                         g_w=12, zp_out=128, lo=0, hi=255, out_w=8, count=100),
        ln_tie,
        LayerNormCase(**{**ln_tie.__dict__, "name": "ln_tie_half_up", "rounding": "half_up"}),
        LayerNormCase(**{**ln_i8.__dict__, "name": "ln_fast_d8"}),
        LayerNormCase(**{**ln_d32.__dict__, "name": "ln_fast_d32"}),
    ]
    return {c.name: c for c in cases}


# parameters the testbench takes from the compiler: +define+TBN_<CASE>_<PARAM>
DEFINED = {"sm_i8_n8": "SM_I8_N8", "sm_u8_n4": "SM_U8_N4", "sm_i16_n32": "SM_I16_N32", "sm_i32_n8": "SM_I32_N8",
           "ln_i8_d8": "LN_I8_D8", "ln_i8_d32": "LN_I8_D32", "ln_i16_d4": "LN_I16_D4", "ln_u8_d16": "LN_U8_D16"}


def _defines(cases: dict) -> dict[str, str]:
    out = {"TBN_PARAMS": "1", "TBN_LN_TIE_EPS": f"64'd{cases['ln_tie'].eps}"}
    for name, tag in DEFINED.items():
        c = cases[name]
        out[f"TBN_{tag}_MULT"] = f"32'd{c.mult}"
        out[f"TBN_{tag}_SHIFT"] = str(c.shift)
        if isinstance(c, SoftmaxCase):
            out[f"TBN_{tag}_NUM"] = f"64'd{c.num}"
        else:
            out[f"TBN_{tag}_EPS"] = f"64'd{c.eps}"
    return out


COMPONENTS = ("masec_requant", "masec_requant_const", "masec_udiv", "masec_isqrt", "masec_softmax", "masec_layernorm")

# divider and square root vectors: (num, den) pairs and radicands
UDIV = {"udiv_sm": (64, 21, 49), "udiv_ln": (41, 17, 41), "udiv_fast": (64, 21, 49)}
ISQRT = {"isqrt_33": 33, "isqrt_64": 64, "isqrt_fast": 64}


def _udiv_vectors(rng: random.Random, n_w: int, d_w: int, q_w: int) -> list[tuple[int, int]]:
    """Random and edge divisions whose quotient fits q_w bits: (num >> q_w) < den."""
    den_lo = 1 << (n_w - q_w)  # then any n_w-bit numerator meets the precondition
    top_n, top_d = (1 << n_w) - 1, (1 << d_w) - 1
    pairs = [(0, den_lo), (top_n, den_lo), (top_n, top_d), (0, top_d), (den_lo, den_lo), (den_lo - 1, den_lo),
             (1 << (n_w - 1), den_lo + 1), (1 << (n_w - 1), 3)]
    for _ in range(300):
        den = rng.choice([rng.randint(den_lo, top_d), rng.randint(den_lo, min(top_d, den_lo * 4))])
        k = rng.randint(0, min((1 << q_w) - 1, top_n // den))
        pairs += [(k * den, den), (k * den + den - 1, den) if k * den + den - 1 <= top_n else (k * den, den)]
        pairs.append((rng.randint(0, top_n) >> rng.randint(0, n_w - 1), den))
    return [(n, d) for n, d in pairs if d >= 1 and (n >> q_w) < d]


def _isqrt_vectors(rng: random.Random, v_w: int) -> list[int]:
    top = (1 << v_w) - 1
    vals = [0, 1, 2, 3, 4, 5, 8, 9, 15, 16, 17, top, top - 1, 1 << (v_w - 1), (1 << (v_w - 1)) - 1]
    for _ in range(300):
        k = rng.randint(0, math.isqrt(top))
        vals += [v for v in (k * k - 1, k * k, k * k + 1, k * k + 2 * k) if 0 <= v <= top]
        vals.append(rng.randint(0, top) >> rng.randint(0, v_w - 1))
    return vals


# masec_requant_const with ROUNDING="away" (MULT=3, SHIFT=3, ZP=-3): ties at x = 4 mod 8, both signs
RQC_AWAY = [-(1 << 31), (1 << 31) - 1, 0, 4, -4, 12, -12, 340, -340, 344, -344] + [
    v for v in random.Random(SEED + 2).sample(range(-700, 700), 600)]


def _isqrt(v: int) -> int:
    """The oracle intops.isqrt where int64 holds v, math.isqrt beyond."""
    return int(intops.isqrt(torch.tensor([v]))[0]) if v < 1 << 63 else math.isqrt(v)


# --------------------------------------------------------------------------- harness


@dataclass
class Sim:
    work: Path
    cases: dict
    log: str
    udiv: dict[str, list[tuple[int, int]]]
    isqrt: dict[str, list[int]]

    def out(self, name: str) -> list[int]:
        return [int(ln, 16) for ln in (self.work / f"{name}.out.hex").read_text().split()]

    def cycles(self, name: str) -> list[int]:
        return [int(ln) for ln in (self.work / f"{name}.cyc").read_text().split()]


def _hex(values: list[int], bits: int) -> str:
    return "".join(f"{v & ((1 << bits) - 1):x}\n" for v in values)


def _signed(code: int, bits: int) -> int:
    return code - ((code >> (bits - 1)) << bits)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Sim:
    """Write every case's input and parameter files, build tb_norm once, run it."""
    if _MISSING is not None:
        pytest.skip(_MISSING)
    work = tmp_path_factory.mktemp("sv_norm")
    cases = _cases()
    for f in (4, 5, 6, 8):
        (work / f"exp2_f{f}.mem").write_text(_hex(intops.exp2_table(f).tolist(), 16))
    for c in cases.values():
        (work / f"{c.name}.in.hex").write_text(_hex([v for r in c.rows for v in r], c.in_w))
        if isinstance(c, LayerNormCase):
            (work / f"{c.name}.gamma.mem").write_text(_hex(c.gamma, c.g_w))
            (work / f"{c.name}.beta.mem").write_text(_hex(c.beta, 64))
    rng = random.Random(SEED + 1)
    udiv = {name: _udiv_vectors(rng, *UDIV[name]) for name in UDIV}
    udiv["udiv_fast"] = udiv["udiv_sm"]
    isqrt = {name: _isqrt_vectors(rng, ISQRT[name]) for name in ISQRT}
    isqrt["isqrt_fast"] = isqrt["isqrt_64"]
    for name, pairs in udiv.items():
        n_w = UDIV[name][0]
        (work / f"{name}.in.hex").write_text("".join(f"{(d << n_w) | n:x}\n" for n, d in pairs))
    for name, vals in isqrt.items():
        (work / f"{name}.in.hex").write_text(_hex(vals, ISQRT[name]))
    (work / "rqc_away.in.hex").write_text(_hex(RQC_AWAY, 32))
    files = [TB / "tb_norm.sv", TB / "tb_stream.sv"] + [
        sv.component(m) for m in COMPONENTS]
    exe = sv.build(files, "tb_norm", work, defines=_defines(cases))
    log = sv.run_exe(exe, work, timeout=300)
    assert "tb_norm: done" in log
    return Sim(work, cases, log, udiv, isqrt)


def _mismatches(got: list[int], want: list[int], bits: int) -> list[str]:
    """Differences between simulated output codes and the oracle's values (``bits``-bit codes)."""
    bad = [f"element {i}: got {g:#x}, want {w & ((1 << bits) - 1):#x}"
           for i, (g, w) in enumerate(zip(got, want)) if g != w & ((1 << bits) - 1)]
    if len(got) != len(want):
        bad.append(f"{len(got)} outputs, want {len(want)}")
    return bad


ROW_CASES = ["sm_i8_n8", "sm_u8_n4", "sm_i16_n32", "sm_i32_n8", "sm_ties", "sm_fast_n8", "sm_fast_n64",
             "ln_i8_d8", "ln_i8_d32", "ln_i16_d4", "ln_u8_d16", "ln_tie", "ln_fast_d8", "ln_fast_d32"]


@needs_verilator
@pytest.mark.parametrize("name", ROW_CASES)
def test_component_matches_intops(sim, name):
    c = sim.cases[name]
    bad = _mismatches(sim.out(name), c.expected(), c.out_w)
    assert not bad, f"{name}: {len(bad)} mismatches of {len(c.rows) * len(c.rows[0])}, first: {bad[:3]}"


@needs_verilator
@pytest.mark.parametrize("name", ["sm_ties_half_up", "ln_tie_half_up"])
def test_half_up_build_fails_exactly_on_ties(sim, name):
    """A ROUNDING="half_up" build differs from the half-to-even oracle, and only on the
    elements where a half-up rounding changes the result: the comparison can fail."""
    c = sim.cases[name]
    ref = softmax_ref if isinstance(c, SoftmaxCase) else layer_norm_ref
    half_up = [v for r in c.rows for v in ref(r, c, "half_up")]
    want = c.expected()
    got = [_signed(g, c.out_w) if c.lo < 0 else g for g in sim.out(name)]
    assert len(got) == len(want)
    differ = {i for i, (h, w) in enumerate(zip(half_up, want)) if h != w}
    assert len(differ) >= 10
    assert {i for i, (g, w) in enumerate(zip(got, want)) if g != w} == differ
    assert got == half_up


def test_references_match_intops():
    """The Python-integer references above (used for the half-up predictions) equal intops with "even";
    the vectors are not degenerate (many distinct outputs, an EPS beyond 32 bits, ties)."""
    cases = _cases()
    for c in cases.values():
        ref = softmax_ref if isinstance(c, SoftmaxCase) else layer_norm_ref
        assert [v for r in c.rows for v in ref(r, c, "even")] == c.expected(), c.name
        assert len(set(c.expected())) > 100, c.name
    assert cases["ln_i16_d4"].eps >= 1 << 32
    sm = cases["sm_ties"]
    t_ties = sum((max(r) - q) * sm.mult % (1 << sm.shift) == 1 << (sm.shift - 1) for r in sm.rows for q in r)
    assert t_ties > 50


@needs_verilator
@pytest.mark.parametrize("name", list(UDIV))
def test_udiv_is_exact(sim, name):
    _n_w, _d_w, q_w = UDIV[name]
    pairs = sim.udiv[name]
    want = [((n % d) << q_w) | (n // d) for n, d in pairs]
    bad = _mismatches(sim.out(name), want, 128)
    assert not bad, f"{name}: {len(bad)} mismatches, first: {bad[:3]}"


@needs_verilator
@pytest.mark.parametrize("name", list(ISQRT))
def test_isqrt_is_exact(sim, name):
    r_w = (ISQRT[name] + 1) // 2
    vals = sim.isqrt[name]
    roots = [_isqrt(v) for v in vals]
    assert all(s * s <= v < (s + 1) * (s + 1) for s, v in zip(roots, vals))
    want = [((v - s * s) << r_w) | s for v, s in zip(vals, roots)]
    bad = _mismatches(sim.out(name), want, 128)
    assert not bad, f"{name}: {len(bad)} mismatches, first: {bad[:3]}"


@needs_verilator
def test_requant_const_rounds_half_away(sim):
    want = requantize(torch.tensor(RQC_AWAY), 3, 3, -3, -128, 127, mode="away").tolist()
    assert sum(v % 8 == 4 for v in RQC_AWAY) > 50  # ties, where "away" and "even" differ for half of them
    bad = _mismatches(sim.out("rqc_away"), want, 8)
    assert not bad, f"rqc_away: {len(bad)} mismatches, first: {bad[:3]}"


# Cycles per row (per result for the helpers) in steady state without stalls, summed over
# SLOTS consecutive rows (the rows sharing the buffers take turns): the formulas in the
# components' headers.
def _softmax_cycles(n: int, slots: int) -> int:
    return max(slots * n, slots * 50, 2 * n + 52)


def _layer_norm_cycles(d: int, slots: int, v_w: int, rb: int = intops.NORM_RECIP_BITS) -> int:
    r_w = (v_w + 1) // 2
    return max(slots * d, slots * (rb + 2), slots * (r_w + 1), 2 * d + r_w + rb + 4)


CYCLES = {  # case: (outputs per row, SLOTS, cycles per SLOTS rows)
    "sm_fast_n8": (8, 2, _softmax_cycles(8, 2)),      # the divider's 50 cycles
    "sm_fast_n64": (64, 3, _softmax_cycles(64, 3)),   # the input rate, 64
    "ln_fast_d8": (8, 2, _layer_norm_cycles(8, 2, v_w=23)),     # the divider's 42 cycles
    "ln_fast_d32": (32, 2, _layer_norm_cycles(32, 2, v_w=27)),  # the row buffers: 122 per 2 rows
    "udiv_fast": (1, 1, 50),                          # Q_W + 1
    "isqrt_fast": (1, 1, 33),                         # ceil(V_W / 2) + 1
}


@needs_verilator
@pytest.mark.parametrize("name", list(CYCLES))
def test_cycles_per_row(sim, name):
    """Without stalls, rows (results) leave at the documented rate, each row's codes back to back."""
    per_row, slots, cycles = CYCLES[name]
    cyc = sim.cycles(name)
    starts = cyc[::per_row]
    assert len(starts) >= 20
    for i in range(0, len(cyc), per_row):  # a row's outputs are consecutive cycles
        assert cyc[i : i + per_row] == list(range(cyc[i], cyc[i] + per_row))
    half = len(starts) // 2
    steady = [b - a for a, b in zip(starts[half:], starts[half + slots :])]
    assert steady and all(p == cycles for p in steady), f"{name}: {sorted(set(steady))} cycles per {slots} rows"


LINT_CONFIGS = [
    ("masec_softmax", {}),
    ("masec_softmax", {"IN_W": 32, "N": 4, "FRAC": 8, "SLOTS": 3, "ROUNDING": "half_up"}),
    ("masec_softmax", {"IN_SIGNED": 0, "N": 1, "OUT_W": 16, "LO": 0, "HI": 65535}),
    ("masec_layernorm", {}),
    ("masec_layernorm", {"IN_W": 16, "D": 32, "G_W": 12, "SLOTS": 3, "ROUNDING": "half_up"}),
    ("masec_layernorm", {"IN_SIGNED": 0, "ZP_IN": 128, "D": 1, "OUT_W": 16, "LO": -32768, "HI": 32767}),
    ("masec_udiv", {}),
    ("masec_udiv", {"N_W": 64, "D_W": 21, "Q_W": 49}),
    ("masec_udiv", {"N_W": 4, "D_W": 1, "Q_W": 1}),
    ("masec_requant_const", {}),
    ("masec_requant_const", {"IN_W": 65, "MULT": 11234567, "SHIFT": 70, "ZP": -3, "ROUNDING": "away"}),
    ("masec_isqrt", {}),
    ("masec_isqrt", {"V_W": 1}),
    ("masec_isqrt", {"V_W": 65}),
]


@needs_verilator
@pytest.mark.parametrize("top,params", LINT_CONFIGS, ids=[f"{t}-{i}" for i, (t, _p) in enumerate(LINT_CONFIGS)])
def test_lint_clean(top, params):
    sv.lint([sv.component(top)], top, params)


@needs_verilator
def test_testbench_reports_every_case(sim):
    """Every case's sink took as many words as the case has outputs (none stuck in a pipeline)."""
    for name, c in sim.cases.items():
        m = re.search(rf"tb_sink {name}\.out\.hex: (\d+) beats", sim.log)
        assert m and int(m.group(1)) == len(c.rows) * len(c.rows[0]), name
