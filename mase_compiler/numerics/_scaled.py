"""Shared machinery of scaled grid formats (integers, fixed point, dINT).

A scaled format stores ``q`` on a fixed grid and one float32 scale (and for
asymmetric integers one zero point) per tensor, channel, token or group:
``value = (q - zero_point) * scale``.  Scales are computed from the data when
none are given (dynamic quantization) or passed in from calibration (static).
Non-finite values never enter a scale: NaN stays NaN, ±Inf saturates.
"""

from __future__ import annotations

from typing import Callable

import torch

from ._blocks import normalize_axis, split_blocks
from ._options import parse_choice, parse_int
from .base import Encoded, Format, compute_dtype
from .packing import pack_bits
from .rounding import round_to_int

GRANULARITIES = ("tensor", "channel", "token", "group")
DEFAULT_AXIS = {"tensor": 0, "channel": 0, "token": -1, "group": -1}


class ScaledGridFormat(Format):
    """Base for formats of the form ``(q - zp) * scale`` with ``q`` on a fixed grid."""

    # Fields every subclass dataclass defines.
    granularity: str
    group: int
    axis: int | None
    rounding: str
    seed: int | None

    # ---- what a subclass supplies ----------------------------------------------------------
    element_bits: int
    symmetric: bool = True

    def grid_bounds(self) -> tuple[float, float]:
        """(lowest, highest) grid value ``q`` may take."""
        raise NotImplementedError

    def round_grid(self, y: torch.Tensor) -> torch.Tensor:
        """Nearest grid value of ``y`` (in units of the scale), not yet clamped."""
        return round_to_int(y, self.rounding, self.seed)

    def grid_to_codes(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fixed_scale(self) -> float | None:
        """A data-independent scale (fixed point), or None for data-derived scales."""
        return None

    # ---- granularity -----------------------------------------------------------------------
    def _axis(self, axis: int | None) -> int:
        if axis is not None:
            return axis
        return self.axis if self.axis is not None else DEFAULT_AXIS[self.granularity]

    def _view(self, x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], tuple[int, ...]]:
        """``x`` arranged so that each scale covers the dims in the returned reduction tuple."""
        ax = self._axis(axis)
        if self.granularity == "group":
            blocks, merge = split_blocks(x, ax, self.group, fill="edge")
            return blocks, merge, (-1,)
        if x.ndim == 0:
            return x, (lambda t: t), ()
        ax = normalize_axis(ax, x.ndim)
        if self.granularity == "tensor":
            dims = tuple(range(x.ndim))
        elif self.granularity == "channel":
            dims = tuple(d for d in range(x.ndim) if d != ax)
        else:  # token: one scale per position of every axis but the reduced one
            dims = (ax,)
        return x, (lambda t: t), dims

    @staticmethod
    def _reduce(t: torch.Tensor, dims: tuple[int, ...], op: str) -> torch.Tensor:
        if not dims or t.ndim == 0:
            return t.clone()
        return getattr(torch, op)(t, dim=dims, keepdim=True)

    # ---- scales ----------------------------------------------------------------------------
    def scale_from_range(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scale (and zero point) that map the observed range ``[lo, hi]`` onto the grid.

        Calibration observers call this with their statistics; degenerate (all-zero)
        ranges get scale 1 so that zero stays exact.
        """
        fixed = self.fixed_scale()
        if fixed is not None:
            return torch.full_like(hi, fixed, dtype=torch.float32), None
        gmin, gmax = self.grid_bounds()
        if self.symmetric:
            amax = torch.maximum(lo.abs(), hi.abs()) if gmin < 0 else hi.clamp(min=0)
            scale = amax / gmax
            zp = None
        else:
            lo = lo.clamp(max=0)
            hi = hi.clamp(min=0)
            scale = (hi - lo) / (gmax - gmin)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale)).to(torch.float32)
        if not self.symmetric:
            zp = torch.round(gmin - lo / scale).clamp(gmin, gmax).to(torch.int32)
        return scale, zp

    def compute_scale(self, x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dynamic scale of ``x`` in the shape :meth:`quantize` accepts back."""
        v, _, dims = self._view(x, axis)
        finite = torch.nan_to_num(v.to(compute_dtype(x)), nan=0.0, posinf=0.0, neginf=0.0)
        if self.symmetric and self.fixed_scale() is None:
            amax = self._reduce(finite.abs(), dims, "amax")
            return self.scale_from_range(-amax, amax)
        return self.scale_from_range(self._reduce(finite, dims, "amin"), self._reduce(finite, dims, "amax"))

    # ---- quantize / encode -----------------------------------------------------------------
    def _grid_values(self, x, scale, zero_point, axis):
        v, merge, dims = self._view(x, axis)
        cd = compute_dtype(x)
        if scale is None:
            scale, zero_point = self.compute_scale(x, axis)
        scale = torch.as_tensor(scale, dtype=torch.float32, device=x.device)
        y = v.to(cd) / scale.to(cd)
        if zero_point is not None:
            y = y + torch.as_tensor(zero_point, device=x.device).to(cd)
        gmin, gmax = self.grid_bounds()
        q = self.round_grid(y).clamp_(gmin, gmax)
        return q, scale, zero_point, merge

    def quantize(
        self,
        x: torch.Tensor,
        scale: torch.Tensor | float | None = None,
        zero_point: torch.Tensor | int | None = None,
        axis: int | None = None,
    ) -> torch.Tensor:
        """Fake-quantize ``x``; ``scale``/``zero_point`` from calibration, else computed from ``x``."""
        q, scale, zp, merge = self._grid_values(x, scale, zero_point, axis)
        if zp is not None:
            q = q - torch.as_tensor(zp, device=x.device).to(q.dtype)
        return merge(q * scale.to(q.dtype)).to(x.dtype)

    def encode(
        self,
        x: torch.Tensor,
        scale: torch.Tensor | float | None = None,
        zero_point: torch.Tensor | int | None = None,
        axis: int | None = None,
    ) -> Encoded:
        q, scale, zp, _ = self._grid_values(x, scale, zero_point, axis)
        if bool(torch.isnan(q).any()):
            raise ValueError(f"'{self.spec}' has no NaN code; the input holds NaN")
        codes = self.grid_to_codes(q)
        zp_t = None if zp is None else torch.as_tensor(zp, device=x.device).to(torch.int32)
        return Encoded(
            self.spec, tuple(x.shape), x.dtype, pack_bits(codes, self.element_bits), self.element_bits,
            tuple(q.shape), scales=scale, zero_points=zp_t, axis=self._axis(axis),
        )

    def decode(self, enc: Encoded) -> torch.Tensor:
        cd = torch.float64 if enc.dtype == torch.float64 else torch.float32
        q = self.codes_to_grid(enc.unpacked_codes()).to(cd)
        if enc.zero_points is not None:
            q = q - enc.zero_points.to(cd)
        vals = q * enc.scales.to(cd)
        # Only the reshaping closure is needed: build it on a meta tensor (no memory).
        _, merge, _ = self._view(torch.empty(enc.shape, dtype=cd, device="meta"), enc.axis)
        return merge(vals).to(enc.dtype)

    # ---- description -----------------------------------------------------------------------
    @property
    def bits_per_element(self) -> float:
        bits = float(self.element_bits)
        if self.granularity == "group":
            bits += 32.0 / self.group  # float32 scale per group
            if not self.symmetric:
                bits += 32.0 / self.group  # int32 zero point per group
        return bits

    def granularity_suffix(self) -> str:
        s = ""
        if self.granularity == "group":
            s += f":group={self.group}"
        elif self.granularity != "tensor":
            s += f":{self.granularity}"
        if self.axis is not None and self.axis != DEFAULT_AXIS[self.granularity]:
            s += f":axis={self.axis}"
        return s


def parse_granularity(name: str, opts: dict[str, str | None]) -> tuple[str, int, int | None]:
    """Granularity flags of a spec: ``channel`` | ``token`` | ``group=N``, plus ``axis=N``."""
    chosen = [g for g in ("channel", "token", "group") if g in opts]
    if len(chosen) > 1:
        raise ValueError(f"'{name}' takes one granularity, not {' and '.join(chosen)}")
    for flag in ("channel", "token"):
        if flag in opts and opts[flag] is not None:
            raise ValueError(f"'{name}' option {flag} takes no value (write ':{flag}')")
    gran = chosen[0] if chosen else "tensor"
    group = parse_int(name, "group", opts["group"], 1) if gran == "group" else 0
    axis = parse_int(name, "axis", opts["axis"], -8, 7) if "axis" in opts else None
    if axis is not None and gran == "tensor":
        raise ValueError(f"'{name}' option axis needs a granularity (channel, token or group=N)")
    return gran, group, axis


def check_granularity(gran: str, group: int) -> None:
    parse_choice("format", "granularity", gran, GRANULARITIES)
    if gran == "group" and group < 1:
        raise ValueError(f"group size must be >= 1, not {group}")
