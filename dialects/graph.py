"""The ``graph`` dialect: the canonical tensor ops that ONNX and ATen lower to.

Every frontend maps its hundreds of source ops onto this set; every pass,
backend and the reference interpreter sees only these.  Values are builtin
tensors (``tensor<?x128xf32>``; ``?`` is a symbolic dimension).  Parameters are
not stored in the IR: ``graph.weight {name = "..."}`` refers to an entry of the
weight store (``mase_compiler.weights``), so the text of a large model stays
small.  Semantics follow ONNX (numpy broadcasting, negative axes count from the
end) unless an op's docstring says otherwise.

All ops share one textual form::

    %y = graph.softmax %x {axis = -1 : i64} : (tensor<2x8xf32>) -> tensor<2x8xf32>
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnrankedTensorType,
    i1,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    AnyOf,
    base,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    opt_prop_def,
    operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import ConstantLike, Pure
from xdsl.utils.exceptions import VerifyException

TensorLike = AnyOf([base(TensorType), base(UnrankedTensorType)])

_FORMAT = "operands attr-dict `:` functional-type(operands, results)"


# ---- helpers shared by verifiers, frontends and the interpreter ---------------------------------
def shape_of(t: Attribute) -> tuple[int, ...] | None:
    """Static shape with -1 for symbolic dims, or None for an unranked tensor."""
    if isinstance(t, TensorType):
        return tuple(-1 if d == DYNAMIC_INDEX else d for d in t.get_shape())
    return None


def tensor_type(element: Attribute, shape: Sequence[int | None] | None) -> TensorType | UnrankedTensorType:
    """Tensor type with -1 or None for symbolic dims (xDSL's own marker is DYNAMIC_INDEX); None shape: unranked."""
    if shape is None:
        return UnrankedTensorType(element)
    return TensorType(element, [DYNAMIC_INDEX if d is None or d < 0 else d for d in shape])


def element_type(t: Attribute) -> Attribute:
    assert isinstance(t, (TensorType, UnrankedTensorType))
    return t.element_type


def broadcast_shapes(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """numpy broadcast of two shapes with -1 for unknown dims; None if they cannot broadcast."""
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else 1
        db = b[len(b) - 1 - i] if i < len(b) else 1
        if da == 1:
            out.append(db)
        elif db == 1 or da == db:
            out.append(da)
        elif da == -1 or db == -1:
            out.append(max(da, db))
        else:
            return None
    return tuple(reversed(out))


def is_float(t: Attribute) -> bool:
    """Whether ``t`` is a floating-point element type."""
    return isinstance(t, (Float16Type, BFloat16Type, Float32Type, Float64Type))


def dense(elem: Attribute, shape: Sequence[int], values: np.ndarray | float | int) -> DenseIntOrFPElementsAttr:
    """A dense attribute of type ``tensor<shape x elem>``; a tensor of equal values is written as a splat."""
    flat = np.asarray(values).reshape(-1)
    if flat.size > 1 and (flat == flat[0]).all():
        flat = flat[:1]
    data = [float(v) for v in flat] if is_float(elem) else [int(v) for v in flat]
    return DenseIntOrFPElementsAttr.from_list(TensorType(elem, list(shape)), data)


def i64_array(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def int_attr(v: int) -> IntegerAttr:
    return IntegerAttr(v, i64)


NODE_ATTR = "graph.node"
"""Discardable attribute naming the source node an op came from (ONNX node or module path).

Frontends set it on compute ops; pipelines select ops by it (``quantize{skip=...}``) and
reports show it.  Not unique: one source node may lower to several ops."""


def node_name(op: Operation) -> str | None:
    """The source-node name of ``op``, if the frontend recorded one."""
    a = op.attributes.get(NODE_ATTR)
    return a.data if isinstance(a, StringAttr) else None


class GraphOp(IRDLOperation):
    """Base of every graph op: one textual form, properties shown in the attribute dictionary."""

    assembly_format = _FORMAT
    irdl_options = (ParsePropInAttrDict(),)

    def fail(self, msg: str) -> None:
        raise VerifyException(f"'{self.name}' op {msg}")

    def check_axis(self, axis: int, rank: int | None, what: str = "axis") -> None:
        if rank is not None and not -max(rank, 1) <= axis < max(rank, 1):
            self.fail(f"expected {what} in [{-rank}, {rank - 1}] for rank {rank}, got {axis}")

    def rank(self, value: SSAValue) -> int | None:
        s = shape_of(value.type)
        return None if s is None else len(s)


# ---- elementwise ----------------------------------------------------------------------------------
class UnaryOp(GraphOp):
    """Elementwise op with one operand; the result has the operand's type."""

    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())
    SAME_ELEMENT_TYPE: ClassVar[bool] = True

    def verify_(self) -> None:
        si, so = shape_of(self.input.type), shape_of(self.result.type)
        if si is not None and so is not None and len(si) != len(so):
            self.fail(f"expected result rank {len(si)}, got {len(so)}")
        if self.SAME_ELEMENT_TYPE and element_type(self.input.type) != element_type(self.result.type):
            self.fail(f"expected result element type {element_type(self.input.type)}, got {element_type(self.result.type)}")


def _unary(op_name: str, doc: str, same: bool = True) -> type[UnaryOp]:
    cls = type(op_name.title().replace("_", "") + "Op", (UnaryOp,), {"name": f"graph.{op_name}", "__doc__": doc, "SAME_ELEMENT_TYPE": same, "__annotations__": {"SAME_ELEMENT_TYPE": ClassVar[bool]}})
    return irdl_op_definition(cls)


NegOp = _unary("neg", "-x")
AbsOp = _unary("abs", "|x|")
ExpOp = _unary("exp", "e^x")
LogOp = _unary("log", "natural logarithm")
SqrtOp = _unary("sqrt", "square root")
RsqrtOp = _unary("rsqrt", "1/sqrt(x)")
ReciprocalOp = _unary("reciprocal", "1/x")
SinOp = _unary("sin", "sine")
CosOp = _unary("cos", "cosine")
TanhOp = _unary("tanh", "hyperbolic tangent")
SigmoidOp = _unary("sigmoid", "1/(1+e^-x)")
ReluOp = _unary("relu", "max(x, 0)")
ErfOp = _unary("erf", "error function")
FloorOp = _unary("floor", "round towards -inf")
CeilOp = _unary("ceil", "round towards +inf")
RoundOp = _unary("round", "round half to even")
SignOp = _unary("sign", "-1, 0 or 1")
SiluOp = _unary("silu", "x * sigmoid(x)")
SoftplusOp = _unary("softplus", "log(1 + e^x)")
NotOp = _unary("not", "logical not of an i1 tensor")
IsNanOp = _unary("isnan", "i1 mask of NaN elements", same=False)
IsInfOp = _unary("isinf", "i1 mask of ±Inf elements", same=False)
CastOp = _unary("cast", "conversion to the result's element type (floats to ints truncate towards zero, as ONNX Cast)", same=False)


@irdl_op_definition
class GeluOp(UnaryOp):
    """Gaussian error linear unit; ``approximate`` is ``none`` (erf) or ``tanh``."""

    name = "graph.gelu"
    approximate = prop_def(StringAttr, default_value=StringAttr("none"))

    def verify_(self) -> None:
        super().verify_()
        if self.approximate.data not in ("none", "tanh"):
            self.fail(f"expected approximate to be none or tanh, got {self.approximate.data!r}")


@irdl_op_definition
class LeakyReluOp(UnaryOp):
    """x if x >= 0 else alpha * x."""

    name = "graph.leaky_relu"
    alpha = prop_def(FloatAttr)


@irdl_op_definition
class ClipOp(UnaryOp):
    """clamp(x, min, max); a missing bound is unbounded."""

    name = "graph.clip"
    min = opt_prop_def(FloatAttr)
    max = opt_prop_def(FloatAttr)


class BinaryOp(GraphOp):
    """Elementwise op with numpy broadcasting of its two operands."""

    lhs = operand_def(TensorLike)
    rhs = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())
    RESULT_IS_BOOL: ClassVar[bool] = False

    def verify_(self) -> None:
        tl, tr = element_type(self.lhs.type), element_type(self.rhs.type)
        if tl != tr and self.name != "graph.pow":
            self.fail(f"expected operands of one element type, got {tl} and {tr}")
        want = i1 if self.RESULT_IS_BOOL else tl
        if element_type(self.result.type) != want:
            self.fail(f"expected result element type {want}, got {element_type(self.result.type)}")
        sl, sr, so = shape_of(self.lhs.type), shape_of(self.rhs.type), shape_of(self.result.type)
        if sl is not None and sr is not None:
            b = broadcast_shapes(sl, sr)
            if b is None:
                self.fail(f"expected broadcastable operand shapes, got {list(sl)} and {list(sr)}")
            if so is not None and len(so) != len(b):
                self.fail(f"expected result rank {len(b)}, got {len(so)}")


def _binary(op_name: str, doc: str, boolean: bool = False) -> type[BinaryOp]:
    cls = type(op_name.title().replace("_", "") + "Op", (BinaryOp,), {"name": f"graph.{op_name}", "__doc__": doc, "RESULT_IS_BOOL": boolean, "__annotations__": {"RESULT_IS_BOOL": ClassVar[bool]}})
    return irdl_op_definition(cls)


AddOp = _binary("add", "lhs + rhs")
SubOp = _binary("sub", "lhs - rhs")
MulOp = _binary("mul", "lhs * rhs")
DivOp = _binary("div", "lhs / rhs (integers truncate towards zero, as ONNX Div)")
PowOp = _binary("pow", "lhs ** rhs (exponent may have another element type)")
MaxOp = _binary("max", "elementwise maximum")
MinOp = _binary("min", "elementwise minimum")
AndOp = _binary("and", "logical and of i1 tensors")
OrOp = _binary("or", "logical or of i1 tensors")
XorOp = _binary("xor", "logical xor of i1 tensors")
EqualOp = _binary("equal", "lhs == rhs", boolean=True)
LessOp = _binary("less", "lhs < rhs", boolean=True)
LessEqualOp = _binary("less_equal", "lhs <= rhs", boolean=True)
GreaterOp = _binary("greater", "lhs > rhs", boolean=True)
GreaterEqualOp = _binary("greater_equal", "lhs >= rhs", boolean=True)


@irdl_op_definition
class ModOp(BinaryOp):
    """Remainder: sign of the divisor (``fmod=0``, ONNX Mod on integers) or of the dividend (``fmod=1``)."""

    name = "graph.mod"
    fmod = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))


@irdl_op_definition
class WhereOp(GraphOp):
    """cond ? x : y with broadcasting."""

    name = "graph.where"
    cond = operand_def(TensorLike)
    x = operand_def(TensorLike)
    y = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if element_type(self.cond.type) != i1:
            self.fail(f"expected condition of element type i1, got {element_type(self.cond.type)}")
        if element_type(self.x.type) != element_type(self.y.type):
            self.fail(f"expected branches of one element type, got {element_type(self.x.type)} and {element_type(self.y.type)}")


# ---- linear algebra and neural-network ops ------------------------------------------------------
@irdl_op_definition
class MatmulOp(GraphOp):
    """numpy matmul: batch dims broadcast, ``[..., m, k] @ [..., k, n]``; 1-d operands as numpy."""

    name = "graph.matmul"
    lhs = operand_def(TensorLike)
    rhs = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        sl, sr = shape_of(self.lhs.type), shape_of(self.rhs.type)
        if element_type(self.lhs.type) != element_type(self.rhs.type):
            self.fail(f"expected operands of one element type, got {element_type(self.lhs.type)} and {element_type(self.rhs.type)}")
        if sl is not None and sr is not None:
            if not sl or not sr:
                self.fail("expected operands of rank >= 1")
            k1 = sl[-1]
            k2 = sr[-2] if len(sr) >= 2 else sr[0]
            if k1 != -1 and k2 != -1 and k1 != k2:
                self.fail(f"expected contracting dimensions to match, got {k1} and {k2}")


@irdl_op_definition
class ConvOp(GraphOp):
    """N-d convolution (ONNX Conv): ``x[N, C, *]``, ``w[M, C/group, *k]``, ``bias[M]``.

    ``pads`` holds the begin pads of every spatial dim, then the end pads.
    """

    name = "graph.conv"
    input = operand_def(TensorLike)
    weight = operand_def(TensorLike)
    bias = operand_def(TensorLike)
    result = result_def(TensorLike)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    group = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        r = self.rank(self.input)
        if r is not None:
            n = r - 2
            for key, want in (("strides", n), ("dilations", n), ("pads", 2 * n)):
                got = len(getattr(self, key).get_values())
                if got != want:
                    self.fail(f"expected {want} {key} for {n} spatial dims, got {got}")


class PoolOp(GraphOp):
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    kernel_shape = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    ceil_mode = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    traits = traits_def(Pure())


@irdl_op_definition
class MaxPoolOp(PoolOp):
    """N-d max pooling (ONNX MaxPool, single output)."""

    name = "graph.max_pool"


@irdl_op_definition
class AvgPoolOp(PoolOp):
    """N-d average pooling (ONNX AveragePool)."""

    name = "graph.avg_pool"
    count_include_pad = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))


@irdl_op_definition
class BatchNormOp(GraphOp):
    """Inference batch normalization over dim 1: ``(x - mean) / sqrt(var + eps) * scale + bias``."""

    name = "graph.batch_norm"
    input = operand_def(TensorLike)
    scale = operand_def(TensorLike)
    bias = operand_def(TensorLike)
    mean = operand_def(TensorLike)
    var = operand_def(TensorLike)
    result = result_def(TensorLike)
    epsilon = prop_def(FloatAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class LayerNormOp(GraphOp):
    """Normalize over dims ``axis..rank-1``, then ``* scale + bias`` (ONNX LayerNormalization)."""

    name = "graph.layer_norm"
    input = operand_def(TensorLike)
    scale = operand_def(TensorLike)
    bias = operand_def(TensorLike)
    result = result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    epsilon = prop_def(FloatAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self.check_axis(self.axis.value.data, self.rank(self.input))


@irdl_op_definition
class RmsNormOp(GraphOp):
    """``x / sqrt(mean(x^2 over axis..) + eps) * scale`` (LLaMA RMSNorm)."""

    name = "graph.rms_norm"
    input = operand_def(TensorLike)
    scale = operand_def(TensorLike)
    result = result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    epsilon = prop_def(FloatAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self.check_axis(self.axis.value.data, self.rank(self.input))


class AxisOp(GraphOp):
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self.check_axis(self.axis.value.data, self.rank(self.input))


@irdl_op_definition
class SoftmaxOp(AxisOp):
    """exp(x) / sum(exp(x)) along ``axis``."""

    name = "graph.softmax"


@irdl_op_definition
class LogSoftmaxOp(AxisOp):
    """log(softmax(x)) along ``axis``."""

    name = "graph.log_softmax"


@irdl_op_definition
class CumsumOp(AxisOp):
    """Cumulative sum along ``axis`` (ONNX CumSum)."""

    name = "graph.cumsum"
    exclusive = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    reverse = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))


@irdl_op_definition
class FlattenOp(GraphOp):
    """Reshape to 2-d ``[prod(dims[:axis]), prod(dims[axis:])]``."""

    name = "graph.flatten"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    traits = traits_def(Pure())


class ReduceOp(GraphOp):
    """Reduction over ``axes`` (empty: all axes)."""

    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    axes = prop_def(DenseArrayBase)
    keepdims = prop_def(IntegerAttr, default_value=IntegerAttr(1, i64))
    traits = traits_def(Pure())

    def verify_(self) -> None:
        axes = self.axes.get_values()
        r = self.rank(self.input)
        for a in axes:
            self.check_axis(a, r, "axes")
        if r is not None and len({a % max(r, 1) for a in axes}) != len(axes):
            self.fail(f"expected distinct axes, got {list(axes)}")


def _reduce(op_name: str, doc: str) -> type[ReduceOp]:
    cls = type(op_name.title().replace("_", "") + "Op", (ReduceOp,), {"name": f"graph.{op_name}", "__doc__": doc})
    return irdl_op_definition(cls)


ReduceSumOp = _reduce("reduce_sum", "sum over axes")
ReduceMeanOp = _reduce("reduce_mean", "mean over axes")
ReduceMaxOp = _reduce("reduce_max", "maximum over axes")
ReduceMinOp = _reduce("reduce_min", "minimum over axes")
ReduceProdOp = _reduce("reduce_prod", "product over axes")


class ArgOp(AxisOp):
    keepdims = prop_def(IntegerAttr, default_value=IntegerAttr(1, i64))
    select_last_index = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))


@irdl_op_definition
class ArgmaxOp(ArgOp):
    """Index (i64) of the maximum along ``axis``."""

    name = "graph.argmax"


@irdl_op_definition
class ArgminOp(ArgOp):
    """Index (i64) of the minimum along ``axis``."""

    name = "graph.argmin"


# ---- data movement --------------------------------------------------------------------------------
@irdl_op_definition
class TransposeOp(GraphOp):
    """Permute dims: ``result.shape[i] = input.shape[perm[i]]``."""

    name = "graph.transpose"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    perm = prop_def(DenseArrayBase)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        perm = list(self.perm.get_values())
        r = self.rank(self.input)
        if r is not None and sorted(perm) != list(range(r)):
            self.fail(f"expected perm to be a permutation of 0..{r - 1}, got {perm}")


@irdl_op_definition
class ReshapeOp(GraphOp):
    """Reshape to the i64 ``shape`` operand (0 copies the input dim unless allowzero, -1 infers)."""

    name = "graph.reshape"
    input = operand_def(TensorLike)
    shape = operand_def(TensorLike)
    result = result_def(TensorLike)
    allowzero = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    traits = traits_def(Pure())


@irdl_op_definition
class ExpandOp(GraphOp):
    """Broadcast to the i64 ``shape`` operand (numpy rules, ONNX Expand)."""

    name = "graph.expand"
    input = operand_def(TensorLike)
    shape = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())


@irdl_op_definition
class TileOp(GraphOp):
    """Repeat ``input`` ``repeats[i]`` times along dim i."""

    name = "graph.tile"
    input = operand_def(TensorLike)
    repeats = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())


@irdl_op_definition
class SqueezeOp(GraphOp):
    """Remove size-1 dims ``axes`` (empty: every size-1 dim)."""

    name = "graph.squeeze"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    axes = prop_def(DenseArrayBase)
    traits = traits_def(Pure())


@irdl_op_definition
class UnsqueezeOp(GraphOp):
    """Insert size-1 dims at ``axes`` (positions in the result)."""

    name = "graph.unsqueeze"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    axes = prop_def(DenseArrayBase)
    traits = traits_def(Pure())


@irdl_op_definition
class ConcatOp(GraphOp):
    """Concatenate along ``axis``."""

    name = "graph.concat"
    inputs = var_operand_def(TensorLike)
    result = result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if not self.inputs:
            self.fail("expected at least one operand")
        self.check_axis(self.axis.value.data, self.rank(self.result))


@irdl_op_definition
class SplitOp(GraphOp):
    """Split along ``axis`` into pieces of ``sizes``."""

    name = "graph.split"
    input = operand_def(TensorLike)
    outputs = var_result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    sizes = prop_def(DenseArrayBase)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if len(self.sizes.get_values()) != len(self.outputs):
            self.fail(f"expected {len(self.outputs)} sizes for {len(self.outputs)} results, got {len(self.sizes.get_values())}")


@irdl_op_definition
class SliceOp(GraphOp):
    """ONNX Slice: i64 operands ``starts``, ``ends``, ``axes``, ``steps`` (clamped as ONNX)."""

    name = "graph.slice"
    input = operand_def(TensorLike)
    starts = operand_def(TensorLike)
    ends = operand_def(TensorLike)
    axes = operand_def(TensorLike)
    steps = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())


class _GatherBase(GraphOp):
    input = operand_def(TensorLike)
    indices = operand_def(TensorLike)
    result = result_def(TensorLike)
    axis = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self.check_axis(self.axis.value.data, self.rank(self.input))


@irdl_op_definition
class GatherOp(_GatherBase):
    """``input`` indexed by ``indices`` along ``axis`` (embedding lookup on axis 0)."""

    name = "graph.gather"


@irdl_op_definition
class GatherElementsOp(_GatherBase):
    """torch.gather along ``axis``."""

    name = "graph.gather_elements"


@irdl_op_definition
class GatherNdOp(GraphOp):
    """ONNX GatherND."""

    name = "graph.gather_nd"
    input = operand_def(TensorLike)
    indices = operand_def(TensorLike)
    result = result_def(TensorLike)
    batch_dims = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    traits = traits_def(Pure())


@irdl_op_definition
class PadOp(GraphOp):
    """ONNX Pad with ``pads`` (begin pads then end pads, i64) and a scalar fill ``value``."""

    name = "graph.pad"
    input = operand_def(TensorLike)
    pads = operand_def(TensorLike)
    value = operand_def(TensorLike)
    result = result_def(TensorLike)
    mode = prop_def(StringAttr, default_value=StringAttr("constant"))
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if self.mode.data not in ("constant", "reflect", "edge", "wrap"):
            self.fail(f"expected mode constant, reflect, edge or wrap, got {self.mode.data!r}")


@irdl_op_definition
class TriluOp(GraphOp):
    """Upper (``upper=1``) or lower triangle of the last two dims, shifted by the scalar ``k``."""

    name = "graph.trilu"
    input = operand_def(TensorLike)
    k = operand_def(TensorLike)
    result = result_def(TensorLike)
    upper = prop_def(IntegerAttr, default_value=IntegerAttr(1, i64))
    traits = traits_def(Pure())


@irdl_op_definition
class ResizeOp(GraphOp):
    """Resize by static ``scales`` (or to ``sizes``); modes ``nearest`` and ``linear``."""

    name = "graph.resize"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    mode = prop_def(StringAttr)
    coordinate_transformation_mode = prop_def(StringAttr)
    nearest_mode = prop_def(StringAttr)
    scales = opt_prop_def(DenseArrayBase)
    sizes = opt_prop_def(DenseArrayBase)
    traits = traits_def(Pure())


# ---- shape computation ----------------------------------------------------------------------------
@irdl_op_definition
class ShapeOp(GraphOp):
    """The i64 shape of ``input`` (dims ``start:end`` when given, as ONNX Shape)."""

    name = "graph.shape"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    start = opt_prop_def(IntegerAttr)
    end = opt_prop_def(IntegerAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class ConstantOfShapeOp(GraphOp):
    """A tensor of the i64 ``shape`` operand filled with the scalar ``value``."""

    name = "graph.constant_of_shape"
    shape = operand_def(TensorLike)
    result = result_def(TensorLike)
    value = prop_def(DenseIntOrFPElementsAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class RangeOp(GraphOp):
    """``arange(start, limit, delta)`` from scalar operands."""

    name = "graph.range"
    start = operand_def(TensorLike)
    limit = operand_def(TensorLike)
    delta = operand_def(TensorLike)
    result = result_def(TensorLike)
    traits = traits_def(Pure())


# ---- values ---------------------------------------------------------------------------------------
@irdl_op_definition
class ConstantOp(GraphOp):
    """A small constant held in the IR (shapes, indices, scalars)."""

    name = "graph.constant"
    assembly_format = "attr-dict `:` type($result)"
    result = result_def(TensorType)
    value = prop_def(DenseIntOrFPElementsAttr)
    traits = traits_def(ConstantLike(), Pure())

    def verify_(self) -> None:
        if self.value.type != self.result.type:
            self.fail(f"expected value of type {self.result.type}, got {self.value.type}")


@irdl_op_definition
class WeightOp(GraphOp):
    """A parameter held in the weight store under ``name`` (kept out of the IR text)."""

    name = "graph.weight"
    assembly_format = "attr-dict `:` type($result)"
    result = result_def(TensorType)
    sym_name = prop_def(StringAttr, prop_name="name")
    traits = traits_def(ConstantLike(), Pure())

    def __init__(self, name: str, result_type: TensorType):
        super().__init__(result_types=[result_type], properties={"name": StringAttr(name)})

    def verify_(self) -> None:
        if not self.sym_name.data:
            self.fail("expected a non-empty weight name")
        if -1 in shape_of(self.result.type):
            self.fail(f"expected a static shape, got {self.result.type}")


OPS: list[type[IRDLOperation]] = [
    v for v in list(globals().values())
    if isinstance(v, type) and issubclass(v, GraphOp) and getattr(v, "name", "").startswith("graph.")
]

Graph = Dialect("graph", OPS, [])

__all__ = ["Graph", "GraphOp", "OPS", "broadcast_shapes", "element_type", "i64_array", "int_attr", "shape_of", "tensor_type"]
_ = (ArrayAttr, IntegerType)  # re-exported types used by frontends
