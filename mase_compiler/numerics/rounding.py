"""Rounding of real values onto an integer grid, shared by every format.

All formats reduce to "scale into units of the local step, round to an integer,
scale back", so the rounding mode lives here once.  Round-half-to-even is the
default everywhere (IEEE 754, OCP MX v1.0, ONNX QuantizeLinear).
"""

from __future__ import annotations

import torch

ROUNDING_MODES = ("even", "away", "floor", "ceil", "zero", "stochastic")


def check_rounding(mode: str) -> None:
    """Reject an unknown rounding mode (formats call this from their constructors)."""
    if mode not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {mode!r}")


def round_to_int(y: torch.Tensor, mode: str = "even", seed: int | None = None) -> torch.Tensor:
    """Round ``y`` (already in units of the grid step) to integers.

    ``stochastic`` rounds up with probability equal to the fractional part; it is
    deterministic for a given ``seed`` (default 0) and device.
    """
    if mode == "even":
        return torch.round(y)
    if mode == "away":
        # |y| - floor(|y|) is exact, so the tie test is too (adding 0.5 first would round).
        a = y.abs()
        f = torch.floor(a)
        return torch.copysign(f + (a - f >= 0.5).to(y.dtype), y)
    if mode == "floor":
        return torch.floor(y)
    if mode == "ceil":
        return torch.ceil(y)
    if mode == "zero":
        return torch.trunc(y)
    if mode == "stochastic":
        gen = torch.Generator(device=y.device).manual_seed(0 if seed is None else seed)
        noise = torch.rand(y.shape, generator=gen, device=y.device, dtype=y.dtype)
        # Compare instead of floor(y + noise): the sum rounds, moving on-grid values and -0.
        f = torch.floor(y)
        return torch.where(noise < y - f, f + 1, f)
    check_rounding(mode)
    raise AssertionError(mode)  # unreachable: every valid mode returned above
