"""Integer kernels beyond the linear layer: the one definition hardware and interpreter share.

A whole quantized network on integer hardware needs more than ``requantize`` after a MAC
array: residual additions of two integer streams on different grids, activations on codes,
softmax and layer normalization without floats, and data movement.  Each function here is
the exact integer arithmetic of one ``dataflow`` op (docs/hardware.md); the interpreter's
hardware-exact mode calls it, and the SystemVerilog components and the HLS header are
tested against it bit for bit.  All tensors are int64; "round" is round half to even on
the exact value (:func:`mase_compiler.numerics.requant.round_shift`).

The softmax and layer-norm recipes follow the integer-only designs of I-BERT (Kim et al.,
2021) with the hardware-friendly choices MASE's dataflow components make: ``exp`` as a
power of two (a 2^F-entry table for the fraction, a shift for the integer part) and one
reciprocal per row instead of a division per element.
"""

from __future__ import annotations

import math

import torch

from .requant import requantize, round_shift

EXP_BITS = 15  # table entries are 2^EXP_BITS * 2^(-f / 2^F) in [2^(EXP_BITS-1), 2^EXP_BITS]
SOFTMAX_RECIP_BITS = 32  # reciprocal numerator 2^RB / s_out: R = floor(K / sum)
NORM_RECIP_BITS = 40  # layer norm: r = floor(2^40 / sigma)
NORM_FRAC_BITS = 12  # the normalized value (x - mean) / std in Q.12


def _i64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.int64)


def rescale(q: torch.Tensor, zp_in: int, multiplier, shift, zp_out: int, lo: int, hi: int) -> torch.Tensor:
    """``dataflow.requant``: codes on one grid to another, ``clamp(round((q - zp_in) * M / 2^S) + zp_out)``."""
    return requantize(_i64(q) - zp_in, multiplier, shift, zp_out, lo, hi)


def add(a: torch.Tensor, zp_a: int, mult_a, b: torch.Tensor, zp_b: int, mult_b, shift: int,
        zp_out: int, lo: int, hi: int) -> torch.Tensor:
    """``dataflow.add``: ``clamp(round(((a - zp_a) * Ma + (b - zp_b) * Mb) / 2^S) + zp_out, lo, hi)``.

    ``Ma``/``Mb`` are signed integers, scalars or per channel along the last axis (one rounding
    for the sum: better than requantizing each operand first).  Exact while each product and their
    sum stay below 2^63 (int32 operands with ``add_multipliers``' 23-bit multipliers: below 2^56).
    """
    acc = (_i64(a) - zp_a) * _i64(mult_a) + (_i64(b) - zp_b) * _i64(mult_b)
    return (round_shift(acc, shift) + zp_out).clamp(lo, hi)


def add_multipliers(ratio_a: torch.Tensor, ratio_b: torch.Tensor, bits: int = 23) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Integer ``(Ma, Mb, S)`` with ``Ma / 2^S ~ ratio_a`` and ``Mb / 2^S ~ ratio_b`` (scale ratios
    ``s_a / s_out``, ``s_b / s_out``), the largest ``|M|`` below ``2^bits``."""
    ra, rb = ratio_a.double(), ratio_b.double()
    big = float(torch.cat([ra.abs().reshape(-1), rb.abs().reshape(-1)]).max())
    if not math.isfinite(big) or big <= 0:
        raise ValueError(f"add: scale ratios must be finite and not all zero, got max {big}")
    shift = bits - 1 - (math.frexp(big)[1] - 1)  # big * 2^shift in [2^(bits-1), 2^bits)
    if shift < 0:
        raise ValueError(f"add: an operand's scale is {big:.3g}x the output's; no {bits}-bit multiplier with a shift")
    shift = min(shift, 62 - bits)
    return torch.round(ra * 2.0**shift).to(torch.int64), torch.round(rb * 2.0**shift).to(torch.int64), shift


def lut(q: torch.Tensor, table: torch.Tensor, lo_in: int) -> torch.Tensor:
    """``dataflow.lut``: ``table[q - lo_in]`` (an elementwise function tabulated on every input code); a code
    outside the table reads its nearest end, as the hardware does."""
    table = _i64(table)
    return table[(_i64(q) - lo_in).clamp(0, table.numel() - 1)]


def gather(q: torch.Tensor, index: torch.Tensor, pad: int, batch: int = 0) -> torch.Tensor:
    """``dataflow.gather`` on each item of ``q`` (its first ``batch`` axes index the items, the rest is one
    item): ``out[i] = item.flat[index[i]]``, ``pad`` where the index is negative (zero padding of a
    convolution, on the code grid).  The result has shape ``q.shape[:batch] + index.shape``."""
    flat = _i64(q).reshape(*q.shape[:batch], -1)
    idx = _i64(index)
    out = flat[..., idx.clamp(min=0)]
    return torch.where(idx < 0, torch.full_like(out, pad), out)


def matmul(a: torch.Tensor, zp_a: int, b: torch.Tensor, zp_b: int) -> torch.Tensor:
    """``dataflow.matmul`` accumulator: ``(a - zp_a) @ (b - zp_b)`` exactly (two activations)."""
    return (_i64(a) - zp_a) @ (_i64(b) - zp_b)


def exp2_table(frac_bits: int) -> torch.Tensor:
    """``round(2^EXP_BITS * 2^(-f / 2^F))`` for ``f < 2^F``: the fraction part of softmax's ``exp``."""
    f = torch.arange(1 << frac_bits, dtype=torch.float64)
    return torch.round(2.0**EXP_BITS * torch.exp2(-f / (1 << frac_bits))).to(torch.int64)


def softmax(q: torch.Tensor, multiplier: int, shift: int, frac_bits: int, numerator: int, recip_bits: int,
            zp_out: int, lo: int, hi: int) -> torch.Tensor:
    """``dataflow.softmax`` along the last axis of integer scores ``q`` (real value ``q * s_in``).

    1. ``d = max(q) - q >= 0`` and ``t = round(d * M / 2^S)``, clamped to ``16 * 2^F``: ``d * s_in / ln 2``
       in fixed point with ``F`` fraction bits (``M / 2^S ~ s_in / ln 2 * 2^F``);
    2. ``e = table[t mod 2^F] >> (t >> F)`` ~ ``2^15 * exp(-d * s_in)`` (:func:`exp2_table`);
    3. ``R = floor(numerator / sum(e))`` once per row, ``numerator = round(2^RB / s_out)``;
    4. ``y = clamp(round(e * R / 2^RB) + zp_out, lo, hi)`` ~ ``softmax / s_out + zp_out``.
    """
    q = _i64(q)
    d = q.amax(dim=-1, keepdim=True) - q
    limit = (EXP_BITS + 1) << frac_bits
    t = requantize(d, multiplier, shift, 0, 0, limit)
    e = exp2_table(frac_bits)[t & ((1 << frac_bits) - 1)] >> (t >> frac_bits)
    r = numerator // e.sum(dim=-1, keepdim=True)
    return (round_shift(e * r, recip_bits) + zp_out).clamp(lo, hi)


def isqrt(v: torch.Tensor) -> torch.Tensor:
    """``floor(sqrt(v))`` of non-negative int64 values, exactly."""
    v = _i64(v)
    if (v < 0).any():
        raise ValueError("isqrt of a negative value")
    s = torch.sqrt(v.double()).floor().to(torch.int64)
    for _ in range(3):  # float64 is off by a few steps near 2^63; fix up both ways without overflowing int64
        s = torch.where((s > 0) & (s > torch.div(v, s.clamp(min=1), rounding_mode="floor")), s - 1, s)
        nxt = s + 1
        s = torch.where(nxt <= torch.div(v, nxt, rounding_mode="floor"), nxt, s)
    return s


def layer_norm(q: torch.Tensor, zp_in: int, eps: int, gamma: torch.Tensor, beta: torch.Tensor, multiplier: int,
               shift: int, zp_out: int, lo: int, hi: int, recip_bits: int = NORM_RECIP_BITS,
               frac_bits: int = NORM_FRAC_BITS) -> torch.Tensor:
    """``dataflow.layer_norm`` along the last axis (``D`` elements) of codes ``q``.

    With ``x = q - zp_in``: ``c = D x - sum x`` (``D`` times the centred value), ``sigma =
    isqrt(D sum x^2 - (sum x)^2 + eps)`` (``D`` times the standard deviation; ``eps`` is the float
    epsilon in those units, >= 1), ``r = floor(2^RB / sigma)`` once per row, ``n = round(c r / 2^(RB-T))``
    the normalized value in Q.T, then per channel ``acc = n * gamma + beta`` (integer gamma codes,
    beta at the scale ``s_gamma 2^-T``) and ``y = clamp(round(acc * M / 2^S) + zp_out, lo, hi)``.
    """
    x = _i64(q) - zp_in
    n_el = x.shape[-1]
    s1 = x.sum(dim=-1, keepdim=True)
    s2 = (x * x).sum(dim=-1, keepdim=True)
    sigma = isqrt(n_el * s2 - s1 * s1 + eps)
    r = (1 << recip_bits) // sigma
    n = round_shift((n_el * x - s1) * r, recip_bits - frac_bits)
    acc = n * _i64(gamma) + _i64(beta)
    return requantize(acc, multiplier, shift, zp_out, lo, hi)


__all__ = ["EXP_BITS", "NORM_FRAC_BITS", "NORM_RECIP_BITS", "SOFTMAX_RECIP_BITS", "add", "add_multipliers",
           "exp2_table", "gather", "isqrt", "layer_norm", "lut", "matmul", "rescale", "softmax"]
