"""Minifloats: sign, ``e`` exponent bits, ``m`` mantissa bits, any bias.

Three conventions for the all-ones exponent (``special``):

* ``ieee``: Inf and NaN live there (FP8 E5M2, fp16, bf16);
* ``fn``: finite, only S.1111.111 is NaN (FP8 E4M3FN, max 448);
* ``none``: every code is a number (OCP FP6 E3M2/E2M3, FP4 E2M1).

Quantization rounds to the nearest representable value (ties to even by
default) and **saturates** finite overflow to ±max explicitly, because torch and
ml_dtypes disagree on out-of-range casts.  ±Inf stays ±Inf where the format has
Inf and saturates otherwise; NaN stays NaN (fake quantization) although a format
without NaN cannot *encode* it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from . import _fast
from ._options import parse_choice, parse_int, split_options
from .base import Encoded, Format, compute_dtype
from .packing import pack_bits
from .rounding import ROUNDING_MODES, check_rounding, round_to_int

SPECIALS = ("ieee", "fn", "none")

# Canonical names of the common minifloats: (e, m, bias, special) -> name.
NAMED: dict[tuple[int, int, int, str], str] = {
    (4, 3, 7, "fn"): "fp8_e4m3",
    (5, 2, 15, "ieee"): "fp8_e5m2",
    (3, 2, 3, "none"): "fp6_e3m2",
    (2, 3, 1, "none"): "fp6_e2m3",
    (2, 1, 1, "none"): "fp4_e2m1",
    (5, 10, 15, "ieee"): "fp16",
    (8, 7, 127, "ieee"): "bf16",
}
BY_NAME = {v: k for k, v in NAMED.items()}


@dataclass(frozen=True)
class MinifloatFormat(Format):
    exp_bits: int
    man_bits: int
    bias: int
    special: str = "ieee"
    rounding: str = "even"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.exp_bits < 1 or self.man_bits < 0 or 1 + self.exp_bits + self.man_bits > 16:
            raise ValueError(
                f"minifloat needs e >= 1, m >= 0 and 1+e+m <= 16 bits, not e={self.exp_bits} m={self.man_bits}"
            )
        if self.special not in SPECIALS:
            raise ValueError(f"minifloat special must be one of {', '.join(SPECIALS)}, not {self.special!r}")
        check_rounding(self.rounding)
        # Every value and step must be a float32 (subnormals included) for exact arithmetic.
        top_exp = (1 << self.exp_bits) - (2 if self.special == "ieee" else 1) - self.bias
        if self.emin - self.man_bits < -149 or top_exp > 127:
            raise ValueError(f"minifloat bias {self.bias} puts values outside float32's exponent range")
        if self.special == "ieee" and self.exp_bits == 1:
            raise ValueError("an ieee minifloat needs e >= 2 (the top exponent is reserved)")

    # ---- structure -------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value."""
        return 1 - self.bias

    @cached_property
    def table(self) -> torch.Tensor:
        """float64 value of every code, indexed by code."""
        e, m, n = self.exp_bits, self.man_bits, self.bits
        codes = torch.arange(1 << n, dtype=torch.int64)
        sign = torch.where((codes >> (n - 1)) & 1 == 1, -1.0, 1.0).double()
        E = (codes >> m) & ((1 << e) - 1)
        M = (codes & ((1 << m) - 1)).double()
        sub = M * 2.0 ** (self.emin - m)
        nor = (1.0 + M / 2.0**m) * torch.pow(2.0, (E - self.bias).double())
        val = torch.where(E == 0, sub, nor)
        top = E == (1 << e) - 1
        if self.special == "ieee":
            val = torch.where(top & (M == 0), torch.inf, val)
            val = torch.where(top & (M != 0), torch.nan, val)
        elif self.special == "fn":
            val = torch.where(top & (M == (1 << m) - 1), torch.nan, val)
        return sign * val

    @cached_property
    def max_value(self) -> float:
        t = self.table
        return float(t[torch.isfinite(t)].max())

    @cached_property
    def min_subnormal(self) -> float:
        t = self.table
        return float(t[t > 0].min())

    @property
    def emax(self) -> int:
        """Exponent of the largest power of two that is representable (OCP ``emax_elem``)."""
        mant, ex = torch.frexp(torch.tensor(self.max_value, dtype=torch.float64))
        return int(ex) - 1

    @property
    def has_inf(self) -> bool:
        return self.special == "ieee"

    @property
    def has_nan(self) -> bool:
        # An ieee format with no mantissa bits has only Inf in its top exponent.
        return self.special == "fn" or (self.special == "ieee" and self.man_bits > 0)

    # ---- spec ------------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        key = (self.exp_bits, self.man_bits, self.bias, self.special)
        if key in NAMED:
            base = NAMED[key]
        else:
            base = f"fp:e={self.exp_bits}:m={self.man_bits}"
            if self.bias != (1 << (self.exp_bits - 1)) - 1:
                base += f":bias={self.bias}"
            if self.special != "ieee":
                base += f":special={self.special}"
        return base + _rounding_suffix(self.rounding, self.seed)

    @classmethod
    def from_spec(cls, name: str, tokens: list[str]) -> "MinifloatFormat":
        if name == "fp":
            opts = split_options(name, tokens, ("e", "m", "bias", "special", "round", "seed"))
            if "e" not in opts or "m" not in opts:
                raise ValueError("'fp' needs its exponent and mantissa bits, e.g. 'fp:e=4:m=3:special=fn'")
            e = parse_int(name, "e", opts["e"], 1, 15)
            m = parse_int(name, "m", opts["m"], 0, 15)
            bias = (1 << (e - 1)) - 1
            if "bias" in opts:
                bias = parse_int(name, "bias", opts["bias"], -1000)
            special = parse_choice(name, "special", opts.get("special", "ieee"), SPECIALS)
        else:
            e, m, bias, special = BY_NAME[name]
            opts = split_options(name, tokens, ("round", "seed"))
        rounding, seed = _parse_rounding(name, opts)
        return cls(e, m, bias, special, rounding, seed)

    # ---- element operations (also used by MX) --------------------------------------------
    def round_unscaled(self, y: torch.Tensor) -> torch.Tensor:
        """Nearest representable value of ``y`` (already divided by any scale), saturating."""
        a = y.abs()
        _, ex = torch.frexp(a)
        # Step of the binade holding |y|; below the normal range the subnormal step.
        step_exp = (ex - 1).clamp_(min=self.emin) - self.man_bits
        step = torch.ldexp(torch.ones_like(a), step_exp)
        q = round_to_int(y / step, self.rounding, self.seed).mul_(step)
        q = q.clamp_(-self.max_value, self.max_value)
        if self.has_inf:
            q = torch.where(torch.isinf(y), y, q)
        return q

    def chunk_rounder(self, n: int, finite_only: bool = False):
        """:meth:`round_unscaled` for float32 chunks of at most ``n`` elements (see
        :mod:`._fast`), reusing its buffers; the result may alias earlier results,
        never its argument, which it leaves unchanged.  ``finite_only``: the caller
        discards results for non-finite inputs (MX NaN blocks)."""
        if self.rounding == "even":
            if _fast.magic_rne_ok(self.emin, self.man_bits, self.max_value):
                kind = "magic"
            elif (self.exp_bits, self.man_bits, self.bias, self.special) == (8, 7, 127, "ieee"):
                kind = "bf16"
            else:
                kind = None
        else:
            kind = None
        if kind is None:
            return self.round_unscaled
        out_buf = torch.empty(n, dtype=torch.float32)
        ibuf = torch.empty(n, dtype=torch.int32) if kind == "magic" else None
        emin, m, maxv = self.emin, self.man_bits, self.max_value
        keep_inf = self.has_inf and not finite_only

        def round_chunk(y: torch.Tensor) -> torch.Tensor:
            cnt = y.numel()
            o = out_buf[:cnt].view(y.shape)
            if kind == "magic":
                _fast.rne_minifloat(y, o, ibuf[:cnt].view(y.shape), emin, m, maxv)
            else:  # bf16 is float32 with 7 mantissa bits: torch's cast rounds half to even
                o.copy_(torch.clamp(y, -maxv, maxv, out=o).to(torch.bfloat16))
            if keep_inf:
                torch.where(torch.isinf(y), y, o, out=o)
            return o

        return round_chunk

    def to_codes(self, q: torch.Tensor) -> torch.Tensor:
        """Codes (int64) of exactly representable values ``q``."""
        e, m = self.exp_bits, self.man_bits
        a = q.abs()
        _, ex = torch.frexp(a)
        normal = a >= 2.0**self.emin
        exp_field = torch.where(normal, ex - 1 + self.bias, torch.zeros_like(ex)).to(torch.int64)
        # Normal: a / 2^(E-bias) in [1, 2); subnormal: a / 2^(emin-m).
        unit = torch.ldexp(torch.ones_like(a), torch.where(normal, ex - 1 - m, torch.full_like(ex, self.emin - m)))
        man = a / unit
        man_field = torch.where(normal, man - (1 << m), man).to(torch.int64)
        code = (exp_field << m) | man_field
        top = (1 << e) - 1
        if self.has_inf:
            code = torch.where(torch.isinf(q), torch.full_like(code, top << m), code)
        nan = torch.isnan(q)
        if self.has_nan:
            nan_code = (top << m) | ((1 << m) - 1) if self.special == "fn" else (top << m) | (1 << max(m - 1, 0))
            code = torch.where(nan, torch.full_like(code, nan_code), code)
        elif bool(nan.any()):
            raise ValueError(f"'{self.spec}' has no NaN code; the input holds NaN")
        sign = torch.signbit(q).to(torch.int64) << (e + m)
        return code | sign

    def from_codes(self, codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.table.to(device=codes.device, dtype=dtype)[codes]

    # ---- Format ----------------------------------------------------------------------------
    @property
    def bits_per_element(self) -> float:
        return float(self.bits)

    def quantize(self, x: torch.Tensor, scale: torch.Tensor | float | None = None) -> torch.Tensor:
        """Round to the format; with ``scale``, quantize ``x / scale`` and multiply back."""
        if (
            self.rounding != "stochastic"
            and _fast.applicable(x)
            and x.is_contiguous()
            and (scale is None or isinstance(scale, (int, float)) or (isinstance(scale, torch.Tensor) and scale.ndim == 0))
        ):
            return self._quantize_chunked(x, scale)
        cd = compute_dtype(x)
        y = x.to(cd)
        if scale is not None:
            s = torch.as_tensor(scale, dtype=torch.float32, device=x.device).to(cd)  # scales are float32, as encode stores them
            return (self.round_unscaled(self._divide(y, s)) * s).to(x.dtype)
        return self.round_unscaled(y).to(x.dtype)

    def _divide(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``y / s`` where a finite ``y`` that overflows saturates instead of becoming Inf."""
        q = y / s
        if self.has_inf:
            q = torch.where(torch.isinf(y), q, q.clamp(-self.max_value, self.max_value))
        return q

    def _quantize_chunked(self, x: torch.Tensor, scale: torch.Tensor | float | None) -> torch.Tensor:
        """:meth:`quantize` of a large contiguous CPU tensor with at most a scalar scale,
        chunk by chunk into the output (same float32 arithmetic, see :mod:`._fast`)."""
        f32 = torch.float32
        flat = x.view(-1)
        n = flat.numel()
        s = None if scale is None else torch.as_tensor(scale, dtype=f32, device=x.device)
        out = torch.empty_like(flat)
        size = min(n, _fast.chunk_elems(n))
        tmp = torch.empty(size, dtype=f32)
        round_ = self.chunk_rounder(size)
        for i0 in range(0, n, size):
            c = flat[i0 : i0 + size]
            y = tmp[: c.numel()]
            if s is not None and self.has_inf:
                y = self._divide(c.to(f32), s)  # keeps finite overflow finite, as quantize does
            elif x.dtype == f32:
                if s is None:
                    y = c  # rounders leave their argument unchanged
                else:
                    torch.div(c, s, out=y)
            else:
                y.copy_(c)
                if s is not None:
                    y.div_(s)
            q = round_(y)  # a new tensor or the rounder's own buffer, never ``c``
            if s is not None:
                q = q.mul_(s)
            out[i0 : i0 + size].copy_(q)
        return out.view(x.shape)

    def encode(self, x: torch.Tensor, scale: torch.Tensor | float | None = None) -> Encoded:
        cd = compute_dtype(x)
        y = x.to(cd)
        s = None
        if scale is not None:
            s = torch.as_tensor(scale, dtype=torch.float32, device=x.device)
            y = self._divide(y, s.to(cd))
        codes = self.to_codes(self.round_unscaled(y))
        return Encoded(self.spec, tuple(x.shape), x.dtype, pack_bits(codes, self.bits), self.bits, tuple(x.shape), scales=s)

    def decode(self, enc: Encoded) -> torch.Tensor:
        cd = torch.float64 if enc.dtype == torch.float64 else torch.float32
        v = self.from_codes(enc.unpacked_codes(), cd)
        if enc.scales is not None:
            v = v * enc.scales.to(cd)
        return v.reshape(enc.shape).to(enc.dtype)

    def describe(self) -> dict[str, object]:
        return {
            "family": "minifloat",
            "max": self.max_value,
            "min_normal": 2.0**self.emin,
            "min_subnormal": self.min_subnormal,
            "scale": "none",
            "special": self.special,
        }


def _parse_rounding(name: str, opts: dict[str, str | None]) -> tuple[str, int | None]:
    rounding = parse_choice(name, "round", opts.get("round", "even"), ROUNDING_MODES)
    seed = parse_int(name, "seed", opts["seed"], 0) if "seed" in opts else None
    if seed is not None and rounding != "stochastic":
        raise ValueError(f"'{name}' option seed only applies with round=stochastic")
    if seed == 0:
        seed = None  # the default seed, spelled out: one canonical form
    return rounding, seed


def _rounding_suffix(rounding: str, seed: int | None) -> str:
    s = "" if rounding == "even" else f":round={rounding}"
    return s + (f":seed={seed}" if seed is not None else "")
