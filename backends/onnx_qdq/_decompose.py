"""Exact decompositions of quantizers into standard ONNX ops.

Where ONNX has no Q/DQ type (fp6, fp4 in ONNX Runtime, integers other than
8 bits, MX blocks, dynamic per-token scales) the quantizer is written with
Abs, ReduceMax, Div, Round (half to even, as the interpreter), Clip, Mul, ….
Every step repeats the float32 arithmetic of :mod:`mase_compiler.numerics`, so
the result equals the interpreter's bit for bit on finite inputs.

``floor(log2 v)`` (the binade of a value, the MX shared exponent) is the one
step with no exact ONNX op: Log is not correctly rounded, so it is computed by
counting the powers of two ``<= v`` (a comparison against a constant table),
and ``2^e`` is a Gather from a table of exact powers of two.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from mase_compiler.numerics import MinifloatFormat
from mase_compiler.numerics.mx import E8M0_BIAS, IntElement, MXFormat

from ._builder import Builder


def pow2(b: Builder, e: str, lo: int, hi: int) -> str:
    """``2^e`` for a float tensor ``e`` of integers in [lo, hi] (a Gather from an exact table)."""
    table = np.ldexp(np.float32(1.0), np.arange(lo, hi + 1)).astype(np.float32)
    idx = b.node1("Cast", [b.node1("Sub", [e, b.f32(lo)])], to=TensorProto.INT64)
    return b.node1("Gather", [b.f32(table), idx], axis=0)


def floor_log2(b: Builder, v: str, lo: int, hi: int) -> str:
    """``clamp(floor(log2 v), lo, hi)`` as float, for ``v >= 0``: ``lo`` plus the count of ``2^i <= v``, i in (lo, hi]."""
    if hi <= lo:  # a single binade (no comparisons needed)
        return b.node1("Add", [b.node1("Mul", [v, b.f32(0.0)]), b.f32(lo)])
    thresholds = np.ldexp(np.float32(1.0), np.arange(lo + 1, hi + 1)).astype(np.float32)
    ge = b.node1("GreaterOrEqual", [b.node1("Unsqueeze", [v, b.i64([-1])]), b.f32(thresholds)])
    count = b.node1("ReduceSum", [b.node1("Cast", [ge], to=TensorProto.FLOAT), b.i64([-1])], keepdims=0)
    return b.node1("Add", [count, b.f32(lo)])


def round_minifloat(b: Builder, y: str, fmt: MinifloatFormat) -> str:
    """``fmt.round_unscaled(y)`` (round half to even, saturating) for finite ``y``."""
    m, emin, emax, top = fmt.man_bits, fmt.emin, fmt.emax, fmt.max_value
    e = floor_log2(b, b.node1("Abs", [y]), emin, emax)  # binade, subnormals share emin's step
    step = pow2(b, b.node1("Sub", [e, b.f32(m)]), emin - m, emax - m)
    q = b.node1("Mul", [b.node1("Round", [b.node1("Div", [y, step])]), step])
    return b.node1("Clip", [q, b.f32(-top), b.f32(top)])


def round_int_element(b: Builder, y: str, el: IntElement) -> str:
    """MX integer element: ``clamp(round(y * 2^frac), ±kmax) * 2^-frac``."""
    k = b.node1("Round", [b.node1("Mul", [y, b.f32(2.0**el.frac)])])
    k = b.node1("Clip", [k, b.f32(-el.kmax), b.f32(el.kmax)])
    return b.node1("Mul", [k, b.f32(2.0**-el.frac)])


def minifloat(b: Builder, x: str, fmt: MinifloatFormat, scale: str | None) -> str:
    """``fmt.quantize(x, scale)``: divide, saturate, round, multiply back."""
    if scale is None:
        return round_minifloat(b, x, fmt)
    top = fmt.max_value
    y = b.node1("Clip", [b.node1("Div", [x, scale]), b.f32(-top), b.f32(top)])
    return b.node1("Mul", [round_minifloat(b, y, fmt), scale])


def int_grid(b: Builder, x: str, scale: str, zero_point: str | None, gmin: float, gmax: float) -> str:
    """``(clamp(round(x / s) + zp, gmin, gmax) - zp) * s``: the scaled-grid fake quantizer."""
    q = b.node1("Round", [b.node1("Div", [x, scale])])
    if zero_point is not None:
        q = b.node1("Add", [q, zero_point])
    q = b.node1("Clip", [q, b.f32(gmin), b.f32(gmax)])
    if zero_point is not None:
        q = b.node1("Sub", [q, zero_point])
    return b.node1("Mul", [q, scale])


def dynamic_int_scale(b: Builder, x: str, dims: list[int] | None, fmt) -> tuple[str, str | None]:
    """Scale (and zero point) of ``fmt.compute_scale``: ``dims`` are the reduced axes (None: all)."""
    gmin, gmax = fmt.grid_bounds()
    axes = [] if dims is None else [b.i64(dims)]
    span = gmax if fmt.symmetric else gmax - gmin
    cap = np.nextafter(np.float32(np.finfo(np.float32).max / span), np.float32(0))
    if fmt.abs_statistics:
        amax = b.node1("ReduceMax", [b.node1("Abs", [x]), *axes], keepdims=1)
        scale, lo = b.node1("Div", [amax, b.f32(gmax)]), None
    else:
        lo = b.node1("Min", [b.node1("ReduceMin", [x, *axes], keepdims=1), b.f32(0.0)])
        hi = b.node1("Max", [b.node1("ReduceMax", [x, *axes], keepdims=1), b.f32(0.0)])
        if fmt.symmetric:
            scale = b.node1("Div", [hi, b.f32(gmax)])
        else:
            scale = b.node1("Div", [b.node1("Sub", [hi, lo]), b.f32(gmax - gmin)])
    positive = b.node1("Greater", [scale, b.f32(0.0)])
    scale = b.node1("Min", [b.node1("Where", [positive, scale, b.f32(1.0)]), b.f32(cap)])
    if fmt.symmetric:
        return scale, None
    zp = b.node1("Round", [b.node1("Sub", [b.f32(gmin), b.node1("Div", [lo, scale])])])
    return scale, b.node1("Clip", [zp, b.f32(gmin), b.f32(gmax)])


def mx(b: Builder, x: str, fmt: MXFormat, rank: int, axis: int, size: int) -> str:
    """``fmt.quantize(x, axis)``: blocks of ``fmt.block`` along ``axis`` (``size``: its length, -1 if dynamic).

    The block axis is moved last; a ragged last block is zero-padded (as the interpreter pads it)
    and the padding sliced off again, with the pad length computed at run time for a dynamic axis.
    """
    k = fmt.block
    perm = None
    if axis != rank - 1:
        perm = [d for d in range(rank) if d != axis] + [axis]
        x = b.node1("Transpose", [x], perm=perm)
    n = None
    if size < 0 or size % k:
        n = b.node1("Shape", [x], start=rank - 1, end=rank)
        pad = b.node1("Mod", [b.node1("Sub", [b.i64([k]), b.node1("Mod", [n, b.i64([k])])]), b.i64([k])])
        x = b.node1("Pad", [x, b.node1("Concat", [b.i64([0] * (2 * rank - 1)), pad], axis=0), b.f32(0.0)])
    shape = b.node1("Shape", [x])
    blocks = b.node1("Reshape", [x, b.i64([0] * (rank - 1) + [-1, k])])
    amax = b.node1("ReduceMax", [b.node1("Abs", [blocks]), b.i64([-1])], keepdims=1)
    el = fmt.elem
    # X = floor(log2 amax) - emax_elem, clamped to E8M0's range; amax = 0 gives the smallest scale.
    # A finite float32 amax has floor(log2) <= 127, so the table stops there.
    lo = -E8M0_BIAS + el.emax
    expo = b.node1("Sub", [floor_log2(b, amax, lo, min(E8M0_BIAS + el.emax, 127)), b.f32(el.emax)])
    scale = pow2(b, expo, -E8M0_BIAS, E8M0_BIAS)
    y = b.node1("Div", [blocks, scale])
    q = round_int_element(b, y, el) if isinstance(el, IntElement) else round_minifloat(b, y, el)
    out = b.node1("Reshape", [b.node1("Mul", [q, scale]), shape])
    if n is not None:
        out = b.node1("Slice", [out, b.i64([0]), n, b.i64([rank - 1])])
    if perm is not None:
        out = b.node1("Transpose", [out], perm=[int(i) for i in np.argsort(perm)])
    return out


__all__ = ["dynamic_int_scale", "floor_log2", "int_grid", "minifloat", "mx", "pow2", "round_minifloat"]
