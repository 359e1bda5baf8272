"""Integers ``int2..int16`` and ``uint2..uint16``: symmetric or asymmetric, per
tensor, channel, token or group, with a choice of rounding.

Symmetric signed integers use the narrow range ``[-(2^(b-1)-1), 2^(b-1)-1]`` so
that ``-x`` quantizes to ``-q(x)``; asymmetric ones use the full range with an
integer zero point (``uint8`` is asymmetric by default, as in ONNX Runtime).
Codes are ``q + zero_point`` in two's complement (signed) or plain binary.
``:pow2`` rounds every scale up to a power of two: fixed point whose fraction bits are chosen
per tensor (channel, group) from its range, the fixed-point baseline of MASE and hls4ml, whose
hardware requantizes with shifts only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._options import split_options
from ._scaled import ScaledGridFormat, check_granularity, parse_granularity
from .minifloat import _parse_rounding, _rounding_suffix
from .rounding import check_rounding


@dataclass(frozen=True)
class IntFormat(ScaledGridFormat):
    bits: int
    signed: bool = True
    symmetric: bool = True
    granularity: str = "tensor"
    group: int = 0
    axis: int | None = None
    rounding: str = "even"
    seed: int | None = None
    pow2: bool = False

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ValueError(f"integer bits must be in 2..16, not {self.bits}")
        check_granularity(self.granularity, self.group)
        check_rounding(self.rounding)

    @property
    def element_bits(self) -> int:  # type: ignore[override]
        return self.bits

    def grid_bounds(self) -> tuple[float, float]:
        if not self.signed:
            return 0.0, float((1 << self.bits) - 1)
        hi = (1 << (self.bits - 1)) - 1
        return (float(-hi), float(hi)) if self.symmetric else (float(-hi - 1), float(hi))

    def grid_to_codes(self, q: torch.Tensor) -> torch.Tensor:
        return q.to(torch.int64) & ((1 << self.bits) - 1)

    def codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        if not self.signed:
            return codes
        return codes - ((codes >> (self.bits - 1)) << self.bits)  # sign-extend

    @property
    def spec(self) -> str:
        s = f"{'int' if self.signed else 'uint'}{self.bits}" + self.granularity_suffix()
        default_sym = self.signed
        if self.symmetric != default_sym:
            s += ":sym" if self.symmetric else ":asym"
        return s + (":pow2" if self.pow2 else "") + _rounding_suffix(self.rounding, self.seed)

    def snap_scale(self, scale: torch.Tensor) -> torch.Tensor:
        if not self.pow2:
            return scale
        return torch.exp2(torch.ceil(torch.log2(scale.double()))).to(scale.dtype)  # never smaller: no extra clipping

    @classmethod
    def from_spec(cls, name: str, tokens: list[str]) -> "IntFormat":
        signed = not name.startswith("u")
        bits = int(name[3 + (not signed):])
        opts = split_options(name, tokens, ("channel", "token", "group", "axis", "sym", "asym", "round", "seed", "pow2"))
        gran, group, axis = parse_granularity(name, opts)
        if "sym" in opts and "asym" in opts:
            raise ValueError(f"'{name}' is either sym or asym, not both")
        symmetric = signed if not ("sym" in opts or "asym" in opts) else "sym" in opts
        rounding, seed = _parse_rounding(name, opts)
        return cls(bits, signed, symmetric, gran, group, axis, rounding, seed, "pow2" in opts)

    def describe(self) -> dict[str, object]:
        lo, hi = self.grid_bounds()
        return {
            "family": "integer",
            "max": hi,
            "min": lo,
            "min_subnormal": 1.0,
            "scale": ("2^k" if self.pow2 else "fp32") + f" per {self.granularity}" + ("" if self.symmetric else " + zero point"),
            "units": "scale",
        }
