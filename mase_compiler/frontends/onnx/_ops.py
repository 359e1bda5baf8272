"""Converters: one function per ONNX op (or family), opsets 13–24.

A converter gets a :class:`~._importer.Node` and returns the SSA values of the
node's outputs (None for an output it does not support; the importer fails if
the graph reads it).  Where opsets differ (axes as attribute or input, Split's
``num_outputs``, Pad's ``axes``, …) the converter handles every version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from onnx import numpy_helper
from xdsl.dialects.builtin import DenseArrayBase, TensorType, f32, i1, i64
from xdsl.ir import Attribute, SSAValue

from ...dialects import graph as g
from ._importer import Node, converter, dense, dense_safe, element_type, np_element_type, tensor_type


# ---- type helpers -------------------------------------------------------------------------------
def like(node: Node, v: SSAValue, i: int = 0, elem: Attribute | None = None) -> Attribute:
    """Output ``i``'s inferred type, else ``v``'s type (with element type ``elem``)."""
    inferred = node.imp.types.get(node.outputs[i]) if i < len(node.outputs) else None
    e = elem or g.element_type(v.type)
    if isinstance(inferred, TensorType) and inferred.element_type == e:
        return inferred
    return tensor_type(e, g.shape_of(v.type))


def broadcast_type(node: Node, a: SSAValue, b: SSAValue, elem: Attribute | None = None) -> Attribute:
    inferred = node.imp.types.get(node.outputs[0])
    e = elem or g.element_type(a.type)
    if isinstance(inferred, TensorType) and inferred.element_type == e:
        return inferred
    sa, sb = g.shape_of(a.type), g.shape_of(b.type)
    return tensor_type(e, g.broadcast_shapes(sa, sb) if sa is not None and sb is not None else None)


def shape(v: SSAValue) -> tuple[int, ...] | None:
    return g.shape_of(v.type)


def elem(v: SSAValue) -> Attribute:
    return g.element_type(v.type)


def norm_axis(node: Node, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise node.error(f"{what} must be in [{-rank}, {rank - 1}] for rank {rank}, not {axis}")
    return axis % max(rank, 1)


# ---- elementwise ---------------------------------------------------------------------------------
_UNARY = {
    "Neg": g.NegOp, "Abs": g.AbsOp, "Exp": g.ExpOp, "Log": g.LogOp, "Sqrt": g.SqrtOp, "Reciprocal": g.ReciprocalOp,
    "Sin": g.SinOp, "Cos": g.CosOp, "Tanh": g.TanhOp, "Sigmoid": g.SigmoidOp, "Relu": g.ReluOp, "Erf": g.ErfOp,
    "Floor": g.FloorOp, "Ceil": g.CeilOp, "Round": g.RoundOp, "Sign": g.SignOp, "Softplus": g.SoftplusOp, "Not": g.NotOp,
}


@converter(*_UNARY)
def _unary(node: Node) -> SSAValue:
    x = node.x(0)
    return node.emit(_UNARY[node.op_type], [x], like(node, x))


@converter("IsNaN")
def _isnan(node: Node) -> SSAValue:
    x = node.x(0)
    return node.emit(g.IsNanOp, [x], like(node, x, elem=i1))


@converter("IsInf")
def _isinf(node: Node) -> SSAValue:
    x = node.x(0)
    pos, neg = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
    t = like(node, x, elem=i1)
    if pos and neg:
        return node.emit(g.IsInfOp, [x], t)
    if not pos and not neg:  # all false
        s = shape(x)
        sh = node.emit(g.ShapeOp, [x], tensor_type(i64, None if s is None else [len(s)]))
        return node.emit(g.ConstantOfShapeOp, [sh], t, value=dense(i1, [1], np.zeros(1, np.bool_)))
    # isinf(x) and x > 0 (or < 0): an inf constant would not survive the IR text (see dense_safe)
    side = node.emit(g.GreaterOp if pos else g.LessOp, [x, node.scalar_like(0.0, x)], t)
    return node.emit(g.AndOp, [node.emit(g.IsInfOp, [x], t), side], t)


@converter("Cast", "CastLike")
def _cast(node: Node) -> SSAValue:
    x = node.x(0)
    to = element_type(node.attr("to"), "Cast 'to'") if node.op_type == "Cast" else g.element_type(node.type_of(1))
    if to == elem(x):
        return x
    return node.emit(g.CastOp, [x], like(node, x, elem=to))


@converter("Gelu")
def _gelu(node: Node) -> SSAValue:
    x = node.x(0)
    approx = node.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        raise node.error(f"approximate must be none or tanh, not {approx!r}")
    return node.emit(g.GeluOp, [x], like(node, x), approximate=approx)


@converter("LeakyRelu")
def _leaky_relu(node: Node) -> SSAValue:
    x = node.x(0)
    return node.emit(g.LeakyReluOp, [x], like(node, x), alpha=float(node.attr("alpha", 0.01)))


@converter("Clip")
def _clip(node: Node) -> SSAValue:
    x = node.x(0)
    lo = node.static_scalar(1, "min")
    hi = node.static_scalar(2, "max")
    if lo is None and hi is None:
        return x
    return node.emit(g.ClipOp, [x], like(node, x), min=None if lo is None else float(lo), max=None if hi is None else float(hi))


@converter("HardSigmoid", "HardSwish")
def _hard_sigmoid(node: Node) -> SSAValue:
    x = node.x(0)
    t = like(node, x)
    alpha, beta = (node.attr("alpha", 0.2), node.attr("beta", 0.5)) if node.op_type == "HardSigmoid" else (1 / 6, 0.5)
    y = node.emit(g.MulOp, [x, node.scalar_like(alpha, x)], t)
    y = node.emit(g.AddOp, [y, node.scalar_like(beta, x)], t)
    y = node.emit(g.ClipOp, [y], t, min=0.0, max=1.0)
    return y if node.op_type == "HardSigmoid" else node.emit(g.MulOp, [x, y], t)


@converter("Swish")
def _swish(node: Node) -> SSAValue:
    x = node.x(0)
    t = like(node, x)
    alpha = float(node.attr("alpha", 1.0))
    if alpha == 1.0:
        return node.emit(g.SiluOp, [x], t)
    s = node.emit(g.SigmoidOp, [node.emit(g.MulOp, [x, node.scalar_like(alpha, x)], t)], t)
    return node.emit(g.MulOp, [x, s], t)


@converter("PRelu")
def _prelu(node: Node) -> SSAValue:
    x, slope = node.x(0), node.x(1)
    t = broadcast_type(node, x, slope)
    neg = node.emit(g.LessOp, [x, node.scalar_like(0.0, x)], like(node, x, elem=i1))
    return node.emit(g.WhereOp, [neg, node.emit(g.MulOp, [x, slope], t), x], t)


_BINARY = {
    "Add": g.AddOp, "Sub": g.SubOp, "Mul": g.MulOp, "Div": g.DivOp, "Pow": g.PowOp, "And": g.AndOp, "Or": g.OrOp,
    "Xor": g.XorOp,
}
_COMPARE = {
    "Equal": g.EqualOp, "Less": g.LessOp, "LessOrEqual": g.LessEqualOp, "Greater": g.GreaterOp,
    "GreaterOrEqual": g.GreaterEqualOp,
}


@converter(*_BINARY)
def _binary(node: Node) -> SSAValue:
    a, b = node.x(0), node.x(1)
    return node.emit(_BINARY[node.op_type], [a, b], broadcast_type(node, a, b))


@converter(*_COMPARE)
def _compare(node: Node) -> SSAValue:
    a, b = node.x(0), node.x(1)
    return node.emit(_COMPARE[node.op_type], [a, b], broadcast_type(node, a, b, elem=i1))


@converter("Mod")
def _mod(node: Node) -> SSAValue:
    a, b = node.x(0), node.x(1)
    # fmod=1: C fmod, the sign of the dividend (ONNX's only choice for floats).
    return node.emit(g.ModOp, [a, b], broadcast_type(node, a, b), fmod=1 if node.attr("fmod", 0) else None)


@converter("Max", "Min", "Sum", "Mean")
def _variadic(node: Node) -> SSAValue:
    xs = node.xs()
    cls = {"Max": g.MaxOp, "Min": g.MinOp, "Sum": g.AddOp, "Mean": g.AddOp}[node.op_type]
    acc = xs[0]
    for i, x in enumerate(xs[1:], 1):
        last = i == len(xs) - 1 and node.op_type != "Mean"
        t = broadcast_type(node, acc, x) if last else tensor_type(elem(acc), _bshape(acc, x))
        acc = node.emit(cls, [acc, x], t)
    if node.op_type == "Mean" and len(xs) > 1:
        acc = node.emit(g.DivOp, [acc, node.scalar_like(float(len(xs)), acc)], like(node, acc))
    return acc


def _bshape(a: SSAValue, b: SSAValue) -> tuple[int, ...] | None:
    sa, sb = shape(a), shape(b)
    return g.broadcast_shapes(sa, sb) if sa is not None and sb is not None else None


@converter("Where")
def _where(node: Node) -> SSAValue:
    c, a, b = node.x(0), node.x(1), node.x(2)
    s = _bshape(c, a)
    s = g.broadcast_shapes(s, shape(b)) if s is not None and shape(b) is not None else None
    inferred = node.imp.types.get(node.outputs[0])
    t = inferred if isinstance(inferred, TensorType) else tensor_type(elem(a), s)
    return node.emit(g.WhereOp, [c, a, b], t)


# ---- linear algebra ------------------------------------------------------------------------------
@converter("MatMul")
def _matmul(node: Node) -> SSAValue:
    a, b = node.x(0), node.x(1)
    return node.emit(g.MatmulOp, [a, b], node.out_type(0, shape=_matmul_shape(shape(a), shape(b))))


def _matmul_shape(sa: Sequence[int] | None, sb: Sequence[int] | None) -> tuple[int, ...] | None:
    if sa is None or sb is None or len(sa) < 2 or len(sb) < 2:
        return None
    batch = g.broadcast_shapes(sa[:-2], sb[:-2])
    return None if batch is None else (*batch, sa[-2], sb[-1])


def _transpose2d(node: Node, v: SSAValue) -> SSAValue:
    s = shape(v)
    return node.emit(g.TransposeOp, [v], tensor_type(elem(v), None if s is None else s[::-1]), perm=[1, 0])


@converter("Gemm")
def _gemm(node: Node) -> SSAValue:
    """alpha * A' @ B' + beta * C as transpose / matmul / mul / add."""
    a, b = node.x(0), node.x(1)
    if node.attr("transA", 0):
        a = _transpose2d(node, a)
    if node.attr("transB", 0):
        b = _transpose2d(node, b)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    has_c = node.has(2) and beta != 0.0
    t = node.out_type(0, shape=_matmul_shape(shape(a), shape(b)))
    y = node.emit(g.MatmulOp, [a, b], t)
    if alpha != 1.0:
        y = node.emit(g.MulOp, [y, node.scalar_like(alpha, y)], t)
    if has_c:
        c = node.x(2)
        if beta != 1.0:
            c = node.emit(g.MulOp, [c, node.scalar_like(beta, c)], c.type)
        y = node.emit(g.AddOp, [y, c], t)
    return y


# ---- convolution and pooling ---------------------------------------------------------------------
def _window(node: Node, x: SSAValue, kernel: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """strides, dilations and pads (begin..., end...) with auto_pad resolved."""
    n = len(kernel)
    strides = list(node.attr("strides", [1] * n))
    dilations = list(node.attr("dilations", [1] * n))
    pads = list(node.attr("pads", [0] * (2 * n)))
    auto = node.attr("auto_pad", "NOTSET")
    if auto == "VALID":
        pads = [0] * (2 * n)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        s = shape(x)
        if s is None or any(d < 0 for d in s[2:]):
            raise node.error(f"auto_pad={auto} needs static spatial dims, but input '{node.inputs[0]}' has type {x.type}")
        begin, end = [], []
        for d, k, st, dl in zip(s[2:], kernel, strides, dilations):
            total = max(0, (math.ceil(d / st) - 1) * st + (k - 1) * dl + 1 - d)
            small = total // 2
            begin.append(small if auto == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        pads = begin + end
    elif auto != "NOTSET":
        raise node.error(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, not {auto!r}")
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise node.error(f"expected {n} strides/dilations and {2 * n} pads for {n} spatial dims")
    return strides, dilations, pads


@converter("Conv")
def _conv(node: Node) -> SSAValue:
    x, w = node.x(0), node.x(1)
    ws = shape(w)
    if ws is None:
        raise node.error(f"the weight's shape must be known, but input '{node.inputs[1]}' has type {w.type}")
    kernel = list(node.attr("kernel_shape", ws[2:]))
    strides, dilations, pads = _window(node, x, kernel)
    if node.has(2):
        b = node.x(2)
    else:
        if ws[0] < 0:
            raise node.error("a Conv without bias needs a static number of output channels")
        b = node.constant(0.0, elem(w), (ws[0],))
    return node.emit(g.ConvOp, [x, w, b], node.out_type(0), strides=strides, pads=pads, dilations=dilations, group=node.attr("group", 1))


@converter("MaxPool", "AveragePool")
def _pool(node: Node) -> SSAValue:
    x = node.x(0)
    kernel = list(node.attr("kernel_shape"))
    strides, dilations, pads = _window(node, x, kernel)
    if node.op_type == "MaxPool":  # the optional Indices output is not supported (an error if the graph reads it)
        return [node.emit(g.MaxPoolOp, [x], node.out_type(0), kernel_shape=kernel, strides=strides, pads=pads,
                          dilations=dilations, ceil_mode=node.attr("ceil_mode", 0)), None]
    if any(d != 1 for d in dilations):
        raise node.error(f"AveragePool with dilations {dilations} is not supported")
    return node.emit(g.AvgPoolOp, [x], node.out_type(0), kernel_shape=kernel, strides=strides, pads=pads,
                     dilations=dilations, ceil_mode=node.attr("ceil_mode", 0), count_include_pad=node.attr("count_include_pad", 0))


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(node: Node) -> SSAValue:
    x = node.x(0)
    r = node.rank_of(0, node.op_type)
    cls = g.ReduceMeanOp if node.op_type == "GlobalAveragePool" else g.ReduceMaxOp
    s = shape(x)
    return node.emit(cls, [x], node.out_type(0, shape=(*s[:2], *[1] * (r - 2))), axes=list(range(2, r)), keepdims=1)


@converter("BatchNormalization")
def _batch_norm(node: Node) -> list[SSAValue | None]:
    if node.attr("training_mode", 0):
        raise node.error("training_mode=1 is not supported (inference only)")
    x = node.x(0)
    ops = [node.x(i) for i in range(1, 5)]
    y = node.emit(g.BatchNormOp, [x, *ops], like(node, x), epsilon=float(node.attr("epsilon", 1e-5)))
    return [y, None, None]


@converter("LayerNormalization")
def _layer_norm(node: Node) -> list[SSAValue | None]:
    x, scale = node.x(0), node.x(1)
    if node.has(2):
        bias = node.x(2)
    else:
        s = shape(scale)
        bias = node.constant(0.0, elem(scale), s if s is not None and -1 not in s else ())
    axis = node.attr("axis", -1)
    r = shape(x)
    if r is not None:
        norm_axis(node, axis, len(r))
    y = node.emit(g.LayerNormOp, [x, scale, bias], like(node, x), axis=axis, epsilon=float(node.attr("epsilon", 1e-5)))
    return [y, None, None]


@converter("RMSNormalization")
def _rms_norm(node: Node) -> SSAValue:
    x, scale = node.x(0), node.x(1)
    return node.emit(g.RmsNormOp, [x, scale], like(node, x), axis=node.attr("axis", -1), epsilon=float(node.attr("epsilon", 1e-5)))


@converter("Softmax", "LogSoftmax")
def _softmax(node: Node) -> SSAValue:
    x = node.x(0)
    cls = g.SoftmaxOp if node.op_type == "Softmax" else g.LogSoftmaxOp
    return node.emit(cls, [x], like(node, x), axis=node.attr("axis", -1))


@converter("CumSum")
def _cumsum(node: Node) -> SSAValue:
    x = node.x(0)
    axis = node.static_scalar(1, "axis")
    return node.emit(g.CumsumOp, [x], like(node, x), axis=int(axis), exclusive=node.attr("exclusive", 0), reverse=node.attr("reverse", 0))


@converter("Flatten")
def _flatten(node: Node) -> SSAValue:
    x = node.x(0)
    return node.emit(g.FlattenOp, [x], node.out_type(0, shape=(-1, -1)), axis=node.attr("axis", 1))


# ---- reductions ----------------------------------------------------------------------------------
_REDUCE = {"ReduceSum": g.ReduceSumOp, "ReduceMean": g.ReduceMeanOp, "ReduceMax": g.ReduceMaxOp, "ReduceMin": g.ReduceMinOp,
           "ReduceProd": g.ReduceProdOp, "ReduceSumSquare": g.ReduceSumOp, "ReduceL1": g.ReduceSumOp, "ReduceL2": g.ReduceSumOp,
           "ReduceLogSum": g.ReduceSumOp, "ReduceLogSumExp": g.ReduceSumOp}


@converter(*_REDUCE)
def _reduce(node: Node) -> SSAValue:
    x = node.x(0)
    # Axes became an input in opset 13 for ReduceSum and in opset 18 for the others.
    axes_input = node.op_type == "ReduceSum" or node.opset >= 18
    axes = node.static_ints(1, "axes") if axes_input else node.attr("axes")
    axes = list(axes or [])
    keep = int(node.attr("keepdims", 1))
    if not axes and node.attr("noop_with_empty_axes", 0):
        return x
    t = node.out_type(0)
    kind = node.op_type
    if kind in ("ReduceSumSquare", "ReduceL2"):
        x = node.emit(g.MulOp, [x, x], x.type)
    elif kind == "ReduceL1":
        x = node.emit(g.AbsOp, [x], x.type)
    elif kind == "ReduceLogSumExp":
        x = node.emit(g.ExpOp, [x], x.type)
    y = node.emit(_REDUCE[kind], [x], t, axes=axes, keepdims=keep)
    if kind == "ReduceL2":
        y = node.emit(g.SqrtOp, [y], t)
    elif kind in ("ReduceLogSum", "ReduceLogSumExp"):
        y = node.emit(g.LogOp, [y], t)
    return y


@converter("ArgMax", "ArgMin")
def _arg(node: Node) -> SSAValue:
    x = node.x(0)
    cls = g.ArgmaxOp if node.op_type == "ArgMax" else g.ArgminOp
    return node.emit(cls, [x], node.out_type(0, elem=i64), axis=node.attr("axis", 0), keepdims=node.attr("keepdims", 1),
                     select_last_index=node.attr("select_last_index", 0))


# ---- data movement -------------------------------------------------------------------------------
@converter("Transpose")
def _transpose(node: Node) -> SSAValue:
    x = node.x(0)
    perm = node.attr("perm")
    if perm is None:
        perm = list(range(node.rank_of(0, "Transpose without perm")))[::-1]
    s = shape(x)
    return node.emit(g.TransposeOp, [x], node.out_type(0, shape=None if s is None else [s[p] for p in perm]), perm=list(perm))


@converter("Reshape")
def _reshape(node: Node) -> SSAValue:
    x, s = node.x(0), node.x(1)
    n = shape(s)
    return node.emit(g.ReshapeOp, [x, s], node.out_type(0, shape=None if n is None or n[0] < 0 else [-1] * n[0]), allowzero=node.attr("allowzero", 0))


@converter("Expand")
def _expand(node: Node) -> SSAValue:
    x, s = node.x(0), node.x(1)
    return node.emit(g.ExpandOp, [x, s], node.out_type(0))


@converter("Tile")
def _tile(node: Node) -> SSAValue:
    x, r = node.x(0), node.x(1)
    s = shape(x)
    return node.emit(g.TileOp, [x, r], node.out_type(0, shape=None if s is None else [-1] * len(s)))


@converter("Squeeze")
def _squeeze(node: Node) -> SSAValue:
    x = node.x(0)
    axes = node.static_ints(1, "axes") or []
    return node.emit(g.SqueezeOp, [x], node.out_type(0), axes=axes)


@converter("Unsqueeze")
def _unsqueeze(node: Node) -> SSAValue:
    x = node.x(0)
    axes = node.static_ints(1, "axes")
    if axes is None:
        raise node.error("axes (input 1) is required")
    s = shape(x)
    out = None
    if s is not None:
        r = len(s) + len(axes)
        ax = {a % r for a in axes}
        it = iter(s)
        out = [1 if i in ax else next(it) for i in range(r)]
    return node.emit(g.UnsqueezeOp, [x], node.out_type(0, shape=out), axes=axes)


@converter("Concat")
def _concat(node: Node) -> SSAValue:
    xs = node.xs()
    axis = node.attr("axis")
    t = node.out_type(0)
    if not isinstance(t, TensorType):
        s = shape(xs[0])
        t = tensor_type(elem(xs[0]), None if s is None else [-1] * len(s))
    return node.emit(g.ConcatOp, [xs], t, axis=axis)


@converter("Split")
def _split(node: Node) -> list[SSAValue]:
    x = node.x(0)
    axis = node.attr("axis", 0)
    n = len(node.outputs)
    sizes = node.static_ints(1, "split")
    if sizes is None:
        s = shape(x)
        if s is None:
            raise node.error("Split without sizes needs the input's shape, which shape inference left unknown")
        d = s[norm_axis(node, axis, len(s))]
        if d < 0:
            raise node.error(f"Split without sizes needs a static size of axis {axis}, but input '{node.inputs[0]}' has type {x.type}")
        parts = node.attr("num_outputs", n)
        chunk = math.ceil(d / parts)
        sizes = [chunk] * (parts - 1) + [d - chunk * (parts - 1)]
        if node.attr("num_outputs") is None and d % parts:
            raise node.error(f"cannot split size {d} into {parts} equal parts")
    if len(sizes) != n:
        raise node.error(f"{len(sizes)} split sizes for {n} outputs")
    s = shape(x)
    ax = norm_axis(node, axis, len(s)) if s is not None else None
    types = [node.out_type(i, shape=None if s is None else [*s[:ax], size, *s[ax + 1:]]) for i, size in enumerate(sizes)]
    op = node.emit_op(g.SplitOp, [x], types, axis=axis, sizes=sizes)
    return list(op.results)


@converter("Slice")
def _slice(node: Node) -> SSAValue:
    x, starts, ends = node.x(0), node.x(1), node.x(2)
    n = None
    sv = node.imp.static.get(node.inputs[1])
    if sv is not None:
        n = sv.size
    elif shape(starts) is not None and len(shape(starts)) == 1 and shape(starts)[0] >= 0:
        n = shape(starts)[0]
    if node.has(3):
        axes = node.x(3)
    else:
        if n is None:
            raise node.error("Slice without axes needs the number of starts, which is unknown")
        axes = node.constant(np.arange(n), elem(starts), (n,))
    if node.has(4):
        steps = node.x(4)
    else:
        if n is None:
            raise node.error("Slice without steps needs the number of starts, which is unknown")
        steps = node.constant(np.ones(n, np.int64), elem(starts), (n,))
    s = shape(x)
    return node.emit(g.SliceOp, [x, starts, ends, axes, steps], node.out_type(0, shape=None if s is None else [-1] * len(s)))


@converter("Gather", "GatherElements")
def _gather(node: Node) -> SSAValue:
    x, idx = node.x(0), node.x(1)
    cls = g.GatherOp if node.op_type == "Gather" else g.GatherElementsOp
    axis = node.attr("axis", 0)
    s = shape(x)
    if s is not None:
        norm_axis(node, axis, len(s))
    return node.emit(cls, [x, idx], node.out_type(0, elem=elem(x)), axis=axis)


@converter("GatherND")
def _gather_nd(node: Node) -> SSAValue:
    x, idx = node.x(0), node.x(1)
    return node.emit(g.GatherNdOp, [x, idx], node.out_type(0, elem=elem(x)), batch_dims=node.attr("batch_dims", 0))


@converter("Pad")
def _pad(node: Node) -> SSAValue:
    x = node.x(0)
    mode = node.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise node.error(f"mode must be constant, reflect, edge or wrap, not {mode!r}")
    if node.has(3):  # opset 18: pads for the listed axes only
        axes = node.static_ints(3, "axes")
        pads_v = node.static_ints(1, "pads")
        r = node.rank_of(0, "Pad with axes")
        full = [0] * (2 * r)
        for j, a in enumerate(axes):
            a = norm_axis(node, a, r, "axes")
            full[a], full[a + r] = pads_v[j], pads_v[j + len(axes)]
        pads = node.i64s(full)
    else:
        pads = node.x(1)
    value = node.x(2) if node.has(2) else node.scalar_like(0, x)
    s = shape(x)
    return node.emit(g.PadOp, [x, pads, value], node.out_type(0, shape=None if s is None else [-1] * len(s)), mode=mode)


@converter("Trilu")
def _trilu(node: Node) -> SSAValue:
    x = node.x(0)
    k = node.x(1) if node.has(1) else node.constant(0, i64, ())
    return node.emit(g.TriluOp, [x, k], like(node, x), upper=node.attr("upper", 1))


@converter("Resize")
def _resize(node: Node) -> SSAValue:
    x = node.x(0)
    mode = node.attr("mode", "nearest")
    ctm = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest = node.attr("nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear"):
        raise node.error(f"mode {mode!r} is not supported (nearest and linear are)")
    if ctm == "tf_crop_and_resize":
        raise node.error("coordinate_transformation_mode tf_crop_and_resize is not supported")
    if node.attr("antialias", 0):
        raise node.error("antialias=1 is not supported")
    if node.attr("exclude_outside", 0):
        raise node.error("exclude_outside=1 is not supported")
    scales = node.static(2, "scales")
    sizes = node.static_ints(3, "sizes")
    scales = None if scales is None or scales.size == 0 else [float(v) for v in scales.reshape(-1)]
    if scales is None and sizes is None:
        raise node.error("needs scales or sizes")
    axes = node.attr("axes")
    if axes is not None:
        r = node.rank_of(0, "Resize with axes")
        axes = [norm_axis(node, a, r, "axes") for a in axes]
        if scales is not None:
            full = [1.0] * r
            for a, v in zip(axes, scales):
                full[a] = v
            scales = full
        else:
            s = shape(x)
            if any(s[i] < 0 for i in range(r) if i not in axes):
                raise node.error("Resize with sizes and axes needs the static dims of the other axes")
            full = list(s)
            for a, v in zip(axes, sizes):
                full[a] = v
            sizes = full
    if sizes is not None and node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise node.error("keep_aspect_ratio_policy other than stretch is not supported")
    props = dict(mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nearest)
    if scales is not None:
        props["scales"] = DenseArrayBase.from_list(f32, scales)
    else:
        props["sizes"] = list(sizes)
    return node.emit(g.ResizeOp, [x], node.out_type(0), **props)


# ---- shapes and values ---------------------------------------------------------------------------
@converter("Shape")
def _shape(node: Node) -> SSAValue:
    x = node.x(0)
    start, end = node.attr("start"), node.attr("end")
    s = shape(x)
    n = None
    if s is not None:
        n = len(range(*slice(start, end).indices(len(s))))
    return node.emit(g.ShapeOp, [x], node.out_type(0, elem=i64, shape=None if n is None else [n]),
                     start=start, end=end)


@converter("Size")
def _size(node: Node) -> SSAValue:
    x = node.x(0)
    s = shape(x)
    sh = node.emit(g.ShapeOp, [x], tensor_type(i64, None if s is None else [len(s)]))
    return node.emit(g.ReduceProdOp, [sh], TensorType(i64, []), axes=[], keepdims=0)


@converter("ConstantOfShape")
def _constant_of_shape(node: Node) -> SSAValue:
    s = node.x(0)
    v = node.attr("value")
    arr = np.zeros(1, np.float32) if v is None else numpy_helper.to_array(v)
    e = np_element_type(arr.dtype, "ConstantOfShape value")
    n = shape(s)
    t = node.out_type(0, elem=e, shape=None if n is None or n[0] < 0 else [-1] * n[0])
    if not dense_safe(arr):  # ±inf/NaN: expand a scalar from the weight store (see dense_safe)
        name = f"{node.outputs[0]}.value"
        node.imp.set_static(name, arr.reshape(()), "initializer")
        return node.emit(g.ExpandOp, [node.imp.value(name), s], t)
    return node.emit(g.ConstantOfShapeOp, [s], t, value=dense(e, [1], arr.reshape(-1)[:1]))


@converter("Range")
def _range(node: Node) -> SSAValue:
    a, b, c = node.x(0), node.x(1), node.x(2)
    return node.emit(g.RangeOp, [a, b, c], node.out_type(0, elem=elem(a), shape=[-1]))


@converter("Constant")
def _constant(node: Node) -> None:
    a = node.attrs
    if "value" in a:
        arr = numpy_helper.to_array(a["value"])
    elif "value_float" in a:
        arr = np.array(a["value_float"], np.float32)
    elif "value_floats" in a:
        arr = np.array(a["value_floats"], np.float32)
    elif "value_int" in a:
        arr = np.array(a["value_int"], np.int64)
    elif "value_ints" in a:
        arr = np.array(a["value_ints"], np.int64)
    else:
        raise node.error(f"only tensor, float and int values are supported, not {', '.join(a) or 'none'}")
    node.imp.set_static(node.outputs[0], arr, "constant")
    return None


@converter("Identity", "Dropout")
def _identity(node: Node) -> list[SSAValue | None] | None:
    if node.op_type == "Dropout" and node.has(2) and node.static_scalar(2, "training_mode"):
        raise node.error("training_mode=true is not supported (inference only)")
    src = node.inputs[0]
    mask = None
    if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1] in node.imp.used:
        x = node.x(0)  # inference: the mask is all true
        s = shape(x)
        sh = node.emit(g.ShapeOp, [x], tensor_type(i64, None if s is None else [len(s)]))
        mask = node.emit(g.ConstantOfShapeOp, [sh], node.out_type(1, elem=i1, shape=s), value=dense(i1, [1], np.ones(1, np.bool_)))
    if src in node.imp.static and src not in node.imp.values:
        node.imp.alias(node.outputs[0], src)  # stays lazy: a constant used only as a static value emits nothing
        return [None, mask]
    return [node.x(0), mask]


