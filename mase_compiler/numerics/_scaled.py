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

from . import _fast
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

    def round_grid_(self, y: torch.Tensor) -> torch.Tensor:
        """:meth:`round_grid` for the chunked path: may round ``y`` in place and return it."""
        if self.rounding == "even" and type(self).round_grid is ScaledGridFormat.round_grid:
            return y.round_()
        return self.round_grid(y)

    def grid_to_codes(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def snap_scale(self, scale: torch.Tensor) -> torch.Tensor:
        """Where a format restricts its scales (powers of two), the allowed scale not below ``scale``."""
        return scale

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
        if t.numel() == 0:  # reductions over nothing raise; an empty tensor needs no scale values
            shape = [1 if d in {x % t.ndim for x in dims} else n for d, n in enumerate(t.shape)]
            return t.new_zeros(shape)
        return getattr(torch, op)(t, dim=dims, keepdim=True)

    @property
    def abs_statistics(self) -> bool:
        """Whether the scale depends on max|x| only (signed symmetric grids)."""
        return self.symmetric and self.fixed_scale() is None and self.grid_bounds()[0] < 0

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
        # Capped so that every grid value times the scale stays a finite float32.
        span = gmax if self.symmetric else gmax - gmin
        cap = torch.nextafter(torch.tensor(torch.finfo(torch.float32).max / span, dtype=torch.float32), torch.tensor(0.0))
        if self.symmetric:
            amax = torch.maximum(lo.abs(), hi.abs()) if gmin < 0 else hi.clamp(min=0)
            scale = amax / gmax
            zp = None
        else:
            lo = lo.clamp(max=0)
            hi = hi.clamp(min=0)
            scale = (hi - lo) / (gmax - gmin)  # float32 like ONNX Runtime and torch observers
            if not bool(torch.isfinite(scale).all()):  # hi - lo overflowed float32
                scale = torch.where(torch.isfinite(scale), scale, ((hi.double() - lo.double()) / (gmax - gmin)).to(scale.dtype))
        scale = torch.where(scale > 0, scale, torch.ones_like(scale)).clamp(max=float(cap)).to(torch.float32)
        scale = self.snap_scale(scale)
        if not self.symmetric:
            zp = torch.round(gmin - lo / scale).clamp(gmin, gmax).to(torch.int32)
        return scale, zp

    def compute_scale(self, x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dynamic scale of ``x`` in the shape :meth:`quantize` accepts back."""
        v, _, dims = self._view(x, axis)
        finite = torch.nan_to_num(v.to(compute_dtype(x)), nan=0.0, posinf=0.0, neginf=0.0)
        if self.abs_statistics:
            amax = self._reduce(finite.abs(), dims, "amax")
            return self.scale_from_range(-amax, amax)
        return self.scale_from_range(self._reduce(finite, dims, "amin"), self._reduce(finite, dims, "amax"))

    # ---- quantize / encode -----------------------------------------------------------------
    def _quantize_chunked(self, x, scale, zero_point, axis) -> torch.Tensor | None:
        """:meth:`quantize` for large CPU tensors: the same float32 arithmetic run on
        cache-sized runs of rows (dim 0 of the scale view) into one output (see
        :mod:`._fast`).  ``None`` where the shapes do not allow it (then the plain
        path runs)."""
        v, merge, dims = self._view(x, axis)
        if v.ndim == 0 or v.shape[0] < 2 or not v.is_contiguous():
            return None
        f32 = torch.float32
        for t in (scale, zero_point):
            if t is None:
                continue
            shape = torch.as_tensor(t).shape
            try:
                grows = len(shape) > v.ndim or torch.broadcast_shapes(shape, v.shape) != v.shape
            except RuntimeError:
                grows = True  # not broadcastable: the plain path raises its own error
            if grows:
                return None  # a static scale that would broadcast x to a larger shape
        if scale is None:
            scale, zero_point = self._chunked_scale(v, {d % v.ndim for d in dims})
        scale = torch.as_tensor(scale, dtype=f32, device=x.device)
        zp = None if zero_point is None else torch.as_tensor(zero_point, device=x.device).to(f32)
        nrows = v.shape[0]
        rowlen = v.numel() // nrows

        def part(t: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
            return t[r0:r1] if t.ndim == v.ndim and t.shape[0] != 1 else t

        gmin, gmax = self.grid_bounds()
        out = torch.empty(v.shape, dtype=f32)
        tmp = torch.empty((_fast.rows_per_chunk(nrows, rowlen), *v.shape[1:]), dtype=f32)
        for r0, r1 in _fast.row_ranges(nrows, rowlen):
            y = tmp[: r1 - r0]
            s = part(scale, r0, r1)
            if v.dtype == f32:
                torch.div(v[r0:r1], s, out=y)
            else:
                y.copy_(v[r0:r1]).div_(s)
            q = self.round_grid_(y)
            if zp is not None:
                q.add_(part(zp, r0, r1))
            q.clamp_(gmin, gmax)
            if zp is not None:
                q.sub_(part(zp, r0, r1))
            torch.mul(q, s, out=out[r0:r1])
        return merge(out).to(x.dtype)

    def _chunked_scale(self, v: torch.Tensor, dims: set[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`compute_scale` of the view ``v`` (``dims`` normalized), a chunk of rows at a time."""
        f32 = torch.float32
        keep = tuple(1 if d in dims else n for d, n in enumerate(v.shape))
        if self.fixed_scale() is not None:  # data-independent: only the shape matters
            hi = torch.empty(keep, dtype=f32, device=v.device)
            return self.scale_from_range(hi, hi)
        nrows = v.shape[0]
        rowlen = v.numel() // nrows
        rd = tuple(sorted(dims))
        ops = ("amax",) if self.abs_statistics else ("amin", "amax")
        acc: dict[str, torch.Tensor] = {}
        if 0 not in dims:
            acc = {op: torch.empty(keep, dtype=f32, device=v.device) for op in ops}
        tmp = torch.empty((_fast.rows_per_chunk(nrows, rowlen), *v.shape[1:]), dtype=f32)
        for r0, r1 in _fast.row_ranges(nrows, rowlen):
            t = tmp[: r1 - r0]
            if v.dtype == f32:
                torch.nan_to_num(v[r0:r1], nan=0.0, posinf=0.0, neginf=0.0, out=t)
            else:
                torch.nan_to_num_(t.copy_(v[r0:r1]), nan=0.0, posinf=0.0, neginf=0.0)
            if self.abs_statistics:
                t.abs_()
            for op in ops:
                if not rd:  # _reduce over no dims is the identity (one scale per element)
                    acc[op][r0:r1].copy_(t)
                    continue
                if 0 not in dims:
                    getattr(torch, op)(t, dim=rd, keepdim=True, out=acc[op][r0:r1])
                    continue
                p = getattr(torch, op)(t, dim=rd, keepdim=True)
                # max/min are exact, so the order of combining chunks does not matter
                acc[op] = p if op not in acc else (torch.maximum if op == "amax" else torch.minimum)(acc[op], p)
        if self.abs_statistics:
            return self.scale_from_range(-acc["amax"], acc["amax"])
        return self.scale_from_range(acc["amin"], acc["amax"])

    def _grid_values(self, x, scale, zero_point, axis):
        v, merge, dims = self._view(x, axis)
        cd = compute_dtype(x)
        if scale is None:
            scale, zero_point = self.compute_scale(x, axis)
        scale = torch.as_tensor(scale, dtype=torch.float32, device=x.device)
        y = v.to(cd) / scale.to(cd)
        q = self.round_grid(y)
        if zero_point is not None:  # added after rounding, as ONNX QuantizeLinear and torch do
            q = q + torch.as_tensor(zero_point, device=x.device).to(cd)
        gmin, gmax = self.grid_bounds()
        q = q.clamp_(gmin, gmax)
        return q, scale, zero_point, merge

    def quantize(
        self,
        x: torch.Tensor,
        scale: torch.Tensor | float | None = None,
        zero_point: torch.Tensor | int | None = None,
        axis: int | None = None,
    ) -> torch.Tensor:
        """Fake-quantize ``x``; ``scale``/``zero_point`` from calibration, else computed from ``x``."""
        if self.rounding != "stochastic" and _fast.applicable(x, _fast.MIN_NUMEL_SCALED):
            out = self._quantize_chunked(x, scale, zero_point, axis)
            if out is not None:
                return out
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
    if axis == DEFAULT_AXIS[gran]:
        axis = None  # the default, spelled out: one canonical form
    return gran, group, axis


def check_granularity(gran: str, group: int) -> None:
    parse_choice("format", "granularity", gran, GRANULARITIES)
    if gran == "group" and group < 1:
        raise ValueError(f"group size must be >= 1, not {group}")
