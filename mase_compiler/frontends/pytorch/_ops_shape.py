"""Converters for reshaping, data movement and indexing."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import torch
from xdsl.dialects.builtin import IntegerType, StringAttr, i1
from xdsl.ir import SSAValue

from ...dialects import graph as g
from ._lower import INT64_MAX, DynInt, Lowering, Unsupported, converts, norm_axis

i64 = IntegerType(64)


# ---- shape and data movement -----------------------------------------------------------------------
def _static_or(cx: Lowering, items: Any) -> SSAValue:
    """The result's static shape if torch-mlir knows it, else the given sizes."""
    s = g.shape_of(cx.out())
    if s is not None and all(d >= 0 for d in s):
        return cx.shape_operand(list(s))
    return cx.shape_operand(list(items))


@converts("aten.view", "aten._unsafe_view", "aten.reshape")
def _view(cx: Lowering, x: Any, sizes: Any) -> SSAValue:
    rt = cx.out()
    shape = _static_or(cx, sizes)
    zero = any(d == 0 for d in g.shape_of(rt))
    return cx.emit(g.ReshapeOp, [cx.tensor(x), shape], rt, allowzero=g.int_attr(int(zero)))


@converts("aten.flatten.using_ints")
def _flatten(cx: Lowering, x: Any, start: int, end: int) -> SSAValue:
    rank = cx.rank(x)
    start, end = norm_axis(start, rank), norm_axis(end, rank)
    sizes = [cx.dim(x, d) for d in range(start)] + [-1] + [cx.dim(x, d) for d in range(end + 1, rank)]
    return cx.emit(g.ReshapeOp, [cx.tensor(x), _static_or(cx, sizes)], cx.out())


@converts("aten.permute")
def _permute(cx: Lowering, x: Any, dims: Any) -> SSAValue:
    rank = cx.rank(x)
    perm = [norm_axis(d, rank) for d in cx.ints(dims, "permutation")]
    if perm == list(range(rank)):
        return cx.tensor(x)
    return cx.emit(g.TransposeOp, [cx.tensor(x)], cx.out(), perm=g.i64_array(perm))


@converts("aten.transpose.int")
def _transpose(cx: Lowering, x: Any, a: int, b: int) -> SSAValue:
    rank = cx.rank(x)
    perm = list(range(rank))
    a, b = norm_axis(a, rank), norm_axis(b, rank)
    perm[a], perm[b] = perm[b], perm[a]
    return cx.emit(g.TransposeOp, [cx.tensor(x)], cx.out(), perm=g.i64_array(perm))


@converts("aten.t", "aten.numpy_T")
def _t(cx: Lowering, x: Any) -> Any:
    if cx.rank(x) < 2:
        return x
    return cx.emit(g.TransposeOp, [cx.tensor(x)], cx.out(), perm=g.i64_array([1, 0]))


@converts("aten.unsqueeze")
def _unsqueeze(cx: Lowering, x: Any, d: int) -> SSAValue:
    return cx.emit(g.UnsqueezeOp, [cx.tensor(x)], cx.out(), axes=g.i64_array([norm_axis(d, cx.rank(x) + 1)]))


@converts("aten.squeeze.dims", "aten.squeeze.dim", "aten.squeeze")
def _squeeze(cx: Lowering, x: Any, dims: Any = None) -> Any:
    s = cx.shape(x)
    rank = len(s)
    candidates = range(rank) if dims is None else [norm_axis(d, rank) for d in cx.ints(dims, "squeeze dims")]
    axes = sorted({d for d in candidates if s[d] == 1})
    if len(axes) != rank - len(g.shape_of(cx.out())):
        raise Unsupported("squeezing dims whose size is symbolic is not supported")
    if not axes:
        return x
    return cx.emit(g.SqueezeOp, [cx.tensor(x)], cx.out(), axes=g.i64_array(axes))


@converts("aten.expand", "aten.expand_copy", "aten.broadcast_to")
def _expand(cx: Lowering, x: Any, sizes: Any, implicit: Any = False) -> SSAValue:
    # torch's -1 keeps a dim; under ONNX Expand's broadcasting a 1 does the same.
    items = [1 if (isinstance(v, int) and v == -1) else v for v in sizes]
    if list(cx.shape(x)) == list(g.shape_of(cx.out())) and all(d >= 0 for d in cx.shape(x)):
        return cx.tensor(x)
    return cx.emit(g.ExpandOp, [cx.tensor(x), _static_or(cx, items)], cx.out())


@converts("aten.repeat")
def _repeat(cx: Lowering, x: Any, repeats: Any) -> SSAValue:
    reps = cx.ints(repeats, "repeats")
    v = cx.tensor(x)
    extra = len(reps) - cx.rank(x)
    if extra > 0:
        s = g.shape_of(v.type)
        v = cx.emit(g.UnsqueezeOp, [v], g.tensor_type(g.element_type(v.type), (1,) * extra + s), axes=g.i64_array(list(range(extra))))
    return cx.emit(g.TileOp, [v, cx.shape_operand(reps)], cx.out())


def _slice(cx: Lowering, x: Any, dim: int, start: Any, end: Any, step: int) -> SSAValue:
    if start is None:
        start = 0
    if end is None:
        end = INT64_MAX
    size = cx.shape(x)[norm_axis(dim, cx.rank(x))]
    if start == 0 and step == 1 and isinstance(end, int) and size >= 0 and end >= size:
        return cx.tensor(x)
    ops = [cx.shape_operand([start]), cx.shape_operand([end]), cx.shape_operand([dim]), cx.shape_operand([step])]
    return cx.emit(g.SliceOp, [cx.tensor(x), *ops], cx.out())


@converts("aten.slice.Tensor")
def _slice_tensor(cx: Lowering, x: Any, dim: int = 0, start: Any = None, end: Any = None, step: int = 1) -> SSAValue:
    return _slice(cx, x, dim, start, end, step)


@converts("aten.flip")
def _flip(cx: Lowering, x: Any, dims: Any) -> SSAValue:
    rank = cx.rank(x)
    axes = [norm_axis(d, rank) for d in cx.ints(dims, "flip dims")]
    n = len(axes)
    ops = [cx.shape_operand([-1] * n), cx.shape_operand([-INT64_MAX] * n), cx.shape_operand(axes), cx.shape_operand([-1] * n)]
    return cx.emit(g.SliceOp, [cx.tensor(x), *ops], cx.out())


@converts("aten.narrow")
def _narrow(cx: Lowering, x: Any, dim: int, start: Any, length: Any) -> SSAValue:
    if not (isinstance(start, int) and isinstance(length, int)):
        raise Unsupported("narrow with a symbolic start or length is not supported")
    return _slice(cx, x, dim, start, start + length, 1)


@converts("aten.select.int")
def _select(cx: Lowering, x: Any, dim: int, index: Any) -> SSAValue:
    idx = cx.operand(index, i64)
    return cx.emit(g.GatherOp, [cx.tensor(x), idx], cx.out(), axis=g.int_attr(norm_axis(dim, cx.rank(x))))


@converts("aten.cat", "aten.concat")
def _cat(cx: Lowering, tensors: Any, dim: int = 0) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    parts = [t for t in tensors if not (isinstance(t, torch.Tensor) and t.dim() == 1 and t.numel() == 0)]
    values = [cx.cast(t, e) for t in parts]
    if len(values) == 1:
        return values[0]
    return cx.emit(g.ConcatOp, values, rt, axis=g.int_attr(norm_axis(dim, len(g.shape_of(rt)))))


@converts("aten.stack")
def _stack(cx: Lowering, tensors: Any, dim: int = 0) -> SSAValue:
    rt = cx.out()
    e = g.element_type(rt)
    axis = norm_axis(dim, len(g.shape_of(rt)))
    values = []
    for t in tensors:
        v = cx.cast(t, e)
        s = list(g.shape_of(v.type))
        s.insert(axis, 1)
        values.append(cx.emit(g.UnsqueezeOp, [v], g.tensor_type(e, s), axes=g.i64_array([axis])))
    return cx.emit(g.ConcatOp, values, rt, axis=g.int_attr(axis))


def _split_sizes(cx: Lowering, x: Any, sizes: list[int], dim: int) -> list[SSAValue]:
    v = cx.tensor(x)
    s = list(g.shape_of(v.type))
    axis = norm_axis(dim, len(s))
    types = []
    for n in sizes:
        s2 = list(s)
        s2[axis] = n
        types.append(g.tensor_type(g.element_type(v.type), s2))
    outs = cx.emit(g.SplitOp, [v], types, axis=g.int_attr(axis), sizes=g.i64_array(sizes))
    return [outs] if isinstance(outs, SSAValue) else list(outs)


@converts("aten.split_with_sizes")
def _split_with_sizes(cx: Lowering, x: Any, sizes: Any, dim: int = 0) -> list[SSAValue]:
    return _split_sizes(cx, x, cx.ints(sizes, "split sizes"), dim)


@converts("aten.split.Tensor")
def _split(cx: Lowering, x: Any, size: int, dim: int = 0) -> list[SSAValue]:
    n = cx.shape(x)[norm_axis(dim, cx.rank(x))]
    if n < 0:
        raise Unsupported("splitting a symbolic dim is not supported")
    sizes = [min(size, n - i) for i in range(0, n, size)]
    return _split_sizes(cx, x, sizes, dim)


@converts("aten.unbind.int")
def _unbind(cx: Lowering, x: Any, dim: int = 0) -> list[SSAValue]:
    axis = norm_axis(dim, cx.rank(x))
    n = cx.shape(x)[axis]
    if n < 0:
        raise Unsupported("unbinding a symbolic dim is not supported")
    parts = _split_sizes(cx, x, [1] * n, axis)
    out = []
    for p in parts:
        s = list(g.shape_of(p.type))
        del s[axis]
        out.append(cx.emit(g.SqueezeOp, [p], g.tensor_type(g.element_type(p.type), s), axes=g.i64_array([axis])))
    return out


# ---- indexing --------------------------------------------------------------------------------------
@converts("aten.embedding")
def _embedding(cx: Lowering, w: Any, ids: Any, *rest: Any) -> SSAValue:
    return cx.emit(g.GatherOp, [cx.tensor(w), cx.tensor(ids)], cx.out(), axis=g.int_attr(0))


@converts("aten.index_select")
def _index_select(cx: Lowering, x: Any, dim: int, idx: Any) -> SSAValue:
    return cx.emit(g.GatherOp, [cx.tensor(x), cx.tensor(idx)], cx.out(), axis=g.int_attr(norm_axis(dim, cx.rank(x))))


@converts("aten.gather")
def _gather(cx: Lowering, x: Any, dim: int, idx: Any, sparse: Any = False) -> SSAValue:
    return cx.emit(g.GatherElementsOp, [cx.tensor(x), cx.tensor(idx)], cx.out(), axis=g.int_attr(norm_axis(dim, cx.rank(x))))


def _nonnegative(cx: Lowering, idx: Any, size: int | DynInt) -> SSAValue:
    """``idx`` with negative entries wrapped by ``size`` (skipped when the indices are known non-negative)."""
    v = cx.cast(idx, i64)
    if isinstance(idx, torch.Tensor) and bool((idx >= 0).all()):
        return v
    shape = g.shape_of(v.type)
    neg = cx.emit(g.LessOp, [v, cx.scalar(0, i64)], g.tensor_type(i1, shape))
    wrapped = cx.emit(g.AddOp, [v, cx.operand(size, i64)], v.type)
    return cx.emit(g.WhereOp, [neg, wrapped, v], v.type)


@converts("aten.index.Tensor", "aten._unsafe_index.Tensor")
def _index(cx: Lowering, x: Any, indices: Any) -> SSAValue:
    """Advanced indexing: one index tensor is a gather; k index tensors on the leading dims are
    linearized (``i0 * d1 + i1``...) into one gather over the flattened leading dims."""
    present = [i for i, t in enumerate(indices) if t is not None]
    if any(cx.dtype(indices[i]) == torch.bool for i in present):
        raise Unsupported("boolean-mask indexing (data-dependent shape) is not supported")
    rt = cx.out()
    if len(present) == 1:
        (p,) = present
        return cx.emit(g.GatherOp, [cx.tensor(x), cx.cast(indices[p], i64)], rt, axis=g.int_attr(p))
    k = len(present)
    if present != list(range(k)):
        raise Unsupported("index tensors must be on the leading dims or a single dim")
    s = cx.shape(x)
    rest = list(s[k:])
    if any(d < 0 for d in rest):
        raise Unsupported("indexing a tensor whose trailing dims are symbolic is not supported")
    sizes = [cx.dim(x, i) for i in range(k)]
    flat = _linear_index_known(indices[:k], sizes)
    if flat is None:
        for i in range(k):
            idx = _nonnegative(cx, indices[i], sizes[i])
            if flat is None:
                flat = idx
                continue
            t = g.tensor_type(i64, g.broadcast_shapes(g.shape_of(flat.type), g.shape_of(idx.type)))
            flat = cx.emit(g.AddOp, [cx.emit(g.MulOp, [flat, cx.operand(sizes[i], i64)], flat.type), idx], t)
    xv = cx.tensor(x)
    lead = s[:k]
    n = prod(lead) if all(d >= 0 for d in lead) else -1
    flat_x = cx.emit(g.ReshapeOp, [xv, cx.shape_operand([-1, *rest])], g.tensor_type(g.element_type(xv.type), [n, *rest]))
    return cx.emit(g.GatherOp, [flat_x, cx.tensor(flat)], rt, axis=g.int_attr(0))


def _linear_index_known(indices: Sequence[Any], sizes: Sequence[int | DynInt]) -> torch.Tensor | None:
    """The linearized index computed at import time, when the indices and the sizes are known."""
    if not all(isinstance(t, torch.Tensor) for t in indices) or not all(isinstance(d, int) for d in sizes):
        return None
    flat = None
    for idx, d in zip(indices, sizes):
        idx = torch.where(idx < 0, idx + d, idx).long()
        flat = idx if flat is None else flat * d + idx
    return flat


@converts("aten.tril", "aten.triu")
def _trilu(cx: Lowering, x: Any, diagonal: int = 0) -> SSAValue:
    return cx.emit(g.TriluOp, [cx.tensor(x), cx.operand(diagonal, i64)], cx.out(), upper=g.int_attr(int(cx.op_name == "aten.triu")))


@converts("aten.constant_pad_nd")
def _pad(cx: Lowering, x: Any, pad: Any, value: Any = 0) -> SSAValue:
    pads = cx.ints(pad, "pads")
    rank = cx.rank(x)
    if any(p < 0 for p in pads):
        raise Unsupported("negative padding is not supported")
    begin, end = [0] * rank, [0] * rank
    for i in range(len(pads) // 2):  # torch lists (begin, end) pairs from the last dim backwards
        begin[rank - 1 - i], end[rank - 1 - i] = pads[2 * i], pads[2 * i + 1]
    rt = cx.out()
    return cx.emit(g.PadOp, [cx.tensor(x), cx.shape_operand(begin + end), cx.scalar(value, g.element_type(rt))], rt, mode=StringAttr("constant"))
