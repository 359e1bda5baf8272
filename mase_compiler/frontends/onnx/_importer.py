"""The ONNX importer: a graph of ONNX nodes into a ``func.func @main`` of graph ops.

One pass over the (topologically sorted) nodes; each node's converter (see
``_ops.py``) reads its operands through a :class:`Node` and emits graph ops.
Initializers and ``Constant`` outputs are materialized lazily, at their first use
as an operand: converters that need a static value (reduce axes, split sizes,
clip bounds, …) read it without emitting anything.  A node whose inputs are all
small constants is folded (onnx's reference evaluator computes it), and dead
ops are erased at the end.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    UnrankedTensorType,
    bf16,
    f16,
    f32,
    f64,
    i1,
    i64,
)
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.irdl import IRDLOperation

from ...dialects import graph as g
from ...model import NAME_ATTR, Model
from ...weights import WeightStore
from ..errors import FrontendError
from ._load import NP_DTYPES, TP, Loaded, dtype_name

MIN_OPSET, MAX_OPSET = 13, 24
DEFAULT_DOMAINS = ("", "ai.onnx")
SMALL_CONSTANT = 16  # integer/bool initializers up to this many elements stay in the IR as graph.constant
FOLD_LIMIT = 4096  # nodes whose inputs and outputs are constants of at most this many elements are folded
_NO_FOLD = {"Constant", "Identity", "Dropout"}  # handled lazily by their converters

# ---- element types --------------------------------------------------------------------------------
_ELEMENT: dict[int, Attribute] = {
    TP.FLOAT: f32, TP.DOUBLE: f64, TP.FLOAT16: f16, TP.BFLOAT16: bf16, TP.BOOL: i1,
    TP.INT8: IntegerType(8), TP.INT16: IntegerType(16), TP.INT32: IntegerType(32), TP.INT64: i64,
    TP.UINT8: IntegerType(8, Signedness.UNSIGNED), TP.UINT16: IntegerType(16, Signedness.UNSIGNED),
    TP.UINT32: IntegerType(32, Signedness.UNSIGNED), TP.UINT64: IntegerType(64, Signedness.UNSIGNED),
}


def element_type(data_type: int, what: str) -> Attribute:
    t = _ELEMENT.get(data_type)
    if t is None:
        raise FrontendError(f"{what} has element type {dtype_name(data_type)}, which masec does not support")
    return t


def np_element_type(dtype: np.dtype, what: str) -> Attribute:
    for code, dt in NP_DTYPES.items():
        if dt == dtype and code in _ELEMENT:
            return _ELEMENT[code]
    raise FrontendError(f"{what} has dtype {dtype}, which masec does not support")


is_float = g.is_float
tensor_type = g.tensor_type  # -1 for symbolic dims (printed as ?); None shape: unranked
dense = g.dense


def dense_safe(arr: np.ndarray) -> bool:
    """Whether ``arr`` survives a print/parse round trip as a dense attribute.

    xDSL 0.74 prints non-finite floats in dense attributes as hex bit patterns
    (``dense<0xFF800000>``) but parses them back as integers, so ±inf and NaN
    constants go to the weight store instead.
    """
    return arr.dtype.kind in "biu" or bool(np.isfinite(np.asarray(arr, np.float64)).all())


def to_attr(v: Any) -> Attribute:
    """Python property values as the attributes the graph dialect uses."""
    if isinstance(v, Attribute):
        return v
    if isinstance(v, (bool, int, np.integer)):
        return IntegerAttr(int(v), i64)
    if isinstance(v, (float, np.floating)):
        return FloatAttr(float(v), f32)
    if isinstance(v, str):
        return StringAttr(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return g.i64_array([int(x) for x in v])
    raise TypeError(f"no attribute for {v!r}")


# ---- the per-node view that converters use -------------------------------------------------------
class Node:
    """One ONNX node during conversion: its attributes, operands, static inputs and result types."""

    def __init__(self, imp: "Importer", proto: onnx.NodeProto, index: int):
        self.imp = imp
        self.proto = proto
        self.index = index
        self.op_type = proto.op_type
        self.opset = imp.opset
        self.attrs: dict[str, Any] = {}
        for a in proto.attribute:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            self.attrs[a.name] = v

    # ---- naming and errors -----------------------------------------------------------------
    @property
    def label(self) -> str:
        return node_label(self.proto, self.index)

    def error(self, msg: str) -> FrontendError:
        return FrontendError(f"{self.label} ({self.op_type}): {msg}")

    # ---- attributes --------------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    # ---- operands ----------------------------------------------------------------------------
    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    def has(self, i: int) -> bool:
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def x(self, i: int = 0) -> SSAValue:
        """Operand ``i`` as an SSA value (materializing an initializer or constant)."""
        if not self.has(i):
            raise self.error(f"input {i} is required")
        return self.imp.value(self.proto.input[i], self)

    def xs(self) -> list[SSAValue]:
        return [self.x(i) for i in range(len(self.proto.input)) if self.has(i)]

    def static(self, i: int, what: str) -> np.ndarray | None:
        """The value of input ``i`` if it is absent (None) or a constant; an error if it is computed."""
        if not self.has(i):
            return None
        name = self.proto.input[i]
        if name in self.imp.static:
            return self.imp.static[name]
        if name not in self.imp.values:
            self.imp.value(name, self)  # raises the dangling-input error
        raise self.error(f"{what} (input '{name}') must be a constant (an initializer or Constant node), not computed by the graph")

    def static_ints(self, i: int, what: str) -> list[int] | None:
        v = self.static(i, what)
        return None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]

    def static_scalar(self, i: int, what: str) -> float | int | None:
        v = self.static(i, what)
        if v is None:
            return None
        if v.size != 1:
            raise self.error(f"{what} must be a scalar, not a tensor of shape {list(v.shape)}")
        return v.reshape(()).item()

    # ---- types -------------------------------------------------------------------------------
    def type_of(self, i: int) -> Attribute:
        """Type of input ``i`` (a constant's type without materializing it)."""
        name = self.imp.aliases.get(self.proto.input[i], self.proto.input[i]) if self.has(i) else ""
        if name in self.imp.static and name not in self.imp.values:
            arr = self.imp.static[name]
            return TensorType(np_element_type(arr.dtype, f"input '{name}'"), list(arr.shape))
        return self.x(i).type

    def shape_of(self, i: int) -> tuple[int, ...] | None:
        return g.shape_of(self.type_of(i))

    def rank_of(self, i: int, why: str) -> int:
        s = self.shape_of(i)
        if s is None:
            raise self.error(f"{why} needs the rank of input '{self.proto.input[i]}', which shape inference left unknown")
        return len(s)

    def out_type(self, i: int = 0, *, elem: Attribute | None = None, shape: Sequence[int] | None = None) -> Attribute:
        """Type of output ``i``: inferred, else of element type ``elem`` (default: input 0's) and ``shape`` (default: unranked)."""
        inferred = self.imp.types.get(self.proto.output[i]) if i < len(self.proto.output) else None
        if isinstance(inferred, TensorType):
            if elem is None or inferred.element_type == elem:
                return inferred
        e = elem or (inferred.element_type if inferred is not None else None)
        if e is None:
            e = g.element_type(self.type_of(0)) if self.has(0) else f32
        return tensor_type(e, shape)

    # ---- emitting ----------------------------------------------------------------------------
    def emit(self, cls: type[IRDLOperation], operands: Sequence[SSAValue | Sequence[SSAValue]], result_type: Attribute | Sequence[Attribute], **props: Any) -> SSAValue:
        op = self.emit_op(cls, operands, result_type, **props)
        return op.results[0]

    def emit_op(self, cls: type[IRDLOperation], operands: Sequence[SSAValue | Sequence[SSAValue]], result_type: Attribute | Sequence[Attribute], **props: Any) -> Operation:
        results = [result_type] if isinstance(result_type, Attribute) else list(result_type)
        op = cls.create(operands=_flatten(operands), result_types=results,
                        properties={k: to_attr(v) for k, v in props.items() if v is not None})
        self.imp.block.add_op(op)
        return op

    def constant(self, values: Any, elem: Attribute, shape: Sequence[int] = ()) -> SSAValue:
        """A small ``graph.constant`` (``values`` broadcast to ``shape``)."""
        return self.imp.constant(np.broadcast_to(np.asarray(values), tuple(shape)), elem)

    def i64s(self, values: Sequence[int]) -> SSAValue:
        return self.constant(np.asarray(values, np.int64), i64, (len(values),))

    def scalar_like(self, value: float, like: SSAValue) -> SSAValue:
        """A rank-0 constant of ``like``'s element type."""
        return self.constant(value, g.element_type(like.type), ())


def _flatten(operands: Sequence[SSAValue | Sequence[SSAValue]]) -> list[SSAValue]:
    out: list[SSAValue] = []
    for o in operands:
        if isinstance(o, SSAValue):
            out.append(o)
        else:
            out.extend(o)
    return out


def source_name(node: onnx.NodeProto) -> str:
    """The name users know a node by: the module path torch's dynamo exporter records, else the node's name."""
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                break
            scopes = [str(x) for x in scopes if x] if isinstance(scopes, list) else []
            if scopes:  # module path, then the FX node: "encoder.layer.0.attention.self.query/linear"
                return "/".join(scopes[-2:]) if len(scopes) > 1 else scopes[0]
    return node.name


def node_label(node: onnx.NodeProto, index: int) -> str:
    """``node 'name'``, or for a node without a name its position and first output."""
    if node.name:
        return f"node '{node.name}'"
    out = next((o for o in node.output if o), "")
    return f"unnamed node #{index} with output '{out}'" if out else f"unnamed node #{index}"


# ---- the importer -------------------------------------------------------------------------------
Converter = Callable[[Node], "SSAValue | Sequence[SSAValue | None] | None"]
CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Register a converter for ONNX ``op_types`` (default domain)."""

    def register(fn: Converter) -> Converter:
        for t in op_types:
            assert t not in CONVERTERS, f"two converters for {t}"
            CONVERTERS[t] = fn
        return fn

    return register


class Importer:
    def __init__(self, loaded: Loaded, types: dict[str, Attribute], opset: int):
        self.loaded = loaded
        self.graph = loaded.model.graph
        self.opset = opset
        self.types = types
        self.block = Block()
        self.values: dict[str, SSAValue] = {}
        self.static: dict[str, np.ndarray] = {}
        self.static_kind: dict[str, str] = {}  # name -> "initializer" | "constant"
        self.aliases: dict[str, str] = {}
        self.constants: dict[tuple, SSAValue] = {}
        self.weights = WeightStore()
        self.producer: dict[str, int] = {o: i for i, n in enumerate(self.graph.node) for o in n.output if o}
        self.used: set[str] = {i for n in self.graph.node for i in n.input} | {o.name for o in self.graph.output}

    # ---- values ------------------------------------------------------------------------------
    def set_static(self, name: str, value: np.ndarray, kind: str) -> None:
        self.static[name] = value
        self.static_kind[name] = kind

    def alias(self, name: str, source: str) -> None:
        """``name`` is another name of the constant ``source`` (Identity of an initializer)."""
        self.aliases[name] = self.aliases.get(source, source)
        self.set_static(name, self.static[source], self.static_kind[source])

    def value(self, name: str, reader: Node | None = None) -> SSAValue:
        name = self.aliases.get(name, name)
        v = self.values.get(name)
        if v is not None:
            return v
        if name in self.static:
            v = self._materialize(name, self.static[name], self.static_kind[name])
            self.values[name] = v
            return v
        who = f"{reader.label} ({reader.op_type})" if reader is not None else "the graph"
        if name in self.producer:
            p = self.graph.node[self.producer[name]]
            raise FrontendError(f"{who} reads '{name}' before {node_label(p, self.producer[name])} ({p.op_type}) produces it: nodes are not topologically sorted")
        raise FrontendError(f"{who} reads '{name}', which no node, graph input or initializer produces (missing initializer?)")

    def constant(self, arr: np.ndarray, elem: Attribute) -> SSAValue:
        """A ``graph.constant`` holding ``arr`` (one op per distinct value and type)."""
        assert dense_safe(arr), "non-finite values do not survive the text of a dense attribute"
        key = (str(elem), arr.shape, np.ascontiguousarray(arr).tobytes())
        v = self.constants.get(key)
        if v is None:
            op = g.ConstantOp.create(result_types=[TensorType(elem, list(arr.shape))], properties={"value": dense(elem, arr.shape, arr)})
            self.block.add_op(op)
            v = self.constants[key] = op.results[0]
        return v

    def _materialize(self, name: str, arr: np.ndarray, kind: str) -> SSAValue:
        elem = np_element_type(arr.dtype, f"{kind} '{name}'")
        small_int = arr.dtype.kind in "biu" and arr.size <= SMALL_CONSTANT
        if small_int or (kind == "constant" and arr.size <= SMALL_CONSTANT and dense_safe(arr)):
            return self.constant(arr, elem)
        key, n = name, 1
        while key in self.weights:
            key, n = f"{name}_{n}", n + 1
        self.weights[key] = arr
        op = g.WeightOp(key, TensorType(elem, list(arr.shape)))
        self.block.add_op(op)
        return op.results[0]

    def _name_ops(self, last: Operation | None, name: str) -> None:
        """Tag the compute ops a node lowered to with its name (constants and weights are shared)."""
        if not name:
            return
        op = self.block.first_op if last is None else last.next_op
        while op is not None:
            if not isinstance(op, (g.ConstantOp, g.WeightOp)):
                op.attributes[g.NODE_ATTR] = StringAttr(name)
            op = op.next_op

    # ---- the graph ---------------------------------------------------------------------------
    def run(self) -> Model:
        graph = self.graph
        for name, arr in self.loaded.initializer_arrays().items():
            self.set_static(name, arr, "initializer")
        args = []
        for vi in graph.input:
            if vi.name in self.static:  # IR < 4: initializers listed as inputs (inputs with defaults)
                continue
            t = self.types.get(vi.name) or value_info_type(vi)
            arg = self.block.insert_arg(t, len(self.block.args))
            if vi.name.isidentifier():
                arg.name_hint = vi.name
            self.values[vi.name] = arg
            args.append(vi.name)
        for i, proto in enumerate(graph.node):
            node = Node(self, proto, i)
            if self._fold(node):
                continue
            last = self.block.last_op
            try:
                out = CONVERTERS[proto.op_type](node)
            except FrontendError:
                raise
            except Exception as e:  # a converter bug or an input it did not expect: still one line, naming the node
                raise node.error(f"conversion failed: {type(e).__name__}: {e}") from e
            self._bind(node, out)
            self._name_ops(last, source_name(proto))
        results = []
        for vi in graph.output:
            if vi.name not in self.values and vi.name not in self.static:
                raise FrontendError(f"graph output '{vi.name}' is not produced by any node, graph input or initializer")
            results.append(self.value(vi.name))
        self.block.add_op(ReturnOp(*results))
        _dead_code(self.block)
        live = {op.sym_name.data for op in self.block.ops if isinstance(op, g.WeightOp)}
        for name in [n for n in self.weights if n not in live]:  # read only by dead ops (CastLike's type source, ...)
            del self.weights[name]
        func = FuncOp(
            "main",
            ([a.type for a in self.block.args], [r.type for r in results]),
            Region(self.block),
            arg_attrs=ArrayAttr([DictionaryAttr({NAME_ATTR: StringAttr(n)}) for n in args]),
            res_attrs=ArrayAttr([DictionaryAttr({NAME_ATTR: StringAttr(vi.name)}) for vi in graph.output]),
        )
        module = ModuleOp([func])
        return Model(module, self.weights)

    def _fold(self, node: Node) -> bool:
        """Evaluate a node whose inputs are all small constants (onnx's reference implementation).

        Static parameters are often computed from constants (an axes list built
        by Concat, pads by Pad of a Shape of a static tensor); folding them lets
        the converters that need static values see them, and keeps the IR free of
        constant arithmetic.  ``Shape``/``Size`` of a tensor of static type fold too.
        """
        proto = node.proto
        if proto.op_type in _NO_FOLD or proto.domain not in DEFAULT_DOMAINS:
            return False
        names = [self.aliases.get(n, n) for n in proto.input]
        if proto.op_type in ("Shape", "Size") and names and names[0] not in self.static:
            v = self.values.get(names[0])
            s = g.shape_of(v.type) if v is not None else None
            if s is None or -1 in s:
                return False
            dims = np.array(s, np.int64)
            start, end = node.attr("start"), node.attr("end")
            value = dims[slice(start, end)] if proto.op_type == "Shape" else np.array(int(np.prod(dims)), np.int64)
            self.set_static(proto.output[0], value, "constant")
            return True
        feeds = {}
        for n in names:
            if n == "":
                continue
            arr = self.static.get(n)
            if arr is None or arr.size > FOLD_LIMIT:
                return False
            feeds[n] = arr
        if not feeds:
            return False
        try:
            from onnx.reference import ReferenceEvaluator

            renamed = onnx.NodeProto()
            renamed.CopyFrom(proto)
            del renamed.input[:]
            renamed.input.extend(names)
            outs = ReferenceEvaluator(renamed, opsets={"": self.opset}).run(None, feeds)
        except Exception:  # leave it to the converter (which names the problem)
            return False
        arrays = [np.asarray(o) for o in outs]
        if any(a.size > FOLD_LIMIT or a.dtype.kind not in "biuf" for a in arrays):
            return False
        for name, arr in zip(proto.output, arrays):
            if name:
                self.set_static(name, arr, "constant")
        return True

    def _bind(self, node: Node, out: SSAValue | Sequence[SSAValue | None] | None) -> None:
        names = node.outputs
        if out is None:  # the converter bound its outputs (aliases, static values)
            return
        outs = [out] if isinstance(out, SSAValue) else list(out)
        for i, name in enumerate(names):
            if not name:
                continue
            v = outs[i] if i < len(outs) else None
            if v is None:
                if name in self.static:
                    continue
                if name in self.used:
                    raise node.error(f"output {i} ('{name}') is not supported, but the graph uses it")
                continue
            self.values[name] = v


def value_info_type(vi: onnx.ValueInfoProto) -> Attribute:
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None:
        raise FrontendError(f"graph input '{vi.name}' is not a tensor (sequences, maps and optionals are not supported)")
    elem = element_type(tt.elem_type, f"graph input '{vi.name}'")
    if not tt.HasField("shape"):
        return UnrankedTensorType(elem)
    return tensor_type(elem, [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim])


def _dead_code(block: Block) -> None:
    """Erase ops whose results nobody reads (every graph op is pure)."""
    for op in reversed(list(block.ops)):
        if isinstance(op, ReturnOp):
            continue
        if all(not r.uses for r in op.results):
            op.detach()
            op.erase()

