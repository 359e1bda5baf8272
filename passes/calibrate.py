"""``calibrate``: run the model on calibration data and record activation ranges on the IR.

For every float activation operand of the selected compute ops (``graph.matmul`` and
``graph.conv`` by default) the pass runs an observer over all calibration batches
through the reference interpreter's ``observe`` hook and stores the result as a
``quant.stats`` dictionary on the value's producer (see
``mase_compiler/calibration/stats.py``), where ``quantize`` turns it into a static scale.
Weights are not observed: operands produced by ``graph.weight``/``graph.constant``,
possibly through shape ops or casts, get their scales from the weights themselves.

Methods: ``minmax`` is the simple max calibration FP8-BERT uses for FP8 activations
(Li et al., 2023, "FP8-BERT", Sec. 3); ``percentile`` clips at a percentile of ``|x|``;
``mse`` picks the clip threshold with the least expected squared error in ``format``;
``entropy`` (alias ``kl``) is the KL-divergence calibration of TensorRT (Migacz, GTC
2017, "8-bit inference with TensorRT") as in ONNX Runtime's ``CalibrationMethod.Entropy``.
All ignore inf, NaN and |x| >= 1e30 (attention-mask values), which crash ONNX
Runtime's entropy/percentile calibration on MiniLM.

Options: ``method`` (minmax|percentile|mse|entropy), ``percentile`` (for percentile,
default 99.99), ``format`` (the target format mse/entropy optimize for, default int8),
``ops`` (comma-separated op kinds without ``graph.``, default ``matmul,conv``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, OpResult, SSAValue
from xdsl.passes import ModulePass

from ..calibration.observers import ALIASES, METHODS, Observer, grid_max, make_observer
from ..calibration.stats import set_stats
from ..dialects.graph import element_type, shape_of
from ..numerics import parse
from ..numerics._options import suggestion

# Ops that only move or reinterpret their first operand: a weight seen through them is still a weight.
_VIEW_OPS = frozenset({"graph.transpose", "graph.reshape", "graph.squeeze", "graph.unsqueeze", "graph.flatten",
                       "graph.expand", "graph.cast", "quant.cast"})
_STATIC_OPS = frozenset({"graph.weight", "graph.constant"})


def _op_kinds() -> list[str]:
    from ..dialects.graph import Graph

    return sorted(op.name.removeprefix("graph.") for op in Graph.operations)


@dataclass(frozen=True)
class Calibrate(ModulePass):
    """Records activation ranges (``quant.stats``) of matmul/conv inputs from calibration data."""

    name = "calibrate"

    method: str = "minmax"
    percentile: float | int = 99.99  # int too, so that 'percentile=99' parses
    format: str = "int8"
    ops: str = "matmul,conv"

    def __post_init__(self) -> None:
        valid = (*METHODS, *ALIASES)
        if self.method not in valid:
            raise ValueError(f"calibrate method must be one of {', '.join(valid)}, not {self.method!r}"
                             + suggestion(self.method, valid))
        if not 0.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"calibrate percentile must be in (0, 100], not {self.percentile}")
        try:
            fmt = parse(self.format)
        except ValueError as e:
            raise ValueError(f"calibrate format: {e}") from None
        if ALIASES.get(self.method, self.method) in ("mse", "entropy"):
            grid_max(fmt)
        kinds = _op_kinds()
        for k in self.op_kinds:
            if k not in kinds:
                raise ValueError(f"calibrate ops must name graph op kinds such as matmul, conv, not {k!r}" + suggestion(k, kinds))
        if not self.op_kinds:
            raise ValueError("calibrate ops must name at least one op kind, e.g. 'matmul,conv'")

    @property
    def op_kinds(self) -> tuple[str, ...]:
        return tuple(k.strip().removeprefix("graph.") for k in self.ops.split(",") if k.strip())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from ..interpreter import Interpreter
        from ..session import current

        session = current(self.name)
        if session.calibration is None:
            raise ValueError("pass 'calibrate' needs calibration data: pass it, e.g. 'masec compile --calib DATA' "
                             "(an .npz of model inputs, or text with --tokenizer DIR)")
        model = session.model
        if op is not model.module:
            raise ValueError("pass 'calibrate' must run on the session's model (masec opt/compile), not on another module")
        targets = activation_operands(model.main.body.ops, {f"graph.{k}" for k in self.op_kinds})
        observers: dict[SSAValue, Observer] = {
            v: make_observer(self.method, float(self.percentile), self.format) for vs in targets.values() for v in vs}
        interp = Interpreter(model)
        seen: set[SSAValue] = set()

        def observe(o: Operation, operands: list, results: tuple) -> None:
            for v, idx in targets.get(o, {}).items():
                if v not in seen:
                    seen.add(v)
                    observers[v].update(operands[idx])

        batches = session.calibration
        for batch in _progress(batches, session.progress):
            seen.clear()
            interp(batch, observe=observe)
        dropped = 0
        for v, obs in observers.items():
            stats = obs.result()
            dropped += stats["dropped"]
            shape = shape_of(v.type)
            if not shape or shape[-1] < 0:  # a symbolic last axis (e.g. sequence) has no fixed channels
                stats.pop("channel_absmax", None)
            set_stats(v, stats)
        session.notes.update({"calibrated_values": len(observers), "batches": len(batches), "dropped": dropped,
                              "method": ALIASES.get(self.method, self.method)})


def activation_operands(ops: Iterable[Operation], kinds: set[str]) -> dict[Operation, dict[SSAValue, int]]:
    """For each op of ``kinds``: its float activation operands and their operand index (first use)."""
    out: dict[Operation, dict[SSAValue, int]] = {}
    for op in ops:
        if op.name not in kinds:
            continue
        for i, v in enumerate(op.operands):
            if _is_float(v) and not is_static(v) and v not in out.get(op, {}):
                out.setdefault(op, {})[v] = i
    return out


def is_static(v: SSAValue) -> bool:
    """Whether ``v`` is a weight or constant, possibly reshaped, transposed or cast."""
    while isinstance(v, OpResult):
        name = v.op.name
        if name in _STATIC_OPS:
            return True
        if name not in _VIEW_OPS or not v.op.operands:
            return False
        v = v.op.operands[0]
    return False


def _is_float(v: SSAValue) -> bool:
    from ..interpreter.dtypes import torch_dtype

    try:
        return torch_dtype(element_type(v.type)).is_floating_point
    except (TypeError, AssertionError):
        return False


def _progress(batches: list[dict], show: bool) -> Iterator[dict]:
    from ..progress import bar

    with bar(show, len(batches), "calibrating") as advance:
        for b in batches:
            yield b
            advance()
