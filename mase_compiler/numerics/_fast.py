"""Fast CPU execution of the quantizers: same arithmetic, fewer memory passes.

The formats are written as plain eager torch, where every op is one pass over
the whole tensor and every temporary is a fresh allocation.  On CPU a fresh
multi-megabyte tensor costs a page fault per 4 KiB page, which for large
tensors costs more than the arithmetic.  This module runs the same
element-wise arithmetic on cache-sized chunks (whole blocks / rows per chunk)
with reused buffers and in-place ops, and writes each result once into the
output tensor.

**Results are bit-identical to the plain path** (it is what the formats run
for small tensors, on other devices, under autograd and while compiling).
Only two rewrites go beyond reordering passes, and both are exact:

* ``torch.ldexp(x, e)`` becomes ``x * 2.0**e`` with the power of two computed
  once per block: ldexp is the correctly rounded ``x * 2^e`` and every
  exponent used here is in ``[-149, 127]``, where ``2^e`` is a float32, so the
  product is the same correctly rounded value;
* round-half-to-even onto a minifloat grid (step ``2^(max(e, emin) - m)`` for
  a value in binade ``e``) is done with the classic magic-number add:
  ``(y + C) - C`` with ``C = 1.5 * 2^(E + 23)`` puts ``y`` in a float32 binade
  whose ulp is the step, so the float add rounds exactly as
  ``round(y / step) * step`` does (ties to even), then ``copysign`` restores
  the sign of zero.  ``C`` is built from ``y``'s exponent bits, so no frexp,
  pow or division pass.  Used only where the grid allows it (see
  :func:`magic_rne_ok`); the tests compare it with the plain arithmetic on
  every float32 bit pattern.

Set ``MASEC_NUMERICS_FAST=0`` (or use :func:`plain`) to force the plain path.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

#: Smallest chunk, in elements (4 MiB of float32): the chunk-sized buffers stay in L3.
CHUNK_ELEMS = 1 << 20
#: Largest chunk; between the two, a tensor is cut into at most MAX_CHUNKS chunks.  Every
#: op on a chunk is one OpenMP parallel region, and when another process competes for
#: the cores each region can wait a scheduler time slice, so fewer is more robust.
MAX_CHUNK_ELEMS = 1 << 22
MAX_CHUNKS = 8
#: Below this many elements the plain path is used (no chunking to gain).
MIN_NUMEL = 1 << 16

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


def applicable(x: torch.Tensor) -> bool:
    """Whether the chunked path may run on ``x`` (large plain CPU float tensor, no autograd)."""
    return (
        _enabled
        and type(x) is torch.Tensor
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and x.numel() >= MIN_NUMEL
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
    return max(CHUNK_ELEMS, min(MAX_CHUNK_ELEMS, -(-total // MAX_CHUNKS)))


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
    return out.copysign_(y)
