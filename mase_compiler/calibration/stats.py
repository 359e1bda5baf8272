"""Calibration statistics stored on the IR, so later passes and reports read them.

The statistics of a value are a builtin ``DictionaryAttr`` (printable, parsed back
by ``Model.parse``) in a discardable attribute of the op that produces the value:
``quant.stats`` for a single-result op, ``quant.stats.<i>`` for result ``i`` of an op
with several results, and ``quant.stats`` in the function's ``arg_attrs`` for a
function argument::

    %5 = graph.layer_norm %4, %w, %b {quant.stats = {method = "minmax", lo = -3.2 : f64,
           hi = 4.1 : f64, min = -3.2 : f64, max = 4.1 : f64, batches = 8 : i64, dropped = 0 : i64}, ...}

Keys: ``method`` (str), ``lo``, ``hi``, ``min``, ``max`` and ``token_absmax_p50/p99/max``
(f64), ``channel_absmax`` (``array<f32: ...>``), ``batches``, ``dropped`` (i64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    f32,
    f64,
    i64,
)
from xdsl.dialects.func import FuncOp
from xdsl.ir import Attribute, BlockArgument, OpResult, Operation, SSAValue

from ..dialects.graph import node_name, shape_of

STATS_ATTR = "quant.stats"


def _key(value: OpResult) -> str:
    return STATS_ATTR if len(value.op.results) == 1 else f"{STATS_ATTR}.{value.index}"


def _to_attr(key: str, v: Any) -> Attribute:
    if isinstance(v, str):
        return StringAttr(v)
    if isinstance(v, (bool, np.bool_)):
        return IntegerAttr(int(v), i64)
    if isinstance(v, (int, np.integer)):
        return IntegerAttr(int(v), i64)
    if isinstance(v, (float, np.floating)):
        return FloatAttr(float(v), f64)
    if isinstance(v, (Sequence, np.ndarray)):
        return DenseArrayBase.from_list(f32, [float(x) for x in np.asarray(v, dtype=np.float32).ravel()])
    raise TypeError(f"statistic {key!r} must be a str, int, float or list of floats, not {type(v).__name__}")


def _from_attr(a: Attribute) -> Any:
    if isinstance(a, StringAttr):
        return a.data
    if isinstance(a, IntegerAttr):
        return a.value.data
    if isinstance(a, FloatAttr):
        return a.value.data
    if isinstance(a, DenseArrayBase):
        return [float(x) for x in a.get_values()]
    return a


def _func_of(arg: BlockArgument) -> FuncOp:
    op = arg.block.parent_op()
    if not isinstance(op, FuncOp):
        raise ValueError(f"statistics of a block argument need a func.func argument, not an argument of {op}")
    return op


def set_stats(value: SSAValue, stats: dict[str, Any]) -> None:
    """Store ``stats`` for ``value`` on its producer (or its function's ``arg_attrs``)."""
    attr = DictionaryAttr({k: _to_attr(k, v) for k, v in stats.items()})
    if isinstance(value, OpResult):
        value.op.attributes[_key(value)] = attr
        return
    assert isinstance(value, BlockArgument)
    func = _func_of(value)
    n = len(func.args)
    old = func.arg_attrs.data if func.arg_attrs is not None else tuple(DictionaryAttr({}) for _ in range(n))
    new = list(old)
    entry = dict(new[value.index].data) if isinstance(new[value.index], DictionaryAttr) else {}
    entry[STATS_ATTR] = attr
    new[value.index] = DictionaryAttr(entry)
    func.arg_attrs = ArrayAttr(new)


def _stats_attr(value: SSAValue) -> DictionaryAttr | None:
    if isinstance(value, OpResult):
        a = value.op.attributes.get(_key(value))
    elif isinstance(value, BlockArgument) and isinstance(value.block.parent_op(), FuncOp):
        func = value.block.parent_op()
        assert isinstance(func, FuncOp)
        d = func.arg_attrs.data[value.index] if func.arg_attrs is not None else None
        a = d.data.get(STATS_ATTR) if isinstance(d, DictionaryAttr) else None
    else:
        a = None
    return a if isinstance(a, DictionaryAttr) else None


def get_stats(value: SSAValue) -> dict[str, Any] | None:
    """The statistics stored for ``value``, or None if it was not calibrated."""
    a = _stats_attr(value)
    return None if a is None else {k: _from_attr(v) for k, v in a.data.items()}


def calibrated_values(func: FuncOp) -> list[SSAValue]:
    """Every value of ``func`` (arguments first, then results in program order) that has statistics."""
    out: list[SSAValue] = [a for a in func.args if _stats_attr(a) is not None]
    for op in func.walk():
        out.extend(r for r in op.results if _stats_attr(r) is not None)
    return out


def stats_table(model: Any) -> list[dict[str, Any]]:
    """One row per calibrated value of ``model.main``: where it comes from, its shape and statistics.

    Columns: ``value`` (argument name or ``op#result``), ``op`` (producer op name or ``func.arg``),
    ``node`` (the producer's ``graph.node``), ``shape`` (-1 for dynamic dims), then the statistics
    (``channel_absmax`` shortened to its channel count ``channels``).
    """
    func = model.main
    names = dict(zip(func.args, model.input_names))
    index = {op: i for i, op in enumerate(func.body.ops)}
    rows = []
    for v in calibrated_values(func):
        stats = get_stats(v) or {}
        if isinstance(v, OpResult):
            op: Operation = v.op
            row = {"value": f"{op.name}@{index.get(op, -1)}" + (f"#{v.index}" if len(op.results) > 1 else ""),
                   "op": op.name, "node": node_name(op)}
        else:
            row = {"value": names.get(v, f"arg{v.index}"), "op": "func.arg", "node": None}
        shape = shape_of(v.type)
        row["shape"] = list(shape) if shape is not None else None
        ch = stats.pop("channel_absmax", None)
        row.update(stats)
        if ch is not None:
            row["channels"] = len(ch)
        rows.append(row)
    return rows


__all__ = ["STATS_ATTR", "calibrated_values", "get_stats", "set_stats", "stats_table"]
