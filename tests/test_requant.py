"""Integer requantization (numerics/requant.py) against exact rational arithmetic."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from mase_compiler.numerics.requant import quantize_multiplier, requantize, round_shift

MODES = ("even", "away", "floor", "ceil", "zero")


def _oracle(v: Fraction, mode: str) -> int:
    fl = math.floor(v)
    if mode == "floor":
        return fl
    if mode == "ceil":
        return math.ceil(v)
    if mode == "zero":
        return int(v)  # truncates toward zero
    if v - fl != Fraction(1, 2):
        return round(v)  # not a tie: nearest
    return fl + (fl % 2) if mode == "even" else (fl + 1 if v > 0 else fl)


def _cases() -> list[int]:
    rng = random.Random(0)
    xs = [0, 1, -1, 2**31 - 1, -(2**31), 2**62, -(2**62), 2**63 - 1, -(2**63)]
    xs += [rng.randrange(-(2**40), 2**40) for _ in range(300)]
    xs += [k * 2**s + 2 ** (s - 1) * sign for k in range(-6, 7) for s in (1, 3, 9) for sign in (1, -1)]  # ties
    return xs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shift", [0, 1, 2, 9, 31, 61, 62, 63, 70])
def test_round_shift_is_exact(mode, shift):
    xs = _cases()
    got = round_shift(torch.tensor(xs, dtype=torch.int64), shift, mode).tolist()
    assert got == [_oracle(Fraction(x, 2**shift), mode) for x in xs]


@pytest.mark.parametrize("real", [1.0, 0.5, 0.75, 1e-3, 0.0123456789, 3.999999, 1 / 3, 7.5e-10, 123.456])
def test_quantize_multiplier_is_the_closest_31_bit_fraction(real):
    m, s = quantize_multiplier(real)
    assert 0 < m < 2**31 and m >= 2**30  # full precision: the top bit is used
    assert abs(Fraction(m, 2**s) - Fraction(real)) <= Fraction(1, 2**(s + 1))  # nearest at this shift
    assert abs(m / 2**s - real) / real <= 2.0**-31 * 1.0000001


def test_quantize_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**-40) == (2**22, 62)  # the shift is capped: fewer bits, still exact here
    m, s = quantize_multiplier(1 - 2.0**-40)  # rounds up to 2^31: one less bit of shift
    assert m == 2**30 and s == 30
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite non-negative"):
            quantize_multiplier(bad)


@pytest.mark.parametrize("mode", MODES)
def test_requantize_matches_exact_rationals_per_channel(mode):
    rng = random.Random(1)
    acc = torch.tensor([[rng.randrange(-(2**31), 2**31) for _ in range(4)] for _ in range(64)], dtype=torch.int64)
    reals = [0.0003, 0.02, 1.7, 2.0**-20]
    ms = [quantize_multiplier(r) for r in reals]
    got = requantize(acc, torch.tensor([m for m, _ in ms]), torch.tensor([s for _, s in ms]), zero_point=3,
                     lo=-128, hi=127, mode=mode)
    for i in range(acc.shape[0]):
        for c, (m, s) in enumerate(ms):
            want = min(max(_oracle(Fraction(int(acc[i, c]) * m, 2**s), mode) + 3, -128), 127)
            assert int(got[i, c]) == want
    # and the fake-quant float path agrees on values away from ties (one definition of the grid)
    x = acc[:, 1].double() * reals[1]
    assert (torch.round(x).clamp(-131, 124) + 3 - got[:, 1]).abs().max() <= 1


def test_requantize_products_beyond_int64_stay_exact():
    acc = torch.tensor([2**62, -(2**62) + 1, 3], dtype=torch.int64)
    m, s = 2**31 - 1, 93
    got = requantize(acc, m, s, lo=-(2**40), hi=2**40)
    assert got.tolist() == [_oracle(Fraction(int(a) * m, 2**s), "even") for a in acc.tolist()]
