"""Converters for torch-mlir's structural ops, symbolic sizes, elementwise ops, casts and creation ops.

Each converter receives the op's operands already resolved (see ``_lower``) and
returns the value(s) of its results.  Operands arrive in ATen schema order,
keyword-only arguments included.  Element types follow ATen's promotion: the
converter casts operands to the element type torch-mlir gives the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, IntegerType, StringAttr
from xdsl.ir import SSAValue

from ...dialects import graph as g
from ...interpreter.dtypes import element_type_of, torch_dtype
from ...interpreter.kernels import dense_to_tensor
from ._lower import DynInt, Lowering, Unsupported, Weight, converts, float_attr
from ._torch_ir import torch_type_name

i64 = IntegerType(64)


# ---- structural ops --------------------------------------------------------------------------------
@converts("constant.int", "constant.float", "constant.bool", "constant.str", "constant.device")
def _constant(cx: Lowering) -> Any:
    value = cx.op.properties["value"]
    kind = torch_type_name(cx.op.results[0].type)
    if kind == "bool":
        return bool(value.value.data)
    if kind == "int":
        return int(value.value.data)
    if kind == "float":
        return float(value.value.data)
    return value.data  # str, Device


@converts("constant.none")
def _none(cx: Lowering) -> None:
    return None


@converts("prim.ListConstruct")
def _list(cx: Lowering, *items: Any) -> list[Any]:
    return list(items)


@converts("prim.ListUnpack")
def _unpack(cx: Lowering, items: Any) -> tuple[Any, ...]:
    return tuple(items)


@converts("masec.param")
def _param(cx: Lowering) -> Any:
    name = cx.op.attributes["name"].data
    st = cx.tm.state[name]
    if st.weight:
        return Weight(name, st.tensor)
    cx.name_constant(st.tensor, name)
    return st.tensor


@converts("vtensor.literal")
def _literal(cx: Lowering) -> torch.Tensor:
    value = cx.op.properties["value"]
    if not isinstance(value, DenseIntOrFPElementsAttr):
        raise Unsupported(f"literal {value} is not supported")
    return dense_to_tensor(value)


@converts("aten._assert_tensor_metadata", "aten._assert_scalar", "aten.sym_constrain_range_for_size",
          "aten.sym_constrain_range", "aten._assert_async.msg")
def _no_op(cx: Lowering, *args: Any) -> None:
    return None


# ---- symbolic integers -----------------------------------------------------------------------------
@converts("aten.size.int", "aten.sym_size.int")
def _size(cx: Lowering, x: Any, d: int) -> int | DynInt:
    return cx.dim(x, d)


def _int_binary(fn: Any, graph_op: type) -> Any:
    def convert(cx: Lowering, a: Any, b: Any) -> int | DynInt:
        if isinstance(a, int) and isinstance(b, int):
            return fn(a, b)
        va, vb = cx.shape_operand([a]), cx.shape_operand([b])
        return DynInt(cx.emit(graph_op, [va, vb], g.tensor_type(i64, (1,))))

    return convert


converts("aten.mul.int")(_int_binary(lambda a, b: a * b, g.MulOp))
converts("aten.add.int")(_int_binary(lambda a, b: a + b, g.AddOp))
converts("aten.sub.int")(_int_binary(lambda a, b: a - b, g.SubOp))
converts("aten.floordiv.int")(_int_binary(lambda a, b: a // b, g.DivOp))  # sizes are non-negative


@converts("aten.Int.bool", "aten.Int.float", "aten.Int.Scalar")
def _int(cx: Lowering, v: Any) -> Any:
    if isinstance(v, DynInt):
        return v
    return int(v)


@converts("aten.Float.Scalar", "aten.Float.int")
def _float(cx: Lowering, v: Any) -> Any:
    if isinstance(v, DynInt):
        raise Unsupported("symbolic floats are not supported")
    return float(v)


@converts("prim.NumToTensor.Scalar", "aten.scalar_tensor")
def _num_to_tensor(cx: Lowering, v: Any, *rest: Any) -> Any:
    rt = cx.out()
    if isinstance(v, DynInt):
        return cx.operand(v, g.element_type(rt))
    return torch.tensor(v, dtype=torch_dtype(rt))


@converts("aten.Int.Tensor", "aten.item", "aten._local_scalar_dense", "aten.ScalarImplicit")
def _item(cx: Lowering, x: Any) -> Any:
    raise Unsupported("reading a tensor's value into a Python number (data-dependent control) is not supported")


# ---- elementwise -----------------------------------------------------------------------------------
_UNARY = {
    "aten.relu": g.ReluOp, "aten.sigmoid": g.SigmoidOp, "aten.tanh": g.TanhOp, "aten.exp": g.ExpOp,
    "aten.log": g.LogOp, "aten.sqrt": g.SqrtOp, "aten.rsqrt": g.RsqrtOp, "aten.neg": g.NegOp, "aten.abs": g.AbsOp,
    "aten.sin": g.SinOp, "aten.cos": g.CosOp, "aten.erf": g.ErfOp, "aten.floor": g.FloorOp, "aten.ceil": g.CeilOp,
    "aten.reciprocal": g.ReciprocalOp, "aten.sign": g.SignOp, "aten.silu": g.SiluOp, "aten.round": g.RoundOp,
    "aten.softplus": g.SoftplusOp,
}


def _unary(cls: type) -> Any:
    def convert(cx: Lowering, x: Any, *rest: Any) -> SSAValue:
        if cls is g.SoftplusOp and (rest[0] != 1 or rest[1] != 20):
            raise Unsupported("softplus with beta != 1 or a threshold other than 20 is not supported")
        rt = cx.out()
        return cx.emit(cls, [cx.cast(x, g.element_type(rt))], rt)

    return convert


for _name, _cls in _UNARY.items():
    converts(_name)(_unary(_cls))


@converts("aten.log1p", "aten.expm1")
def _log1p(cx: Lowering, x: Any) -> SSAValue:
    """log(1 + x) and exp(x) - 1 (the graph has no fused forms; small |x| loses the fused ops' precision)."""
    rt = cx.out()
    e = g.element_type(rt)
    v = cx.cast(x, e)
    if cx.op_name == "aten.log1p":
        return cx.emit(g.LogOp, [cx.emit(g.AddOp, [v, cx.scalar(1, e)], rt)], rt)
    return cx.emit(g.SubOp, [cx.emit(g.ExpOp, [v], rt), cx.scalar(1, e)], rt)


@converts("aten.isnan", "aten.isinf")
def _isnan(cx: Lowering, x: Any) -> SSAValue:
    cls = g.IsNanOp if cx.op_name.endswith("isnan") else g.IsInfOp
    return cx.emit(cls, [cx.tensor(x)], cx.out())


@converts("aten.gelu")
def _gelu(cx: Lowering, x: Any, approximate: str = "none") -> SSAValue:
    return cx.emit(g.GeluOp, [cx.tensor(x)], cx.out(), approximate=StringAttr(approximate))


@converts("aten.leaky_relu")
def _leaky_relu(cx: Lowering, x: Any, slope: float = 0.01) -> SSAValue:
    return cx.emit(g.LeakyReluOp, [cx.tensor(x)], cx.out(), alpha=float_attr(slope))


@converts("aten.clamp", "aten.hardtanh", "aten.clamp_min", "aten.clamp_max")
def _clamp(cx: Lowering, x: Any, lo: Any = None, hi: Any = None) -> SSAValue:
    name = cx.op_name
    if name == "aten.clamp_max":
        lo, hi = None, lo
    props = {}
    for key, v in (("min", lo), ("max", hi)):
        if v is not None:
            if not isinstance(v, int | float):
                raise Unsupported(f"clamp {key} must be a number, not {type(v).__name__}")
            props[key] = float_attr(v)
    rt = cx.out()
    return cx.emit(g.ClipOp, [cx.cast(x, g.element_type(rt))], rt, **props)


@converts("aten.clamp.Tensor")
def _clamp_tensor(cx: Lowering, x: Any, lo: Any, hi: Any) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    v = cx.cast(x, e)
    if lo is not None:
        v = cx.emit(g.MaxOp, [v, cx.operand(lo, e)], rt)
    if hi is not None:
        v = cx.emit(g.MinOp, [v, cx.operand(hi, e)], rt)
    return v


def _promote(cx: Lowering, a: Any, b: Any) -> torch.dtype:
    """ATen's type promotion of ``a`` and ``b`` (tensors by dtype and rank, Python numbers as scalars)."""

    def fake(x: Any) -> Any:
        if isinstance(x, bool | int | float):
            return x
        if isinstance(x, DynInt):
            return 1
        return torch.empty([1] * cx.rank(x), dtype=cx.dtype(x))

    return torch.result_type(fake(a), fake(b))


def _arith(cls: type, *, scale_rhs: bool = False) -> Any:
    """``a <op> b`` with operands cast to the result's element type; ``alpha`` scales ``b`` (add/sub)."""

    neutral = 1 if cls is g.MulOp else 0 if cls in (g.AddOp, g.SubOp) else None

    def convert(cx: Lowering, a: Any, b: Any, alpha: Any = 1) -> SSAValue:
        rt = cx.out()
        e = g.element_type(rt)
        if neutral is not None and isinstance(b, int | float) and not isinstance(b, bool) and b == neutral \
                and not isinstance(a, bool | int | float | DynInt) and cx.tensor(a).type == rt:
            return cx.tensor(a)  # x + 0, x * 1 (GPT-2's addmm decomposition, HF's position offsets)
        va, vb = cx.operand(a, e), cx.operand(b, e)
        if scale_rhs and alpha != 1:
            vb = cx.emit(g.MulOp, [vb, cx.scalar(alpha, e)], vb.type)
        return cx.emit(cls, [va, vb], rt)

    return convert


for _names, _cls, _alpha in (
    (("aten.add.Tensor", "aten.add.Scalar"), g.AddOp, True),
    (("aten.sub.Tensor", "aten.sub.Scalar"), g.SubOp, True),
    (("aten.mul.Tensor", "aten.mul.Scalar"), g.MulOp, False),
    (("aten.maximum",), g.MaxOp, False),
    (("aten.minimum",), g.MinOp, False),
    (("aten.pow.Tensor_Tensor", "aten.pow.Tensor_Scalar"), g.PowOp, False),
    (("aten.remainder.Tensor", "aten.remainder.Scalar"), g.ModOp, False),
):
    for _n in _names:
        converts(_n)(_arith(_cls, scale_rhs=_alpha))


@converts("aten.fmod.Tensor", "aten.fmod.Scalar")
def _fmod(cx: Lowering, a: Any, b: Any) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    return cx.emit(g.ModOp, [cx.operand(a, e), cx.operand(b, e)], rt, fmod=g.int_attr(1))


@converts("aten.rsub.Scalar", "aten.rsub.Tensor")
def _rsub(cx: Lowering, a: Any, b: Any, alpha: Any = 1) -> SSAValue:
    """``b - alpha * a``."""
    rt = cx.out()
    e = g.element_type(rt)
    va = cx.operand(a, e)
    if alpha != 1:
        va = cx.emit(g.MulOp, [va, cx.scalar(alpha, e)], va.type)
    return cx.emit(g.SubOp, [cx.operand(b, e), va], rt)


@converts("aten.pow.Scalar")
def _pow_scalar(cx: Lowering, a: Any, b: Any) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    return cx.emit(g.PowOp, [cx.operand(a, e), cx.operand(b, e)], rt)


@converts("aten.div.Tensor", "aten.div.Scalar", "aten.div.Tensor_mode", "aten.div.Scalar_mode")
def _div(cx: Lowering, a: Any, b: Any, mode: str | None = None) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    va, vb = cx.operand(a, e), cx.operand(b, e)
    floating = torch_dtype(rt).is_floating_point
    if mode is None or (mode == "trunc" and not floating):
        return cx.emit(g.DivOp, [va, vb], rt)
    if mode == "floor" and floating:
        q = cx.emit(g.DivOp, [va, vb], rt)
        return cx.emit(g.FloorOp, [q], rt)
    if mode == "floor":  # integers: (a - a mod b) / b with Python's modulo (sign of the divisor)
        r = cx.emit(g.ModOp, [va, vb], rt, fmod=g.int_attr(0))
        return cx.emit(g.DivOp, [cx.emit(g.SubOp, [va, r], rt), vb], rt)
    # float truncation: sign(q) * floor(|q|)
    q = cx.emit(g.DivOp, [va, vb], rt)
    fl = cx.emit(g.FloorOp, [cx.emit(g.AbsOp, [q], rt)], rt)
    return cx.emit(g.MulOp, [cx.emit(g.SignOp, [q], rt), fl], rt)


def _compare(cls: type, negate: bool = False) -> Any:
    def convert(cx: Lowering, a: Any, b: Any) -> SSAValue:
        rt = cx.out()
        if cls is g.EqualOp and isinstance(b, float) and math.isinf(b):
            v = _equal_inf(cx, a, b > 0)
        else:
            e = element_type_of(_promote(cx, a, b))
            v = cx.emit(cls, [cx.operand(a, e), cx.operand(b, e)], rt)
        return cx.emit(g.NotOp, [v], rt) if negate else v

    return convert


def _equal_inf(cx: Lowering, x: Any, positive: bool) -> SSAValue:
    """``x == ±inf`` as ``isinf(x) & x ≷ 0``: keeps infinities out of dense constants, which
    xDSL 0.74 prints as hex bit patterns but parses back as integers."""
    v = cx.tensor(x)
    rt = cx.out()
    inf = cx.emit(g.IsInfOp, [v], rt)
    sign = cx.emit(g.GreaterOp if positive else g.LessOp, [v, cx.scalar(0, g.element_type(v.type))], rt)
    return cx.emit(g.AndOp, [inf, sign], rt)


for _base, _cls, _neg in (("eq", g.EqualOp, False), ("ne", g.EqualOp, True), ("lt", g.LessOp, False),
                          ("le", g.LessEqualOp, False), ("gt", g.GreaterOp, False), ("ge", g.GreaterEqualOp, False)):
    converts(f"aten.{_base}.Tensor", f"aten.{_base}.Scalar")(_compare(_cls, _neg))


def _logical(cls: type, bitwise: bool = False) -> Any:
    def convert(cx: Lowering, a: Any, b: Any) -> SSAValue:
        if bitwise and (cx.dtype(a) != torch.bool or (not isinstance(b, bool) and cx.dtype(b) != torch.bool)):
            raise Unsupported("bitwise ops on integer tensors are not supported (only on bool)")
        return cx.emit(cls, [cx.as_bool(a), cx.as_bool(b)], cx.out())

    return convert


for _base, _cls in (("and", g.AndOp), ("or", g.OrOp), ("xor", g.XorOp)):
    converts(f"aten.logical_{_base}")(_logical(_cls))
    converts(f"aten.bitwise_{_base}.Tensor", f"aten.bitwise_{_base}.Scalar")(_logical(_cls, bitwise=True))


@converts("aten.logical_not", "aten.bitwise_not")
def _not(cx: Lowering, x: Any) -> SSAValue:
    if cx.op_name == "aten.bitwise_not" and cx.dtype(x) != torch.bool:
        raise Unsupported("bitwise_not on integer tensors is not supported (only on bool)")
    return cx.emit(g.NotOp, [cx.as_bool(x)], cx.out())


@converts("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def _where(cx: Lowering, cond: Any, a: Any, b: Any) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    return cx.emit(g.WhereOp, [cx.as_bool(cond), cx.operand(a, e), cx.operand(b, e)], rt)


@converts("aten.masked_fill.Scalar", "aten.masked_fill.Tensor")
def _masked_fill(cx: Lowering, x: Any, mask: Any, value: Any) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    return cx.emit(g.WhereOp, [cx.as_bool(mask), cx.operand(value, e), cx.cast(x, e)], rt)


# ---- casts and copies ------------------------------------------------------------------------------
@converts("aten.clone", "aten.alias", "aten.lift_fresh_copy", "aten.detach", "aten.contiguous")
def _identity(cx: Lowering, x: Any, *rest: Any) -> Any:
    return x


@converts("aten._to_copy", "prims.convert_element_type", "aten.to.dtype", "aten.type_as")
def _to_copy(cx: Lowering, x: Any, *rest: Any) -> SSAValue:
    return cx.cast(x, g.element_type(cx.out()))


# ---- creation --------------------------------------------------------------------------------------
def _fill(cx: Lowering, sizes: Sequence[int | DynInt], value: Any) -> Any:
    if not isinstance(value, bool | int | float):
        raise Unsupported("fill values must be static numbers")
    return cx.fill(sizes, value, torch_dtype(cx.out()))


@converts("aten.full", "aten.new_full")
def _full(cx: Lowering, *args: Any) -> Any:
    if cx.op_name == "aten.new_full":
        args = args[1:]
    return _fill(cx, args[0], args[1])


@converts("aten.zeros", "aten.ones", "aten.new_zeros", "aten.new_ones", "aten.empty.memory_format", "aten.new_empty")
def _zeros(cx: Lowering, *args: Any) -> Any:
    if cx.op_name.startswith("aten.new_"):
        args = args[1:]
    return _fill(cx, args[0], 1 if "ones" in cx.op_name else 0)


@converts("aten.full_like", "aten.zeros_like", "aten.ones_like", "aten.empty_like", "aten.fill.Scalar")
def _full_like(cx: Lowering, x: Any, *args: Any) -> Any:
    name = cx.op_name
    value = args[0] if name in ("aten.full_like", "aten.fill.Scalar") else (1 if name == "aten.ones_like" else 0)
    sizes = [cx.dim(x, d) for d in range(cx.rank(x))]
    return _fill(cx, sizes, value)


@converts("aten.arange.start_step", "aten.arange.start", "aten.arange")
def _arange(cx: Lowering, *args: Any) -> SSAValue:
    name = cx.op_name
    if name == "aten.arange":
        start, end, step = 0, args[0], 1
    elif name == "aten.arange.start":
        start, end, step = args[0], args[1], 1
    else:
        start, end, step = args[0], args[1], args[2]
    rt = cx.out()
    e = g.element_type(rt)
    return cx.emit(g.RangeOp, [cx.operand(start, e), cx.operand(end, e), cx.operand(step, e)], rt)
