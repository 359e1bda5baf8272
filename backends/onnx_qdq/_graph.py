"""graph op -> ONNX nodes: the inverse of the ONNX frontend (mase_compiler/frontends/onnx/_ops.py).

The graph dialect follows ONNX semantics, so most ops map to one node with the
same attributes; the few the frontend created by decomposition (``rsqrt``,
``silu``, ``rms_norm``) become short standard-op sequences.  Each entry of
:data:`EXPORTERS` is ``(builder, op, input_names) -> output_names``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from onnx import numpy_helper
from xdsl.dialects.builtin import DenseArrayBase
from xdsl.ir import Operation

from ...interpreter.kernels import dense_to_tensor, p_float, p_int, p_ints, p_str
from ._builder import Builder, np_dtype, onnx_elem_type, to_numpy

Exporter = Callable[[Builder, Operation, list[str]], list[str]]
EXPORTERS: dict[str, Exporter] = {}


def exporter(*names: str):
    def register(fn: Exporter) -> Exporter:
        for n in names:
            EXPORTERS[n] = fn
        return fn

    return register


def _same(onnx_op: str) -> Exporter:
    """One ONNX node with the op's operands as inputs and no attributes."""
    return lambda b, op, ins: [b.node1(onnx_op, ins)]


for _name, _onnx in {
    "neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal",
    "sin": "Sin", "cos": "Cos", "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf",
    "floor": "Floor", "ceil": "Ceil", "round": "Round", "sign": "Sign", "softplus": "Softplus", "not": "Not",
    "isnan": "IsNaN", "isinf": "IsInf", "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
    "max": "Max", "min": "Min", "and": "And", "or": "Or", "xor": "Xor", "equal": "Equal", "less": "Less",
    "less_equal": "LessOrEqual", "greater": "Greater", "greater_equal": "GreaterOrEqual", "where": "Where",
    "matmul": "MatMul", "expand": "Expand", "tile": "Tile", "range": "Range",
}.items():
    EXPORTERS[f"graph.{_name}"] = _same(_onnx)


@exporter("graph.rsqrt")
def _rsqrt(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Reciprocal", [b.node1("Sqrt", ins)])]


@exporter("graph.silu")
def _silu(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Mul", [ins[0], b.node1("Sigmoid", ins)])]


@exporter("graph.mod")
def _mod(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Mod", ins, fmod=p_int(op, "fmod", 0))]


@exporter("graph.cast")
def _cast(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Cast", ins, to=onnx_elem_type(op.results[0].type))]


@exporter("graph.gelu")
def _gelu(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Gelu", ins, approximate=p_str(op, "approximate", "none"))]


@exporter("graph.leaky_relu")
def _leaky_relu(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("LeakyRelu", ins, alpha=p_float(op, "alpha"))]


@exporter("graph.clip")
def _clip(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    dtype = _np_dtype_of(op)
    lo, hi = p_float(op, "min"), p_float(op, "max")
    bounds = ["" if v is None else b.const(v, dtype) for v in (lo, hi)]
    return [b.node1("Clip", [ins[0], *bounds])]


def _np_dtype_of(op: Operation) -> np.dtype:
    return np_dtype(onnx_elem_type(op.results[0].type))


@exporter("graph.conv")
def _conv(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Conv", ins, strides=p_ints(op, "strides"), pads=p_ints(op, "pads"), dilations=p_ints(op, "dilations"),
                    group=p_int(op, "group", 1))]


@exporter("graph.max_pool")
def _max_pool(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("MaxPool", ins, kernel_shape=p_ints(op, "kernel_shape"), strides=p_ints(op, "strides"),
                    pads=p_ints(op, "pads"), dilations=p_ints(op, "dilations"), ceil_mode=p_int(op, "ceil_mode", 0))]


@exporter("graph.avg_pool")
def _avg_pool(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("AveragePool", ins, kernel_shape=p_ints(op, "kernel_shape"), strides=p_ints(op, "strides"),
                    pads=p_ints(op, "pads"), ceil_mode=p_int(op, "ceil_mode", 0),
                    count_include_pad=p_int(op, "count_include_pad", 0))]


@exporter("graph.batch_norm")
def _batch_norm(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("BatchNormalization", ins, epsilon=p_float(op, "epsilon"))]


@exporter("graph.layer_norm")
def _layer_norm(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("LayerNormalization", ins, axis=p_int(op, "axis"), epsilon=p_float(op, "epsilon"))]


@exporter("graph.rms_norm")
def _rms_norm(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    """x * rsqrt(mean(x^2 over axis..) + eps) * scale: the kernel's arithmetic in standard ops."""
    x, scale = ins
    rank = len(op.operands[0].type.get_shape())
    axis = p_int(op, "axis") % rank
    ms = b.node1("ReduceMean", [b.node1("Mul", [x, x]), b.i64(list(range(axis, rank)))], keepdims=1)
    inv = b.node1("Reciprocal", [b.node1("Sqrt", [b.node1("Add", [ms, b.f32(p_float(op, "epsilon"))])])])
    return [b.node1("Mul", [b.node1("Mul", [x, inv]), scale])]


def _axis_op(onnx_type: str) -> Exporter:
    return lambda b, op, ins: [b.node1(onnx_type, ins, axis=p_int(op, "axis"))]


# Ops whose only property is ONNX's ``axis`` attribute.
for _name, _type in {"softmax": "Softmax", "log_softmax": "LogSoftmax", "flatten": "Flatten", "concat": "Concat",
                     "gather": "Gather", "gather_elements": "GatherElements"}.items():
    EXPORTERS[f"graph.{_name}"] = _axis_op(_type)


@exporter("graph.cumsum")
def _cumsum(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("CumSum", [ins[0], b.i64(p_int(op, "axis"))], exclusive=p_int(op, "exclusive", 0),
                    reverse=p_int(op, "reverse", 0))]


@exporter("graph.reduce_sum", "graph.reduce_mean", "graph.reduce_max", "graph.reduce_min", "graph.reduce_prod")
def _reduce(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    onnx_op = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin", "prod": "ReduceProd"}
    axes = p_ints(op, "axes") or []
    # Empty axes reduce every dim (noop_with_empty_axes=0), as the kernel does.
    inputs = [ins[0], b.i64(axes)] if axes else [ins[0]]
    return [b.node1(onnx_op[op.name.removeprefix("graph.reduce_")], inputs, keepdims=p_int(op, "keepdims", 1))]


@exporter("graph.argmax", "graph.argmin")
def _arg(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("ArgMax" if op.name == "graph.argmax" else "ArgMin", ins, axis=p_int(op, "axis"),
                    keepdims=p_int(op, "keepdims", 1), select_last_index=p_int(op, "select_last_index", 0))]


@exporter("graph.transpose")
def _transpose(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Transpose", ins, perm=p_ints(op, "perm"))]


@exporter("graph.reshape")
def _reshape(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Reshape", ins, allowzero=p_int(op, "allowzero", 0))]


@exporter("graph.squeeze")
def _squeeze(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    axes = p_ints(op, "axes")
    return [b.node1("Squeeze", [ins[0], b.i64(axes)] if axes else [ins[0]])]


@exporter("graph.unsqueeze")
def _unsqueeze(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Unsqueeze", [ins[0], b.i64(p_ints(op, "axes"))])]


@exporter("graph.split")
def _split(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    sizes = p_ints(op, "sizes")
    return b.node("Split", [ins[0], b.i64(sizes)], len(sizes), axis=p_int(op, "axis"))


@exporter("graph.slice")
def _slice(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Slice", ins)]


@exporter("graph.gather_nd")
def _gather_nd(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("GatherND", ins, batch_dims=p_int(op, "batch_dims", 0))]


@exporter("graph.pad")
def _pad(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    x, pads, value = ins
    return [b.node1("Pad", [x, pads, value], mode=p_str(op, "mode", "constant"))]


@exporter("graph.trilu")
def _trilu(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Trilu", ins, upper=p_int(op, "upper", 1))]


@exporter("graph.resize")
def _resize(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    scales = op.properties.get("scales")
    sizes = p_ints(op, "sizes")
    extra = ["", b.f32(list(scales.get_values()))] if isinstance(scales, DenseArrayBase) else ["", "", b.i64(sizes)]
    return [b.node1("Resize", [ins[0], *extra], mode=p_str(op, "mode"),
                    coordinate_transformation_mode=p_str(op, "coordinate_transformation_mode"),
                    nearest_mode=p_str(op, "nearest_mode"))]


@exporter("graph.shape")
def _shape(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    return [b.node1("Shape", ins, start=p_int(op, "start"), end=p_int(op, "end"))]


@exporter("graph.constant_of_shape")
def _constant_of_shape(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    value = to_numpy(dense_to_tensor(op.properties["value"]).reshape(1))
    return [b.node1("ConstantOfShape", ins, value=numpy_helper.from_array(value))]


@exporter("graph.weight")
def _weight(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    """No node: the initializer is written on first float use (see Builder.name)."""
    name = op.properties["name"].data
    b.lazy_weights[op.results[0]] = name
    b.static[op.results[0]] = np.asarray(b.weights[name])
    return []


@exporter("graph.constant")
def _constant(b: Builder, op: Operation, ins: list[str]) -> list[str]:
    value = to_numpy(dense_to_tensor(op.properties["value"]))
    b.static[op.results[0]] = value
    return [b.initializer("const", value)]


__all__ = ["EXPORTERS", "Exporter"]
