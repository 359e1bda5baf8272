"""Fast CPU execution of the quantizers: same arithmetic, fewer memory passes.

The formats are written as plain eager torch, where every op is one pass over
the whole tensor and every temporary is a fresh allocation.  On CPU a fresh
multi-megabyte tensor costs a page fault per 4 KiB page, which for large
tensors costs more than the arithmetic.  This module runs the same
element-wise arithmetic on cache-sized chunks (whole blocks / rows per chunk)
with reused buffers and in-place ops, and writes each result once into the
output tensor.

**Results are bit-identical to the plain path** (it is what the formats run
for small tensors, float64, other devices, autograd, stochastic rounding and
torch.compile tracing), strides included.  Beyond reordering passes, these
rewrites are used, each exact:

* ``torch.ldexp(x, e)`` becomes ``x * 2.0**e`` with the power of two computed
  once per block (:func:`pow2` builds it from the bits): ldexp is the
  correctly rounded ``x * 2^e`` and every exponent used here is in
  ``[-127, 127]``, where ``2^e`` is a float32, so the product is the same
  correctly rounded value;
* MX ``scale=floor`` shared exponent from the float32 exponent field of the
  block maximum instead of ``frexp`` (zero and subnormal maxima clamp to -127
  either way, as the element ``emax`` is >= 0);
* round-half-to-even onto a minifloat grid (step ``2^(max(e, emin) - m)`` for
  a value in binade ``e``) is done with the classic magic-number add:
  ``(y + C) - C`` with ``C = 1.5 * 2^(E + 23)`` puts ``y`` in a float32 binade
  whose ulp is the step, so the float add rounds exactly as
  ``round(y / step) * step`` does (ties to even), then ``y``'s sign bit is
  ORed in (a zero result must keep the sign of ``y``).  ``C`` is built from
  ``y``'s exponent bits, so no frexp, pow or division pass.  Used only where
  the grid allows it (see :func:`magic_rne_ok`); bf16 (whose range is
  float32's) uses torch's round-half-to-even cast instead;
* dINT's two-grid rounding is ``round(y * s) / s`` with ``s`` = 2 below 1 and
  1 elsewhere (:meth:`DIntFormat.round_grid_`).

Each rounding rewrite was compared with the plain arithmetic on all 2^32
float32 bit patterns; ``tests/test_fast_path.py`` keeps a sampled version.

Set ``MASEC_NUMERICS_FAST=0`` (or use :func:`plain`) to force the plain path.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

#: Elements per chunk (4 MiB of float32): the few chunk-sized buffers stay in L2/L3.
#: Measured on the 2-core EPYC (16M elements): 2^18..2^20 are best, 2^22 is 10-20% slower.
CHUNK_ELEMS = 1 << 20
#: Below this many elements the plain path is used (no chunking to gain).
MIN_NUMEL = 1 << 16
#: The same for the integer/fixed/dINT family, whose plain path has fewer passes: below
#: ~2^19 elements its temporaries stay in cache and chunking does not pay (measured).
MIN_NUMEL_SCALED = 1 << 19

_enabled = os.environ.get("MASEC_NUMERICS_FAST", "1").strip().lower() not in ("0", "false", "no", "off")


def enabled() -> bool:
    return _enabled


def set_enabled(flag: bool) -> bool:
    """Turn the fast path on or off; returns the previous setting."""
    global _enabled
    old, _enabled = _enabled, bool(flag)
    return old


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Run the plain eager arithmetic inside this block (reference for tests)."""
    old = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(old)


def applicable(x: torch.Tensor, min_numel: int | None = None) -> bool:
    """Whether the chunked path may run on ``x`` (large plain CPU float tensor, no autograd)."""
    return (
        _enabled
        and type(x) is torch.Tensor
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and x.numel() >= (MIN_NUMEL if min_numel is None else min_numel)
        and not (x.requires_grad and torch.is_grad_enabled())
        and not torch.compiler.is_compiling()
    )


def dense(t: torch.Tensor) -> bool:
    """Whether ``t`` is non-overlapping and dense (a permutation of a contiguous layout)."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz > 1):
        if stride != expected:
            return False
        expected *= size
    return True


def chunk_elems(total: int) -> int:
    """Target chunk size for a tensor of ``total`` elements."""
    return CHUNK_ELEMS


def rows_per_chunk(nrows: int, rowlen: int) -> int:
    """Rows of ``rowlen`` elements per chunk (at least one)."""
    return max(1, min(nrows, chunk_elems(nrows * rowlen) // max(rowlen, 1)))


def row_ranges(nrows: int, rowlen: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges of :func:`rows_per_chunk` rows covering ``nrows``."""
    step = rows_per_chunk(nrows, rowlen)
    for r0 in range(0, nrows, step):
        yield r0, min(nrows, r0 + step)


def pow2(e: torch.Tensor) -> torch.Tensor:
    """``2.0 ** e`` as float32 for int32 ``e`` in ``[-127, 127]``, built from the bits.

    Equal to ``torch.pow(2.0, e)`` (exact powers of two); ``2^-127`` is the one
    subnormal, reached by raising the zero that the field arithmetic gives.
    """
    return ((e + 127) << 23).view(torch.float32).clamp_(min=2.0**-127)


# ---- round-half-to-even onto a minifloat grid --------------------------------------------------
_EXP_MASK = 0x7F800000


def magic_rne_ok(emin: int, man_bits: int, max_value: float) -> bool:
    """Whether :func:`rne_minifloat` is exact for this grid.

    Needs the subnormal step to be a normal float32 (``emin >= -126``), at most
    21 mantissa bits (the sum stays in one binade) and ``C`` finite for the
    largest value (``emax + 23 - m <= 127``).
    """
    emax = _exponent(max_value)
    return emin >= -126 and 0 <= man_bits <= 21 and emax + 23 - man_bits <= 127 and emax >= emin


def _exponent(v: float) -> int:
    import math

    return math.frexp(v)[1] - 1


def rne_minifloat(
    y: torch.Tensor, out: torch.Tensor, ibuf: torch.Tensor, emin: int, man_bits: int, max_value: float
) -> torch.Tensor:
    """``out`` = ``y`` clamped to ``±max_value`` and rounded half-to-even onto the grid.

    Equal, bit for bit, to ``clamp(round(y / step) * step, -max, max)`` with
    ``step = 2^(max(floor(log2|y|), emin) - man_bits)`` for every finite ``y``;
    NaN stays NaN; ±Inf gives ±max (callers that keep Inf restore it).
    ``y`` is not modified; ``ibuf`` is an int32 scratch of ``y``'s shape.
    """
    torch.clamp(y, -max_value, max_value, out=out)
    # Exponent field of the clamped value, raised to the subnormal binade; NaN's
    # field is capped at the top finite binade (the NaN then survives the adds).
    torch.bitwise_and(out.view(torch.int32), _EXP_MASK, out=ibuf)
    top = (_exponent(max_value) + 127) << 23
    ibuf.clamp_((emin + 127) << 23, top)
    # C = 1.5 * 2^(E + 23 - m): same exponent arithmetic on the field, plus the 0.5 bit.
    ibuf.add_(((23 - man_bits) << 23) | 0x400000)
    c = ibuf.view(torch.float32)
    out.add_(c).sub_(c)
    # The sum rounds the magnitude right but gives +0 where the result is a zero of
    # either sign; otherwise the sign already is y's.  So OR in y's sign bit (copysign,
    # done on the bits: torch's copysign is a slow scalar loop).
    torch.bitwise_and(y.view(torch.int32), -(1 << 31), out=ibuf)
    out.view(torch.int32).bitwise_or_(ibuf)
    return out
