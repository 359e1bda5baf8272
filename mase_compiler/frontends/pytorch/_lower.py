"""Translation of torch-mlir's torch dialect (parsed by xDSL) into the graph dialect.

Walks ``@main`` once, in order, and maps every torch value to one of:

* an xDSL ``SSAValue`` of the new graph function (a tensor computed at run time);
* a ``torch.Tensor`` known at import time: non-persistent buffers, lifted
  constants and the results of ops whose inputs are all known.  Such ops are
  *folded* by running the ATen op itself, so HF's mask and position-id
  arithmetic disappears for static shapes; a known tensor becomes a
  ``graph.constant`` (small or splat) or a weight-store entry when it is used;
* a :class:`Weight` (parameter or persistent buffer): ``graph.weight`` by FQN, never folded;
* a :class:`DynInt`: a symbolic size (``tensor<1xi64>`` at run time);
* a Python value: ``int``, ``float``, ``bool``, ``str``, ``None``, or a list.

Ops that cannot be converted poison their results and are collected; the
import then fails once, naming every unsupported op type with a location.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
    i1,
)
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from ...dialects import graph as g
from ...interpreter.dtypes import element_type_of, torch_dtype
from ...model import NAME_ATTR
from ...weights import WeightStore
from ..errors import FrontendError
from ._export import TorchMLIR
from ._torch_ir import VTensorType, builtin_element, op_name

# A known tensor with at most this many elements (or a splat) is held in the IR as graph.constant;
# a larger one goes to the weight store.
SMALL_CONSTANT = 64
INT64_MAX = 2**63 - 1


class Unsupported(Exception):
    """Raised by a converter for a configuration of a supported op that the frontend cannot express."""


@dataclass(frozen=True, eq=False)
class Weight:
    """A parameter or persistent buffer: ``graph.weight {name = <FQN>}``."""

    name: str
    tensor: torch.Tensor


@dataclass(frozen=True, eq=False)
class DynInt:
    """A symbolic integer (a dynamic size), held at run time as ``tensor<1xi64>``."""

    value: SSAValue


class _Poison:
    def __repr__(self) -> str:
        return "<poison>"


POISON = _Poison()


@dataclass(frozen=True)
class Unavailable:
    """A result the frontend does not produce (max_pool's indices); a use of it fails with ``reason``."""

    reason: str


Converter = Callable[..., Any]
CONVERTERS: dict[str, Converter] = {}


def converts(*names: str) -> Callable[[Converter], Converter]:
    """Register a converter for torch ops named without the ``torch.`` prefix (``aten.mm``, ``prim.ListConstruct``)."""

    def register(fn: Converter) -> Converter:
        for n in names:
            CONVERTERS[n] = fn
        return fn

    return register


# Ops never folded: their results are not a function of their inputs.
_NO_FOLD = ("aten.rand", "aten.randn", "aten.randint", "aten.bernoulli", "aten.native_dropout", "aten.empty",
            "aten.uniform", "aten.normal", "aten.multinomial", "aten.randperm", "aten.exponential")


def _flatten(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(_flatten(v))
        else:
            out.append(v)
    return out


def _is_known(v: Any) -> bool:
    return not isinstance(v, (SSAValue, Weight, DynInt, _Poison, Unavailable))


class Lowering:
    """One import: the torch function in, the graph function and its weights out."""

    def __init__(self, tm: TorchMLIR, weights: WeightStore):
        self.tm = tm
        self.weights = weights
        self.block = Block()
        self.env: dict[SSAValue, Any] = {}
        self.errors: dict[str, list[tuple[str, str]]] = {}  # op name -> [(location, detail)]
        self._materialized: dict[int, SSAValue] = {}
        self._keep: list[Any] = []  # keeps folded tensors alive while their id() is a cache key
        self._names: dict[int, str] = {}  # id(tensor) -> the name of a named constant
        self._n_constants = 0
        self._scalars: dict[tuple[Any, ...], torch.Tensor] = {}
        self._by_content: dict[tuple[Any, ...], SSAValue] = {}
        self._squeezed: dict[SSAValue, SSAValue] = {}  # DynInt value -> its 0-d form
        self.op: Operation | None = None  # the torch op being converted

    # ---- the walk ------------------------------------------------------------------------------
    def run(self, func: FuncOp, input_names: Sequence[str], output_names: Sequence[str] | None) -> ModuleOp:
        try:
            arg_types = [self.graph_type(a.type) for a in func.args]
        except Unsupported as e:
            raise FrontendError(f"inputs must be tensors of supported element types: {e}") from None
        for a, t in zip(func.args, arg_types):
            self.env[a] = self.block.insert_arg(t, len(self.block.args))
        ops = list(func.body.block.ops)
        outputs: list[SSAValue] = []
        for index, op in enumerate(ops):
            if isinstance(op, ReturnOp):
                outputs = self._outputs(op, index)
                continue
            self._convert(op, index)
        if self.errors:
            raise FrontendError(self._error_message())
        self.block.add_op(ReturnOp(*outputs))
        out_names = list(output_names) if output_names is not None else (
            ["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))])
        if len(out_names) != len(outputs):
            raise FrontendError(f"output_names must name {len(outputs)} outputs, not {len(out_names)}")
        main = FuncOp("main", (arg_types, [o.type for o in outputs]), Region(self.block),
                      arg_attrs=_name_attrs(input_names), res_attrs=_name_attrs(out_names))
        return ModuleOp([main])

    def _outputs(self, op: Operation, index: int) -> list[SSAValue]:
        outs = []
        for v in op.operands:
            x = self.env[v]
            if isinstance(x, _Poison):
                continue
            if not isinstance(x, (SSAValue, torch.Tensor, Weight)):
                self._record("func.return", index, f"outputs must be tensors, not {type(x).__name__}")
                continue
            outs.append(self.tensor(x))
        return outs

    def _convert(self, op: Operation, index: int) -> None:
        name = op_name(op)
        self.op = op
        args = [self.env[v] for v in op.operands]
        try:
            flat = _flatten(args)
            if any(isinstance(a, _Poison) for a in flat):
                results: Any = POISON
            elif unavailable := [a for a in flat if isinstance(a, Unavailable)]:
                raise Unsupported(unavailable[0].reason)
            elif name.startswith(("aten.", "prims.")) and all(map(_is_known, flat)) \
                    and (folded := self._fold(name, args)) is not None:
                results = folded
            elif name in CONVERTERS:
                results = CONVERTERS[name](self, *args)
            else:
                self._record(name, index, "")
                results = POISON
        except Unsupported as e:
            self._record(name, index, str(e))
            results = POISON
        except FrontendError:
            raise
        except Exception as e:  # a converter bug: name the op and where it came from
            loc = self.tm.locations[index] if index < len(self.tm.locations) else ""
            raise FrontendError(f"internal error converting {name} ({loc or 'unknown location'}): {type(e).__name__}: {e}") from e
        self._bind(op, results)

    def _bind(self, op: Operation, results: Any) -> None:
        n = len(op.results)
        if n == 0:
            return
        if n == 1:
            results = (results,)
        elif isinstance(results, _Poison):
            results = (POISON,) * n
        for r, v in zip(op.results, results, strict=True):
            self.env[r] = v

    def _record(self, name: str, index: int, detail: str) -> None:
        loc = self.tm.locations[index] if index < len(self.tm.locations) else ""
        self.errors.setdefault(name, []).append((loc, detail))

    def _error_message(self) -> str:
        lines = []
        for name, uses in self.errors.items():
            loc, detail = uses[0]
            more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
            lines.append(f"  {name}" + (f" ({loc})" if loc else "") + (f": {detail}" if detail else "") + more)
        kinds = "op" if len(lines) == 1 else "ops"
        return f"the PyTorch frontend cannot convert {len(lines)} {kinds}:\n" + "\n".join(lines)

    # ---- folding -------------------------------------------------------------------------------
    def _fold(self, name: str, args: list[Any]) -> Any:
        """Run the ATen op on known inputs; None when there is no such Python-callable op."""
        if name.startswith(_NO_FOLD):
            return None
        fn = _torch_op(name)
        if fn is None:
            return None
        try:
            pos, kw = _schema_call(fn, args)
            with torch.no_grad():
                out = fn(*pos, **kw)
        except Unsupported:
            raise
        except Exception:  # the op rejects these inputs in Python: let its converter (if any) try
            return None
        if isinstance(out, torch.Tensor):
            self._check_folded(out, 0)
        elif isinstance(out, (tuple, list)) and len(self.op.results) > 1:
            for i, t in enumerate(out):
                if isinstance(t, torch.Tensor):
                    self._check_folded(t, i)
        return out

    def _check_folded(self, t: torch.Tensor, i: int) -> None:
        want = self.op.results[i].type
        if isinstance(want, VTensorType):
            shape = tuple(t.shape)
            if len(shape) != len(want.shape) or any(w not in (-1, s) for w, s in zip(want.shape, shape)) \
                    or element_type_of(t.dtype) != builtin_element(want.element_type):
                raise FrontendError(f"internal error: folding {op_name(self.op)} gave {t.dtype}{list(shape)}, "
                                    f"torch-mlir says {want}")

    # ---- types ---------------------------------------------------------------------------------
    def graph_type(self, t: Attribute) -> TensorType:
        if not isinstance(t, VTensorType):
            raise Unsupported(f"expected a tensor type, got {t}")
        elem = builtin_element(t.element_type)
        try:
            torch_dtype(elem)
        except TypeError:
            raise Unsupported(f"element type {t.element_type} is not supported") from None
        return g.tensor_type(elem, t.shape)  # type: ignore[return-value]

    @property
    def op_name(self) -> str:
        assert self.op is not None
        return op_name(self.op)

    def out(self, i: int = 0) -> TensorType:
        """The graph type of the current torch op's result ``i``."""
        assert self.op is not None
        return self.graph_type(self.op.results[i].type)

    # ---- building ------------------------------------------------------------------------------
    def emit(self, cls: type[Operation], operands: Sequence[SSAValue], result_type: Attribute | Sequence[Attribute],
             **props: Attribute) -> SSAValue:
        types = list(result_type) if isinstance(result_type, (list, tuple)) else [result_type]
        op = cls.build(operands=[list(operands)] if cls in _VARIADIC_OPERANDS else list(operands),
                       result_types=[types] if cls in _VARIADIC_RESULTS else types, properties=props)
        self.block.add_op(op)
        return op.results[0] if len(op.results) == 1 else op.results  # type: ignore[return-value]

    def tensor(self, x: Any) -> SSAValue:
        """The run-time value of a tensor-like ``x`` (materializing known tensors and weights)."""
        if isinstance(x, SSAValue):
            return x
        if isinstance(x, Weight):
            return self._weight(x)
        if isinstance(x, torch.Tensor):
            return self._constant(x)
        if isinstance(x, DynInt):
            return x.value
        raise Unsupported(f"expected a tensor, got {type(x).__name__}")

    def _weight(self, w: Weight) -> SSAValue:
        key = id(w.tensor)
        if key not in self._materialized:
            if w.name not in self.weights:
                self.weights[w.name] = _numpy(w.tensor)
            t = g.tensor_type(element_type_of(w.tensor.dtype), tuple(w.tensor.shape))
            self._materialized[key] = self.emit(g.WeightOp, [], t, name=StringAttr(w.name))
            self._keep.append(w.tensor)
        return self._materialized[key]

    def _constant(self, t: torch.Tensor) -> SSAValue:
        key = id(t)
        if key in self._materialized:
            return self._materialized[key]
        try:
            elem = element_type_of(t.dtype)
        except TypeError:
            raise Unsupported(f"tensors of dtype {t.dtype} are not supported") from None
        ttype = g.tensor_type(elem, tuple(t.shape))
        flat = t.detach().reshape(-1)
        splat = flat.numel() > 0 and bool((flat == flat[0]).all())
        if flat.numel() <= SMALL_CONSTANT or splat:
            values = flat[:1] if splat else flat
            data = [float(v) for v in values.tolist()] if t.dtype.is_floating_point else [int(v) for v in values.tolist()]
            content = (t.dtype, tuple(t.shape), tuple(data))
            if content not in self._by_content:  # one graph.constant per distinct small value
                self._by_content[content] = self.emit(g.ConstantOp, [], ttype, value=DenseIntOrFPElementsAttr.from_list(ttype, data))
            v = self._by_content[content]
        else:
            name = self._names.get(key)
            while name is None or name in self.weights:
                name = f"constant{self._n_constants}"
                self._n_constants += 1
            self.weights[name] = _numpy(t)
            v = self.emit(g.WeightOp, [], ttype, name=StringAttr(name))
        self._materialized[key] = v
        self._keep.append(t)
        return v

    def name_constant(self, t: torch.Tensor, name: str) -> None:
        self._names[id(t)] = name
        self._keep.append(t)

    # ---- values --------------------------------------------------------------------------------
    def shape(self, x: Any) -> tuple[int, ...]:
        """Static shape with -1 for symbolic dims."""
        if isinstance(x, torch.Tensor):
            return tuple(x.shape)
        if isinstance(x, Weight):
            return tuple(x.tensor.shape)
        if isinstance(x, SSAValue):
            s = g.shape_of(x.type)
            if s is None:
                raise Unsupported("unranked tensors are not supported")
            return s
        raise Unsupported(f"expected a tensor, got {type(x).__name__}")

    def rank(self, x: Any) -> int:
        return len(self.shape(x))

    def dtype(self, x: Any) -> torch.dtype:
        if isinstance(x, torch.Tensor):
            return x.dtype
        if isinstance(x, Weight):
            return x.tensor.dtype
        if isinstance(x, SSAValue):
            return torch_dtype(x.type)
        if isinstance(x, DynInt):
            return torch.int64
        raise Unsupported(f"expected a tensor, got {type(x).__name__}")

    def cast(self, x: Any, elem: Attribute) -> SSAValue:
        v = self.tensor(x)
        if g.element_type(v.type) == elem:
            return v
        return self.emit(g.CastOp, [v], g.tensor_type(elem, g.shape_of(v.type)))

    def operand(self, x: Any, elem: Attribute) -> SSAValue:
        """A tensor, or a Python/dynamic scalar as a 0-d tensor, of element type ``elem``."""
        if isinstance(x, bool | int | float):
            return self.scalar(x, elem)
        if isinstance(x, DynInt):
            if x.value not in self._squeezed:
                self._squeezed[x.value] = self.emit(g.SqueezeOp, [x.value], g.tensor_type(IntegerType(64), ()), axes=g.i64_array([0]))
            return self.cast(self._squeezed[x.value], elem)
        return self.cast(x, elem)

    def scalar(self, value: float | int | bool, elem: Attribute) -> SSAValue:
        """A 0-d constant (one per value and element type)."""
        key = (type(value), value, str(elem))
        if key not in self._scalars:
            self._scalars[key] = torch.tensor(value, dtype=torch_dtype(elem))
        return self._constant(self._scalars[key])

    def ints(self, x: Any, what: str = "value") -> list[int]:
        """A static list of ints (a single int becomes a one-element list)."""
        items = x if isinstance(x, (list, tuple)) else [x]
        if isinstance(x, torch.Tensor):
            items = x.tolist()
        if not all(isinstance(v, int) for v in items):
            raise Unsupported(f"{what} must be static, not symbolic")
        return [int(v) for v in items]

    def shape_operand(self, items: Sequence[int | DynInt]) -> SSAValue:
        """A 1-d i64 tensor of sizes; dynamic entries are concatenated in."""
        i64 = IntegerType(64)
        if all(isinstance(v, int) for v in items):
            return self._constant(torch.tensor(list(items), dtype=torch.int64))
        pieces: list[SSAValue] = []
        run: list[int] = []
        for v in items:
            if isinstance(v, DynInt):
                if run:
                    pieces.append(self._constant(torch.tensor(run, dtype=torch.int64)))
                    run = []
                pieces.append(v.value)
            elif isinstance(v, int):
                run.append(v)
            else:
                raise Unsupported(f"sizes must be ints, not {type(v).__name__}")
        if run:
            pieces.append(self._constant(torch.tensor(run, dtype=torch.int64)))
        if len(pieces) == 1:
            return pieces[0]
        return self.emit(g.ConcatOp, pieces, g.tensor_type(i64, (len(items),)), axis=g.int_attr(0))

    def as_bool(self, x: Any) -> SSAValue:
        """``x`` as an i1 tensor (``x != 0`` for numbers)."""
        v = self.scalar(x, i1) if isinstance(x, bool | int | float) else self.tensor(x)
        if g.element_type(v.type) == i1:
            return v
        eq = self.emit(g.EqualOp, [v, self.scalar(0, g.element_type(v.type))], g.tensor_type(i1, g.shape_of(v.type)))
        return self.emit(g.NotOp, [eq], eq.type)

    def fill(self, sizes: Sequence[int | DynInt], value: bool | int | float, dtype: torch.dtype) -> Any:
        """A tensor of ``sizes`` filled with ``value``: known (a splat constant when used), or
        ``graph.constant_of_shape`` when a size is symbolic."""
        if all(isinstance(d, int) for d in sizes):
            return torch.full(list(sizes), value, dtype=dtype)
        elem = element_type_of(dtype)
        data = [float(value)] if dtype.is_floating_point else [int(value)]
        return self.emit(g.ConstantOfShapeOp, [self.shape_operand(sizes)], g.tensor_type(elem, [d if isinstance(d, int) else -1 for d in sizes]),
                         value=DenseIntOrFPElementsAttr.from_list(g.tensor_type(elem, (1,)), data))

    def dim(self, x: Any, d: int) -> int | DynInt:
        """Size of dim ``d`` of ``x``: an int, or a DynInt read from the tensor at run time."""
        s = self.shape(x)
        d = d % len(s)
        if s[d] >= 0:
            return s[d]
        v = self.emit(g.ShapeOp, [self.tensor(x)], g.tensor_type(IntegerType(64), (1,)), start=g.int_attr(d), end=g.int_attr(d + 1))
        return DynInt(v)


# The graph ops whose operands (results) are one variadic group: build() takes them as one list.
_VARIADIC_OPERANDS = {g.ConcatOp}
_VARIADIC_RESULTS = {g.SplitOp}


def _name_attrs(names: Sequence[str]) -> ArrayAttr:
    return ArrayAttr([DictionaryAttr({NAME_ATTR: StringAttr(n)}) for n in names])


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A read-only numpy view of ``t``'s memory (bf16 through ml_dtypes).

    The weight store shares the module's parameters instead of copying them (a
    copy doubled peak memory: 2.2x the weights for MiniLM); masec never writes
    through these views, and passes that change weights put new entries.
    """
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        arr = t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
        arr = t.numpy()
    arr.flags.writeable = False
    return arr


# ---- calling ATen ops on known values ------------------------------------------------------------
def _torch_op(name: str) -> Any:
    ns, _, rest = name.partition(".")
    base, _, overload = rest.partition(".")
    try:
        packet = getattr(getattr(torch.ops, ns), base)
        return getattr(packet, overload or "default")
    except Exception:  # torch.ops raises AttributeError or RuntimeError for unknown ops
        return None


def _dtype_table() -> dict[int, torch.dtype]:
    from torch_mlir.extras.fx_importer import TORCH_DTYPE_TO_INT

    return {v: k for k, v in TORCH_DTYPE_TO_INT.items()}


def _layout_table() -> dict[int, Any]:
    from torch_mlir.extras.fx_importer import TORCH_LAYOUT_TO_INT

    return {v: k for k, v in TORCH_LAYOUT_TO_INT.items()}


def _memory_format_table() -> dict[int, Any]:
    from torch_mlir.extras.fx_importer import TORCH_MEMORY_FORMAT_TO_INT

    return {v: k for k, v in TORCH_MEMORY_FORMAT_TO_INT.items()}


def _dtype_of_code(code: int) -> torch.dtype:
    try:
        return _dtype_table()[code]
    except KeyError:
        raise Unsupported(f"dtype code {code} is not supported") from None


def _schema_call(fn: Any, args: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """torch-mlir passes every schema argument positionally; split them for the Python call."""
    pos: list[Any] = []
    kw: dict[str, Any] = {}
    for a, v in zip(fn._schema.arguments, args):
        t = str(a.type)
        if v is not None:
            if "ScalarType" in t:
                v = _dtype_of_code(v)
            elif "Layout" in t:
                v = _layout_table()[v]
            elif "MemoryFormat" in t:
                v = _memory_format_table()[v]
            elif "Device" in t:
                v = torch.device(v)
        if a.kwarg_only:
            kw[a.name] = v
        else:
            pos.append(v)
    return pos, kw


def float_attr(v: float) -> FloatAttr:
    return FloatAttr(float(v), f32)


def norm_axis(d: int, rank: int) -> int:
    """A non-negative dim index (rank 0 takes 0 and -1 as 0)."""
    return d % rank if rank else 0
