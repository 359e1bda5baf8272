"""masec_ops.h, the HLS kernels of the dataflow ops, against mase_compiler.numerics.intops bit for bit.

One C++ driver, generated here into a temporary folder, includes the header and runs every
case: each case is one op on one item, its inputs and parameters static arrays, its outputs
printed one per line under a ``# name`` section.  The driver is compiled once per module, three
ways in parallel: as shipped (``g++ -std=c++17 -O2 -Wall -Wextra -Werror -Wno-unknown-pragmas``
plus ``-Wconversion -Wpedantic -Wshadow``, so the header stays clean for whoever includes it),
with ``-DMASEC_ROUND=masec::Round::Away`` (the tie cases of every rounding op must then fail,
so a header that rounded the wrong way could not pass), and under UndefinedBehaviorSanitizer.
The oracle is :mod:`mase_compiler.numerics.intops` (and ``requant.requantize`` for matmul's
optional requantization); exact Python integers only where intops' int64 is not exact
(an add whose sum passes 2^63, square roots near 2^63).

Vectors: seeded random codes plus every code of 8-bit types, extreme codes (int32
accumulators at both ends), exact rounding ties, all-equal rows, nonzero and extreme zero
points, saturation both ways, per-channel multipliers, negative add multipliers, products
beyond 2^62 (the oracle's exact Fraction path), shifts of 0 and >= 128, padded gathers.
Skipped without g++.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import torch

from mase_compiler.backends.hls import INCLUDE_DIR, _gxx
from mase_compiler.numerics import intops
from mase_compiler.numerics.requant import quantize_multiplier, requantize

pytestmark = pytest.mark.skipif(_gxx.find_gxx() is None, reason="g++ is not installed")

HEADER = INCLUDE_DIR / "masec_ops.h"
FLAGS = ("-O2", "-Wno-unknown-pragmas")
# Stricter warnings for whoever includes the header.  Not -Wsign-conversion: g++ 12 flags every
# `T x[N]` parameter whose bound is an `int` template parameter (the bound converts to size_t).
STRICT = ("-Wconversion", "-Wpedantic", "-Wshadow")
OPS = ("rescale", "add", "lut", "gather", "matmul", "softmax", "layer_norm")
ROUNDING_OPS = ("rescale", "add", "matmul", "softmax", "layer_norm")  # lut and gather do not round

# element type: (C++ type, lo, hi)
TYPES = {
    "int8": ("std::int8_t", -128, 127),
    "uint8": ("std::uint8_t", 0, 255),
    "int16": ("std::int16_t", -(2**15), 2**15 - 1),
    "int32": ("std::int32_t", -(2**31), 2**31 - 1),
    "uint32": ("std::uint32_t", 0, 2**32 - 1),
}
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

GEN = torch.Generator().manual_seed(20261125)


def rand(lo: int, hi: int, n: int) -> torch.Tensor:
    """``n`` seeded random integers in [lo, hi]."""
    return torch.randint(lo, hi + 1, (n,), generator=GEN, dtype=torch.int64)


def codes(t: str, n: int) -> torch.Tensor:
    """``n`` codes of type ``t``: its extremes and their neighbours first, the rest random."""
    _, lo, hi = TYPES[t]
    edge = torch.tensor([lo, hi, lo + 1, hi - 1, 0, 1, -1 if lo < 0 else 2])[:n]
    return torch.cat([edge, rand(lo, hi, max(0, n - len(edge)))])


def c_lit(v: int) -> str:
    """A C++ literal of ``v`` with the type that holds it."""
    v = int(v)
    if v == -(2**63):
        return "(-9223372036854775807LL - 1)"
    if v == I32_MIN:
        return "(-2147483647 - 1)"
    if I32_MIN < v <= I32_MAX:
        return str(v)
    if 0 < v < 2**32:
        return f"{v}U"
    return f"{v}ULL" if v >= 2**63 else f"{v}LL"


# ---- cases --------------------------------------------------------------------------------

@dataclass
class Case:
    op: str
    label: str
    ties: bool = False  # has exact rounding ties: a half-away build must fail it
    decls: list[str] = field(default_factory=list)
    call: str = ""
    out_type: str = ""
    want: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.op} {self.label}"


CASES: list[Case] = []


def case(op: str, label: str, arrays: dict[str, tuple[str, torch.Tensor | list[int]]], call: str, out_type: str,
         want: torch.Tensor, ties: bool = False) -> None:
    """Register a case: ``arrays`` name -> (C++ type, values); ``call`` names them as ``{name}``
    and the output as ``{out}``; ``want`` is the oracle's output."""
    k = len(CASES)
    c = Case(op, label, ties)
    names = {n: f"c{k}_{n}" for n in arrays}
    for n, (ctype, vals) in arrays.items():
        body = ", ".join(c_lit(v) for v in (vals.reshape(-1).tolist() if isinstance(vals, torch.Tensor) else vals))
        c.decls.append(f"static const {ctype} {names[n]}[] = {{{body}}};")
    c.want = [int(v) for v in want.reshape(-1).tolist()]
    c.out_type = out_type
    c.decls.append(f"static {TYPES[out_type][0]} c{k}_out[{len(c.want)}];")
    c.call = call.format(out=f"c{k}_out", **names)
    CASES.append(c)


def t_(name: str) -> str:
    return TYPES[name][0]


def u32(vals) -> tuple[str, torch.Tensor]:
    return "std::uint32_t", torch.as_tensor(vals, dtype=torch.int64)


def u8(vals) -> tuple[str, torch.Tensor]:
    return "std::uint8_t", torch.as_tensor(vals, dtype=torch.int64)


def i32(vals) -> tuple[str, torch.Tensor]:
    return "std::int32_t", torch.as_tensor(vals, dtype=torch.int64)


# rescale: clamp(round((q - zp_in) * M[c] / 2^S[c]) + zp_out, lo, hi)

def rescale_case(label, ti, to, q, zp_in, m, s, zp_out, lo, hi, ties=False):
    c = len(m)
    want = intops.rescale(q.reshape(-1, c), zp_in, torch.tensor(m), torch.tensor(s), zp_out, lo, hi)
    case("rescale", label, {"in": (t_(ti), q), "m": u32(m), "s": u8(s)},
         f"masec::rescale<{q.numel()}, {c}>({{in}}, {{out}}, {zp_in}, {{m}}, {{s}}, {zp_out}, "
         f"{c_lit(lo)}, {c_lit(hi)});", to, want, ties)


def rescale_cases():
    ms = [quantize_multiplier(r) for r in (0.37, 1.9, 0.0042, 0.8)]
    rescale_case("int8 per-channel", "int8", "int8", torch.arange(-128, 128), -3,
                 [m for m, _ in ms], [s for _, s in ms], 5, -128, 127)
    # M / 2^S = 1/2 on odd and 3/4 on even q - zp_in (every uint8 code): exact ties; saturation at [-100, 100]
    rescale_case("uint8 ties", "uint8", "int8", torch.arange(0, 256), 127, [1, 3], [1, 2], 0, -100, 100, ties=True)
    # int32 accumulators: products up to 2^64 (beyond int64), the oracle's exact path
    rescale_case("int32 accumulators", "int32", "int8", codes("int32", 64), -7,
                 [2**32 - 1, 2**31 + 12345, 3, 2**20], [62, 70, 31, 45], 1, -128, 127)
    # zp_in = -(2^31 - 1): q - zp_in up to 2^32 - 2, times M up to 2^64 (33 x 32 bits)
    rescale_case("int32 extreme zero point", "int32", "int16", codes("int32", 32), -I32_MAX,
                 [2**32 - 1, 2**32 - 1, 5, 1], [62, 33, 20, 0], 0, -(2**15), 2**15 - 1)
    # shift 0 (the identity, clamped), a plain shift, shifts >= 128 (the result is zp_out)
    rescale_case("int16 shifts 0 to 255", "int16", "uint8", codes("int16", 80), 100,
                 [1, 2**31, 2**32 - 1, 12345], [0, 47, 128, 255], 128, 0, 255)


# add: clamp(round(((a - zp_a) * Ma + (b - zp_b) * Mb) / 2^S) + zp_out, lo, hi)

def round_even_shift(x: int, s: int) -> int:
    """round(x / 2^s), half to even, on exact Python integers."""
    q, r = divmod(x, 1 << s)
    return q + (2 * r > 1 << s or (2 * r == 1 << s and q % 2 == 1))


def exact_add(a, zp_a, ma, b, zp_b, mb, shift, zp_out, lo, hi) -> torch.Tensor:
    """intops.add's formula on exact Python integers, where intops' int64 sum would wrap."""
    c = len(ma)
    acc = [(x - zp_a) * ma[i % c] + (y - zp_b) * mb[i % c] for i, (x, y) in enumerate(zip(a.tolist(), b.tolist()))]
    return torch.tensor([max(lo, min(hi, round_even_shift(v, shift) + zp_out)) for v in acc])


def add_case(label, ta, tb, to, a, zp_a, ma, b, zp_b, mb, shift, zp_out, lo, hi, ties=False, oracle=intops.add):
    c = len(ma)
    if oracle is intops.add:
        want = intops.add(a.reshape(-1, c), zp_a, torch.tensor(ma), b.reshape(-1, c), zp_b, torch.tensor(mb), shift,
                          zp_out, lo, hi)
    else:
        want = oracle(a, zp_a, ma, b, zp_b, mb, shift, zp_out, lo, hi)
    case("add", label, {"a": (t_(ta), a), "b": (t_(tb), b), "ma": i32(ma), "mb": i32(mb)},
         f"masec::add<{a.numel()}, {c}>({{a}}, {{b}}, {{out}}, {zp_a}, {{ma}}, {zp_b}, {{mb}}, {shift}, {zp_out}, "
         f"{c_lit(lo)}, {c_lit(hi)});", to, want, ties)


def add_cases():
    ra = torch.rand(8, generator=GEN, dtype=torch.float64) * 2 + 0.05
    rb = torch.rand(8, generator=GEN, dtype=torch.float64) * 2 + 0.05
    ma, mb, s = intops.add_multipliers(ra, rb)
    add_case("int8 per-channel", "int8", "int8", "int8", codes("int8", 96), 3, ma.tolist(), codes("int8", 96).flip(0),
             -2, mb.tolist(), s, -1, -128, 127)
    # int32 accumulators, negative multipliers, the int32 multiplier extremes (sums stay within int64)
    add_case("int32 accumulators", "int32", "int32", "int32", codes("int32", 64), 0, [I32_MIN, 0, 2**30, -12345],
             codes("int32", 64).flip(0), 0, [0, I32_MAX, -(2**30), 678], 40, 0, I32_MIN, I32_MAX)
    # beyond intops' int64: extreme zero points and multipliers, a sum near -2^64, checked on
    # exact integers (intops.add would wrap there; the header is exact for every int32 argument)
    add_case("int32 beyond int64", "int32", "int32", "int32", codes("int32", 32), -I32_MAX, [I32_MIN, I32_MAX],
             codes("int32", 32), -I32_MAX, [I32_MIN, I32_MIN], 34, 0, I32_MIN, I32_MAX, oracle=exact_add)
    # (a - b) / 2 on every pair of a uint8 and an int8 code row: exact ties, saturation at [-60, 60]
    a = torch.arange(0, 256).repeat_interleave(2)
    b = torch.arange(-128, 128).repeat(2)
    add_case("uint8 int8 ties", "uint8", "int8", "int8", a, 128, [1], b, 0, [-1], 1, 0, -60, 60, ties=True)
    add_case("int16 shift 0", "int16", "int16", "int32", codes("int16", 40), -5, [3], codes("int16", 40), 7, [-5], 0,
             11, I32_MIN, I32_MAX)
    add_case("int16 shift 70", "int16", "int16", "uint8", codes("int16", 40), 0, [I32_MAX, -3], codes("int16", 40), 0,
             [I32_MAX, 1], 70, 9, 0, 255)


# lut: table[q - lo_in]

def lut_case(label, ti, to, q, table, lo_in):
    case("lut", label, {"in": (t_(ti), q), "table": (t_(to), table)},
         f"masec::lut<{q.numel()}, {table.numel()}>({{in}}, {{out}}, {{table}}, {lo_in});", to,
         intops.lut(q, table, lo_in))


def lut_cases():
    lut_case("int8 all codes", "int8", "int8", torch.cat([torch.arange(-128, 128), codes("int8", 20)]),
             codes("int8", 256), -128)
    lut_case("uint8 to int16", "uint8", "int16", codes("uint8", 64), codes("int16", 256), 0)
    q = torch.cat([torch.tensor([-300, 299, -299, 298]), rand(-300, 299, 60)])
    lut_case("int16 window", "int16", "uint8", q, codes("uint8", 600), -300)


# gather: out[i] = q[idx[i]], pad where idx < 0

def gather_case(label, t, q, idx, pad):
    case("gather", label, {"in": (t_(t), q), "idx": i32(idx)},
         f"masec::gather<{q.numel()}, {len(idx)}>({{in}}, {{out}}, {{idx}}, static_cast<{t_(t)}>({c_lit(pad)}));", t,
         intops.gather(q, torch.tensor(idx), pad))


def gather_cases():
    # a 3x4 item: its transpose, then a zero-padded 3x6 (one column of pad each side), then repeats
    transpose = torch.arange(12).reshape(3, 4).T.reshape(-1).tolist()
    padded = [-1] + list(range(0, 4)) + [-1, -1] + list(range(4, 8)) + [-1, -1] + list(range(8, 12)) + [-1]
    gather_case("int8 transpose pad", "int8", codes("int8", 12), transpose + padded + [0, 0, 11, 11], -5)
    gather_case("uint8 random", "uint8", codes("uint8", 20), rand(-1, 19, 37).tolist(), 255)
    gather_case("int32 pad min", "int32", codes("int32", 9), [8, -1, 0, -7, 4, 4], I32_MIN)


# matmul: (a - zp_a) @ (b - zp_b), then requantize or clamp

def matmul_case(label, ta, tb, to, dims, a, zp_a, b, zp_b, requant, zp_out, lo, hi, ties=False):
    bt, m, k, n = dims
    acc = intops.matmul(a.reshape(bt, m, k), zp_a, b.reshape(bt, k, n), zp_b)
    mult, shift = requant or (0, 0)
    want = requantize(acc, mult, shift, zp_out, lo, hi) if requant else acc.clamp(lo, hi)
    case("matmul", label, {"a": (t_(ta), a), "b": (t_(tb), b)},
         f"masec::matmul<{bt}, {m}, {k}, {n}, {'true' if requant else 'false'}>({{a}}, {{b}}, {{out}}, {zp_a}, {zp_b}, "
         f"{c_lit(mult)}, {shift}, {zp_out}, {c_lit(lo)}, {c_lit(hi)});", to, want, ties)


def matmul_cases():
    matmul_case("int8 requant", "int8", "int8", "int8", (2, 3, 5, 4), codes("int8", 30), -3, codes("int8", 40), 4,
                quantize_multiplier(0.0123), 2, -128, 127)
    matmul_case("uint8 int8 accumulator", "uint8", "int8", "int32", (1, 4, 7, 3), codes("uint8", 28), 128,
                codes("int8", 21), 0, None, 0, I32_MIN, I32_MAX)
    ext_a = torch.tensor([-128, 127]).repeat_interleave(6).repeat(2)  # rows of extremes
    ext_b = torch.tensor([-128, 127, -128]).repeat(8)
    matmul_case("int8 extremes clamped", "int8", "int8", "int16", (2, 2, 6, 2), ext_a, 0, ext_b, 0, None, 0,
                -1000, 1000)
    matmul_case("int8 ties", "int8", "int8", "int16", (1, 6, 3, 5), codes("int8", 18), 1, codes("int8", 15), -1,
                (1, 1), 0, -(2**15), 2**15 - 1, ties=True)
    # products acc * M up to 2^67: the oracle's exact path
    matmul_case("int16 wide requant", "int16", "int16", "int8", (1, 2, 16, 3), codes("int16", 32), 0,
                codes("int16", 48), 3, (2**32 - 1, 60), -4, -128, 127)


# softmax along rows

def softmax_case(label, ti, to, q, frac, mult, shift, numerator, recip_bits, zp_out, lo, hi, ties=False):
    rows, n = q.shape
    table = intops.exp2_table(frac)
    want = intops.softmax(q, mult, shift, frac, numerator, recip_bits, zp_out, lo, hi)
    case("softmax", label, {"in": (t_(ti), q), "table": ("std::uint16_t", table)},
         f"masec::softmax<{rows}, {n}, {frac}>({{in}}, {{out}}, {c_lit(mult)}, {shift}, {{table}}, {c_lit(numerator)}, "
         f"{recip_bits}, {zp_out}, {c_lit(lo)}, {c_lit(hi)});", to, want, ties)


def softmax_params(s_in: float, frac: int) -> tuple[int, int]:
    return quantize_multiplier(s_in / math.log(2) * 2**frac)


def softmax_cases():
    q = torch.stack([rand(-128, 127, 10) for _ in range(6)])
    q[1] = 7  # all equal: every output 1/n
    q[2] = -128
    q[2, 3] = 127  # one maximum, the rest at the table's limit (t clamped to 16 * 2^F)
    q[3] = -128  # all at the lowest code
    q[4, 2] = q[4, 7] = 127  # two maxima
    m, s = softmax_params(0.05, 6)
    softmax_case("int8 rows", "int8", "int8", q, 6, m, s, 2**40, 32, -128, -128, 127)
    acc = torch.stack([rand(-(2**24), 2**24, 16) for _ in range(3)])
    acc[0, 0], acc[0, 5] = I32_MIN, I32_MAX  # d = 2^32 - 1: d * M beyond 2^62
    acc[2] = I32_MIN
    m, s = softmax_params(1e-6, 8)
    softmax_case("int32 accumulators", "int32", "uint8", acc, 8, m, s, round(2**32 * 255), 32, 0, 0, 255)
    # recip_bits = 1: e * R is odd about half the time, an exact tie
    q = torch.stack([rand(-128, 127, 8) for _ in range(8)])
    m, s = softmax_params(0.1, 4)
    softmax_case("int8 ties", "int8", "int32", q, 4, m, s, 3 << 17, 1, 0, I32_MIN, I32_MAX, ties=True)
    q = torch.stack([codes("int16", 5), rand(-40, 40, 5)])
    m, s = softmax_params(0.3, 0)
    softmax_case("int16 F=0", "int16", "int16", q, 0, m, s, 2**40, 32, -100, -32768, 32767)


# layer norm along rows

def layer_norm_case(label, ti, tg, to, q, zp_in, eps, gamma, beta, mult, shift, zp_out, lo, hi,
                    recip_bits=intops.NORM_RECIP_BITS, frac_bits=intops.NORM_FRAC_BITS, ties=False):
    rows, d = q.shape
    want = intops.layer_norm(q, zp_in, eps, gamma, beta, mult, shift, zp_out, lo, hi, recip_bits, frac_bits)
    case("layer_norm", label, {"in": (t_(ti), q), "gamma": (t_(tg), gamma), "beta": ("std::int64_t", beta)},
         f"masec::layer_norm<{rows}, {d}>({{in}}, {{out}}, {zp_in}, {c_lit(eps)}, {{gamma}}, {{beta}}, {c_lit(mult)}, "
         f"{shift}, {zp_out}, {c_lit(lo)}, {c_lit(hi)}, {recip_bits}, {frac_bits});", to, want, ties)


def layer_norm_cases():
    q = torch.stack([rand(-128, 127, 16) for _ in range(5)])
    q[1] = -9  # all equal: sigma = isqrt(eps), the output is beta requantized
    q[2] = torch.tensor([-128, 127]).repeat(8)
    q[3, 5] = 127  # one outlier
    m, s = quantize_multiplier(1.3 * 2**-14)
    layer_norm_case("int8", "int8", "int8", "int8", q, -2, 1000, codes("int8", 16), rand(-(2**20), 2**20, 16), m, s,
                    3, -128, 127)
    layer_norm_case("int8 eps 1", "int8", "int8", "int8", q, 0, 1, codes("int8", 16), rand(-(2**20), 2**20, 16), m, s,
                    -128, -128, 127)
    # eps beyond 32 bits, int16 gamma, acc * M beyond 2^62 (the oracle's exact path)
    q = torch.stack([codes("uint8", 64), rand(0, 255, 64), torch.full((64,), 128)])
    layer_norm_case("uint8 wide", "uint8", "int16", "int16", q, 128, 3 * 2**33, codes("int16", 64),
                    rand(-(2**30), 2**30, 64), 2**32 - 1, 50, 0, -(2**15), 2**15 - 1)
    # M / 2^S = 1/2 on odd accumulators: exact ties; non-default recip and fraction bits
    q = torch.stack([rand(-128, 127, 8) for _ in range(6)])
    beta = rand(-(2**12), 2**12, 8) | 1
    layer_norm_case("int8 ties", "int8", "int8", "int32", q, 0, 5, codes("int8", 8), beta, 1, 1, 0, I32_MIN, I32_MAX,
                    recip_bits=30, frac_bits=8, ties=True)
    layer_norm_case("int16 D=256", "int16", "int8", "int8", torch.stack([codes("int16", 256), rand(-300, 300, 256)]),
                    0, 1, codes("int8", 256), rand(-(2**18), 2**18, 256), *quantize_multiplier(2**-13), 0, -128, 127)


ISQRT_INT64_LIMIT = 3037000499**2  # intops.isqrt is exact below: from here its int64 (s + 1)^2 wraps


def isqrt_cases():
    """The layer norm's square root alone: squares and their neighbours up to 2^64 - 1, against exact
    integers (math.isqrt; intops.isqrt agrees below ISQRT_INT64_LIMIT, test_isqrt_oracles)."""
    vals = set(range(0, 20))
    for k in (2, 3, 255, 65535, 2**31 - 1, 2**32 - 1, 3037000499):
        vals.update({k * k - 1, k * k, k * k + 1})
    vals.update({2**62, 2**63 - 1, 2**63, 2**64 - 1})
    vals.update(int(v) for v in rand(0, 2**62, 40))
    vals = sorted(v for v in vals if v < 2**64)
    want = torch.tensor([math.isqrt(v) for v in vals])
    case("isqrt", "edges", {"in": ("std::uint64_t", vals)},  # a list: torch's int64 cannot hold 2^64 - 1
         f"for (int i = 0; i < {len(vals)}; ++i) {{out}}[i] = static_cast<std::uint32_t>(masec::isqrt({{in}}[i]));",
         "uint32", want)


for _make in (rescale_cases, add_cases, lut_cases, gather_cases, matmul_cases, softmax_cases, layer_norm_cases,
              isqrt_cases):
    _make()


# ---- the driver ---------------------------------------------------------------------------

PRELUDE = """\
// Generated by tests/test_hls_ops.py: every masec_ops.h op on its test vectors.
#include "masec_ops.h"
#include <cstdint>
#include <cstdio>

template <typename T, int N>
static void put(const char* name, const T (&v)[N]) {
    std::printf("# %s\\n", name);
    for (int i = 0; i < N; ++i) std::printf("%lld\\n", static_cast<long long>(v[i]));
}
"""


def driver_source() -> str:
    decls = "\n".join(d for c in CASES for d in c.decls)
    body = "\n".join(f"    {c.call}\n    put(\"{c.name}\", c{k}_out);" for k, c in enumerate(CASES))
    return f"{PRELUDE}\n{decls}\n\nint main() {{\n{body}\n    return 0;\n}}\n"


def parse_output(text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    cur: list[int] = []
    for line in text.splitlines():
        if line.startswith("# "):
            cur = out.setdefault(line[2:], [])
        else:
            cur.append(int(line))
    return out


def diff(got: list[int] | None, want: list[int]) -> str:
    """'' when equal, else the first differences."""
    if got is None or len(got) != len(want):
        return f"{None if got is None else len(got)} values, expected {len(want)}"
    bad = [f"#{i}: got {g}, want {w}" for i, (g, w) in enumerate(zip(got, want)) if g != w]
    return "; ".join(bad[:5]) + (f" ... {len(bad)} in all" if len(bad) > 5 else "")


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, dict[str, list[int]] | None]:
    """The driver built three times, in parallel: as shipped (strict warnings), with half-away
    rounding, and under UndefinedBehaviorSanitizer (None when g++ has no ubsan library)."""
    src = tmp_path_factory.mktemp("hls_ops") / "driver.cpp"
    src.write_text(driver_source())
    variants = {
        "even": dict(extra_flags=FLAGS + STRICT),
        "away": dict(extra_flags=FLAGS, defines=["MASEC_ROUND=masec::Round::Away"]),
        "ubsan": dict(extra_flags=("-O1", "-Wno-unknown-pragmas", "-fsanitize=undefined", "-fno-sanitize-recover=all")),
    }

    def build(name: str) -> dict[str, list[int]] | None:
        try:
            exe = _gxx.compile_cpp(src, src.with_name(f"driver_{name}"), **variants[name])
        except _gxx.GxxError as e:
            if name == "ubsan" and "ubsan" in e.output:
                return None
            raise
        return parse_output(_gxx.run_exe(exe))

    with ThreadPoolExecutor(len(variants)) as pool:
        return dict(zip(variants, pool.map(build, variants)))


# ---- tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS + ("isqrt",))
def test_op_matches_intops(builds, op):
    cases = [c for c in CASES if c.op == op]
    assert cases
    bad = {c.name: d for c in cases if (d := diff(builds["even"].get(c.name), c.want))}
    assert not bad, bad


def test_no_undefined_behaviour(builds):
    """Under -fsanitize=undefined (signed overflow, bad shifts, out-of-bounds conversions) every case still
    runs to the end and matches: the widths the header documents hold on these vectors."""
    if builds["ubsan"] is None:
        pytest.skip("g++ has no UndefinedBehaviorSanitizer library here")
    bad = {c.name: d for c in CASES if (d := diff(builds["ubsan"].get(c.name), c.want))}
    assert not bad, bad


def test_exact_add_agrees_with_intops():
    """The exact-integer oracle of the case beyond int64 is intops.add wherever intops' int64 is exact."""
    a, b = codes("int32", 64), codes("int16", 64)
    for ma, mb, shift, zp in (([3, -7], [5, 11], 2, 1), ([I32_MIN, 2**30], [-(2**30), I32_MAX], 33, -4)):
        want = intops.add(a.reshape(-1, 2), 5, torch.tensor(ma), b.reshape(-1, 2), -9, torch.tensor(mb), shift, zp,
                          I32_MIN, I32_MAX)
        assert exact_add(a, 5, ma, b, -9, mb, shift, zp, I32_MIN, I32_MAX).tolist() == want.reshape(-1).tolist()


def test_isqrt_oracles():
    """intops.isqrt is math.isqrt below ISQRT_INT64_LIMIT (the header's isqrt is exact on all of uint64)."""
    vals = [0, 1, 2, 3, 15, 16, 17, 2**62, ISQRT_INT64_LIMIT - 1] + [int(v) for v in rand(0, ISQRT_INT64_LIMIT - 1, 50)]
    assert intops.isqrt(torch.tensor(vals)).tolist() == [math.isqrt(v) for v in vals]


def test_outputs_fit_their_types():
    """The oracle's outputs lie in each case's output type, so a cast in the header hides nothing."""
    for c in CASES:
        _, lo, hi = TYPES[c.out_type]
        assert all(lo <= v <= hi for v in c.want), c.name


@pytest.mark.parametrize("op", ROUNDING_OPS)
def test_half_away_rounding_is_caught(builds, op):
    """Built with MASEC_ROUND = half away from zero, every tie case of a rounding op differs."""
    ties = [c for c in CASES if c.op == op and c.ties]
    assert ties
    for c in ties:
        assert diff(builds["away"].get(c.name), c.want), f"{c.name}: half-away rounding went unnoticed"
    others = [c for c in CASES if c.op in ("lut", "gather")]  # no rounding: unaffected
    assert not any(diff(builds["away"].get(c.name), c.want) for c in others)


def test_signatures_are_documented():
    """The comment block at the top of the header spells every op's signature as defined below it."""
    text = HEADER.read_text()
    top, body = text.split("#ifndef MASEC_OPS_H", 1)
    doc = re.sub(r"\s+", " ", " ".join(ln.lstrip("/ ") for ln in top.splitlines()))
    defs = re.findall(r"^(template <[^>]*>)\n(void \w+\([^)]*\))", body, flags=re.M)
    # linear (dataflow.linear) is checked through whole emitted models in tests/test_hls_emit.py
    assert {re.match(r"void (\w+)", sig).group(1) for _, sig in defs} == {*OPS, "linear"}
    for tmpl, sig in defs:
        flat = re.sub(r"\s+", " ", f"{tmpl} {sig}")
        flat = re.sub(r" = \w+", "", flat)  # default arguments are written in the doc too: compare without them
        assert flat.replace("( ", "(") in re.sub(r" = \w+", "", doc), flat
