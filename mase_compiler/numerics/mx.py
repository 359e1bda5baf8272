"""OCP Microscaling (MX v1.0) formats and block floating point.

A block of ``k`` consecutive elements along one axis (default: the last, k=32)
shares an E8M0 scale ``X = 2^(floor(log2(amax)) - emax_elem)``; each element is
``X * P`` with ``P`` in the element format (FP8 E4M3/E5M2, FP6 E3M2/E2M3,
FP4 E2M1, or an integer with ``b-2`` fraction bits: INT8 for MXINT8, other
widths for block floating point ``bfpB``).  Elements saturate to the element
maximum; a block holding NaN or ±Inf becomes a NaN block (scale code 0xFF);
an all-zero block gets the smallest scale and stays exactly zero.

Scale choice (``scale=``): ``floor`` is the spec; ``ceil`` picks the smallest
scale that makes ``amax`` fit without saturation; ``even`` rounds ``amax`` to
the element precision first, so a block maximum that would round up past
the element range moves to the next scale instead of saturating.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from . import _fast
from ._blocks import split_blocks
from ._options import parse_choice, parse_int, split_options
from .base import Encoded, Format, compute_dtype
from .minifloat import BY_NAME, MinifloatFormat, _parse_rounding, _rounding_suffix
from .packing import pack_bits
from .rounding import check_rounding, round_to_int

SCALE_MODES = ("floor", "ceil", "even")
E8M0_BIAS = 127
E8M0_NAN = 255

# Canonical MX names -> element spec.
MX_NAMES = {
    "mxfp8_e4m3": "fp8_e4m3",
    "mxfp8_e5m2": "fp8_e5m2",
    "mxfp6_e3m2": "fp6_e3m2",
    "mxfp6_e2m3": "fp6_e2m3",
    "mxfp4": "fp4_e2m1",
    "mxint8": "int8",
}
MX_ALIASES = {"mxfp8": "mxfp8_e4m3", "mxfp6": "mxfp6_e2m3", "mxfp4_e2m1": "mxfp4"}
ELEMENT_TO_NAME = {v: k for k, v in MX_NAMES.items()}


@dataclass(frozen=True)
class IntElement:
    """MX integer element: two's complement ``k * 2^-(b-2)``, symmetric ``|k| <= 2^(b-1)-1``."""

    bits: int
    rounding: str = "even"
    seed: int | None = None

    @property
    def frac(self) -> int:
        return self.bits - 2

    @property
    def kmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def emax(self) -> int:
        return 0

    @property
    def man_bits(self) -> int:
        return self.frac

    @property
    def max_value(self) -> float:
        return self.kmax / 2.0**self.frac

    @property
    def min_subnormal(self) -> float:
        return 2.0**-self.frac

    def round_unscaled(self, y: torch.Tensor) -> torch.Tensor:
        k = round_to_int(y * 2.0**self.frac, self.rounding, self.seed).clamp_(-self.kmax, self.kmax)
        return k.mul_(2.0**-self.frac)

    def chunk_rounder(self, n: int, finite_only: bool = False):
        """:meth:`round_unscaled` for float32 chunks of at most ``n`` elements; may work
        in place (the result may alias its argument, which it may modify)."""
        if self.rounding != "even":
            return self.round_unscaled
        up, down, kmax = 2.0**self.frac, 2.0**-self.frac, float(self.kmax)

        def round_int(y: torch.Tensor) -> torch.Tensor:
            return y.mul_(up).round_().clamp_(-kmax, kmax).mul_(down)

        return round_int

    def to_codes(self, q: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(q * 2.0**self.frac).to(torch.int64) & ((1 << self.bits) - 1)

    def from_codes(self, codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        k = codes - ((codes >> (self.bits - 1)) << self.bits)
        return k.to(dtype) * 2.0**-self.frac


@dataclass(frozen=True)
class MXFormat(Format):
    element: str = "fp8_e4m3"
    block: int = 32
    scale_mode: str = "floor"
    axis: int = -1
    rounding: str = "even"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ValueError(f"MX block size must be >= 1, not {self.block} (OCP default 32)")
        parse_choice("mx", "scale", self.scale_mode, SCALE_MODES)
        check_rounding(self.rounding)
        if not (self.element in BY_NAME or self.element.startswith("int")):
            raise ValueError(f"MX element must be a minifloat name or intN, not {self.element!r}")
        _ = self.elem  # validates int width

    @cached_property
    def elem(self) -> MinifloatFormat | IntElement:
        if self.element.startswith("int"):
            bits = int(self.element[3:])
            if not 3 <= bits <= 16:
                raise ValueError(f"block floating point element bits must be in 3..16, not {bits}")
            return IntElement(bits, self.rounding, self.seed)
        e, m, bias, special = BY_NAME[self.element]
        return MinifloatFormat(e, m, bias, special, self.rounding, self.seed)

    # ---- scales ----------------------------------------------------------------------------
    def shared_exponent(self, amax: torch.Tensor) -> torch.Tensor:
        """Unbiased E8M0 exponent ``X`` per block from the block's max magnitude (finite, >= 0)."""
        el = self.elem
        if self.scale_mode == "ceil":
            mant, ex = torch.frexp(amax / el.max_value)
            x = torch.where(mant == 0.5, ex - 1, ex)
        else:
            mant, ex = torch.frexp(amax)
            if self.scale_mode == "even":
                # amax rounded to the element's precision may carry into the next binade.
                steps = 2.0 ** (el.man_bits + 1)
                ex = ex + (torch.round(mant * steps) >= steps).to(ex.dtype)
            x = ex - 1 - el.emax
        x = torch.where(amax == 0, torch.full_like(x, -E8M0_BIAS), x)
        return x.clamp_(-E8M0_BIAS, E8M0_BIAS)

    def _quantize_blocks(self, blocks: torch.Tensor):
        amax = blocks.abs().amax(dim=-1, keepdim=True)
        bad = ~torch.isfinite(amax)
        x = self.shared_exponent(torch.where(bad, torch.zeros_like(amax), amax))
        q = self.elem.round_unscaled(torch.ldexp(blocks, -x))
        return q, x, bad

    # ---- Format ----------------------------------------------------------------------------
    def quantize(self, x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
        """Fake-quantize in blocks along ``axis`` (default: the format's, normally the last)."""
        if self.rounding != "stochastic" and _fast.applicable(x):
            out = self._quantize_chunked(x, self.axis if axis is None else axis)
            if out is not None:
                return out
        blocks, merge = split_blocks(x.to(compute_dtype(x)), self.axis if axis is None else axis, self.block)
        q, xexp, bad = self._quantize_blocks(blocks)
        out = torch.ldexp(q, xexp)
        out = out.masked_fill_(bad, torch.nan) if bool(bad.any()) else out
        return merge(out).to(x.dtype)

    def _quantize_chunked(self, x: torch.Tensor, axis: int) -> torch.Tensor | None:
        """:meth:`quantize` for large CPU tensors: the same float32 operations, run on
        cache-sized runs of whole blocks, each result written once (see :mod:`._fast`).
        The output has the values *and strides* of the plain path; ``None`` (plain
        path) for tensors whose blocks are not a dense layout."""
        f32 = torch.float32
        k = self.block
        blocks, merge = split_blocks(x, axis, k)  # zero padding is exact in any dtype
        if not _fast.dense(blocks):
            return None
        if blocks.is_contiguous():
            bl, d = blocks.view(-1, k), 0
        else:
            # A strided view of x (axis other than the last): run along the dim that is
            # outermost in memory (never the in-block dim), write in the same layout,
            # which is the layout the plain path's element-wise ops give.
            bl = blocks
            d = max(range(bl.ndim - 1), key=lambda i: bl.stride(i) if bl.shape[i] > 1 else -1)
        total = bl.shape[d]
        per = bl.numel() // max(total, 1)
        step = _fast.rows_per_chunk(total, per)
        cap = step * per
        tmp = torch.empty(cap, dtype=f32)

        def chunks():
            for r0, r1 in _fast.row_ranges(total, per):
                yield (lambda t, r0=r0, r1=r1: t.narrow(d, r0, r1 - r0))

        def scratch(view: torch.Tensor) -> torch.Tensor:
            return tmp[: view.numel()].view(view.shape)

        # Pass 1: block maxima (NaN propagates through amax, as in _quantize_blocks).
        amax = torch.empty((*bl.shape[:-1], 1), dtype=f32)
        for part in chunks():
            c = part(bl)
            t = scratch(c)
            if x.dtype == f32:
                torch.abs(c, out=t)
            else:
                t.copy_(c).abs_()
            torch.amax(t, dim=-1, keepdim=True, out=part(amax))
        el = self.elem
        if self.scale_mode == "floor" and el.emax >= 0:
            # shared_exponent from the float32 bits: floor(log2 amax) is the biased
            # exponent field - 127 for normal amax; zero and subnormal amax give
            # <= -127 - emax, clamped to -127 just as frexp's exponent is.
            # (NaN/Inf blocks get some X: they are overwritten with NaN below.)
            field = (amax.view(torch.int32) >> 23) & 0xFF
            bad = field == 0xFF
            xexp = field.sub_(127 + el.emax).clamp_(-E8M0_BIAS, E8M0_BIAS)
            down = _fast.pow2(xexp.neg())
            up = _fast.pow2(xexp)
        else:
            bad = ~torch.isfinite(amax)
            xexp = self.shared_exponent(torch.where(bad, torch.zeros_like(amax), amax))
            # ldexp(v, e) == v * 2^e exactly for e in [-127, 127] (2^e is a float32).
            down = torch.pow(2.0, -xexp)
            up = torch.pow(2.0, xexp)
        # Pass 2: scale, round the element, scale back, write the output once.
        # Non-finite blocks become NaN below, so the rounder need only be exact for finite y.
        out = torch.empty_like(bl, dtype=x.dtype)
        round_ = el.chunk_rounder(cap, finite_only=True)
        for part in chunks():
            c = part(bl)
            y = scratch(c)
            torch.mul(c, part(down), out=y)
            q = round_(y)
            if x.dtype == f32:
                torch.mul(q, part(up), out=part(out))
            else:
                part(out).copy_(q.mul_(part(up)))
        if bool(bad.any()):
            out.masked_fill_(bad, torch.nan)
        res = merge(out.view(blocks.shape))
        if x.dtype != f32 and not _fast.dense(res):
            # the plain path ends with .to(x.dtype) of this view: a fresh tensor
            res = torch.empty_like(res).copy_(res)
        return res

    def encode(self, x: torch.Tensor, axis: int | None = None) -> Encoded:
        ax = self.axis if axis is None else axis
        blocks, _ = split_blocks(x.to(compute_dtype(x)), ax, self.block)
        q, xexp, bad = self._quantize_blocks(blocks)
        codes = self.elem.to_codes(torch.where(bad, torch.zeros_like(q), q))
        scales = torch.where(bad, E8M0_NAN, xexp + E8M0_BIAS).to(torch.uint8)
        bits = self.elem.bits
        return Encoded(self.spec, tuple(x.shape), x.dtype, pack_bits(codes, bits), bits, tuple(blocks.shape), scales=scales, axis=ax)

    def decode(self, enc: Encoded) -> torch.Tensor:
        cd = torch.float64 if enc.dtype == torch.float64 else torch.float32
        vals = self.elem.from_codes(enc.unpacked_codes(), cd)
        sc = enc.scales.to(torch.int64)
        out = torch.ldexp(vals, (sc - E8M0_BIAS).to(torch.int32))
        out = out.masked_fill_(sc == E8M0_NAN, torch.nan)
        _, merge = split_blocks(torch.empty(enc.shape, dtype=cd, device="meta"), enc.axis, self.block)
        return merge(out).to(enc.dtype)

    @property
    def bits_per_element(self) -> float:
        return self.elem.bits + 8.0 / self.block

    @property
    def name(self) -> str:
        if self.element in ELEMENT_TO_NAME:
            return ELEMENT_TO_NAME[self.element]
        return f"bfp{self.element[3:]}"

    @property
    def spec(self) -> str:
        s = self.name
        if self.block != 32:
            s += f":block={self.block}"
        if self.scale_mode != "floor":
            s += f":scale={self.scale_mode}"
        if self.axis != -1:
            s += f":axis={self.axis}"
        return s + _rounding_suffix(self.rounding, self.seed)

    @classmethod
    def from_spec(cls, name: str, tokens: list[str]) -> "MXFormat":
        canon = MX_ALIASES.get(name, name)
        if canon in MX_NAMES:
            element = MX_NAMES[canon]
        else:  # bfpN
            element = f"int{parse_int(name, 'bits', canon[3:], 3, 16)}"
        opts = split_options(name, tokens, ("block", "scale", "axis", "round", "seed"))
        block = parse_int(name, "block", opts["block"], 1) if "block" in opts else 32
        scale = parse_choice(name, "scale", opts.get("scale", "floor"), SCALE_MODES)
        axis = parse_int(name, "axis", opts["axis"], -8, 7) if "axis" in opts else -1
        rounding, seed = _parse_rounding(name, opts)
        return cls(element, block, scale, axis, rounding, seed)

    def describe(self) -> dict[str, object]:
        el = self.elem
        return {
            "family": "mx" if self.element in ELEMENT_TO_NAME else "block floating point",
            "max": el.max_value * 2.0**E8M0_BIAS,
            "min_subnormal": el.min_subnormal * 2.0**-E8M0_BIAS,
            "element_max": el.max_value,
            "scale": f"E8M0 per {self.block}",
        }
