"""MX linear layers on integer hardware: the exact definition ``masec_mx_linear`` computes.

An MX element is a small integer in disguise: every value of an element format is a
multiple of ``2^-fe`` (its smallest step), so ``element_ints`` turns codes into exact
integers ``value * 2^fe`` (int8: fe 6, fp8_e4m3: 9, fp8_e5m2: 16, fp6_e2m3: 3,
fp6_e3m2: 4, fp4_e2m1: 1).  A block dot product is then an exact integer ``m`` times
``2^e`` with the block exponent ``e = (sx - 127) + (sw - 127) - fe_x - fe_w`` (the two
E8M0 scales and the two element steps).

Blocks of one output have different exponents, and hardware cannot keep a sum of
``2^e``-scaled integers exactly (``e`` spans ~500 binades).  The accumulator across blocks
is therefore fixed point at a compile-time exponent ``2^-frac`` that the compiler picks
from calibration, ``acc_bits`` wide (enough for the layer's sums); each block is aligned
to it by one barrel shift with one rounding::

    c_b = round_half_even(m_b * 2^(e_b + frac))      an exact left shift when e_b + frac >= 0
    acc = sat(... sat(sat(c_0) + c_1) ... + c_{nb-1})   sat: clamp to acc_bits signed

so ``acc * 2^-frac`` is the layer's dot product up to one rounding per block (at most
``nb / 2`` units of ``2^-frac``).  The accumulator saturates at every block, in block
order: for sums that fit, this is ``clamp(sum_b c_b)``; when a running sum leaves the
range, the order decides (as in the hardware's saturating adder).  The output codes are
``requant.requantize(acc, M[n], S[n], zp, lo, hi)`` with per-channel ``(M, S)``, as for
``dataflow.linear``.

Integers are int64 tensors; block sums and shifts use exact Python integers where int64
could overflow.  E8M0 code 255 (NaN) and NaN/Inf element codes have no integer meaning
and are refused.
"""

from __future__ import annotations

import torch

from .minifloat import MinifloatFormat
from .mx import E8M0_BIAS, E8M0_NAN, IntElement, MXFormat

# The element formats masec_mx_elem decodes (the OCP MX v1.0 ones); element_ints also takes bfp's intN.
ELEMENTS = ("int8", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1")
ALIGN_MODES = ("even", "floor")  # "floor" (truncation) is not the definition: it shows tests catch it
_INT64_BITS = 62  # an integer of this many magnitude bits leaves room for a sum of two


def _element(elem: str) -> MinifloatFormat | IntElement:
    if not isinstance(elem, str):
        raise TypeError(f"element format must be a name such as 'fp4_e2m1', not {type(elem).__name__}")
    try:
        return MXFormat(element=elem).elem
    except ValueError:
        raise ValueError(f"element format must be one of {', '.join(ELEMENTS)} or intN, not {elem!r}") from None


def element_units(elem: str) -> int:
    """``fe``: every value of ``elem`` is an integer multiple of ``2^-fe`` (its smallest step)."""
    el = _element(elem)
    if isinstance(el, IntElement):
        return el.frac
    fe = el.man_bits - el.emin  # the subnormal step is 2^(emin - man_bits)
    top = (1 << el.exp_bits) - 1 - el.bias  # largest exponent field, any special
    if top + fe + 1 > _INT64_BITS:
        raise ValueError(f"element format {elem!r} has values beyond {_INT64_BITS}-bit integers at its step")
    return fe


def element_ints(codes: torch.Tensor, elem: str) -> torch.Tensor:
    """``value * 2^fe`` of each code (int64, exact): a minifloat ``{s, E, M}`` is
    ``+-(E ? 2^m + M : M) << max(E-1, 0)``, an integer element its two's complement code."""
    el = _element(elem)
    element_units(elem)  # refuses formats whose integers would leave int64
    codes = torch.as_tensor(codes, dtype=torch.int64)
    if bool(((codes < 0) | (codes >= 1 << el.bits)).any()):
        raise ValueError(f"{elem} codes must be in 0..{(1 << el.bits) - 1}, not {int(codes.min())}..{int(codes.max())}")
    if isinstance(el, IntElement):
        return codes - ((codes >> (el.bits - 1)) << el.bits)
    bad = ~torch.isfinite(el.table)[codes]
    if bool(bad.any()):
        raise ValueError(f"{elem} code {int(codes[bad][0]):#x} is NaN or Inf, which has no integer value")
    e, m = el.exp_bits, el.man_bits
    sign = (codes >> (e + m)) & 1
    exp = (codes >> m) & ((1 << e) - 1)
    man = codes & ((1 << m) - 1)
    # fe = m + bias - 1: exponent fields 0 and 1 step by 1 unit, each field above doubles it.
    mag = torch.where(exp == 0, man, man + (1 << m)) << (exp.clamp(min=1) - 1)
    return torch.where(sign == 1, -mag, mag)


def _int_bits(elem: str) -> int:
    """Bits of the largest ``element_ints`` magnitude (2^(b-1), of code -2^(b-1), for integers)."""
    el = _element(elem)
    if isinstance(el, IntElement):
        return el.bits
    codes = torch.arange(1 << el.bits)
    finite = torch.isfinite(el.table)
    return int(element_ints(codes[finite], elem).abs().max()).bit_length()


def _align(m: int, t: int, align: str) -> int:
    """``round(m * 2^t)``: exact for ``t >= 0``, else round half to even (or floor) of ``m / 2^-t``."""
    if t >= 0:
        return m << t
    r = -t
    q = m >> r  # floor
    if align == "floor":
        return q
    rem, half = m - (q << r), 1 << (r - 1)
    return q + (rem > half or (rem == half and q & 1 == 1))


def _check_scales(name: str, s: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    s = torch.as_tensor(s, dtype=torch.int64)
    if tuple(s.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, not {list(s.shape)}")
    if bool(((s < 0) | (s > 254)).any()):
        bad = int(s[(s < 0) | (s > 254)][0])
        why = " (NaN, which integer hardware has no code for)" if bad == E8M0_NAN else ""
        raise ValueError(f"{name} must be E8M0 codes 0..254, not {bad}{why}")
    return s


def mx_linear(x_codes: torch.Tensor, x_scales: torch.Tensor, w_codes: torch.Tensor, w_scales: torch.Tensor,
              elem_x: str, elem_w: str, frac: int, acc_bits: int, block: int = 32, align: str = "even") -> torch.Tensor:
    """The saturating fixed-point accumulators ``acc[R, N]`` (int64, real value ``acc * 2^-frac``) of
    ``x @ w`` for MX operands (see the module docstring).

    ``x_codes [R, K]`` / ``x_scales [R, K/block]``: rows of ``elem_x`` codes in blocks along K;
    ``w_codes [K, N]`` / ``w_scales [K/block, N]``: ``elem_w`` codes, blocks along K per channel.
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {', '.join(ALIGN_MODES)}, not {align!r}")
    if not 2 <= acc_bits <= 64:
        raise ValueError(f"acc_bits must be in 2..64, not {acc_bits}")
    xc, wc = torch.as_tensor(x_codes, dtype=torch.int64), torch.as_tensor(w_codes, dtype=torch.int64)
    if xc.ndim != 2 or wc.ndim != 2 or xc.shape[1] != wc.shape[0]:
        raise ValueError(f"x_codes [R, K] and w_codes [K, N] must agree on K, not {list(xc.shape)} and {list(wc.shape)}")
    (r, k), n = xc.shape, wc.shape[1]
    if block < 1 or k % block != 0:
        raise ValueError(f"the block size must divide K = {k}, not {block}")
    nb = k // block
    sx = _check_scales("x_scales", x_scales, (r, nb))
    sw = _check_scales("w_scales", w_scales, (nb, n))
    xi = element_ints(xc, elem_x).reshape(r, nb, block)
    wi = element_ints(wc, elem_w).reshape(nb, block, n)

    # m[r, b, n] = sum_i int(x) * int(w): int64 when it cannot overflow, else Python integers.
    if _int_bits(elem_x) + _int_bits(elem_w) + block.bit_length() <= _INT64_BITS:
        m = torch.einsum("rbi,bin->rbn", xi, wi).tolist()
    else:
        xl, wl = xi.tolist(), wi.tolist()
        m = [[[sum(a * wl[b][i][j] for i, a in enumerate(xl[row][b])) for j in range(n)] for b in range(nb)]
             for row in range(r)]
    fe = element_units(elem_x) + element_units(elem_w)
    t = (sx[:, :, None] - E8M0_BIAS) + (sw[None, :, :] - E8M0_BIAS) - fe + frac  # [R, nb, N]
    t = t.tolist()

    # The alignment and the saturating sum in Python integers (R*N*K/block steps): c may have
    # hundreds of bits before the saturation takes it back.
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    out = []
    for row in range(r):
        for j in range(n):
            acc = 0
            for b in range(nb):
                acc = min(max(acc + _align(m[row][b][j], t[row][b][j], align), lo), hi)
            out.append(acc)
    return torch.tensor(out, dtype=torch.int64).reshape(r, n)


__all__ = ["ALIGN_MODES", "ELEMENTS", "element_ints", "element_units", "mx_linear"]
