"""The ``quant`` dialect: number formats as attributes, quantization as ops on edges.

A format attribute carries the canonical spec string of
:mod:`mase_compiler.numerics`, so the IR, the CLI and the Python API spell a
format the same way::

    #quant.int<"int4:group=128">   #quant.fp<"fp8_e4m3">   #quant.mx<"mxfp4">
    #quant.dint<"dint4">           #quant.fixed<"fixed8:frac=4">

``quant.cast`` is quantize-then-dequantize of a tensor in a format.  With no
parameter operands the scale is computed from the data at run time (dynamic,
e.g. per-token activations, MX blocks); with a ``scale`` (and for asymmetric
integers a ``zero_point``) operand it is static, as calibration produces::

    %q = quant.cast %x {format = #quant.mx<"mxfp4">} : (tensor<4x64xf32>) -> tensor<4x64xf32>
    %r = quant.cast %y, %s {format = #quant.int<"int8">} : (tensor<4x64xf32>, tensor<f32>) -> tensor<4x64xf32>

Token-adaptive activation bits (EdgeQAT, Shen et al. 2024): ``quant.token_importance`` scores each key
token from attention logits, ``quant.token_cast`` quantizes each token of an activation with a high
or a low format by that score (arithmetic: :mod:`mase_compiler.numerics.tokens`)::

    %i = quant.token_importance %logits {method = "logits"} : (tensor<1x4x8x8xf32>) -> tensor<1x8xf32>
    %t = quant.token_cast %x, %i {high = #quant.int<"int8:token">, low = #quant.int<"int4:token">, ratio = 5.000000e-01 : f64} : (tensor<1x8x32xf32>, tensor<1x8xf32>) -> tensor<1x8x32xf32>
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr
from xdsl.ir import Dialect, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition, irdl_op_definition, opt_prop_def, prop_def
from xdsl.utils.exceptions import VerifyException

from mase_compiler.numerics import DIntFormat, FixedFormat, Format, IntFormat, MinifloatFormat, MXFormat, parse
from mase_compiler.numerics.tokens import METHODS as TOKEN_METHODS

from .graph import GraphOp, TensorLike, element_type, is_float, operand_def, result_def, shape_of, traits_def, var_operand_def
from xdsl.traits import Pure


class FormatAttr(ParametrizedAttribute):
    """Base of the format attributes: one canonical spec string."""

    spec: StringAttr
    FAMILY: ClassVar[type[Format]]

    def verify(self) -> None:
        try:
            fmt = parse(self.spec.data)
        except ValueError as e:
            raise VerifyException(f"'{self.name}' attribute has an invalid format: {e}") from None
        if not isinstance(fmt, self.FAMILY):
            raise VerifyException(f"'{self.name}' attribute expected a {self.FAMILY.__name__}, got '{self.spec.data}'")
        if str(fmt) != self.spec.data:
            raise VerifyException(f"'{self.name}' attribute expected the canonical spelling '{fmt}', got '{self.spec.data}'")

    @property
    def format(self) -> Format:
        return parse(self.spec.data)


@irdl_attr_definition
class IntFormatAttr(FormatAttr):
    name = "quant.int"
    FAMILY = IntFormat


@irdl_attr_definition
class FixedFormatAttr(FormatAttr):
    name = "quant.fixed"
    FAMILY = FixedFormat


@irdl_attr_definition
class DIntFormatAttr(FormatAttr):
    name = "quant.dint"
    FAMILY = DIntFormat


@irdl_attr_definition
class FloatFormatAttr(FormatAttr):
    name = "quant.fp"
    FAMILY = MinifloatFormat


@irdl_attr_definition
class MXFormatAttr(FormatAttr):
    name = "quant.mx"
    FAMILY = MXFormat


_BY_FAMILY: dict[type[Format], type[FormatAttr]] = {
    IntFormat: IntFormatAttr,
    FixedFormat: FixedFormatAttr,
    DIntFormat: DIntFormatAttr,
    MinifloatFormat: FloatFormatAttr,
    MXFormat: MXFormatAttr,
}


def format_attr(spec: str | Format) -> FormatAttr:
    """The attribute for a format spec (canonicalized): ``format_attr("bfp8")`` is ``#quant.mx<"mxint8">``."""
    fmt = parse(spec)
    return _BY_FAMILY[type(fmt)](StringAttr(str(fmt)))


@irdl_op_definition
class CastOp(GraphOp):
    """Quantize-dequantize ``input`` in ``format``; optional ``scale``, ``zero_point`` operands make it static."""

    name = "quant.cast"
    input = operand_def(TensorLike)
    params = var_operand_def(TensorLike)
    result = result_def(TensorLike)
    format = prop_def(FormatAttr)
    axis = opt_prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if self.input.type != self.result.type:
            self.fail(f"expected result type {self.input.type}, got {self.result.type}")
        fmt = self.format.format
        n = len(self.params)
        allowed = 0 if isinstance(fmt, (MXFormat, FixedFormat)) else 2 if isinstance(fmt, IntFormat) and not fmt.symmetric else 1
        if n > allowed:
            self.fail(f"expected at most {allowed} scale operands for '{fmt}', got {n}")


def _dims_agree(a: int, b: int) -> bool:
    return a == b or a == -1 or b == -1


@irdl_op_definition
class TokenImportanceOp(GraphOp):
    """Importance ``[batch, keys]`` of each key token from attention ``logits`` ``[batch, heads, queries,
    keys]`` (the softmax input), by ``method``: ``logits`` (EdgeQAT), ``probs`` or ``probs-sum``."""

    name = "quant.token_importance"
    logits = operand_def(TensorLike)
    result = result_def(TensorLike)
    method = prop_def(StringAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if self.method.data not in TOKEN_METHODS:
            self.fail(f"expected method one of {', '.join(TOKEN_METHODS)}, got '{self.method.data}'")
        for what, v in (("logits", self.logits), ("result", self.result)):
            if not is_float(element_type(v.type)):
                self.fail(f"expected float {what}, got {v.type}")
        src, out = shape_of(self.logits.type), shape_of(self.result.type)
        if src is not None and len(src) != 4:
            self.fail(f"expected logits [batch, heads, queries, keys], got {self.logits.type}")
        if out is not None and len(out) != 2:
            self.fail(f"expected result [batch, keys], got {self.result.type}")
        if src is not None and out is not None and not (_dims_agree(src[0], out[0]) and _dims_agree(src[3], out[1])):
            self.fail(f"expected result [batch, keys] = [{src[0]}, {src[3]}], got {self.result.type}")


@irdl_op_definition
class TokenCastOp(GraphOp):
    """Quantize each token (row) of ``input`` ``[batch, seq, d]`` with ``low`` if it is among the
    ``ratio`` least important by ``importance`` ``[batch, seq]`` (or below ``threshold`` when given),
    else with ``high``; dynamic scales."""

    name = "quant.token_cast"
    input = operand_def(TensorLike)
    importance = operand_def(TensorLike)
    result = result_def(TensorLike)
    high = prop_def(FormatAttr)
    low = prop_def(FormatAttr)
    ratio = prop_def(FloatAttr)
    threshold = opt_prop_def(FloatAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if self.input.type != self.result.type:
            self.fail(f"expected result type {self.input.type}, got {self.result.type}")
        ratio = self.ratio.value.data
        if not 0.0 <= ratio <= 1.0:
            self.fail(f"expected ratio in [0, 1], got {ratio}")
        x, imp = shape_of(self.input.type), shape_of(self.importance.type)
        if x is not None and len(x) not in (2, 3):
            self.fail(f"expected input [batch, seq, d] or [seq, d], got {self.input.type}")
        if imp is not None and len(imp) != 2:
            self.fail(f"expected importance [batch, seq], got {self.importance.type}")
        if x is not None and imp is not None:
            tokens = tuple(x[:2]) if len(x) == 3 else (1, x[0])
            if not all(_dims_agree(a, b) for a, b in zip(tokens, imp)):
                self.fail(f"expected importance [batch, seq] = {list(tokens)}, got {self.importance.type}")


def bypass_casts(module) -> None:
    """Remove every ``quant.cast`` of ``module`` in place, its users reading the cast's input: the float graph
    (``quantize`` keeps float weights in the store and casts them at run time, so this is the model before
    quantization, op for op)."""
    for op in list(module.walk()):
        if isinstance(op, CastOp):
            op.results[0].replace_all_uses_with(op.input)
            op.detach()
            op.erase()


Quant = Dialect("quant", [CastOp, TokenImportanceOp, TokenCastOp], [IntFormatAttr, FixedFormatAttr, DIntFormatAttr, FloatFormatAttr, MXFormatAttr])

__all__ = ["CastOp", "bypass_casts", "FormatAttr", "Quant", "TokenCastOp", "TokenImportanceOp", "format_attr"]
