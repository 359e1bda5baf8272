"""The ``dataflow`` dialect: integer kernels as the hardware computes them (issue 6, first ops).

``lower-dataflow`` turns statically quantized integer layers of the graph + quant IR into these
ops; the interpreter runs them with the exact integer arithmetic of
:mod:`mase_compiler.numerics.requant` (its *hardware-exact mode*), which the SystemVerilog and
HLS components reproduce bit for bit.  Parameters (scales too: a printed float attribute would round them) live in the weight store,
named by properties::

    %xq = dataflow.quantize %x {scale = "x.scale", zero_point = 0 : i64, lo = -128 : i64, hi = 127 : i64}
          : (tensor<?x16xf32>) -> tensor<?x16xi8>
    %hq = dataflow.linear %xq {weight = "w1.codes", bias = "w1.bias_q", multiplier = "w1.m", shift = "w1.s",
          zp_in = 0 : i64, zp_out = 0 : i64, lo = 0 : i64, hi = 127 : i64} : (tensor<?x16xi8>) -> tensor<?x8xi8>
    %acc = dataflow.linear %hq {weight = "w2.codes", bias = "w2.bias_q", zp_in = 0 : i64, ...}
          : (tensor<?x8xi8>) -> tensor<?x4xi32>             (no multiplier: the int32 accumulator)
    %y = dataflow.dequantize %acc {scale = "w2.acc_scale", zero_point = 0 : i64} : (tensor<?x4xi32>) -> tensor<?x4xf32>

Beyond the linear layer (a whole transformer or CNN block on integer hardware), each op is the
integer arithmetic of one function of :mod:`mase_compiler.numerics.intops`:

    dataflow.requant      codes on one grid to another (per channel along the last axis)
    dataflow.add          two integer streams on different grids, one rounding (residual connections)
    dataflow.lut          an elementwise function tabulated on every input code (GELU, sigmoid, ...)
    dataflow.gather       data movement within one item by an index table (transpose, head split, im2col)
    dataflow.matmul       two activations (attention scores, attention x values), optionally requantized
    dataflow.softmax      integer softmax along the last axis (2^x table, one reciprocal per row)
    dataflow.layer_norm   integer layer norm along the last axis (isqrt, one reciprocal per row)

The leading axis of every tensor is the batch: the hardware computes one item at a time, and index
tables and row lengths are per item.  Parallelism (``lanes`` on linear/matmul) is an attribute;
FIFO depths are chosen by the emitters from the graph (docs/hardware.md).
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, IntegerType, StringAttr
from xdsl.ir import Dialect
from xdsl.irdl import irdl_op_definition, opt_prop_def, prop_def
from xdsl.traits import Pure

from .graph import GraphOp, TensorLike, element_type, operand_def, result_def, traits_def


class _IntKernel(GraphOp):
    """Base of the dataflow ops: integer bounds ``lo``/``hi`` of the result codes where they have one."""

    def _int_result(self) -> None:
        if not isinstance(element_type(self.results[0].type), IntegerType):
            self.fail(f"expected an integer result, got {self.results[0].type}")

    def _bounds(self) -> None:
        lo, hi = self.lo.value.data, self.hi.value.data
        if lo > hi:
            self.fail(f"expected lo <= hi, got lo = {lo}, hi = {hi}")


@irdl_op_definition
class QuantizeOp(_IntKernel):
    """Float to integer codes: ``clamp(round_even(x / scale) + zero_point, lo, hi)`` (``scale``: a float32 weight)."""

    name = "dataflow.quantize"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    scale = prop_def(StringAttr)
    zero_point = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self._int_result()
        self._bounds()


@irdl_op_definition
class LinearOp(_IntKernel):
    """Integer linear layer: ``acc = (x - zp_in) @ weight + bias``; with ``multiplier``/``shift`` the
    result is ``clamp(round_even(acc * M / 2^S) + zp_out, lo, hi)`` (per output channel), without
    them the accumulator itself."""

    name = "dataflow.linear"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    weight = prop_def(StringAttr)
    bias = opt_prop_def(StringAttr)
    multiplier = opt_prop_def(StringAttr)
    shift = opt_prop_def(StringAttr)
    zp_in = prop_def(IntegerAttr)
    zp_out = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self._int_result()
        self._bounds()
        if not isinstance(element_type(self.input.type), IntegerType):
            self.fail(f"expected integer input codes, got {self.input.type}")
        if (self.multiplier is None) != (self.shift is None):
            self.fail("expected both multiplier and shift, or neither")


@irdl_op_definition
class DequantizeOp(GraphOp):
    """Integer codes to float: ``(q - zero_point) * scale`` with ``scale`` a weight (scalar or per channel)."""

    name = "dataflow.dequantize"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    scale = prop_def(StringAttr)
    zero_point = prop_def(IntegerAttr)
    traits = traits_def(Pure())


class _Bounded(_IntKernel):
    def verify_(self) -> None:
        self._int_result()
        self._bounds()


@irdl_op_definition
class RequantOp(_Bounded):
    """``clamp(round((q - zp_in) * M / 2^S) + zp_out, lo, hi)``; ``multiplier``/``shift`` weights (scalar or per channel)."""

    name = "dataflow.requant"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    multiplier = prop_def(StringAttr)
    shift = prop_def(StringAttr)
    zp_in = prop_def(IntegerAttr)
    zp_out = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class AddOp(_Bounded):
    """``clamp(round(((a - zp_a) Ma + (b - zp_b) Mb) / 2^shift) + zp_out, lo, hi)``, signed multipliers
    ``mult_a``/``mult_b`` (weights, scalar or per channel) with one shift."""

    name = "dataflow.add"
    lhs = operand_def(TensorLike)
    rhs = operand_def(TensorLike)
    result = result_def(TensorLike)
    mult_a = prop_def(StringAttr)
    mult_b = prop_def(StringAttr)
    shift = prop_def(IntegerAttr)
    zp_a = prop_def(IntegerAttr)
    zp_b = prop_def(IntegerAttr)
    zp_out = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class LutOp(_Bounded):
    """``table[q - lo_in]``: the table (a weight) holds the output code of every input code."""

    name = "dataflow.lut"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    table = prop_def(StringAttr)
    lo_in = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class GatherOp(_IntKernel):
    """Per item: ``out.flat[i] = in.flat[index[i]]``, ``pad`` where the index is negative."""

    name = "dataflow.gather"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    index = prop_def(StringAttr)
    pad = prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        self._int_result()


@irdl_op_definition
class MatmulOp(_Bounded):
    """``acc = (a - zp_a) @ (b - zp_b)``; with ``multiplier``/``shift`` (integers) requantized like
    ``dataflow.linear``, without them the accumulator clamped to ``[lo, hi]``."""

    name = "dataflow.matmul"
    lhs = operand_def(TensorLike)
    rhs = operand_def(TensorLike)
    result = result_def(TensorLike)
    zp_a = prop_def(IntegerAttr)
    zp_b = prop_def(IntegerAttr)
    multiplier = opt_prop_def(IntegerAttr)
    shift = opt_prop_def(IntegerAttr)
    zp_out = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class SoftmaxOp(_Bounded):
    """Integer softmax along the last axis (:func:`mase_compiler.numerics.intops.softmax`)."""

    name = "dataflow.softmax"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    multiplier = prop_def(IntegerAttr)
    shift = prop_def(IntegerAttr)
    frac_bits = prop_def(IntegerAttr)
    numerator = prop_def(IntegerAttr)
    recip_bits = prop_def(IntegerAttr)
    zp_out = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())


@irdl_op_definition
class LayerNormOp(_Bounded):
    """Integer layer norm along the last axis (:func:`mase_compiler.numerics.intops.layer_norm`):
    ``gamma`` integer codes and ``beta`` at the scale ``s_gamma 2^-frac_bits`` are weights."""

    name = "dataflow.layer_norm"
    input = operand_def(TensorLike)
    result = result_def(TensorLike)
    gamma = prop_def(StringAttr)
    beta = prop_def(StringAttr)
    eps = prop_def(IntegerAttr)
    zp_in = prop_def(IntegerAttr)
    multiplier = prop_def(IntegerAttr)
    shift = prop_def(IntegerAttr)
    recip_bits = prop_def(IntegerAttr)
    frac_bits = prop_def(IntegerAttr)
    zp_out = prop_def(IntegerAttr)
    lo = prop_def(IntegerAttr)
    hi = prop_def(IntegerAttr)
    traits = traits_def(Pure())


Dataflow = Dialect("dataflow", [QuantizeOp, LinearOp, DequantizeOp, RequantOp, AddOp, LutOp, GatherOp, MatmulOp,
                                SoftmaxOp, LayerNormOp], [])

__all__ = ["AddOp", "Dataflow", "DequantizeOp", "GatherOp", "LayerNormOp", "LinearOp", "LutOp", "MatmulOp",
           "QuantizeOp", "RequantOp", "SoftmaxOp"]
