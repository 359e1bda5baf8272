"""dINT: integers with denormal code points (W4A8 paper, Lee et al., EMNLP 2023, §4.3).

Plain INT4 rounds every weight smaller than half a step to zero ("underflow").
dINT spends two of its codes on ``±1/2`` (in units of the scale), so small
values keep a sign and a magnitude.  Our exact code table (the paper gives the
idea, not a bit layout; see ``docs/formats.md``):

* sign-magnitude code ``s | m`` with ``m`` in ``0 .. 2^(b-1)-1``;
* ``m = 0`` is 0, ``m = 1`` is the denormal 1/2, ``m >= 2`` is the integer ``m - 1``;
* the code ``s=1, m=0`` (negative zero) decodes to 0 and is never produced.

So dint4 holds ``{0, ±0.5, ±1, …, ±6}``; the scale maps the absolute maximum
to 6.  Rounding is nearest with ties to even on the local grid (half-steps
below 1, whole steps above).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._options import split_options
from ._scaled import ScaledGridFormat, check_granularity, parse_granularity
from .minifloat import _parse_rounding, _rounding_suffix
from .rounding import check_rounding, round_to_int


@dataclass(frozen=True)
class DIntFormat(ScaledGridFormat):
    bits: int
    granularity: str = "tensor"
    group: int = 0
    axis: int | None = None
    rounding: str = "even"
    seed: int | None = None

    symmetric = True

    def __post_init__(self) -> None:
        if not 3 <= self.bits <= 16:
            raise ValueError(f"dint bits must be in 3..16, not {self.bits}")
        check_granularity(self.granularity, self.group)
        check_rounding(self.rounding)

    @property
    def element_bits(self) -> int:  # type: ignore[override]
        return self.bits

    @property
    def max_magnitude(self) -> int:
        return (1 << (self.bits - 1)) - 2

    def grid_bounds(self) -> tuple[float, float]:
        return float(-self.max_magnitude), float(self.max_magnitude)

    def round_grid(self, y: torch.Tensor) -> torch.Tensor:
        fine = round_to_int(y * 2, self.rounding, self.seed) * 0.5
        coarse = round_to_int(y, self.rounding, self.seed)
        return torch.where(y.abs() < 1, fine, coarse)

    def round_grid_(self, y: torch.Tensor) -> torch.Tensor:
        """:meth:`round_grid` in place for the chunked path.  With ties to even it is
        ``round(y * s) / s`` with ``s = 2`` below 1 and ``1`` elsewhere: scaling by 2
        is exact there and dividing the integer by 2 is ``* 0.5``, so the bits are
        those of the ``where(fine, coarse)`` form (NaN and Inf take ``s = 1``)."""
        if self.rounding != "even":
            return self.round_grid(y)
        s = torch.abs(y)
        torch.lt(s, 1.0, out=s)  # 1.0 where |y| < 1, else 0.0
        s.add_(1.0)
        return y.mul_(s).round_().div_(s)

    def grid_to_codes(self, q: torch.Tensor) -> torch.Tensor:
        a = q.abs()
        m = torch.where(a < 1, a * 2, a + 1).to(torch.int64)
        sign = (q < 0).to(torch.int64) << (self.bits - 1)
        return sign | m

    def codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        m = codes & ((1 << (self.bits - 1)) - 1)
        mag = torch.where(m < 2, m.double() * 0.5, (m - 1).double())
        neg = (codes >> (self.bits - 1)) & 1 == 1
        return torch.where(neg, -mag, mag)

    @property
    def spec(self) -> str:
        return f"dint{self.bits}" + self.granularity_suffix() + _rounding_suffix(self.rounding, self.seed)

    @classmethod
    def from_spec(cls, name: str, tokens: list[str]) -> "DIntFormat":
        opts = split_options(name, tokens, ("channel", "token", "group", "axis", "round", "seed"))
        gran, group, axis = parse_granularity(name, opts)
        rounding, seed = _parse_rounding(name, opts)
        return cls(int(name[4:]), gran, group, axis, rounding, seed)

    def describe(self) -> dict[str, object]:
        return {
            "family": "dint",
            "max": float(self.max_magnitude),
            "min": float(-self.max_magnitude),
            "min_subnormal": 0.5,
            "scale": f"fp32 per {self.granularity}",
            "units": "scale",
        }
