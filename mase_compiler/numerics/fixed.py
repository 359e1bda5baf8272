"""Fixed point ``fixedB:frac=F``: B-bit two's complement with F fraction bits.

The scale is the constant ``2^-F``, so fixed point is what integer hardware
computes with no scale registers (MASE's baseline format).  Saturating.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._options import parse_int, split_options
from ._scaled import ScaledGridFormat
from .minifloat import _parse_rounding, _rounding_suffix
from .rounding import check_rounding


@dataclass(frozen=True)
class FixedFormat(ScaledGridFormat):
    bits: int
    frac: int
    signed: bool = True
    rounding: str = "even"
    seed: int | None = None
    granularity: str = "tensor"
    group: int = 0
    axis: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 32:
            raise ValueError(f"fixed-point bits must be in 2..32, not {self.bits}")
        if not -32 <= self.frac <= 64:
            raise ValueError(f"fixed-point frac must be in -32..64, not {self.frac}")
        check_rounding(self.rounding)

    @property
    def element_bits(self) -> int:  # type: ignore[override]
        return self.bits

    def fixed_scale(self) -> float:
        return 2.0 ** (-self.frac)

    def grid_bounds(self) -> tuple[float, float]:
        if not self.signed:
            return 0.0, float((1 << self.bits) - 1)
        return float(-(1 << (self.bits - 1))), float((1 << (self.bits - 1)) - 1)

    def grid_to_codes(self, q: torch.Tensor) -> torch.Tensor:
        return q.to(torch.int64) & ((1 << self.bits) - 1)

    def codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        if not self.signed:
            return codes
        return codes - ((codes >> (self.bits - 1)) << self.bits)

    def quantize(self, x: torch.Tensor, scale=None, zero_point=None, axis=None) -> torch.Tensor:  # noqa: D102
        if scale is not None or zero_point is not None:
            raise ValueError(f"'{self.spec}' has a fixed scale 2^-{self.frac}; it takes no scale")
        return super().quantize(x)

    @property
    def spec(self) -> str:
        return f"{'fixed' if self.signed else 'ufixed'}{self.bits}:frac={self.frac}" + _rounding_suffix(self.rounding, self.seed)

    @classmethod
    def from_spec(cls, name: str, tokens: list[str]) -> "FixedFormat":
        signed = not name.startswith("u")
        bits = int(name[5 + (not signed):])
        opts = split_options(name, tokens, ("frac", "round", "seed"))
        if "frac" not in opts:
            raise ValueError(f"'{name}' needs its fraction bits, e.g. '{name}:frac={bits // 2}'")
        frac = parse_int(name, "frac", opts["frac"], -32, 64)
        rounding, seed = _parse_rounding(name, opts)
        return cls(bits, frac, signed, rounding, seed)

    def describe(self) -> dict[str, object]:
        lo, hi = self.grid_bounds()
        step = self.fixed_scale()
        return {"family": "fixed point", "max": hi * step, "min": lo * step, "min_subnormal": step, "scale": f"fixed 2^-{self.frac}"}
