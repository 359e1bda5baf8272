"""numerics.intops: the integer kernels of the dataflow dialect against float torch and exact Python integers."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from mase_compiler.numerics import intops
from mase_compiler.numerics.requant import quantize_multiplier, requantize


def _softmax_params(s_in: float, s_out: float, frac: int = 6) -> tuple:
    m, s = quantize_multiplier(s_in / math.log(2) * 2**frac)
    return m, s, frac, round(2**intops.SOFTMAX_RECIP_BITS / s_out), intops.SOFTMAX_RECIP_BITS


@pytest.mark.parametrize("n", [4, 16, 128])
@pytest.mark.parametrize("s_in", [0.02, 0.1, 0.5])
def test_softmax_is_within_one_code_of_float_softmax(n, s_in):
    gen = torch.Generator().manual_seed(n)
    q = torch.randint(-128, 128, (64, n), generator=gen)
    q[0] = 7  # an all-equal row: every output 1/n
    s_out = 1 / 255
    y = intops.softmax(q, *_softmax_params(s_in, s_out), -128, -128, 127)
    ideal = torch.softmax(q.double() * s_in, -1) / s_out - 128
    assert (y - ideal).abs().max() <= 0.75  # half a code of rounding, the rest from the 2^(-1/64) table
    assert (y[0] == y[0, 0]).all() and abs(int(y[0, 0]) + 128 - 255 / n) <= 1


def test_softmax_reads_int32_accumulators():
    gen = torch.Generator().manual_seed(1)
    acc = torch.randint(-(2**20), 2**20, (8, 32), generator=gen)
    s_in = 3e-6  # e.g. s_q * s_k / sqrt(d)
    y = intops.softmax(acc, *_softmax_params(s_in, 1 / 256), 0, 0, 255)
    assert (y - torch.softmax(acc.double() * s_in, -1) * 256).abs().max() <= 0.75


@pytest.mark.parametrize("d,bits", [(8, 8), (32, 8), (384, 16)])
def test_layer_norm_is_within_one_code_of_float_layer_norm(d, bits):
    gen = torch.Generator().manual_seed(d)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    q = torch.randint(lo, hi + 1, (16, d), generator=gen)
    q[0] = 5  # constant row: only eps keeps sigma > 0
    s_in, s_out, eps, zp = 0.07, 0.03, 1e-5, 3
    gamma = torch.randn(d, generator=gen) * 0.5 + 1
    beta = torch.randn(d, generator=gen) * 0.2
    s_g = float(gamma.abs().max()) / 32767
    g_codes = torch.round(gamma / s_g).to(torch.int64)
    b_acc = torch.round(beta.double() / (s_g * 2.0**-intops.NORM_FRAC_BITS)).to(torch.int64)
    m, s = quantize_multiplier(s_g * 2.0**-intops.NORM_FRAC_BITS / s_out, bits=24)
    e = max(1, round(eps * d * d / s_in**2))
    y = intops.layer_norm(q, zp, e, g_codes, b_acc, m, s, -2, -128, 127)
    ref = F.layer_norm((q - zp).double() * s_in, (d,), gamma.double(), beta.double(), eps) / s_out - 2
    assert (y - ref.clamp(-128, 127)).abs().max() <= 0.75


def test_add_rounds_the_exact_sum_once():
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(-(2**31), 2**31, (200, 4), generator=gen)
    b = torch.randint(-128, 128, (200, 4), generator=gen)
    ra = torch.tensor([1e-6, 2e-6, -3e-7, 5e-6], dtype=torch.float64)
    ma, mb, shift = intops.add_multipliers(ra, torch.tensor(0.7, dtype=torch.float64))
    assert int(torch.cat([ma.abs(), mb.reshape(1)]).max()) < 2**23
    y = intops.add(a, 0, ma, b, -3, mb, shift, 10, -(2**15), 2**15 - 1)
    for i in range(0, 200, 7):
        for c in range(4):
            v = Fraction(int(a[i, c]) * int(ma[c]) + (int(b[i, c]) + 3) * int(mb), 2**shift)
            want = min(max(round(v) + 10, -(2**15)), 2**15 - 1)  # Python's round: half to even
            assert int(y[i, c]) == want


def test_rescale_gather_lut_and_isqrt():
    q = torch.arange(-128, 128)
    m, s = quantize_multiplier(0.3)
    assert torch.equal(intops.rescale(q, 5, m, s, -1, -128, 127), requantize(q - 5, m, s, -1, -128, 127))
    table = torch.arange(256) * 2
    assert torch.equal(intops.lut(q, table, -128), (q + 128) * 2)
    x = torch.arange(12).reshape(3, 4) + 100
    idx = torch.tensor([3, -1, 0, 11])
    assert intops.gather(x, idx, -7).tolist() == [103, -7, 100, 111]
    v = torch.tensor([0, 1, 3, 4, 99, 2**40 + 5, 2**52 - 1, 2**62 + 12345, 2**63 - 1, 3037000499**2 - 1])
    assert intops.isqrt(v).tolist() == [math.isqrt(int(x)) for x in v]
    a, b = torch.randint(-128, 128, (2, 3, 5)), torch.randint(0, 256, (2, 5, 4))
    assert torch.equal(intops.matmul(a, 1, b, 128), (a - 1) @ (b - 128))
