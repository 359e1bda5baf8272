"""``quant.cast`` -> ONNX: stored-quantized weights, Q/DQ or exact decompositions for activations.

Weights (a cast whose input is a ``graph.weight``) are quantized here at export
time with the interpreter's own kernel; the result is then stored as codes +
scale (+ zero point) read by one ``DequantizeLinear`` where ONNX has the type
and ONNX Runtime runs it, else as the float32 values themselves.  Either way the
stored form is checked to decode to the interpreter's values bit for bit before
it is used, so a layout this module gets wrong falls back to float32 instead of
changing the model.

Activations: static per-tensor int8/uint8 and fp8 casts become
``QuantizeLinear``/``DequantizeLinear``; dynamic integer scales, other integer
widths, minifloats and MX become the exact decompositions of :mod:`._decompose`.
What has no exact ONNX form raises :class:`BackendError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import torch
from onnx import TensorProto
from xdsl.ir import Operation, SSAValue

from mase_compiler.numerics import DIntFormat, FixedFormat, IntFormat, MinifloatFormat, MXFormat
from mase_compiler.numerics._blocks import normalize_axis, split_blocks
from mase_compiler.numerics.mx import IntElement

from .. import BackendError
from ...dialects import graph as g
from ...dialects.graph import shape_of
from ...interpreter.kernels import KERNELS, KernelEnv, p_int
from . import _decompose as D
from ._builder import Builder, onnx_elem_type, to_numpy

# Minifloats with an ONNX Q/DQ type that ONNX Runtime 1.32 runs (float4e2m1 has none there).
_FP8 = {(4, 3, 7, "fn"): (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn),
        (5, 2, 15, "ieee"): (TensorProto.FLOAT8E5M2, ml_dtypes.float8_e5m2)}
_HALF = {(5, 10, 15, "ieee"): (TensorProto.FLOAT16, np.float16), (8, 7, 127, "ieee"): (TensorProto.BFLOAT16, ml_dtypes.bfloat16)}


@dataclass
class Stored:
    """A weight as DequantizeLinear inputs: codes, scale, zero point, axis, block size."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None = None
    axis: int | None = None
    block: int | None = None


def _key(fmt: MinifloatFormat) -> tuple:
    return (fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.special)


def refuse(fmt, why: str) -> BackendError:
    return BackendError(f"quant.cast {fmt} {why} has no exact ONNX form; use --target pytorch")


# ---- weights -----------------------------------------------------------------------------------------
def _int_dtype(fmt: IntFormat):
    """Smallest ONNX integer container of the grid: (TensorProto type, numpy dtype)."""
    for bits, signed_t, unsigned_t in ((4, (TensorProto.INT4, ml_dtypes.int4), (TensorProto.UINT4, ml_dtypes.uint4)),
                                        (8, (TensorProto.INT8, np.int8), (TensorProto.UINT8, np.uint8)),
                                        (16, (TensorProto.INT16, np.int16), (TensorProto.UINT16, np.uint16))):
        if fmt.bits <= bits:
            return signed_t if fmt.signed else unsigned_t
    raise AssertionError(fmt.bits)


def _layout(s: torch.Tensor, w: torch.Tensor, fmt, axis: int | None) -> tuple[torch.Tensor, int | None, int | None] | None:
    """The ONNX form of a keepdim scale ``s`` of ``w``: (scale, axis, block_size), or None."""
    if s.numel() == 1:
        return s.reshape(()), None, None
    if isinstance(fmt, IntFormat) and fmt.granularity == "group":
        ax = normalize_axis(fmt._axis(axis), w.ndim)
        moved = [n for d, n in enumerate(w.shape) if d != ax]
        nb = -(-w.shape[ax] // fmt.group)
        if tuple(s.shape) != (*moved, nb, 1):
            return None
        return s.reshape(*moved, nb).movedim(-1, ax), ax, fmt.group
    big = [d for d in range(s.ndim) if s.shape[d] != 1]
    if s.ndim == w.ndim and len(big) == 1 and s.shape[big[0]] == w.shape[big[0]]:
        return s.reshape(-1), big[0], None
    return None


def _full(t: torch.Tensor, w: torch.Tensor, axis: int | None, block: int | None) -> torch.Tensor:
    """A DequantizeLinear parameter broadcast to ``w``'s shape (what the runtime applies per element)."""
    if axis is None:
        return t.expand(w.shape)
    if block is None:
        shape = [1] * w.ndim
        shape[axis] = -1
        return t.reshape(shape).expand(w.shape)
    return t.repeat_interleave(block, dim=axis).narrow(axis, 0, w.shape[axis])


def _int_weight(fmt: IntFormat, w: torch.Tensor, params: list[torch.Tensor], axis: int | None, ref: torch.Tensor) -> Stored | None:
    if not params:
        params = [p for p in fmt.compute_scale(w, axis) if p is not None]
    lay = _layout(params[0].float(), w, fmt, axis)
    if lay is None:
        return None
    scale, ax, block = lay
    zp = None
    if len(params) > 1:
        zlay = _layout(params[1], w, fmt, axis)
        if zlay is None or zlay[1:] != (ax, block):
            return None
        zp = zlay[0]
    s_full = _full(scale, w, ax, block)
    z_full = torch.zeros_like(s_full) if zp is None else _full(zp, w, ax, block).float()
    codes = torch.round(ref.double() / s_full.double()) + z_full.double()
    gmin, gmax = fmt.grid_bounds()
    codes = codes.clamp(gmin, gmax).float()
    if not torch.equal((codes - z_full) * s_full, ref):
        return None
    _, dt = _int_dtype(fmt)
    zp_np = None if zp is None else zp.numpy().astype(np.int64).astype(dt)
    return Stored(codes.numpy().astype(np.int64).astype(dt), scale.numpy().astype(np.float32), zp_np, ax, block)


def _fp8_weight(fmt: MinifloatFormat, w: torch.Tensor, params: list[torch.Tensor], ref: torch.Tensor) -> Stored | None:
    _, dt = _FP8[_key(fmt)]
    scale = params[0].float() if params else torch.tensor(1.0)
    lay = _layout(scale, w, fmt, None)
    if lay is None:
        return None
    scale, ax, _ = lay
    s_full = _full(scale, w, ax, None)
    codes = (ref / s_full).numpy().astype(dt)
    if not torch.equal(torch.from_numpy(codes.astype(np.float32)) * s_full, ref):
        return None
    return Stored(codes, scale.numpy().astype(np.float32), None, ax, None)


def _mx_weight(fmt: MXFormat, w: torch.Tensor, axis: int | None, ref: torch.Tensor) -> Stored | None:
    el = fmt.elem
    if isinstance(el, IntElement):
        if el.bits != 8:
            return None
        dt, frac = np.int8, el.frac
    elif _key(el) in _FP8:
        dt, frac = _FP8[_key(el)][1], 0
    else:
        return None  # fp6 has no ONNX type; float4e2m1 DequantizeLinear is not in ONNX Runtime 1.32
    ax = normalize_axis(fmt.axis if axis is None else axis, w.ndim)
    blocks, _ = split_blocks(w.float(), ax, fmt.block)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    if not bool(torch.isfinite(amax).all()):
        return None  # NaN blocks need the E8M0 NaN scale
    x = fmt.shared_exponent(amax) - frac
    # E8M0 scales stored as float32 (exact powers of two): ONNX Runtime 1.32 has no float8e8m0 DequantizeLinear.
    scale = torch.ldexp(torch.ones_like(amax), x).squeeze(-1).movedim(-1, ax)
    s_full = _full(scale, w, ax, fmt.block)
    y = ref / s_full
    codes = torch.round(y).clamp(-127, 127).numpy().astype(np.int8) if frac else y.numpy().astype(dt)
    if not torch.equal(torch.from_numpy(codes.astype(np.float32)) * s_full, ref):
        return None
    return Stored(codes, scale.numpy().astype(np.float32), None, ax, fmt.block)


def _store_weight(b: Builder, op: Operation, wname: str, w: torch.Tensor, params: list[torch.Tensor]) -> tuple[str, str]:
    """Emit the weight's stored form; returns (value name, how: 'dq' | 'cast' | 'float32')."""
    fmt = op.properties["format"].format
    axis = p_int(op, "axis")
    exact = KERNELS["quant.cast"](op, KernelEnv(None, torch.device("cpu")))(w, *params)
    ref = exact.float()
    stored = None
    if bool(torch.isfinite(ref).all()) and w.dtype == torch.float32:
        if isinstance(fmt, IntFormat):
            stored = _int_weight(fmt, w, params, axis, ref)
        elif isinstance(fmt, MinifloatFormat) and _key(fmt) in _FP8:
            stored = _fp8_weight(fmt, w, params, ref)
        elif isinstance(fmt, MinifloatFormat) and _key(fmt) in _HALF and not params:
            _, dt = _HALF[_key(fmt)]
            half = ref.numpy().astype(dt)
            if np.array_equal(half.astype(np.float32), ref.numpy()):
                return b.node1("Cast", [b.initializer(f"{wname}.{fmt}", half)], base=f"{wname}.qdq", to=TensorProto.FLOAT), "cast"
        elif isinstance(fmt, MXFormat):
            stored = _mx_weight(fmt, w, axis, ref)
    if stored is None:  # no ONNX type for the format: the exact quantized values, stored as floats
        return b.initializer(f"{wname}.qdq", to_numpy(exact)), "float32"
    ins = [b.initializer(f"{wname}.codes", stored.codes), b.initializer(f"{wname}.scale", stored.scale)]
    if stored.zero_point is not None:
        ins.append(b.initializer(f"{wname}.zero_point", stored.zero_point))
    return b.node1("DequantizeLinear", ins, base=f"{wname}.qdq", axis=stored.axis, block_size=stored.block), "dq"


# ---- activations -------------------------------------------------------------------------------------
def _static_param(b: Builder, v: SSAValue, fmt) -> np.ndarray:
    if v not in b.static:
        raise refuse(fmt, "with a scale computed in the graph")
    return np.asarray(b.static[v])


def _activation(b: Builder, op: Operation, x: str, params: list[SSAValue]) -> tuple[str, str]:
    fmt = op.properties["format"].format
    if onnx_elem_type(op.operands[0].type) != TensorProto.FLOAT:
        raise refuse(fmt, f"on a {g.element_type(op.operands[0].type)} activation (float32 only)")
    if getattr(fmt, "rounding", "even") != "even":
        raise refuse(fmt, f"with rounding {fmt.rounding} on an activation")
    rank = None if shape_of(op.operands[0].type) is None else len(shape_of(op.operands[0].type))
    if isinstance(fmt, DIntFormat):
        raise refuse(fmt, "(dINT code table) on an activation")
    if isinstance(fmt, FixedFormat):
        gmin, gmax = fmt.grid_bounds()
        return D.int_grid(b, x, b.f32(fmt.fixed_scale()), None, gmin, gmax), "decomposed"
    if isinstance(fmt, MinifloatFormat):
        if not params:
            return D.minifloat(b, x, fmt, None), "decomposed"
        s = _static_param(b, params[0], fmt).astype(np.float32)
        if _key(fmt) in _FP8 and s.size == 1:
            tp, _ = _FP8[_key(fmt)]
            zp = b.initializer("fp8_zero", np.zeros((), dtype=_FP8[_key(fmt)][1]))
            sc = b.f32(s.reshape(()))
            q = b.node1("QuantizeLinear", [x, sc, zp], saturate=1)
            return b.node1("DequantizeLinear", [q, sc, zp]), "qdq"
        return D.minifloat(b, x, fmt, b.f32(s)), "decomposed"
    if isinstance(fmt, MXFormat):
        if fmt.scale_mode != "floor":
            raise refuse(fmt, f"with scale={fmt.scale_mode} on an activation")
        shape = shape_of(op.operands[0].type)
        if shape is None:
            raise refuse(fmt, "on an activation of unknown rank")
        ax = normalize_axis(fmt.axis if p_int(op, "axis") is None else p_int(op, "axis"), len(shape))
        return D.mx(b, x, fmt, len(shape), ax, shape[ax]), "decomposed"
    assert isinstance(fmt, IntFormat)
    gmin, gmax = fmt.grid_bounds()
    if params:
        if fmt.granularity == "group":
            raise refuse(fmt, "with static group scales on an activation")
        s = _static_param(b, params[0], fmt).astype(np.float32)
        zp = _static_param(b, params[1], fmt) if len(params) > 1 else None
        if fmt.bits == 8 and s.size == 1 and (zp is None or zp.size == 1):
            return _int8_qdq(b, x, fmt, s.reshape(()), None if zp is None else zp.reshape(())), "qdq"
        return D.int_grid(b, x, b.f32(s), None if zp is None else b.f32(zp.astype(np.float32)), gmin, gmax), "decomposed"
    if fmt.granularity == "group":
        raise refuse(fmt, "with dynamic group scales on an activation")
    if fmt.granularity == "tensor":
        dims = None
    else:
        if rank is None:
            raise refuse(fmt, "on an activation of unknown rank")
        ax = normalize_axis(fmt._axis(p_int(op, "axis")), rank)
        dims = [ax] if fmt.granularity == "token" else [d for d in range(rank) if d != ax]
    scale, zp = D.dynamic_int_scale(b, x, dims, fmt)
    return D.int_grid(b, x, scale, zp, gmin, gmax), "decomposed"


def _int8_qdq(b: Builder, x: str, fmt: IntFormat, s: np.ndarray, zp: np.ndarray | None) -> str:
    """QuantizeLinear/DequantizeLinear in int8/uint8; a Clip keeps a narrow grid (-127..127) narrow."""
    dt = np.int8 if fmt.signed else np.uint8
    z = np.zeros((), dt) if zp is None else zp.astype(np.int64).astype(dt)
    sc, zn = b.f32(s), b.const(z, dt)
    y = b.node1("DequantizeLinear", [b.node1("QuantizeLinear", [x, sc, zn]), sc, zn])
    gmin, gmax = fmt.grid_bounds()
    info = np.iinfo(dt)
    if (gmin, gmax) != (info.min, info.max):
        # The same float32 products the interpreter forms: (q - zp) * s at the grid ends.
        lo = np.float32(gmin - float(z)) * s
        hi = np.float32(gmax - float(z)) * s
        y = b.node1("Clip", [y, b.f32(lo), b.f32(hi)])
    return y


# ---- entry -------------------------------------------------------------------------------------------
def lower_cast(b: Builder, op: Operation, counts: dict[str, int]) -> list[str]:
    """Emit ``op`` (a quant.cast); counts how each cast was exported."""
    src = op.operands[0]
    params = list(op.operands[1:])
    owner = src.owner
    if getattr(owner, "name", None) == "graph.weight" and all(p in b.static for p in params):
        wname = owner.properties["name"].data
        w = torch.from_numpy(np.array(b.static[src]))
        ps = [torch.from_numpy(np.array(b.static[p])) for p in params]
        out, how = _store_weight(b, op, wname, w, ps)
    else:
        out, how = _activation(b, op, b.name(src), params)
    counts[how] = counts.get(how, 0) + 1
    return [out]


__all__ = ["lower_cast", "refuse"]
