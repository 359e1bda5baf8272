"""Integer requantization: the last step of every integer layer, as hardware computes it.

An integer layer accumulates ``acc = sum(x_q * w_q)`` exactly (int32 or wider) and must
produce the next layer's codes ``y_q`` for the real multiplier ``r = s_x * s_w / s_y``.
Hardware cannot multiply by a real, so ``r`` becomes a fixed-point multiplier: an integer
``M`` of ``bits`` bits and a right shift ``S`` with ``r ~= M / 2^S``::

    y_q = clamp(round(acc * M / 2^S) + zp, lo, hi)

with the rounding taken on the exact rational value (no intermediate truncation).  This
module is the one definition of that step: the hardware-exact interpreter mode, the
SystemVerilog ``masec_requant`` component and the HLS header's ``requantize`` all match it
bit for bit (their tests use it as the oracle).  Integers are int64 tensors; products are
formed in Python integers where they could overflow int64.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from .rounding import check_rounding

MULTIPLIER_BITS = 31


def quantize_multiplier(real: float, bits: int = MULTIPLIER_BITS, max_shift: int = 62) -> tuple[int, int]:
    """``(M, S)`` with ``M`` a positive integer of at most ``bits`` bits and ``M / 2^S`` the closest such
    value to ``real`` (round half to even on the exact binary value of ``real``).

    The shift is as large as ``bits`` allows (most precision), capped at ``max_shift``; ``real = 0``
    gives ``(0, 0)``.  The relative error is at most ``2^-bits`` for reals that need no cap.
    """
    if not (isinstance(real, (int, float)) and math.isfinite(real) and real >= 0):
        raise ValueError(f"a requantization multiplier must be a finite non-negative real, not {real!r}")
    if not 1 <= bits <= 62:
        raise ValueError(f"multiplier bits must be in [1, 62], not {bits}")
    if real == 0:
        return 0, 0
    exact = Fraction(real)
    # M = real * 2^S in [2^(bits-1), 2^bits): S = bits - 1 - floor(log2 real).
    shift = bits - 1 - (math.frexp(real)[1] - 1)
    shift = min(shift, max_shift)
    m = _round_fraction(exact * (1 << shift) if shift >= 0 else exact / (1 << -shift), "even")
    if m >= 1 << bits:  # rounding carried into a new bit: one less bit of shift
        shift -= 1
        m = _round_fraction(exact * (1 << shift) if shift >= 0 else exact / (1 << -shift), "even")
    if m >= 1 << bits:
        raise ValueError(f"multiplier {real!r} does not fit {bits} bits with a non-negative shift")
    return m, shift


def _round_fraction(v: Fraction, mode: str) -> int:
    fl = math.floor(v)
    frac = v - fl
    if mode == "floor":
        return fl
    if mode == "ceil":
        return fl + (frac > 0)
    if mode == "zero":
        return fl + (frac > 0 and v < 0)
    half = Fraction(1, 2)
    if frac != half:
        return fl + (frac > half)
    if mode == "even":
        return fl + (fl % 2)
    if mode == "away":
        return fl + (v > 0)
    raise ValueError(f"requantize rounding must be even, away, floor, ceil or zero, not {mode!r}")


def round_shift(x: torch.Tensor, shift: int, mode: str = "even") -> torch.Tensor:
    """``round(x / 2^shift)`` of an integer tensor, exactly (``shift >= 0``)."""
    check_rounding(mode)
    if mode == "stochastic":
        raise ValueError("requantize rounding must be even, away, floor, ceil or zero, not 'stochastic'")
    if shift < 0:
        raise ValueError(f"shift must be >= 0, not {shift}")
    x = x.to(torch.int64)
    if shift == 0:
        return x.clone()
    if shift >= 62:  # 2^shift leaves int64: exact Python integers (a rare, tiny multiplier)
        return torch.tensor([_round_fraction(Fraction(v, 1 << shift), mode) for v in x.reshape(-1).tolist()],
                            dtype=torch.int64).reshape(x.shape)
    q = torch.div(x, 1 << shift, rounding_mode="floor")  # floor
    r = x - q * (1 << shift)  # remainder in [0, 2^shift)
    half = 1 << (shift - 1)
    if mode == "floor":
        return q
    if mode == "ceil":
        return q + (r > 0).to(torch.int64)
    if mode == "zero":
        return q + ((r > 0) & (x < 0)).to(torch.int64)
    up = (r > half) | ((r == half) & ((q % 2 == 1) if mode == "even" else (x > 0)))
    return q + up.to(torch.int64)


def requantize(acc: torch.Tensor, multiplier: int | torch.Tensor, shift: int | torch.Tensor, zero_point: int = 0,
               lo: int = -128, hi: int = 127, mode: str = "even") -> torch.Tensor:
    """``clamp(round(acc * M / 2^S) + zp, lo, hi)`` exactly; ``M``/``S`` scalars or per-channel along the last axis."""
    acc = acc.to(torch.int64)
    m = torch.as_tensor(multiplier, dtype=torch.int64)
    s = torch.as_tensor(shift, dtype=torch.int64)
    if (m < 0).any() or (s < 0).any():
        raise ValueError("multiplier and shift must be non-negative")
    m_b, s_b = torch.broadcast_tensors(m, s)
    out = torch.empty(torch.broadcast_shapes(acc.shape, m_b.shape), dtype=torch.int64)
    acc_b = acc.expand(out.shape)
    # Group by (M, S) pair: a handful per layer (per-channel), each an exact int64 product when it fits.
    pairs = torch.stack([m_b.reshape(-1), s_b.reshape(-1)], dim=1).unique(dim=0)
    mb, sb = m_b.expand(out.shape), s_b.expand(out.shape)
    for mv, sv in pairs.tolist():
        sel = (mb == mv) & (sb == sv)
        a = acc_b[sel]
        if a.numel() and int(a.abs().max()) * max(mv, 1) >= 1 << 62:
            prod = [Fraction(int(v) * mv, 1 << sv) for v in a.tolist()]  # beyond int64: exact Python integers
            vals = torch.tensor([_round_fraction(p, mode) for p in prod], dtype=torch.int64)
        else:
            vals = round_shift(a * mv, sv, mode)
        out[sel] = vals
    return (out + zero_point).clamp(lo, hi)


__all__ = ["MULTIPLIER_BITS", "quantize_multiplier", "requantize", "round_shift"]
