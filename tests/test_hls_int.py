"""masec_int.h, the HLS backend's bit-accurate integer header, against mase_compiler.numerics.

One C++ driver, generated here, includes the header and prints the result of
every case; it is compiled once with g++ (``-std=c++17 -O1 -Wall -Wextra
-Werror``) and its output is compared value for value with Python oracles:

- exact Python integers and fractions (wrap/saturate, widening arithmetic,
  ``round_shift`` and ``requantize`` on the whole int64 range, dot products,
  MXINT8 block dot products);
- :mod:`mase_compiler.numerics` itself: ``round_to_int`` for rounding shifts,
  ``parse("int8:round=...").quantize`` with a power-of-two scale for
  ``requantize``, ``parse("fixed8:frac=4:round=...")`` for ``Fixed``, and
  ``parse("mxint8").encode`` for the MX blocks.

Vectors: extremes of every width, exact ties for every rounding mode (positive
and negative, even and odd quotients), one unit either side of a tie, values
that saturate, ±inf, and seeded random values.  Mutation tests compile the
driver against copies of the header with one rounding rule changed and check
that the comparison then fails.  Skipped when g++ is not installed.
"""

from __future__ import annotations

import math
import random
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from mase_compiler.backends.hls import INCLUDE_DIR
from mase_compiler.backends.hls import _gxx
from mase_compiler.numerics import parse, round_to_int

pytestmark = pytest.mark.skipif(_gxx.find_gxx() is None, reason="g++ is not installed")

MODES = ("even", "away", "floor", "ceil", "zero")
CPP_MODE = {m: f"masec::Round::{m.capitalize()}" for m in MODES}
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
HEADER = INCLUDE_DIR / "masec_int.h"


# ---- exact oracles ------------------------------------------------------------------------

def round_exact(v: Fraction, mode: str) -> int:
    """``v`` rounded to an integer with ``mode``, as mase_compiler.numerics.rounding defines it."""
    fl = math.floor(v)
    r = v - fl
    half = Fraction(1, 2)
    up = {
        "floor": False,
        "ceil": r > 0,
        "zero": r > 0 and v < 0,
        "away": r > half or (r == half and v > 0),
        "even": r > half or (r == half and fl % 2 == 1),
    }[mode]
    return fl + up


def int_range(w: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)


def wrap(x: int, w: int, signed: bool) -> int:
    x %= 1 << w
    return x - (1 << w) if signed and x >> (w - 1) else x


def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


# ---- C++ text -----------------------------------------------------------------------------

def c_int(x: int) -> str:
    if x == I64_MIN:
        return "(-9223372036854775807LL - 1)"
    return f"{x}ULL" if x > I64_MAX else f"{x}LL"


def c_double(x: float) -> str:
    if math.isnan(x):
        return "NAN_"
    if math.isinf(x):
        return "INF_" if x > 0 else "-INF_"
    return x.hex()


def c_array(ctype: str, name: str, values, fmt=c_int) -> str:
    body = ", ".join(fmt(v) for v in values)
    return f"static const {ctype} {name}[] = {{{body}}};\n"


def int_t(w: int, s: bool) -> str:
    return f"masec::Int<{w}, {'true' if s else 'false'}>"


PRELUDE = """\
#include "masec_int.h"
#include <cstdint>
#include <cstdio>
#include <limits>
#include <type_traits>

static const double INF_ = std::numeric_limits<double>::infinity();
static const double NAN_ = std::numeric_limits<double>::quiet_NaN();
static const masec::Round MODES[] = {masec::Round::Even, masec::Round::Away, masec::Round::Floor,
                                     masec::Round::Ceil, masec::Round::Zero};

template <typename T>
static void put(T v) {
    if constexpr (std::is_signed_v<T>) {
        std::printf("%lld\\n", static_cast<long long>(v));
    } else {
        std::printf("%llu\\n", static_cast<unsigned long long>(v));
    }
}
static void section(const char* name) { std::printf("# %s\\n", name); }
template <int W, bool S>
static void put_type(masec::Int<W, S>) { std::printf("%d %d\\n", W, S ? 1 : 0); }
"""


def parse_output(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur: list[str] = []
    for line in text.splitlines():
        if line.startswith("# "):
            cur = out.setdefault(line[2:], [])
        else:
            cur.append(line)
    return out


def mismatches(got: list[str], want: list[str]) -> list[str]:
    """Lines that differ (at most 5 shown), or a length mismatch."""
    if len(got) != len(want):
        return [f"{len(got)} lines, expected {len(want)}"]
    bad = [f"#{i}: got {g}, want {w}" for i, (g, w) in enumerate(zip(got, want)) if g != w]
    return bad[:5] + ([f"... {len(bad)} in all"] if len(bad) > 5 else [])


# ---- cases: each returns (C++ text for main, {section: expected lines}) --------------------

RNG = random.Random(20261124)


def interesting_i64() -> list[int]:
    xs = {0, 1, -1, 2, -2, I64_MIN, I64_MIN + 1, I64_MAX, I64_MAX - 1}
    for w in (1, 2, 4, 7, 8, 9, 15, 16, 31, 32, 33, 53, 62, 63):
        for base in (1 << w, -(1 << w)):
            xs.update({base - 1, base, base + 1})
    xs.update(RNG.randint(I64_MIN, I64_MAX) for _ in range(40))
    xs.update(RNG.randint(-300, 300) for _ in range(20))
    return sorted(x for x in xs if I64_MIN <= x <= I64_MAX)


WRAP_TYPES = [(1, True), (1, False), (2, True), (4, False), (8, True), (8, False), (16, True), (31, False),
              (32, True), (53, True), (63, False), (64, True), (64, False)]


def case_wrap_saturate():
    xs = interesting_i64()
    us = [0, 1, 255, 256, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 32) + 7]
    code = c_array("std::int64_t", "WS_I", xs) + c_array("std::uint64_t", "WS_U", us)
    main = ""
    want = {}
    for w, s in WRAP_TYPES:
        name = f"wrap_saturate {w} {int(s)}"
        main += (f'section("{name}");\n'
                 f"for (auto x : WS_I) {{ put(masec::wrap<{w}, {str(s).lower()}>(x).v); "
                 f"put(masec::saturate<{w}, {str(s).lower()}>(x).v); }}\n"
                 f"for (auto x : WS_U) {{ put(masec::wrap<{w}, {str(s).lower()}>(x).v); "
                 f"put(masec::saturate<{w}, {str(s).lower()}>(x).v); }}\n")
        lo, hi = int_range(w, s)
        want[name] = [str(v) for x in xs + us for v in (wrap(x, w, s), clamp(x, lo, hi))]
    return code, main, want


ARITH_TYPES = [((8, True), (8, True)), ((8, True), (8, False)), ((8, False), (8, True)), ((8, False), (8, False)),
               ((16, True), (4, False)), ((3, False), (12, True)), ((32, True), (32, True)), ((31, False), (33, True)),
               ((1, True), (1, False))]


def ap_widths(w1: int, s1: bool, w2: int, s2: bool) -> dict[str, tuple[int, bool]]:
    """Result types of +, -, * under the ap_int rule (an independent statement of it)."""
    e1, e2 = w1 + (s2 and not s1), w2 + (s1 and not s2)
    return {"+": (max(e1, e2) + 1, s1 or s2), "-": (max(e1, e2) + 1, True), "*": (w1 + w2, s1 or s2)}


def case_arith():
    code, main, want = "", "", {}
    for k, ((w1, s1), (w2, s2)) in enumerate(ARITH_TYPES):
        lo1, hi1 = int_range(w1, s1)
        lo2, hi2 = int_range(w2, s2)
        a_vals = sorted(v for v in {lo1, lo1 + 1, 0, 1, hi1 - 1, hi1, RNG.randint(lo1, hi1)} if lo1 <= v <= hi1)
        b_vals = sorted(v for v in {lo2, lo2 + 1, 0, 1, hi2 - 1, hi2, RNG.randint(lo2, hi2)} if lo2 <= v <= hi2)
        code += c_array("std::int64_t", f"AR_A{k}", a_vals) + c_array("std::int64_t", f"AR_B{k}", b_vals)
        t1, t2 = int_t(w1, s1), int_t(w2, s2)
        name = f"arith {w1} {int(s1)} {w2} {int(s2)}"
        main += (f'section("{name}");\n'
                 f"put_type({t1}() + {t2}()); put_type({t1}() - {t2}()); put_type({t1}() * {t2}());\n"
                 f"for (auto x : AR_A{k}) for (auto y : AR_B{k}) {{\n"
                 f"  const auto a = {t1}::of(static_cast<{t1}::rep>(x));\n"
                 f"  const auto b = {t2}::of(static_cast<{t2}::rep>(y));\n"
                 f"  put((a + b).v); put((a - b).v); put((a * b).v);\n}}\n")
        widths = ap_widths(w1, s1, w2, s2)
        lines = [f"{widths[op][0]} {int(widths[op][1])}" for op in "+-*"]
        for x in a_vals:
            for y in b_vals:
                for op, v in (("+", x + y), ("-", x - y), ("*", x * y)):
                    lo, hi = int_range(*widths[op])
                    assert lo <= v <= hi, f"ap_int rule too narrow for {x} {op} {y}"
                    lines.append(str(v))
        want[name] = lines
    return code, main, want


def shift_pairs() -> list[tuple[int, int]]:
    pairs = set()
    for s in list(range(0, 13)) + [20, 31, 32, 52, 53, 62, 63]:
        step = 1 << s
        for k in [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4] + [RNG.randint(-1000, 1000) for _ in range(3)]:
            base = k * step
            offsets = [0, 1, -1] + ([step // 2, step // 2 - 1, step // 2 + 1] if s else [])
            pairs.update((base + o, s) for o in offsets)
    for s in (63, 64, 65, 100, 1000):
        pairs.update((x, s) for x in (I64_MIN, I64_MIN + 1, -(1 << 62), -1, 0, 1, 1 << 62, I64_MAX))
    for _ in range(300):
        pairs.add((RNG.randint(I64_MIN, I64_MAX), RNG.randint(0, 70)))
    return sorted(p for p in pairs if I64_MIN <= p[0] <= I64_MAX)


def case_round_shift():
    pairs = shift_pairs()
    code = c_array("std::int64_t", "RS_X", [x for x, _ in pairs]) + c_array("int", "RS_S", [s for _, s in pairs], str)
    main, want = "", {}
    for m in MODES:
        main += (f'section("round_shift {m}");\n'
                 f"for (std::size_t i = 0; i < sizeof RS_S / sizeof RS_S[0]; ++i) "
                 f"put(masec::round_shift(RS_X[i], RS_S[i], {CPP_MODE[m]}));\n")
        want[f"round_shift {m}"] = [str(round_exact(Fraction(x, 1 << s), m)) for x, s in pairs]
    # The Int overload: every int8 value, every shift 0..9.
    main += ('section("round_shift int8");\n'
             "for (auto m : MODES) for (int s = 0; s < 10; ++s) for (int x = -128; x < 128; ++x)\n"
             "  put(masec::round_shift(masec::Int<8, true>::of(x), s, m).v);\n")
    want["round_shift int8"] = [str(round_exact(Fraction(x, 1 << s), m))
                                for m in MODES for s in range(10) for x in range(-128, 128)]
    return code, main, want


def requant_cases() -> list[tuple[int, int, int, int, int, int]]:
    """(acc, M, S, zp, lo, hi) with acc an int32 and M an int31, as integer layers use them."""
    ranges = [(-127, 127), (-128, 127), (0, 255), (-8, 7), (0, 15), (-32768, 32767)]
    cases = []
    for _ in range(600):
        lo, hi = RNG.choice(ranges)
        zp = RNG.randint(lo, hi) if lo == 0 else RNG.choice([0, 0, RNG.randint(lo, hi)])
        m = RNG.choice([1, 1 << RNG.randint(0, 29), RNG.randint(1, (1 << 30) - 1), -RNG.randint(1, 1 << 30)])
        s = RNG.randint(0, 62)
        target = RNG.randint(-4 * (hi - lo), 4 * (hi - lo))  # land near the output range: few clamps
        acc = clamp((target << s) // m if m else 0, -(1 << 31), (1 << 31) - 1)
        if RNG.random() < 0.3:  # an exact tie
            acc = clamp(((2 * target + 1) << max(s - 1, 0)) // m, -(1 << 31), (1 << 31) - 1)
        cases.append((acc, m, s, zp, lo, hi))
    for acc in (-(1 << 31), (1 << 31) - 1, 0, -1, 1):  # extremes, saturating both ways
        for m in (-(1 << 30), (1 << 30) - 1, 1):
            for s in (0, 1, 30, 62):
                cases.append((acc, m, s, 3, -128, 127))
    for s in range(1, 8):  # ties of int8 grid values with M = 1, both signs
        for q in range(-130, 130):
            cases.append(((2 * q + 1) << (s - 1), 1, s, 0, -127, 127))
    return cases


def case_requantize():
    cases = requant_cases()
    code = "".join(c_array("std::int64_t", f"RQ_{i}", [c[i] for c in cases]) for i in range(6))
    main, want = "", {}
    for m in MODES:
        main += (f'section("requantize {m}");\n'
                 f"for (std::size_t i = 0; i < sizeof RQ_0 / sizeof RQ_0[0]; ++i) put(masec::requantize(\n"
                 f"  masec::Int<32, true>::of(RQ_0[i]), masec::Int<31, true>::of(RQ_1[i]), static_cast<int>(RQ_2[i]),\n"
                 f"  RQ_3[i], RQ_4[i], RQ_5[i], {CPP_MODE[m]}));\n")
        want[f"requantize {m}"] = [str(clamp(round_exact(Fraction(a * mm, 1 << s), m) + zp, lo, hi))
                                   for a, mm, s, zp, lo, hi in cases]
    main += ('section("requantize_to int8");\n'
             "for (std::size_t i = 0; i < sizeof RQ_0 / sizeof RQ_0[0]; ++i) put(masec::requantize_to<8, true>(\n"
             "  masec::Int<32, true>::of(RQ_0[i]), masec::Int<31, true>::of(RQ_1[i]), static_cast<int>(RQ_2[i]),\n"
             "  RQ_3[i]).v);\n")
    want["requantize_to int8"] = [str(clamp(round_exact(Fraction(a * mm, 1 << s), "even") + zp, -128, 127))
                                  for a, mm, s, zp, _, _ in cases]
    return code, main, want


FIXED_SPECS = ["fixed8:frac=4", "fixed8:frac=0", "fixed8:frac=7", "ufixed8:frac=4", "fixed4:frac=-2",
               "fixed16:frac=8", "fixed12:frac=14", "fixed32:frac=16", "ufixed32:frac=30"]


def fixed_inputs() -> list[float]:
    xs = {0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e300, 5e-324, -5e-324, 1.0, -1.0}
    for spec in FIXED_SPECS:
        f = parse(spec)
        lo, hi = f.grid_bounds()
        step = 2.0 ** -f.frac
        for k in list(range(-6, 7)) + [int(lo), int(lo) + 1, int(hi) - 1, int(hi), int(hi) + 1, int(lo) - 1]:
            for off in (0.0, 0.5, 0.25, 0.75):  # on the grid, ties, and either side of a tie
                xs.add((k + off) * step)
                xs.add(-(k + off) * step)
            xs.add(math.nextafter((k + 0.5) * step, math.inf))
            xs.add(math.nextafter((k + 0.5) * step, -math.inf))
        xs.update(RNG.gauss(0.0, 1.0) * (hi - lo) * step / 4 for _ in range(30))
    return sorted(xs, key=lambda v: (math.isnan(v), v if not math.isnan(v) else 0.0))


def case_fixed():
    xs = fixed_inputs()
    code = c_array("double", "FX", xs, c_double)
    main, want = "", {}
    t = torch.tensor(xs, dtype=torch.float64)
    for spec in FIXED_SPECS:
        f = parse(spec)
        cpp = f"masec::Fixed<{f.bits}, {f.frac}, {str(f.signed).lower()}>"
        for m in MODES:
            name = f"fixed {spec} {m}"
            main += (f'section("{name}");\n'
                     f"for (double x : FX) {{ const auto v = {cpp}::from_double(x, {CPP_MODE[m]}); "
                     f'put(v.raw.v); std::printf("%a\\n", v.to_double()); }}\n')
            q = parse(spec + ("" if m == "even" else f":round={m}")).quantize(t)
            lines = []
            for x, v in zip(xs, q.tolist()):
                if math.isnan(x):  # FixedFormat keeps NaN, which no fixed-point code holds: the header gives 0
                    v = 0.0
                v += 0.0  # nor -0.0: code 0 is +0.0
                raw = Fraction(v) * Fraction(2) ** f.frac
                assert raw.denominator == 1
                lines += [str(int(raw)), float(v).hex()]
            want[name] = lines
    return code, main, want


def parse_fixed_lines(lines: list[str]) -> list[str]:
    """C++ prints doubles with %a; rewrite them as Python's float.hex() so the texts compare."""
    return [ln if i % 2 == 0 else float.fromhex(ln).hex() for i, ln in enumerate(lines)]


DOT_CASES = [(1, (8, True), (8, True)), (2, (8, True), (8, True)), (3, (8, True), (8, True)),
             (32, (8, True), (8, True)), (100, (8, True), (8, True)), (16, (4, False), (8, True)),
             (7, (8, False), (8, False)), (64, (16, True), (16, True)), (4, (31, True), (31, True))]


def case_dot():
    code, main, want = "", "", {}
    for k, (n, (w1, s1), (w2, s2)) in enumerate(DOT_CASES):
        lo1, hi1 = int_range(w1, s1)
        lo2, hi2 = int_range(w2, s2)
        vectors = [([lo1] * n, [lo2] * n), ([hi1] * n, [hi2] * n), ([lo1] * n, [hi2] * n),
                   ([RNG.randint(lo1, hi1) for _ in range(n)], [RNG.randint(lo2, hi2) for _ in range(n)])]
        t1, t2 = int_t(w1, s1), int_t(w2, s2)
        name = f"dot {n} {w1} {int(s1)} {w2} {int(s2)}"
        main += f'section("{name}");\n'
        acc_w = w1 + w2 + math.ceil(math.log2(n))
        lines = []
        for j, (a, b) in enumerate(vectors):
            code += c_array(t1, f"DA{k}_{j}", a, lambda v, t=t1: f"{t}::of({c_int(v)})")
            code += c_array(t2, f"DB{k}_{j}", b, lambda v, t=t2: f"{t}::of({c_int(v)})")
            main += f"put_type(masec::dot(DA{k}_{j}, DB{k}_{j})); put(masec::dot(DA{k}_{j}, DB{k}_{j}).v);\n"
            total = sum(x * y for x, y in zip(a, b))
            lo, hi = int_range(acc_w, s1 or s2)
            assert lo <= total <= hi, f"accumulator of {name} too narrow for {total}"
            lines += [f"{acc_w} {int(s1 or s2)}", str(total)]
        want[name] = lines
    return code, main, want


def case_mxint8():
    fmt = parse("mxint8")
    x = torch.randn(12, 32, dtype=torch.float64) * torch.logspace(-20, 20, 12, dtype=torch.float64)[:, None]
    x[3] = 0.0
    x[4, 5] = 1e30  # one large element: the rest of the block underflows to zero or tiny codes
    x[7, 0] = math.nan  # a NaN block
    enc = fmt.encode(x)
    codes = enc.unpacked_codes().reshape(12, 32)
    k = (codes - ((codes >> 7) << 8)).tolist()
    scales = enc.scales.reshape(12).tolist()
    vals = fmt.decode(enc)
    blk = "masec::MxInt8Block<32>"
    elems = [f"{{{scales[i]}, {{{', '.join(f'masec::Int<8, true>::of({v})' for v in k[i])}}}}}" for i in range(12)]
    code = f"static const {blk} MX[] = {{{', '.join(elems)}}};\n"
    main = ('section("mxint8");\n'
            "for (int i = 0; i < 12; ++i) for (int j = 0; j < 12; ++j) {\n"
            "  const masec::Exact e = masec::mxint8_dot(MX[i], MX[j]);\n"
            '  std::printf("%d %lld %d\\n", e.nan ? 1 : 0, static_cast<long long>(e.mantissa), e.exponent);\n}\n')
    expected = []
    for i in range(12):
        for j in range(12):
            a, b = vals[i].tolist(), vals[j].tolist()
            if any(map(math.isnan, a + b)):
                expected.append(None)
                continue
            expected.append(sum((Fraction(p) * Fraction(q) for p, q in zip(a, b)), Fraction(0)))
    return code, main, {"mxint8": expected}


def mx_value(line: str) -> Fraction | None:
    nan, mant, exp = (int(t) for t in line.split())
    return None if nan else Fraction(mant) * Fraction(2) ** exp


CASES = (case_wrap_saturate, case_arith, case_round_shift, case_requantize, case_fixed, case_dot, case_mxint8)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """The generated driver source and the expected lines of every section."""
    code, main, want = "", "", {}
    for case in CASES:
        c, m, w = case()
        code, main, want = code + c, main + m, {**want, **w}
    src = tmp_path_factory.mktemp("hls_int") / "driver.cpp"
    src.write_text(PRELUDE + code + "\nint main() {\n" + main + "return 0;\n}\n")
    return src, want


def run_driver(src: Path, include_dirs=(), exe_name="driver") -> dict[str, list[str]]:
    exe = _gxx.compile_cpp(src, src.with_name(exe_name), include_dirs=include_dirs)
    return parse_output(_gxx.run_exe(exe))


def compare(got: dict[str, list[str]], want: dict) -> dict[str, list[str]]:
    """Sections whose output differs from the oracle, with the differences."""
    bad = {}
    for name, expected in want.items():
        lines = got.get(name, [])
        if name == "mxint8":
            values = [mx_value(ln) for ln in lines]
            diff = mismatches([str(v) for v in values], [str(v) for v in expected])
        elif name.startswith("fixed "):
            diff = mismatches(parse_fixed_lines(lines), expected)
        else:
            diff = mismatches(lines, expected)
        if diff:
            bad[name] = diff
    return bad


@pytest.fixture(scope="module")
def results(driver):
    src, want = driver
    return run_driver(src), want


# ---- tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["wrap_saturate", "arith", "round_shift", "requantize", "fixed", "dot", "mxint8"])
def test_header_matches_oracle(results, prefix):
    got, want = results
    sections = [n for n in want if n.split()[0] == prefix or n.split()[0].startswith(prefix)]
    assert sections
    bad = compare(got, {n: want[n] for n in sections})
    assert not bad, bad


def test_driver_has_no_undefined_behaviour(driver, tmp_path):
    """Under -fsanitize=undefined (signed overflow, bad shifts, bad conversions) every case still matches."""
    src, want = driver
    local = tmp_path / "driver.cpp"
    shutil.copy(src, local)
    try:
        exe = _gxx.compile_cpp(local, extra_flags=("-fsanitize=undefined", "-fno-sanitize-recover=all"))
    except _gxx.GxxError as e:
        if "ubsan" in e.output:
            pytest.skip("g++ has no UndefinedBehaviorSanitizer library here")
        raise
    assert not compare(parse_output(_gxx.run_exe(exe)), want)


def test_oracles_agree_with_numerics():
    """The exact oracles above say what mase_compiler.numerics says wherever float64 is exact."""
    pairs = [(x, s) for x, s in shift_pairs() if abs(x) < 1 << 53 and s < 64]
    ys = torch.tensor([math.ldexp(float(x), -s) for x, s in pairs], dtype=torch.float64)
    for m in MODES:
        want = [round_exact(Fraction(x, 1 << s), m) for x, s in pairs]
        assert [int(v) for v in round_to_int(ys, m).tolist()] == want, m
    # requantize with M = 1 is int8/uint8 quantization with scale 2^S and a zero point
    cases = [c for c in requant_cases() if c[1] == 1 and c[2] < 60 and c[4:] in ((-127, 127), (0, 255))]
    assert len(cases) > 100
    for m in MODES:
        for lo, spec in ((-127, "int8"), (0, "uint8")):
            sub = [c for c in cases if c[4] == lo]
            suffix = "" if m == "even" else f":round={m}"
            for acc, _, s, zp, lo_, hi in sub:
                fmt = parse(spec + suffix)
                x = torch.tensor([float(acc)], dtype=torch.float64)
                q = fmt.quantize(x, scale=2.0**s, zero_point=zp if spec == "uint8" else None)
                got = Fraction(q.item()) / 2**s + (zp if spec == "uint8" else 0)
                expected = clamp(round_exact(Fraction(acc, 1 << s), m) + (zp if spec == "uint8" else 0), lo_, hi)
                assert got == expected, (spec, m, acc, s, zp)


def test_header_compiles_with_stricter_warnings(tmp_path):
    """The header stays clean under -Wconversion -Wsign-conversion -Wpedantic, for whoever includes it."""
    src = tmp_path / "strict.cpp"
    src.write_text('#include "masec_int.h"\n'
                   "static_assert(masec::round_shift(-3, 1, masec::Round::Even) == -2);\n"
                   "static_assert(masec::saturate<8, true>(300).v == 127 && masec::wrap<8, false>(-1).v == 255);\n"
                   "int main() {\n"
                   "  masec::Int<8, true> a[4] = {masec::Int<8, true>::of(-128), {}, {}, {}};\n"
                   "  const auto d = masec::dot(a, a);\n"
                   "  const auto f = masec::Fixed<8, 4>::from_double(1.5, masec::Round::Away);\n"
                   "  const auto q = masec::requantize_to<8, true>(d, masec::Int<16, true>::of(3), 4, 1);\n"
                   "  return static_cast<int>(q.v) + static_cast<int>(f.to_double()) - 127 - 1;\n"
                   "}\n")
    exe = _gxx.compile_cpp(src, extra_flags=("-Wconversion", "-Wsign-conversion", "-Wpedantic", "-Wshadow"))
    assert _gxx.run_exe(exe) == ""


# Each mutant changes one rule in a copy of the header: (line, replacement, sections that must
# then fail, a word naming sections that must still pass).
MUTANTS = {
    "round_shift even as away": (
        "case Round::Even: up = half > 0 || (half == 0 && (q & 1) != 0); break;",
        "case Round::Even: up = half > 0 || (half == 0 && x >= 0); break;",
        ("round_shift even", "requantize even", "requantize_to int8"),
        " away",
    ),
    "fixed even as away": (
        "case Round::Even: return std::nearbyint(y);",
        "case Round::Even: return std::round(y);",
        ("fixed fixed8:frac=4 even", "fixed ufixed8:frac=4 even"),
        " away",
    ),
    "round_shift zero as floor": (
        "case Round::Zero: up = inexact && x < 0; break;",
        "case Round::Zero: up = false; break;",
        ("round_shift zero", "requantize zero"),
        " floor",
    ),
    "saturate as wrap": (
        "if (detail::less(R::max(), r)) return R::of(R::max());",
        "if (detail::less(R::max(), r)) return wrap<W, S>(x);",
        ("wrap_saturate 8 1", "wrap_saturate 64 1"),
        "dot",
    ),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_broken_header_fails_the_comparison(driver, tmp_path, mutant):
    old, new, must_fail, unaffected = MUTANTS[mutant]
    text = HEADER.read_text()
    assert text.count(old) == 1, "the mutated line moved; update MUTANTS"
    (tmp_path / "masec_int.h").write_text(text.replace(old, new))
    src, want = driver
    local = tmp_path / "driver.cpp"
    shutil.copy(src, local)
    bad = compare(run_driver(local, include_dirs=[tmp_path]), want)
    assert set(must_fail) <= set(bad), sorted(bad)
    assert not any(unaffected in name for name in bad), sorted(bad)


def test_gxx_errors_are_one_line(tmp_path):
    src = tmp_path / "bad.cpp"
    src.write_text("int main() { int unused; return 0; }\n")
    with pytest.raises(_gxx.GxxError, match=r"^g\+\+ failed on bad\.cpp: .*unused") as info:
        _gxx.compile_cpp(src)
    assert "\n" not in str(info.value)
    src.write_text("int main() { return 3; }\n")
    with pytest.raises(_gxx.GxxError, match=r"^bad exited with status 3"):
        _gxx.compile_and_run(src)
