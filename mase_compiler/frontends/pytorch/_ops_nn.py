"""Converters for linear algebra, normalization, attention, reductions, convolution, pooling and resizing."""

from __future__ import annotations

import math
from math import prod
from typing import Any

import torch
from xdsl.dialects.builtin import DenseArrayBase, IntegerType, StringAttr, f32, i1
from xdsl.ir import SSAValue

from ...dialects import graph as g
from ...interpreter.dtypes import torch_dtype
from ._lower import Lowering, Unavailable, Unsupported, converts, float_attr, norm_axis

i64 = IntegerType(64)


# ---- linear algebra --------------------------------------------------------------------------------
def _transposed(cx: Lowering, w: Any) -> SSAValue:
    v = cx.tensor(w)
    s = g.shape_of(v.type)
    return cx.emit(g.TransposeOp, [v], g.tensor_type(g.element_type(v.type), (s[1], s[0])), perm=g.i64_array([1, 0]))


@converts("aten.linear")
def _linear(cx: Lowering, x: Any, w: Any, b: Any = None) -> SSAValue:
    """``x @ w.T + b``: the weight keeps torch's [out, in] layout under its FQN; a graph.transpose reads it."""
    rt = cx.out()
    y = cx.emit(g.MatmulOp, [cx.tensor(x), _transposed(cx, w)], rt)
    return y if b is None else cx.emit(g.AddOp, [y, cx.tensor(b)], rt)


@converts("aten.mm", "aten.bmm", "aten.matmul")
def _matmul(cx: Lowering, a: Any, b: Any) -> SSAValue:
    return cx.emit(g.MatmulOp, [cx.tensor(a), cx.tensor(b)], cx.out())


@converts("aten.addmm", "aten.baddbmm")
def _addmm(cx: Lowering, bias: Any, a: Any, b: Any, beta: Any = 1, alpha: Any = 1) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    y = cx.emit(g.MatmulOp, [cx.tensor(a), cx.tensor(b)], rt)
    if alpha != 1:
        y = cx.emit(g.MulOp, [y, cx.scalar(alpha, e)], rt)
    if beta == 0:
        return y
    vb = cx.tensor(bias)
    if beta != 1:
        vb = cx.emit(g.MulOp, [vb, cx.scalar(beta, e)], vb.type)
    return cx.emit(g.AddOp, [y, vb], rt)


# ---- normalization and activation over an axis -----------------------------------------------------


@converts("aten.layer_norm")
def _layer_norm(cx: Lowering, x: Any, normalized_shape: Any, w: Any, b: Any, eps: float, cudnn: Any = None) -> SSAValue:
    shape = cx.ints(normalized_shape, "normalized_shape")
    scale = cx.tensor(w) if w is not None else cx.tensor(cx.fill(shape, 1.0, cx.dtype(x)))
    bias = cx.tensor(b) if b is not None else cx.tensor(cx.fill(shape, 0.0, cx.dtype(x)))
    return cx.emit(g.LayerNormOp, [cx.tensor(x), scale, bias], cx.out(), axis=g.int_attr(cx.rank(x) - len(shape)), epsilon=float_attr(eps))


@converts("aten.rms_norm")
def _rms_norm(cx: Lowering, x: Any, normalized_shape: Any, w: Any, eps: Any) -> SSAValue:
    shape = cx.ints(normalized_shape, "normalized_shape")
    scale = cx.tensor(w) if w is not None else cx.tensor(cx.fill(shape, 1.0, cx.dtype(x)))
    if eps is None:
        eps = torch.finfo(cx.dtype(x)).eps
    return cx.emit(g.RmsNormOp, [cx.tensor(x), scale], cx.out(), axis=g.int_attr(cx.rank(x) - len(shape)), epsilon=float_attr(eps))


@converts("aten._native_batch_norm_legit_no_training", "aten._native_batch_norm_legit_functional",
          "aten.native_batch_norm", "aten._native_batch_norm_legit")
def _batch_norm(cx: Lowering, x: Any, w: Any, b: Any, mean: Any, var: Any, *rest: Any) -> tuple[Any, ...]:
    if cx.op_name != "aten._native_batch_norm_legit_no_training" and rest[0] is not False:
        raise Unsupported("batch norm in training mode is not supported (call module.eval() first)")
    eps = rest[-1]
    c = cx.shape(x)[1]
    scale = cx.tensor(w) if w is not None else cx.tensor(cx.fill([c], 1.0, cx.dtype(x)))
    bias = cx.tensor(b) if b is not None else cx.tensor(cx.fill([c], 0.0, cx.dtype(x)))
    y = cx.emit(g.BatchNormOp, [cx.tensor(x), scale, bias, cx.tensor(mean), cx.tensor(var)], cx.out(), epsilon=float_attr(eps))
    return (y,) + (Unavailable("the saved statistics of batch norm are not supported"),) * (len(cx.op.results) - 1)


@converts("aten._softmax", "aten._log_softmax", "aten.softmax.int", "aten.log_softmax.int")
def _softmax(cx: Lowering, x: Any, dim: int, *rest: Any) -> SSAValue:
    rt = cx.out()
    cls = g.LogSoftmaxOp if "log_softmax" in cx.op_name else g.SoftmaxOp
    return cx.emit(cls, [cx.cast(x, g.element_type(rt))], rt, axis=g.int_attr(dim))


@converts("aten.scaled_dot_product_attention")
def _sdpa(cx: Lowering, q: Any, k: Any, v: Any, mask: Any = None, dropout_p: float = 0.0, is_causal: bool = False,
          scale: float | None = None, enable_gqa: bool = False) -> SSAValue:
    """``softmax(q @ k^T * scale + mask) @ v`` (kept whole by the export: torch's own decomposition of it
    breaks HF GPT-2's later ``view``).  Boolean and causal masks select with the most negative finite
    value, then zero the masked probabilities, so a fully masked row gives 0 as torch's ``_safe_softmax``."""
    if dropout_p:
        raise Unsupported("attention dropout is not supported (call module.eval() first)")
    qv, kv, vv = cx.tensor(q), cx.tensor(k), cx.tensor(v)
    e = g.element_type(qv.type)
    qs, ks = g.shape_of(qv.type), g.shape_of(kv.type)
    if qs[-1] < 0:
        raise Unsupported("attention with a symbolic head size is not supported")
    if enable_gqa and qs[-3] != ks[-3]:
        kv, vv = _repeat_heads(cx, kv, qs[-3]), _repeat_heads(cx, vv, qs[-3])
        ks = g.shape_of(kv.type)
    rank = len(ks)
    kt_shape = list(ks[:-2]) + [ks[-1], ks[-2]]
    kt = cx.emit(g.TransposeOp, [kv], g.tensor_type(e, kt_shape), perm=g.i64_array(list(range(rank - 2)) + [rank - 1, rank - 2]))
    st = g.tensor_type(e, g.broadcast_shapes(qs[:-1] + (1,), kt_shape[:-2] + [1, ks[-2]]))
    scores = cx.emit(g.MulOp, [cx.emit(g.MatmulOp, [qv, kt], st), cx.scalar(scale or 1 / math.sqrt(qs[-1]), e)], st)
    keep = None  # i1: positions that take part
    if is_causal:
        ones = cx.tensor(cx.fill([cx.dim(qv, -2), cx.dim(kv, -2)], True, torch.bool))
        keep = cx.emit(g.TriluOp, [ones, cx.scalar(0, i64)], ones.type, upper=g.int_attr(0))
    if mask is not None and cx.dtype(mask) == torch.bool:
        m = cx.tensor(mask)
        keep = m if keep is None else cx.emit(g.AndOp, [keep, m], g.tensor_type(i1, g.broadcast_shapes(g.shape_of(keep.type), g.shape_of(m.type))))
    elif mask is not None:
        scores = cx.emit(g.AddOp, [scores, cx.cast(mask, e)], st)
    if keep is not None:
        scores = cx.emit(g.WhereOp, [keep, scores, cx.scalar(torch.finfo(torch_dtype(e)).min, e)], st)
    probs = cx.emit(g.SoftmaxOp, [scores], st, axis=g.int_attr(-1))
    if keep is not None:
        probs = cx.emit(g.WhereOp, [keep, probs, cx.scalar(0.0, e)], st)
    return cx.emit(g.MatmulOp, [probs, vv], cx.out())


def _repeat_heads(cx: Lowering, x: SSAValue, heads: int) -> SSAValue:
    """``x.repeat_interleave(heads // x_heads, dim=-3)`` (grouped-query attention)."""
    s = g.shape_of(x.type)
    n = heads // s[-3]
    e = g.element_type(x.type)
    u = cx.emit(g.UnsqueezeOp, [x], g.tensor_type(e, (*s[:-2], 1, *s[-2:])), axes=g.i64_array([len(s) - 2]))
    full = [cx.dim(x, i) for i in range(len(s) - 2)] + [n, cx.dim(x, -2), cx.dim(x, -1)]
    ex = cx.emit(g.ExpandOp, [u, cx.shape_operand(full)], g.tensor_type(e, (*s[:-2], n, *s[-2:])))
    target = [cx.dim(x, i) for i in range(len(s) - 3)] + [heads, cx.dim(x, -2), cx.dim(x, -1)]
    return cx.emit(g.ReshapeOp, [ex, cx.shape_operand(target)], g.tensor_type(e, (*s[:-3], heads, *s[-2:])))


# ---- reductions ------------------------------------------------------------------------------------
def _reduce(cls: type) -> Any:
    def convert(cx: Lowering, x: Any, dims: Any = None, keepdim: bool = False, *rest: Any) -> SSAValue:
        rt = cx.out()
        axes = [] if dims is None else cx.ints(dims, "reduction dims")
        return cx.emit(cls, [cx.cast(x, g.element_type(rt))], rt, axes=g.i64_array(axes), keepdims=g.int_attr(int(keepdim)))

    return convert


converts("aten.mean.dim")(_reduce(g.ReduceMeanOp))
converts("aten.sum.dim_IntList")(_reduce(g.ReduceSumOp))
converts("aten.amax")(_reduce(g.ReduceMaxOp))
converts("aten.amin")(_reduce(g.ReduceMinOp))


@converts("aten.sum", "aten.mean")
def _reduce_all(cx: Lowering, x: Any, dtype: Any = None) -> SSAValue:
    cls = g.ReduceSumOp if cx.op_name == "aten.sum" else g.ReduceMeanOp
    rt = cx.out()
    return cx.emit(cls, [cx.cast(x, g.element_type(rt))], rt, axes=g.i64_array([]), keepdims=g.int_attr(0))


@converts("aten.var.correction", "aten.var.dim")
def _var(cx: Lowering, x: Any, dims: Any = None, correction: Any = None, keepdim: bool = False) -> SSAValue:
    """``sum((x - mean)^2) / (N - correction)`` over ``dims`` (N must be static)."""
    if cx.op_name == "aten.var.dim":  # (x, dims, unbiased, keepdim)
        correction = 1 if correction else 0
    elif correction is None:
        correction = 1
    rt = cx.out()
    v = cx.cast(x, g.element_type(rt))
    s = g.shape_of(v.type)
    axes = list(range(len(s))) if not dims else [norm_axis(d, len(s)) for d in cx.ints(dims, "reduction dims")]
    n = prod(s[a] for a in axes)
    if any(s[a] < 0 for a in axes):
        raise Unsupported("var over symbolic dims is not supported")
    kept = g.tensor_type(g.element_type(rt), [1 if i in axes else d for i, d in enumerate(s)])
    mean = cx.emit(g.ReduceMeanOp, [v], kept, axes=g.i64_array(axes), keepdims=g.int_attr(1))
    d = cx.emit(g.SubOp, [v, mean], v.type)
    sq = cx.emit(g.MulOp, [d, d], v.type)
    total = cx.emit(g.ReduceSumOp, [sq], rt, axes=g.i64_array(axes), keepdims=g.int_attr(int(keepdim)))
    return cx.emit(g.DivOp, [total, cx.scalar(float(max(n - correction, 0)), g.element_type(rt))], rt)


@converts("aten.prod.dim_int")
def _prod(cx: Lowering, x: Any, dim: int, keepdim: bool = False, dtype: Any = None) -> SSAValue:
    rt = cx.out()
    return cx.emit(g.ReduceProdOp, [cx.cast(x, g.element_type(rt))], rt, axes=g.i64_array([dim]), keepdims=g.int_attr(int(keepdim)))


@converts("aten.any.dim", "aten.any.dims", "aten.all.dim", "aten.any", "aten.all")
def _any(cx: Lowering, x: Any, dims: Any = None, keepdim: bool = False) -> SSAValue:
    """any/all as max/min over the input as i8 (the graph's reductions take numbers), then back to i1."""
    rt = cx.out()
    axes = [] if dims is None else cx.ints(dims, "reduction dims")
    cls = g.ReduceMaxOp if ".any" in cx.op_name or cx.op_name == "aten.any" else g.ReduceMinOp
    i8 = IntegerType(8)
    v = cx.emit(g.CastOp, [cx.as_bool(x)], g.tensor_type(i8, cx.shape(x)))
    r = cx.emit(cls, [v], g.tensor_type(i8, g.shape_of(rt)), axes=g.i64_array(axes), keepdims=g.int_attr(int(keepdim)))
    return cx.emit(g.CastOp, [r], rt)


@converts("aten.argmax", "aten.argmin")
def _argmax(cx: Lowering, x: Any, dim: Any = None, keepdim: bool = False) -> SSAValue:
    rt = cx.out()
    v = cx.tensor(x)
    if dim is None:
        v = cx.emit(g.ReshapeOp, [v, cx.shape_operand([-1])], g.tensor_type(g.element_type(v.type), (-1,)))
        dim = 0
    cls = g.ArgmaxOp if cx.op_name == "aten.argmax" else g.ArgminOp
    return cx.emit(cls, [v], rt, axis=g.int_attr(dim), keepdims=g.int_attr(int(keepdim)))


@converts("aten.max.dim", "aten.min.dim")
def _max_dim(cx: Lowering, x: Any, dim: int, keepdim: bool = False) -> tuple[SSAValue, SSAValue]:
    v = cx.tensor(x)
    big = cx.op_name == "aten.max.dim"
    vals = cx.emit(g.ReduceMaxOp if big else g.ReduceMinOp, [v], cx.out(0), axes=g.i64_array([dim]), keepdims=g.int_attr(int(keepdim)))
    idx = cx.emit(g.ArgmaxOp if big else g.ArgminOp, [v], cx.out(1), axis=g.int_attr(dim), keepdims=g.int_attr(int(keepdim)))
    return vals, idx


@converts("aten.cumsum")
def _cumsum(cx: Lowering, x: Any, dim: int, dtype: Any = None) -> SSAValue:
    rt = cx.out()
    return cx.emit(g.CumsumOp, [cx.cast(x, g.element_type(rt))], rt, axis=g.int_attr(dim))


# ---- convolution and pooling -----------------------------------------------------------------------
def _n_ints(cx: Lowering, v: Any, n: int, what: str, default: int | None = None) -> list[int]:
    vals = cx.ints(v, what) if v is not None else []
    if not vals:
        if default is None:
            raise Unsupported(f"{what} must be given")
        vals = [default]
    return vals * n if len(vals) == 1 else vals


@converts("aten.convolution", "aten._convolution")
def _convolution(cx: Lowering, x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, transposed: bool,
                 output_padding: Any, groups: int, *rest: Any) -> SSAValue:
    if transposed:
        raise Unsupported("transposed convolution is not supported")
    n = cx.rank(x) - 2
    pads = _n_ints(cx, padding, n, "padding", 0)
    rt = cx.out()
    m = cx.shape(w)[0]
    bias = cx.tensor(b) if b is not None else cx.tensor(cx.fill([m], 0.0, cx.dtype(x)))
    return cx.emit(g.ConvOp, [cx.tensor(x), cx.tensor(w), bias], rt, strides=g.i64_array(_n_ints(cx, stride, n, "stride", 1)),
                   pads=g.i64_array(pads + pads), dilations=g.i64_array(_n_ints(cx, dilation, n, "dilation", 1)), group=g.int_attr(groups))


@converts("aten.max_pool2d_with_indices", "aten.max_pool1d_with_indices", "aten.max_pool3d_with_indices",
          "aten.max_pool2d", "aten.max_pool1d", "aten.max_pool3d")
def _max_pool(cx: Lowering, x: Any, kernel: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
              ceil_mode: bool = False) -> Any:
    n = cx.rank(x) - 2
    k = _n_ints(cx, kernel, n, "kernel_size")
    s = cx.ints(stride, "stride") if stride is not None else []
    s = k if not s else (s * n if len(s) == 1 else s)
    pads = _n_ints(cx, padding, n, "padding", 0)
    y = cx.emit(g.MaxPoolOp, [cx.tensor(x)], cx.out(), kernel_shape=g.i64_array(k), strides=g.i64_array(s), pads=g.i64_array(pads + pads),
                dilations=g.i64_array(_n_ints(cx, dilation, n, "dilation", 1)), ceil_mode=g.int_attr(int(ceil_mode)))
    if len(cx.op.results) == 2:
        return y, Unavailable("the indices of max_pool are not supported")
    return y


@converts("aten.avg_pool2d", "aten.avg_pool1d", "aten.avg_pool3d")
def _avg_pool(cx: Lowering, x: Any, kernel: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
              count_include_pad: bool = True, divisor_override: Any = None) -> SSAValue:
    if divisor_override is not None:
        raise Unsupported("avg_pool with divisor_override is not supported")
    n = cx.rank(x) - 2
    k = _n_ints(cx, kernel, n, "kernel_size")
    s = cx.ints(stride, "stride") if stride is not None else []
    s = k if not s else (s * n if len(s) == 1 else s)
    pads = _n_ints(cx, padding, n, "padding", 0)
    if ceil_mode and any(pads):
        raise Unsupported("avg_pool with ceil_mode and padding is not supported")
    return cx.emit(g.AvgPoolOp, [cx.tensor(x)], cx.out(), kernel_shape=g.i64_array(k), strides=g.i64_array(s), pads=g.i64_array(pads + pads),
                   dilations=g.i64_array([1] * n), ceil_mode=g.int_attr(int(ceil_mode)), count_include_pad=g.int_attr(int(count_include_pad)))


@converts("aten._adaptive_avg_pool2d", "aten.adaptive_avg_pool2d", "aten._adaptive_avg_pool1d", "aten.adaptive_avg_pool1d")
def _adaptive_avg_pool(cx: Lowering, x: Any, output_size: Any) -> SSAValue:
    s = cx.shape(x)
    n = len(s) - 2
    out = _n_ints(cx, output_size, n, "output_size")
    rt = cx.out()
    if all(o == 1 for o in out):
        return cx.emit(g.ReduceMeanOp, [cx.tensor(x)], rt, axes=g.i64_array(list(range(2, 2 + n))), keepdims=g.int_attr(1))
    spatial = s[2:]
    if any(d < 0 or d % o for d, o in zip(spatial, out)):
        raise Unsupported("adaptive_avg_pool whose input size is not a multiple of the output size is not supported")
    k = [d // o for d, o in zip(spatial, out)]
    return cx.emit(g.AvgPoolOp, [cx.tensor(x)], rt, kernel_shape=g.i64_array(k), strides=g.i64_array(k), pads=g.i64_array([0] * 2 * n),
                   dilations=g.i64_array([1] * n), ceil_mode=g.int_attr(0), count_include_pad=g.int_attr(0))


def _resize(cx: Lowering, x: Any, output_size: Any, scales: Any, mode: str, ctm: str) -> SSAValue:
    n = cx.rank(x) - 2
    props: dict[str, Any] = {"mode": StringAttr(mode), "coordinate_transformation_mode": StringAttr(ctm), "nearest_mode": StringAttr("floor")}
    if scales is not None and any(v is not None for v in (scales if isinstance(scales, list) else [scales])):
        sc = scales if isinstance(scales, list) else [scales] * n
        props["scales"] = DenseArrayBase.from_list(f32, [1.0, 1.0] + [float(v) for v in sc])
    else:
        out = cx.ints(output_size, "output_size")
        props["sizes"] = g.i64_array(list(cx.ints([cx.dim(x, 0), cx.dim(x, 1)], "batch and channel dims")) + out)
    return cx.emit(g.ResizeOp, [cx.tensor(x)], cx.out(), **props)


@converts("aten.upsample_nearest2d.vec", "aten.upsample_nearest1d.vec", "aten.upsample_nearest3d.vec")
def _upsample_nearest_vec(cx: Lowering, x: Any, output_size: Any, scales: Any) -> SSAValue:
    return _resize(cx, x, output_size, scales, "nearest", "asymmetric")


@converts("aten.upsample_nearest2d", "aten.upsample_nearest1d")
def _upsample_nearest(cx: Lowering, x: Any, output_size: Any, *scales: Any) -> SSAValue:
    return _resize(cx, x, output_size, None, "nearest", "asymmetric")


@converts("aten.upsample_bilinear2d.vec", "aten.upsample_linear1d.vec")
def _upsample_linear_vec(cx: Lowering, x: Any, output_size: Any, align_corners: bool, scales: Any) -> SSAValue:
    return _resize(cx, x, output_size, scales, "linear", "align_corners" if align_corners else "half_pixel")


@converts("aten.upsample_bilinear2d", "aten.upsample_linear1d")
def _upsample_linear(cx: Lowering, x: Any, output_size: Any, align_corners: bool, *scales: Any) -> SSAValue:
    return _resize(cx, x, output_size, None, "linear", "align_corners" if align_corners else "half_pixel")
